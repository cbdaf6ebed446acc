// The cloud providers' shared control-plane pieces (providers/detail/cloud_api.hpp) on their own:
// the shell quoter against a real shell, settings errors, replay classes, pagination bounds and
// the Api client against a loopback server.
#include <httplib.h>

#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "shell_output.hpp"
#include "runbox/contract.hpp"
#include "runbox/detail/shell.hpp"
#include "runbox/providers/detail/cloud_api.hpp"
#include "runbox/transport/httplib.hpp"

namespace test_cloud_api {  // several files share a unit (tests/CMakeLists.txt)

namespace {

std::string sh_echo(const std::string& word) {
    return runbox_test::shell_output("printf '%s' " + runbox::detail::shell_quote(word));
}

struct BearerAuth {
    std::string key = "ck_secret_1";
    void authorize(runbox::Request& r) const { runbox::cloud::authorize_bearer(r, key); }
};

}  // namespace

TEST_CASE("cloud: shell_quote leaves plain words bare and makes everything else one literal word") {
    using runbox::detail::shell_quote;
    CHECK(shell_quote("/workspace") == "/workspace");
    CHECK(shell_quote("--user-id") == "--user-id");
    CHECK(shell_quote("") == "''");
    CHECK(shell_quote("a b") == "'a b'");
    CHECK(shell_quote("it's") == "'it'\\''s'");
    for (const std::string word : {"a b", "it's", "$(id)", "`id`", "a;b", "x\ny", "*", "~", "\"q\"", "back\\slash", "'"})
        CHECK(sh_echo(word) == word);  // a real shell reads back exactly the word
}

TEST_CASE("cloud: settings come from Config, else <PREFIX><KEY>; errors name the key and the variable") {
    runbox::Config config;
    config.use_environment({{"ACME_API_KEY", "k"}, {"ACME_POLL_INTERVAL_MS", "soon"}, {"ACME_MODE", "fast"}});
    const runbox::cloud::SettingsReader r(config, "acme", "ACME_");
    CHECK(r.env_name("server_port") == "ACME_SERVER_PORT");
    CHECK(r.required("api_key") == "k");
    try {
        (void)r.millis("poll_interval_ms", std::chrono::milliseconds(5));
        FAIL("read a malformed number");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(e.detail().find("poll_interval_ms") != std::string::npos);
        CHECK(e.detail().find("ACME_POLL_INTERVAL_MS") != std::string::npos);
    }
    try {
        (void)r.choice("mode", "slow", {"slow", "careful"});
        FAIL("accepted a value outside the choices");
    } catch (const runbox::error& e) {
        CHECK(e.detail().find("ACME_MODE") != std::string::npos);
    }
    config.providers["acme"] = {{"api_url", "ftp://x"}, {"alive_poll_interval_ms", 7}};
    CHECK_THROWS_AS(r.url("api_url", "https://api.acme.dev"), runbox::error);
    runbox::cloud::ApiSettings s;
    config.providers["acme"] = {{"alive_poll_interval_ms", 7}};
    config.use_environment({{"ACME_API_KEY", "k"}, {"ACME_ALIVE_POLL_INTERVAL_MS", "9"}});
    s.read_api(r);
    CHECK(s.alive_poll_interval == std::chrono::milliseconds(7));
    config.providers["acme"] = nlohmann::json::object();
    s.read_api(r);
    CHECK(s.alive_poll_interval == std::chrono::milliseconds(7));  // that key has no variable: the default stays
    CHECK(r.url("api_url", "https://api.acme.dev///") == "https://api.acme.dev");
}

TEST_CASE("cloud: replay classes map onto retry policies; pagination is bounded") {
    runbox::Config config;
    runbox::RuntimeOptions options;
    runbox::HttplibTransport transport;
    runbox::ProviderContext<runbox::HttplibTransport> ctx{config, options, transport, {}};
    runbox::cloud::ApiSettings settings;
    settings.retry_max_attempts = 3;
    settings.close_timeout = std::chrono::milliseconds(1234);
    runbox::cloud::Api<runbox::HttplibTransport> api(ctx, "acme", "http://127.0.0.1:1", settings);
    CHECK(api.policy(runbox::cloud::Replay::safe).max_attempts == 3);
    CHECK(api.policy(runbox::cloud::Replay::safe).retries_status(502));
    const auto refused = api.policy(runbox::cloud::Replay::refused_only);
    CHECK(refused.retry_statuses == std::vector<int>{429});
    CHECK_FALSE(refused.retry_dropped_connections);
    CHECK_FALSE(refused.honor_should_retry);  // a gateway's 502 may follow a performed create
    CHECK(api.policy(runbox::cloud::Replay::safe).honor_should_retry);
    CHECK(api.policy(runbox::cloud::Replay::never).max_attempts == 1);
    const auto closing = api.closing().policy(runbox::cloud::Replay::safe);
    CHECK(closing.max_attempts == 8);
    CHECK(closing.max_elapsed == std::chrono::milliseconds(1234));

    int pages = 0;
    runbox::cloud::paginate([&](const std::optional<std::string>&) { return nlohmann::json::object(); },
                            [&](const nlohmann::json&) -> std::optional<std::string> {
                                ++pages;
                                return "same";  // a server whose cursor never moves
                            });
    CHECK(pages == 2);
    pages = 0;
    runbox::cloud::paginate([&](const std::optional<std::string>&) { return nlohmann::json::object(); },
                            [&](const nlohmann::json&) -> std::optional<std::string> { return std::to_string(++pages); },
                            5);
    CHECK(pages == 5);
}

TEST_CASE("cloud: Api applies credentials through the context, raises with secrets redacted, bounds waits") {
    httplib::Server server;
    std::string seen_auth;
    server.Get("/v1/thing", [&](const httplib::Request& req, httplib::Response& res) {
        seen_auth = req.get_header_value("Authorization");
        res.set_content(R"({"state": "ready"})", "application/json");
    });
    server.Get("/v1/leak", [](const httplib::Request&, httplib::Response& res) {
        res.status = 403;
        res.set_content(R"({"message": "key ck_secret_1 is not allowed"})", "application/json");
    });
    server.Get("/v1/garbage", [](const httplib::Request&, httplib::Response& res) { res.set_content("{oops", "application/json"); });
    const int port = server.bind_to_any_port("127.0.0.1");
    std::thread thread([&] { server.listen_after_bind(); });
    while (!server.is_running()) std::this_thread::yield();

    runbox::Config config;
    runbox::RuntimeOptions options;
    runbox::HttplibTransport transport;
    runbox::ProviderContext<runbox::HttplibTransport> ctx{config, options, transport, {}};
    runbox::cloud::ApiSettings settings;
    settings.api_key = "ck_secret_1";
    settings.poll_interval = std::chrono::milliseconds(10);
    runbox::cloud::Api<runbox::HttplibTransport> api(ctx, "acme", "http://127.0.0.1:" + std::to_string(port) + "/", settings);

    // Unbound: refused, never sent without credentials.
    CHECK_THROWS_AS(api.call("GET", "/v1/thing", {}, runbox::cloud::Replay::safe), runbox::error);
    CHECK(seen_auth.empty());
    BearerAuth auth;
    runbox::bind_credentials(ctx, auth);
    CHECK(api.json("GET", "/v1/thing", {}, runbox::cloud::Replay::safe).at("state") == "ready");
    CHECK(seen_auth == "Bearer ck_secret_1");
    try {
        api.call("GET", "/v1/leak", {}, runbox::cloud::Replay::safe);
        FAIL("a 403 did not raise");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::auth_failed);
        CHECK(e.provider() == "acme");
        CHECK(std::string(e.what()).find("ck_secret_1") == std::string::npos);
    }
    try {
        api.json("GET", "/v1/garbage", {}, runbox::cloud::Replay::safe);
        FAIL("parsed a broken body");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::bad_response);
    }
    int steps = 0;
    try {
        api.wait(std::chrono::milliseconds(100), [&](const runbox::cloud::Deadline&) -> std::optional<int> {
            ++steps;
            return std::nullopt;
        }, [] { return std::string("thing did not get ready"); });
        FAIL("a wait that never ends returned");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::timeout);
        CHECK(e.detail() == "thing did not get ready within 100 ms");
    }
    CHECK(steps >= 2);
    CHECK(steps <= 12);  // calls at least poll_interval (10 ms) apart
    server.stop();
    thread.join();
}

}  // namespace test_cloud_api
