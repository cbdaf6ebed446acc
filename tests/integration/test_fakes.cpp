// The provider fakes' shared base (testing/fake_base.hpp, fake_http.hpp, detail/fake_shell.hpp):
// the same surface on every fake, runbox::Fault applied the same way, secrets kept out of the log,
// shell commands and action servers that leave nothing behind.
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <string>
#include <thread>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "runbox/testing/fake_daytona.hpp"
#include "runbox/testing/fake_e2b.hpp"
#include "runbox/testing/fake_runloop.hpp"

namespace test_fakes {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::Fault;
using runbox::testing::FakeDaytona;
using runbox::testing::FakeE2B;
using runbox::testing::FakeRunloop;
using json = nlohmann::json;

namespace {

// What differs per fake: where its API lives and what a create looks like.
// Most control planes take `Authorization: Bearer <key>` and answer a create with 200.
struct BearerAuth {
    static httplib::Headers auth(const std::string& key) { return {{"Authorization", "Bearer " + key}}; }
    static constexpr const char* credential_header = "authorization";
    static constexpr const char* logged_credential = "Bearer ***";
    static constexpr int created = 200;
};
struct DaytonaTraits : BearerAuth {
    using Fake = FakeDaytona;
    static Fake::Options options() { return {.api_key = "dtn_fakes_key", .state_delay = 10ms}; }
    static constexpr const char* list = "/api/sandbox";
    static constexpr const char* create = "/api/sandbox";
    static json create_body() { return {{"labels", {{"t", "1"}}}, {"env", {{"SESSION_API_KEY", "session-secret-1"}}}}; }
};
struct RunloopTraits : BearerAuth {
    using Fake = FakeRunloop;
    static Fake::Options options() {
        return {.api_key = "rl_fakes_key", .provisioning_delay = 10ms, .initializing_delay = 10ms};
    }
    static constexpr const char* list = "/v1/devboxes";
    static constexpr const char* create = "/v1/devboxes";
    static json create_body() { return {{"name", "t"}, {"environment_variables", {{"SESSION_API_KEY", "session-secret-1"}}}}; }
};

struct E2BTraits {
    using Fake = FakeE2B;
    static Fake::Options options() { return {.api_key = "e2b_fakes_key"}; }
    static constexpr const char* list = "/v2/sandboxes";
    static constexpr const char* create = "/v2/sandboxes";
    static json create_body() { return {{"templateID", "base"}, {"envVars", {{"SESSION_API_KEY", "session-secret-1"}}}}; }
    static httplib::Headers auth(const std::string& key) { return {{"X-API-Key", key}}; }
    static constexpr const char* credential_header = "x-api-key";
    static constexpr const char* logged_credential = "***";
    static constexpr int created = 201;
};

httplib::Client client_for(const runbox::testing::FakeHttpServer& fake) {
    httplib::Client c(fake.base_url());
    c.set_read_timeout(10s);
    return c;
}

bool process_alive(pid_t pid) { return ::kill(pid, 0) == 0; }

// Bounded poll for a condition.
template <class F>
bool eventually(F f, std::chrono::milliseconds bound = 5s) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
        if (f()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return f();
}

}  // namespace

TEMPLATE_TEST_CASE("every fake: the same surface, faults and redaction", "[fakes]", DaytonaTraits, RunloopTraits,
                   E2BTraits) {
    using Fake = typename TestType::Fake;
    Fake fake(TestType::options());
    fake.start();
    REQUIRE(fake.base_url().rfind("http://127.0.0.1:", 0) == 0);
    REQUIRE(fake.url().rfind(fake.base_url(), 0) == 0);
    REQUIRE(fake.port() > 0);
    auto cli = client_for(fake);
    const auto key = fake.api_key();

    SECTION("the API key is checked and never logged") {
        auto wrong = cli.Get(TestType::list, TestType::auth("wrong"));
        REQUIRE(wrong);
        CHECK(wrong->status == 401);
        auto right = cli.Get(TestType::list, TestType::auth(key));
        REQUIRE(right);
        CHECK(right->status == 200);
        const auto log = fake.requests();
        REQUIRE(log.size() == 2);
        CHECK(log[0].status == 401);
        CHECK(log[1].status == 200);
        CHECK(log[1].headers.at(TestType::credential_header) == TestType::logged_credential);
        for (const auto& r : log)
            for (const auto& [k, v] : r.headers) CHECK(v.find(key) == std::string::npos);
    }
    SECTION("a create's session key stays out of the log") {
        auto res = cli.Post(TestType::create, TestType::auth(key), TestType::create_body().dump(), "application/json");
        REQUIRE(res);
        CHECK(res->status == TestType::created);
        const auto log = fake.requests();
        REQUIRE(log.size() == 1);
        CHECK(log[0].body.find("session-secret-1") == std::string::npos);
        CHECK(log[0].body.find("***") != std::string::npos);
        CHECK(fake.live_sandboxes() == 1);
    }
    SECTION("reply: the given status with the provider's error body, `times` times") {
        fake.inject({.kind = Fault::Kind::reply, .method = "GET", .url_contains = TestType::list, .times = 2,
                     .status = 503, .headers = {{"Retry-After", "3"}}, .body = "try later"});
        for (int i = 0; i < 2; ++i) {
            auto res = cli.Get(TestType::list, TestType::auth(key));
            REQUIRE(res);
            CHECK(res->status == 503);
            CHECK(res->get_header_value("Retry-After") == "3");
            CHECK(json::parse(res->body)["message"] == "try later");
        }
        auto ok = cli.Get(TestType::list, TestType::auth(key));
        REQUIRE(ok);
        CHECK(ok->status == 200);
        const auto log = fake.requests();
        REQUIRE(log.size() == 3);
        CHECK(log[0].status == 503);
        CHECK(log[2].status == 200);
    }
    SECTION("a reply fault comes before the key check, other methods pass") {
        fake.inject({.kind = Fault::Kind::reply, .method = "POST", .status = 429});
        auto get = cli.Get(TestType::list, TestType::auth("wrong"));
        REQUIRE(get);
        CHECK(get->status == 401);  // GET does not match the rule
        auto post = cli.Post(TestType::create, TestType::auth("wrong"), "{}", "application/json");
        REQUIRE(post);
        CHECK(post->status == 429);
    }
    SECTION("drop: the client gets no usable answer; the log says 0") {
        fake.inject({.kind = Fault::Kind::drop, .url_contains = TestType::list});
        auto res = cli.Get(TestType::list, TestType::auth(key));
        CHECK_FALSE(res);
        const auto log = fake.requests();
        REQUIRE(log.size() == 1);
        CHECK(log[0].status == 0);
        auto again = cli.Get(TestType::list, TestType::auth(key));
        REQUIRE(again);
        CHECK(again->status == 200);
    }
    SECTION("lose_response: the create happens, its answer is lost") {
        fake.inject({.kind = Fault::Kind::lose_response, .method = "POST", .url_contains = TestType::create});
        auto res = cli.Post(TestType::create, TestType::auth(key), TestType::create_body().dump(), "application/json");
        CHECK_FALSE(res);
        CHECK(fake.live_sandboxes() == 1);
        CHECK(fake.requests().at(0).status == 0);
    }
    SECTION("delay: the request waits, then is handled") {
        fake.inject({.kind = Fault::Kind::delay, .url_contains = TestType::list, .delay = 300ms});
        const auto start = std::chrono::steady_clock::now();
        auto res = cli.Get(TestType::list, TestType::auth(key));
        REQUIRE(res);
        CHECK(res->status == 200);
        CHECK(std::chrono::steady_clock::now() - start >= 300ms);
    }
    SECTION("clear_faults and clear_requests") {
        fake.inject({.kind = Fault::Kind::reply, .times = -1, .status = 500});
        fake.clear_faults();
        auto res = cli.Get(TestType::list, TestType::auth(key));
        REQUIRE(res);
        CHECK(res->status == 200);
        fake.clear_requests();
        CHECK(fake.requests().empty());
    }
    SECTION("an unknown path is the provider's 404, logged") {
        auto res = cli.Get("/no/such/path", TestType::auth(key));
        REQUIRE(res);
        CHECK(res->status == 404);
        REQUIRE(fake.requests().size() == 1);
        CHECK(fake.requests()[0].path == "/no/such/path");
    }
    fake.stop();
}

TEST_CASE("fake shell commands: output, exit status, timeout, nothing left behind", "[fakes][shell]") {
    runbox::testing::ShellRunner runner;
    const auto dir = std::filesystem::temp_directory_path();

    SECTION("stdout and stderr apart or merged; the exit status; the environment") {
        auto r = runner.run("echo out; echo err >&2; echo \"$FAKE_VAR\"; exit 3", dir, {{"FAKE_VAR", "v1"}}, 10s, false);
        CHECK(r.out == "out\nv1\n");
        CHECK(r.err == "err\n");
        CHECK(r.exit_code == 3);
        CHECK_FALSE(r.timed_out);
        auto merged = runner.run("echo out; echo err >&2", dir, {}, 10s, true);
        CHECK(merged.out == "out\nerr\n");
        CHECK(merged.err.empty());
    }
    SECTION("SESSION_API_KEY never reaches a command") {
        auto r = runner.run("echo \"[$SESSION_API_KEY]\"", dir, {{"SESSION_API_KEY", "k"}}, 10s, false);
        CHECK(r.out == "[]\n");
    }
    SECTION("a timeout kills the command") {
        auto r = runner.run("sleep 30", dir, {}, 200ms, false);
        CHECK(r.timed_out);
        CHECK(r.exit_code == 128 + SIGKILL);
    }
    SECTION("a background job does not outlive its command") {
        auto r = runner.run("sleep 30 >/dev/null 2>&1 & echo $!", dir, {}, 10s, false);
        CHECK(r.exit_code == 0);
        const pid_t job = static_cast<pid_t>(std::stol(r.out));
        REQUIRE(job > 0);
        CHECK(eventually([&] { return !process_alive(job); }));
    }
    SECTION("kill_all ends running commands and every later one") {
        auto running = runner.start("sleep 30", dir, {}, false);
        runner.kill_all();
        REQUIRE(running->wait(10s));
        CHECK(running->result().exit_code == 128 + SIGKILL);
        auto later = runner.start("sleep 30", dir, {}, false);
        REQUIRE(later->wait(10s));
        CHECK(later->result().exit_code == 128 + SIGKILL);
    }
}

TEST_CASE("fake action servers: stopped with the fake, none started after", "[fakes][servers]") {
    runbox::testing::SandboxServers servers;
    runbox::testing::SandboxDir dir("test");
    const auto home = dir.path();
    REQUIRE(std::filesystem::is_directory(home));
    auto options = runbox::testing::sandbox_server_options(home, {{"SESSION_API_KEY", "sk"}, {"A", "1"}});
    CHECK(options.session_api_key == "sk");
    CHECK(options.env.count("SESSION_API_KEY") == 0);
    CHECK(options.env.at("A") == "1");
    auto server = servers.start(options);
    httplib::Client c("127.0.0.1", server->port());
    auto alive = c.Get("/alive");
    REQUIRE(alive);
    CHECK(alive->status == 200);
    servers.stop_all();  // stops a server that someone still holds
    httplib::Client after("127.0.0.1", server->port());
    after.set_connection_timeout(2s);
    CHECK_FALSE(after.Get("/alive"));
    CHECK_THROWS_AS(servers.start(options), runbox::error);
    dir.remove();
    CHECK_FALSE(std::filesystem::exists(home));
}

TEST_CASE("FakeRequest and RequestLog", "[fakes][log]") {
    runbox::testing::RequestLog log;
    log.add_secrets_from_env(json{{"MY_TOKEN", "tok-123"}, {"PLAIN", "visible"}});
    log.add_secret("api-456");
    runbox::testing::FakeRequest r;
    r.method = "POST";
    r.path = "/x";
    r.target = "/x?key=api-456";
    r.params.emplace("key", "api-456");
    r.headers = {{"X-Session-API-Key", "s"}, {"X-Other", "has tok-123 in it"}, {"Authorization", "Bearer api-456"}};
    r.body = R"({"a":"tok-123","b":"visible"})";
    const auto index = log.add(r);
    log.set_status(index, 201);
    auto proxied = r;
    proxied.proxied = true;
    log.add(proxied);
    const auto all = log.all();
    REQUIRE(all.size() == 2);
    CHECK(all[0].status == 201);
    CHECK(all[0].target == "/x?key=***");
    CHECK(all[0].param("key") == "***");
    CHECK(all[0].param("absent").empty());
    CHECK(all[0].headers.at("x-session-api-key") == "***");
    CHECK(all[0].headers.at("authorization") == "Bearer ***");
    CHECK(all[0].headers.at("x-other") == "has *** in it");
    CHECK(all[0].json() == json{{"a", "***"}, {"b", "visible"}});
    CHECK(all[1].body == "<" + std::to_string(r.body.size()) + " bytes>");
    CHECK(all[1].json().is_null());
}

}  // namespace test_fakes
