// The Daytona provider against FakeDaytona: every connect/close branch, error mapping, retries,
// a full session through the preview proxy, and runbox's requests compared with the requests
// the official SDK sends (tests/conformance/daytona/sdk-capture.jsonl).
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "shell_output.hpp"
#include "temp_files.hpp"
#include "runbox/event_stream.hpp"
#include "runbox/providers/daytona.hpp"
#include "runbox/testing/fake_daytona.hpp"

namespace test_daytona {  // several files share a unit (tests/CMakeLists.txt)

using runbox::testing::FakeDaytona;
using runbox::testing::FakeDaytonaOptions;
using runbox::testing::FakeRequest;
using runbox::Fault;
using json = nlohmann::json;

namespace {

constexpr const char* key = "dtn_test_key_123";

FakeDaytonaOptions fake_options() {
    FakeDaytonaOptions o;
    o.api_key = key;
    o.state_delay = std::chrono::milliseconds(30);
    return o;
}

// A Config pointing at the fake with fast polls; `extra` overrides provider settings.
runbox::Config make_config(const FakeDaytona& fake, const json& extra = json::object()) {
    runbox::Config config;
    config.use_environment({});
    json settings = {{"api_key", key},
                     {"api_url", fake.url()},
                     {"poll_interval_ms", 10},
                     {"start_timeout_ms", 5000},
                     {"alive_timeout_ms", 10000},
                     {"alive_poll_interval_ms", 20},
                     {"retry_initial_backoff_ms", 10},
                     {"server_command", "runbox-server"}};
    for (const auto& [k, v] : extra.items()) settings[k] = v;
    config.providers["daytona"] = settings;
    config.sandbox.runtime_container_image = "runbox/test-snapshot:1";
    config.enable_browser = false;
    return config;
}

std::vector<FakeRequest> requests_matching(FakeDaytona& fake, const std::string& method, const std::string& path_regex) {
    std::vector<FakeRequest> out;
    const std::regex re(path_regex);
    for (auto& r : fake.requests()) {
        if (r.method == method && std::regex_match(r.path, re)) out.push_back(r);
    }
    return out;
}

std::string text_of(const runbox::Observation& obs) {
    if (const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs)) return out->content;
    if (const auto* err = std::get_if<runbox::ErrorObservation>(&obs)) return "ERROR: " + err->content;
    return "<other observation>";
}

int exit_code_of(const runbox::Observation& obs) {
    if (const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs)) return out->metadata.exit_code;
    return -1000;
}

// Options built by assignment: designated initializers are shown in examples/daytona.cpp.
runbox::RuntimeOptions opts(std::string sid, bool attach = false) {
    runbox::RuntimeOptions o;
    o.sid = std::move(sid);
    o.attach_to_existing = attach;
    return o;
}

template <class F>
bool eventually(F&& done, std::chrono::milliseconds bound = std::chrono::seconds(5)) {
    return runbox::poll_until(std::forward<F>(done), bound, std::chrono::milliseconds(5));
}

// Runs only the provider's connect/close (no Runtime), for control-plane branches.
struct ProviderHarness {
    runbox::Config config;
    runbox::RuntimeOptions options;
    runbox::HttplibTransport transport;
    runbox::daytona::Auth auth;
    std::vector<runbox::RuntimeStatus> statuses;
    runbox::ProviderContext<runbox::HttplibTransport> ctx;

    ProviderHarness(runbox::Config c, runbox::RuntimeOptions o)
        : config(std::move(c)),
          options(std::move(o)),
          auth(config),
          ctx{config, options, transport, [this](runbox::RuntimeStatus s, std::string_view) { statuses.push_back(s); }} {
        runbox::bind_credentials(ctx, auth);  // as Runtime does: the provider's credentials through the context
    }
};

}  // namespace

TEST_CASE("daytona: settings come from Config with environment fallback") {
    runbox::Config config;
    SECTION("a missing key fails at construction, naming DAYTONA_API_KEY") {
        config.use_environment({});
        try {
            runbox::daytona::Auth auth(config);
            FAIL("constructed without a key");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::config_invalid);
            REQUIRE(std::string(e.what()).find("DAYTONA_API_KEY") != std::string::npos);
        }
    }
    SECTION("defaults") {
        config.use_environment({{"DAYTONA_API_KEY", "k"}});
        runbox::daytona::Auth auth(config);
        REQUIRE(auth.settings().api_url == "https://app.daytona.io/api");
        REQUIRE(auth.settings().target == "eu");
        REQUIRE_FALSE(auth.settings().disable_auto_stop);
        REQUIRE_FALSE(auth.settings().delete_on_close);
        REQUIRE_FALSE(auth.settings().is_public);  // private unless the user opts out (issue 11)
        REQUIRE_FALSE(auth.settings().organization_id);
    }
    SECTION("environment values") {
        config.use_environment({{"DAYTONA_API_KEY", "k"},
                                {"DAYTONA_API_URL", "http://127.0.0.1:1/api/"},
                                {"DAYTONA_TARGET", "us"},
                                {"DAYTONA_DISABLE_AUTO_STOP", "TRUE"},
                                {"DAYTONA_DELETE_ON_CLOSE", "yes"},  // only "true"/"1" count
                                {"DAYTONA_ORGANIZATION_ID", "org-9"}});
        runbox::daytona::Auth auth(config);
        REQUIRE(auth.settings().api_url == "http://127.0.0.1:1/api");
        REQUIRE(auth.settings().target == "us");
        REQUIRE(auth.settings().disable_auto_stop);
        REQUIRE_FALSE(auth.settings().delete_on_close);
        REQUIRE(auth.settings().organization_id == std::optional<std::string>("org-9"));
    }
    SECTION("Config.providers wins over the environment") {
        config.use_environment({{"DAYTONA_API_KEY", "from-env"}, {"DAYTONA_TARGET", "us"}});
        config.providers["daytona"] = {{"api_key", "from-config"}, {"target", "eu"}};
        runbox::daytona::Auth auth(config);
        REQUIRE(auth.settings().api_key == "from-config");
        REQUIRE(auth.settings().target == "eu");
    }
    SECTION("a bad number names the setting") {
        config.use_environment({{"DAYTONA_API_KEY", "k"}, {"DAYTONA_POLL_INTERVAL_MS", "soon"}});
        REQUIRE_THROWS_AS(runbox::daytona::Auth(config), runbox::error);
    }
    SECTION("authorize adds the bearer key and the organization header") {
        config.use_environment({{"DAYTONA_API_KEY", "k1"}, {"DAYTONA_ORGANIZATION_ID", "org-1"}});
        runbox::daytona::Auth auth(config);
        runbox::Request request;
        auth.authorize(request);
        REQUIRE(request.headers.get("Authorization") == std::optional<std::string>("Bearer k1"));
        REQUIRE(request.headers.get("X-Daytona-Organization-ID") == std::optional<std::string>("org-1"));
    }
}

TEST_CASE("daytona: the server start command is OpenHands' §5 line") {
    runbox::Config config;
    config.use_environment({{"DAYTONA_API_KEY", "k"}});
    config.enable_browser = false;
    runbox::RuntimeOptions options;
    options.plugins = {{"agent_skills"}, {"jupyter"}};
    runbox::daytona::Auth auth(config);
    REQUIRE(auth.server_start_command(config, options) ==
            "mkdir -p /workspace && cd /openhands/code && /openhands/micromamba/bin/micromamba run -n openhands poetry "
            "run python -u -m openhands.runtime.action_execution_server 4444 --working-dir /workspace --plugins "
            "agent_skills jupyter --username openhands --user-id 1000 --no-enable-browser");
}

TEST_CASE("daytona: connect creates a sandbox, runs commands through the preview proxy, close stops it") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake);
    config.debug = true;
    runbox::EventStream events;
    std::vector<runbox::RuntimeStatus> statuses;
    {
        auto options = opts("session-001");
        options.env_vars = {{"MY_VAR", "my value"}};
        options.status_callback = [&](std::string_view, runbox::RuntimeStatus s, std::string_view) { statuses.push_back(s); };
        runbox::DaytonaRuntime rt(config, events, options);
        rt.connect();
        REQUIRE(fake.live_sandboxes() == 1);
        const auto sandboxes = fake.sandboxes();
        REQUIRE(sandboxes.size() == 1);
        const auto& sb = sandboxes.front();
        REQUIRE(sb.labels.at("OpenHands_SID") == "session-001");
        REQUIRE(sb.snapshot == "runbox/test-snapshot:1");
        REQUIRE_FALSE(sb.is_public);
        REQUIRE(sb.auto_stop_interval == 60);
        REQUIRE(sb.target == "eu");
        REQUIRE(sb.env.at("port") == "4444");
        REQUIRE(sb.env.at("PYTHONUNBUFFERED") == "1");
        REQUIRE(sb.env.at("VSCODE_PORT") == "4445");
        REQUIRE(sb.env.at("DEBUG") == "true");
        REQUIRE(sb.server_running);
        REQUIRE(sb.server_command.find("runbox-server 4444 --working-dir /workspace") != std::string::npos);
        REQUIRE(rt.provider().sandbox_id() == sb.id);
        REQUIRE(rt.action_execution_server_url().find("/preview/" + sb.id + "/4444") != std::string::npos);

        const auto obs = rt.run("echo hello from $MY_VAR");
        REQUIRE(exit_code_of(obs) == 0);
        REQUIRE(text_of(obs).find("hello from my value") != std::string::npos);
        const auto failing = rt.run("exit 3");
        REQUIRE(exit_code_of(failing) == 3);
        const auto wrote = rt.write(sb.directory.string() + "/note.txt", "written through daytona\n");
        (void)wrote;
        const auto cat = rt.run("cat note.txt");
        REQUIRE(text_of(cat).find("written through daytona") != std::string::npos);

        rt.close();
        REQUIRE(fake.live_sandboxes() == 0);
        const auto after = fake.sandbox(sb.id);
        REQUIRE(after);
        REQUIRE((after->state == "stopping" || after->state == "stopped"));
        REQUIRE_FALSE(after->server_running);
        rt.close();  // idempotent: no second stop
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/[^/]+/stop").size() == 1);
    }
    REQUIRE(std::find(statuses.begin(), statuses.end(), runbox::RuntimeStatus::building_runtime) != statuses.end());
    REQUIRE(std::find(statuses.begin(), statuses.end(), runbox::RuntimeStatus::ready) != statuses.end());
    // The API key never shows up in what the fake recorded (it redacts) nor in any status text.
    for (const auto& r : fake.requests()) REQUIRE(r.body.find(key) == std::string::npos);
}

TEST_CASE("daytona: disable_auto_stop sends autoStopInterval 0; target and private preview token") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake, {{"disable_auto_stop", "true"}, {"target", "us"}, {"public", false}});
    runbox::EventStream events;
    runbox::DaytonaRuntime rt(config, events, opts("private-1"));
    rt.connect();
    const auto sb = fake.sandboxes().front();
    REQUIRE(sb.auto_stop_interval == 0);
    REQUIRE(sb.target == "us");
    REQUIRE_FALSE(sb.is_public);
    REQUIRE(exit_code_of(rt.run("true")) == 0);
    // Every preview request carried the token (the fake answers 401 without it).
    for (const auto& r : fake.requests()) {
        if (r.path.rfind("/preview/", 0) == 0) REQUIRE(r.headers.count("x-daytona-preview-token") == 1);
    }
    rt.close();
    REQUIRE(fake.live_sandboxes() == 0);
}

TEST_CASE("daytona: delete_on_close deletes instead of stopping") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake, {{"delete_on_close", "true"}});
    runbox::EventStream events;
    {
        runbox::DaytonaRuntime rt(config, events, opts("del-1"));
        rt.connect();
    }  // the destructor closes
    REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/[^/]+").size() == 1);
    REQUIRE(requests_matching(fake, "POST", "/api/sandbox/[^/]+/stop").empty());
    REQUIRE(fake.live_sandboxes() == 0);
    REQUIRE(fake.existing_sandboxes() == 0);
}

TEST_CASE("daytona: attach finds the sandbox by label and leaves it running on close") {
    FakeDaytona fake(fake_options());
    fake.start();
    const auto id = fake.add_sandbox({{"OpenHands_SID", "shared"}, {"code-toolbox-language", "python"}});
    fake.add_sandbox({{"OpenHands_SID", "someone-else"}});
    auto config = make_config(fake);
    runbox::EventStream events;
    {
        runbox::DaytonaRuntime rt(config, events, opts("shared", true));
        rt.connect();
        REQUIRE(rt.provider().sandbox_id() == id);
        REQUIRE(rt.provider().attached());
        REQUIRE(exit_code_of(rt.run("echo attached")) == 0);
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox").empty());
        // The server was already running: no new session command.
        REQUIRE(requests_matching(fake, "POST", "/toolbox/.*/exec").empty());
        const auto lists = requests_matching(fake, "GET", "/api/sandbox");
        REQUIRE(lists.size() == 1);
        REQUIRE(json::parse(lists.front().params.find("labels")->second) == json{{"OpenHands_SID", "shared"}});
    }
    // Kept on purpose: attached sandboxes are not ours to stop.
    REQUIRE(fake.live_sandboxes() == 2);
    REQUIRE(requests_matching(fake, "POST", "/api/sandbox/[^/]+/stop").empty());
    REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/[^/]+").empty());
}

TEST_CASE("daytona: attach follows list pagination") {
    auto options = fake_options();
    options.max_page_size = 1;
    FakeDaytona fake(options);
    fake.start();
    const auto id = fake.add_sandbox({{"OpenHands_SID", "paged"}});
    fake.add_sandbox({{"OpenHands_SID", "other"}});  // newer: first page if the filter were ignored
    auto config = make_config(fake);
    runbox::EventStream events;
    {
        runbox::DaytonaRuntime rt(config, events, opts("paged", true));
        rt.connect();
        REQUIRE(rt.provider().sandbox_id() == id);
    }
    // Pages of one: a single match means a single page (no nextCursor).
    const auto lists = requests_matching(fake, "GET", "/api/sandbox");
    REQUIRE(lists.size() == 1);
    // Two matching sandboxes split over two pages are both seen: attach refuses to guess.
    fake.add_sandbox({{"OpenHands_SID", "paged"}});
    fake.clear_requests();
    runbox::DaytonaRuntime rt2(config, events, opts("paged", true));
    try {
        rt2.connect();
        FAIL("attached although two sandboxes carry the label");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::conflict);
    }
    const auto pages = requests_matching(fake, "GET", "/api/sandbox");
    REQUIRE(pages.size() == 2);
    REQUIRE(pages[1].params.count("cursor") == 1);
    REQUIRE(fake.live_sandboxes() == 3);  // all added by the test, kept on purpose
}

TEST_CASE("daytona: attach that finds nothing creates a sandbox and starts its server") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake);
    runbox::EventStream events;
    {
        runbox::DaytonaRuntime rt(config, events, opts("fresh", true));
        rt.connect();
        REQUIRE_FALSE(rt.provider().attached());
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox").size() == 1);
        REQUIRE(fake.sandboxes().front().server_running);
        REQUIRE(exit_code_of(rt.run("echo ok")) == 0);
    }
    REQUIRE(fake.live_sandboxes() == 0);  // we created it, so close stopped it
}

TEST_CASE("daytona: each sandbox state on attach") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake);
    runbox::EventStream events;

    SECTION("stopped -> start, then the server is started") {
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "stopped");
        runbox::DaytonaRuntime rt(config, events, opts("s", true));
        rt.connect();
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/" + id + "/start").size() == 1);
        REQUIRE(fake.sandbox(id)->server_running);
        REQUIRE(exit_code_of(rt.run("true")) == 0);
        rt.close();
        REQUIRE(fake.live_sandboxes() == 0);  // found stopped, started here: returned to stopped
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/" + id + "/stop").size() == 1);
        REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/.*").empty());  // not ours to delete
    }
    SECTION("stopped -> start; with keep_runtime_alive close leaves it running") {
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "stopped");
        auto keep = config;
        keep.sandbox.keep_runtime_alive = true;
        runbox::DaytonaRuntime rt(keep, events, opts("s", true));
        rt.connect();
        REQUIRE(rt.provider().restarted());
        rt.close();
        REQUIRE(fake.live_sandboxes() == 1);  // the user asked to keep it
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/" + id + "/stop").empty());
    }
    SECTION("started -> attached as found; close leaves it running") {
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "started", true, true);
        runbox::DaytonaRuntime rt(config, events, opts("s", true));
        rt.connect();
        REQUIRE_FALSE(rt.provider().restarted());
        rt.close();
        REQUIRE(fake.sandbox(id)->state == "started");
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/" + id + "/stop").empty());
    }
    SECTION("archived -> start") {
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "archived");
        runbox::DaytonaRuntime rt(config, events, opts("s", true));
        rt.connect();
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/" + id + "/start").size() == 1);
        REQUIRE(fake.sandbox(id)->state == "started");
    }
    SECTION("stopping -> waits for stopped, then starts") {
        fake.configure([](FakeDaytonaOptions& o) { o.state_delay = std::chrono::milliseconds(150); });
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "stopping");
        runbox::DaytonaRuntime rt(config, events, opts("s", true));
        rt.connect();
        REQUIRE(requests_matching(fake, "GET", "/api/sandbox/" + id).size() >= 2);  // polled while stopping
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/" + id + "/start").size() == 1);
        REQUIRE(fake.sandbox(id)->state == "started");
    }
    SECTION("error -> typed error with the reason, nothing deleted") {
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "started", true, false);
        fake.set_state(id, "error", "disk quota exceeded");
        runbox::DaytonaRuntime rt(config, events, opts("s", true));
        try {
            rt.connect();
            FAIL("connected to a sandbox in error");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::sandbox_gone);
            REQUIRE(std::string(e.what()).find("disk quota exceeded") != std::string::npos);
        }
        REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/.*").empty());  // not ours
    }
    SECTION("unknown -> bounded wait, then timeout") {
        auto quick = make_config(fake, {{"start_timeout_ms", 200}});
        const auto id = fake.add_sandbox({{"OpenHands_SID", "s"}}, "started", true, false);
        fake.set_state(id, "unknown");
        runbox::DaytonaRuntime rt(quick, events, opts("s", true));
        const auto start = std::chrono::steady_clock::now();
        try {
            rt.connect();
            FAIL("connected to a sandbox in state unknown");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::timeout);
        }
        REQUIRE(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
        REQUIRE(requests_matching(fake, "GET", "/api/sandbox/" + id).size() >= 2);
    }
}

TEST_CASE("daytona: a create that fails leaves nothing behind") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake);
    runbox::EventStream events;

    SECTION("sandbox ends in error: typed error with the reason, sandbox deleted") {
        fake.inject({.kind = Fault::Kind::start_failure, .method = "POST", .url_contains = "/api/sandbox",
                     .body = "no capacity in region"});
        runbox::DaytonaRuntime rt(config, events, opts("e"));
        try {
            rt.connect();
            FAIL("connected");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::sandbox_gone);
            REQUIRE(std::string(e.what()).find("no capacity in region") != std::string::npos);
        }
        REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/[^/]+").size() == 1);
        REQUIRE(fake.existing_sandboxes() == 0);
    }
    SECTION("a start failure without a reason: typed error, sandbox deleted") {
        fake.inject({.kind = Fault::Kind::start_failure, .method = "POST", .url_contains = "/api/sandbox"});
        runbox::DaytonaRuntime rt(config, events, opts("e"));
        REQUIRE_THROWS_AS(rt.connect(), runbox::error);
        REQUIRE(fake.existing_sandboxes() == 0);
    }
    SECTION("the create request itself fails: server_error with Daytona's message") {
        fake.inject({.kind = Fault::Kind::reply, .method = "POST", .url_contains = "/api/sandbox", .status = 500,
                     .body = "snapshot runbox/test-snapshot:1 is not active"});
        runbox::DaytonaRuntime rt(config, events, opts("e"));
        try {
            rt.connect();
            FAIL("connected");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::server_error);
            REQUIRE(e.http_status() == 500);
            REQUIRE(e.detail().find("is not active") != std::string::npos);
        }
        REQUIRE(fake.sandboxes().empty());
    }
    SECTION("409 from create maps to conflict") {
        fake.inject({.kind = Fault::Kind::reply, .method = "POST", .url_contains = "/api/sandbox", .status = 409});
        runbox::DaytonaRuntime rt(config, events, opts("e"));
        try {
            rt.connect();
            FAIL("connected");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::conflict);
        }
    }
    SECTION("the server never becomes reachable: timeout, sandbox deleted") {
        auto quick = make_config(fake, {{"alive_timeout_ms", 300}});
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/preview/", .times = -1, .status = 502});
        runbox::DaytonaRuntime rt(quick, events, opts("e"));
        try {
            rt.connect();
            FAIL("connected");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::timeout);
        }
        REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/[^/]+").size() == 1);
        REQUIRE(fake.existing_sandboxes() == 0);
        REQUIRE(fake.live_sandboxes() == 0);
    }
    SECTION("slow start beyond start_timeout: timeout, sandbox deleted") {
        auto quick = make_config(fake, {{"start_timeout_ms", 150}});
        fake.configure([](FakeDaytonaOptions& o) { o.create_delay = std::chrono::milliseconds(3000); });
        runbox::DaytonaRuntime rt(quick, events, opts("e"));
        try {
            rt.connect();
            FAIL("connected");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::timeout);
        }
        REQUIRE(fake.existing_sandboxes() == 0);
    }
    REQUIRE(fake.live_sandboxes() == 0);
}

TEST_CASE("daytona: slow start within the bound succeeds") {
    auto options = fake_options();
    options.create_delay = std::chrono::milliseconds(200);
    FakeDaytona fake(options);
    fake.start();
    auto config = make_config(fake);
    runbox::EventStream events;
    {
        runbox::DaytonaRuntime rt(config, events, opts("slow"));
        rt.connect();
        // The create answered `creating`; the provider polled until `started`.
        REQUIRE(requests_matching(fake, "GET", "/api/sandbox/[^/]+").size() >= 2);
        REQUIRE(exit_code_of(rt.run("true")) == 0);
    }
    REQUIRE(fake.live_sandboxes() == 0);
}

TEST_CASE("daytona: a wrong key is auth_failed and never echoed") {
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake, {{"api_key", "dtn_wrong_secret_value"}});
    runbox::EventStream events;
    runbox::DaytonaRuntime rt(config, events, opts("x"));
    try {
        rt.connect();
        FAIL("connected with a wrong key");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::auth_failed);
        REQUIRE(e.http_status() == 401);
        REQUIRE(std::string(e.what()).find("dtn_wrong_secret_value") == std::string::npos);
        REQUIRE(std::string(e.what()).find("Invalid credentials") != std::string::npos);
    }
    REQUIRE(fake.sandboxes().empty());
}

TEST_CASE("daytona: 429 is retried after Retry-After-<throttler>; exhausted retries say rate_limited") {
    FakeDaytona fake(fake_options());
    fake.start();
    runbox::EventStream events;
    SECTION("one 429 on create: waits the advertised second, then succeeds") {
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/api/", .status = 429, .headers = {{"Retry-After", "1"}}});
        auto config = make_config(fake);
        runbox::DaytonaRuntime rt(config, events, opts("rl"));
        const auto start = std::chrono::steady_clock::now();
        rt.connect();
        REQUIRE(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(950));
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox").size() == 2);
        REQUIRE(fake.existing_sandboxes() == 1);  // the refused attempt created nothing
        rt.close();
        REQUIRE(fake.live_sandboxes() == 0);
    }
    SECTION("no retries left: rate_limited carrying retry_after") {
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/api/", .status = 429, .headers = {{"Retry-After", "7"}}});
        auto config = make_config(fake, {{"retry_max_attempts", 1}});
        runbox::DaytonaRuntime rt(config, events, opts("rl"));
        try {
            rt.connect();
            FAIL("connected");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::rate_limited);
            REQUIRE(e.retry_after() == std::optional<std::chrono::milliseconds>(std::chrono::seconds(7)));
            REQUIRE(e.detail().find("Rate limit exceeded") != std::string::npos);
        }
        REQUIRE(fake.sandboxes().empty());
    }
}

TEST_CASE("daytona: a burst of 502 from the preview proxy is ridden out") {
    FakeDaytona fake(fake_options());
    fake.start();
    fake.inject({.kind = Fault::Kind::reply, .url_contains = "/preview/", .times = 5, .status = 502});
    auto config = make_config(fake);
    runbox::EventStream events;
    {
        runbox::DaytonaRuntime rt(config, events, opts("bg"));
        rt.connect();
        REQUIRE(exit_code_of(rt.run("echo through")) == 0);
        // All five 502s were consumed by requests the runtime retried.
        std::size_t previews = 0;
        for (const auto& r : fake.requests()) previews += r.path.rfind("/preview/", 0) == 0 ? 1 : 0;
        REQUIRE(previews > 5);
    }
    REQUIRE(fake.live_sandboxes() == 0);
}

TEST_CASE("daytona: the provider alone - connect_failed close deletes, normal close of a stopped sandbox does nothing") {
    FakeDaytona fake(fake_options());
    fake.start();
    SECTION("connect_failed after a successful connect deletes what was created") {
        ProviderHarness h(make_config(fake), opts("p1"));
        const auto endpoint = h.auth.connect(h.ctx);
        REQUIRE(!endpoint.url.empty());
        REQUIRE(endpoint.retry);  // the 502 window is Daytona's retry policy, carried by the endpoint
        REQUIRE(endpoint.retry->max_elapsed == std::chrono::milliseconds(10000));
        REQUIRE(endpoint.retry->retries_status(502));
        REQUIRE(endpoint.alive_poll_interval == std::chrono::milliseconds(20));
        REQUIRE(std::find(endpoint.secrets.begin(), endpoint.secrets.end(), key) != endpoint.secrets.end());
        h.auth.close(h.ctx, runbox::CloseReason::connect_failed);
        REQUIRE(requests_matching(fake, "DELETE", "/api/sandbox/[^/]+").size() == 1);
        REQUIRE(fake.existing_sandboxes() == 0);
    }
    SECTION("a sandbox already stopped (auto-stop) is not stopped again") {
        ProviderHarness h(make_config(fake), opts("p2"));
        h.auth.connect(h.ctx);
        fake.set_state(h.auth.sandbox_id(), "stopped");
        h.auth.close(h.ctx, runbox::CloseReason::normal);
        REQUIRE(requests_matching(fake, "POST", "/api/sandbox/[^/]+/stop").empty());
        REQUIRE(fake.live_sandboxes() == 0);
    }
    SECTION("close of a sandbox deleted behind our back does not throw") {
        ProviderHarness h(make_config(fake), opts("p3"));
        h.auth.connect(h.ctx);
        fake.set_state(h.auth.sandbox_id(), "destroyed");
        h.auth.close(h.ctx, runbox::CloseReason::normal);
        REQUIRE(fake.live_sandboxes() == 0);
    }
    SECTION("organization header is sent on API and toolbox requests") {
        ProviderHarness h(make_config(fake, {{"organization_id", "org-42"}}), opts("p4"));
        h.auth.connect(h.ctx);
        h.auth.close(h.ctx, runbox::CloseReason::normal);
        for (const auto& r : fake.requests()) {
            if (r.path.rfind("/preview/", 0) == 0) continue;
            REQUIRE(r.headers.count("x-daytona-organization-id") == 1);
            REQUIRE(r.headers.at("x-daytona-organization-id") == "org-42");
        }
        REQUIRE(fake.live_sandboxes() == 0);
    }
}

// Normalises a request target: sandbox ids -> {id}, port numbers -> {port}; returns path and
// the sorted query parameter names.
static std::pair<std::string, std::set<std::string>> shape_of(const std::string& target) {
    std::string path = target.substr(0, target.find('?'));
    std::set<std::string> names;
    if (auto q = target.find('?'); q != std::string::npos) {
        std::string query = target.substr(q + 1);
        std::size_t pos = 0;
        while (pos <= query.size()) {
            auto amp = query.find('&', pos);
            if (amp == std::string::npos) amp = query.size();
            const std::string pair = query.substr(pos, amp - pos);
            if (!pair.empty()) names.insert(pair.substr(0, pair.find('=')));
            pos = amp + 1;
        }
    }
    path = std::regex_replace(path, std::regex(R"(^/api/sandbox/[^/]+)"), "/api/sandbox/{id}");
    path = std::regex_replace(path, std::regex(R"(/ports/\d+/)"), "/ports/{port}/");
    path = std::regex_replace(path, std::regex(R"(^/toolbox/[^/]+/)"), "/toolbox/{id}/");
    path = std::regex_replace(path, std::regex(R"(/process/session/[^/]+/exec$)"), "/process/session/{sid}/exec");
    return {path, names};
}

static std::set<std::string> keys_of(const std::string& body) {
    std::set<std::string> out;
    const auto j = json::parse(body, nullptr, false);
    if (j.is_object()) {
        for (const auto& [k, v] : j.items()) out.insert(k);
    }
    return out;
}

TEST_CASE("daytona: runbox's requests match the official SDK's (method, path, auth, body fields)") {
    std::ifstream capture_file(std::string(RUNBOX_SOURCE_DIR) + "/tests/conformance/daytona/sdk-capture.jsonl");
    REQUIRE(capture_file);
    std::vector<json> captured;
    for (std::string line; std::getline(capture_file, line);) {
        if (!line.empty()) captured.push_back(json::parse(line));
    }
    REQUIRE(captured.size() >= 10);

    FakeDaytona fake(fake_options());
    fake.start();
    runbox::EventStream events;
    // Drive every operation runbox performs: create, preview, stop (close); attach: list, get, start.
    {
        runbox::DaytonaRuntime rt(make_config(fake), events, opts("cap"));
        rt.connect();
    }
    REQUIRE(eventually([&] { return fake.sandboxes().front().state == "stopped"; }));
    {
        runbox::DaytonaRuntime rt(make_config(fake, {{"delete_on_close", "true"}}), events,
                                  opts("cap", true));
        rt.connect();
    }  // attached to the stopped one and started it: close stops it again (never deletes it)
    {
        ProviderHarness h(make_config(fake, {{"delete_on_close", "true"}}), opts("cap2"));
        h.auth.connect(h.ctx);
        h.auth.close(h.ctx, runbox::CloseReason::normal);
    }

    // The operations both perform, as (method, normalised path).
    const std::set<std::pair<std::string, std::string>> shared_ops = {
        {"POST", "/api/sandbox"},
        {"GET", "/api/sandbox"},
        {"GET", "/api/sandbox/{id}"},
        {"POST", "/api/sandbox/{id}/start"},
        {"POST", "/api/sandbox/{id}/stop"},
        {"DELETE", "/api/sandbox/{id}"},
        {"GET", "/api/sandbox/{id}/ports/{port}/preview-url"},
        {"POST", "/toolbox/{id}/process/session"},
        {"POST", "/toolbox/{id}/process/session/{sid}/exec"},
    };
    const std::set<std::string> create_fields = {
        "name", "snapshot", "user", "env", "labels", "public", "networkBlockAll", "networkAllowList",
        "domainAllowList", "outboundProxyUrl", "otelEndpointOverride", "target", "cpu", "gpu", "gpuType", "spot",
        "memory", "disk", "autoStopInterval", "autoPauseInterval", "autoArchiveInterval", "autoDeleteInterval",
        "ttlMinutes", "volumes", "buildInfo", "linkedSandbox", "secrets", "kvm"};
    const std::set<std::string> exec_fields = {"command", "runAsync", "async", "suppressInputEcho"};

    std::set<std::pair<std::string, std::string>> seen;
    for (const auto& r : fake.requests()) {
        if (r.path.rfind("/preview/", 0) == 0) continue;  // the action server's own protocol
        const auto [path, params] = shape_of(r.target);
        const std::pair<std::string, std::string> op{r.method, path};
        INFO(r.method << " " << r.target);
        REQUIRE(shared_ops.count(op) == 1);  // runbox only uses operations the SDK uses
        REQUIRE(r.headers.count("authorization") == 1);
        seen.insert(op);
        // Find the SDK's request for the same operation.
        const json* sdk = nullptr;
        for (const auto& c : captured) {
            if (c["method"] == r.method && shape_of(c["url"].get<std::string>()).first == path) sdk = &c;
        }
        if (sdk == nullptr) continue;  // (none of runbox's ops lack a capture; checked below)
        REQUIRE((*sdk)["headers"].contains("authorization"));
        const auto sdk_params = shape_of((*sdk)["url"].get<std::string>()).second;
        for (const auto& p : params) {
            INFO("query parameter " << p);
            REQUIRE((sdk_params.count(p) == 1 || p == "cursor"));
        }
        for (const auto& p : sdk_params) REQUIRE(params.count(p) == 1);  // e.g. stop?force=false, list limit+labels
        const auto ours = keys_of(r.body);
        const auto theirs = keys_of((*sdk)["body"].get<std::string>());
        if (op.second == "/api/sandbox" && op.first == "POST") {
            for (const auto& k : ours) REQUIRE(create_fields.count(k) == 1);
            for (const auto& k : theirs) REQUIRE(ours.count(k) == 1);  // env, labels, target, autoStopInterval
            const auto body = json::parse(r.body);
            REQUIRE(body["labels"].contains("code-toolbox-language"));
        } else if (path == "/toolbox/{id}/process/session/{sid}/exec") {
            for (const auto& k : ours) REQUIRE(exec_fields.count(k) == 1);
            REQUIRE(ours.count("command") == 1);
            REQUIRE(ours.count("runAsync") == 1);
        } else {
            REQUIRE(ours == theirs);
        }
        if (!r.body.empty()) REQUIRE(r.headers.at("content-type") == "application/json");
    }
    for (const auto& op : shared_ops) {
        INFO(op.first << " " << op.second);
        REQUIRE(seen.count(op) == 1);
        bool captured_op = false;
        for (const auto& c : captured) {
            captured_op = captured_op || (c["method"] == op.first && shape_of(c["url"].get<std::string>()).first == op.second);
        }
        REQUIRE(captured_op);
    }
    REQUIRE(fake.live_sandboxes() == 0);  // the attached one is back to stopped
    REQUIRE(fake.existing_sandboxes() == 1);  // and still exists
}

TEST_CASE("FakeDaytona: the API behaviours clients rely on") {
    FakeDaytona fake(fake_options());
    fake.start();
    runbox::HttplibTransport http;
    auto call = [&](std::string method, const std::string& url, std::string body = {}, bool auth = true) {
        runbox::Request r;
        r.method = std::move(method);
        r.url = url;
        r.body = std::move(body);
        if (auth) r.headers.set("Authorization", std::string("Bearer ") + key);
        if (!r.body.empty()) r.headers.set("Content-Type", "application/json");
        return http.send(r);
    };
    SECTION("bearer check with Daytona's error body; socket.io is absent") {
        const auto denied = call("GET", fake.url() + "/sandbox", {}, false);
        REQUIRE(denied.status == 401);
        const auto body = json::parse(denied.body);
        REQUIRE(body["statusCode"] == 401);
        REQUIRE(body["message"] == "Invalid credentials");
        REQUIRE(body["path"] == "/api/sandbox");
        REQUIRE(call("GET", fake.url() + "/socket.io/?EIO=4").status == 404);
    }
    SECTION("states move over time: stop -> stopping -> stopped; delete -> 404") {
        const auto created = json::parse(call("POST", fake.url() + "/sandbox", R"({"labels":{"k":"v"}})").body);
        REQUIRE(created["state"] == "started");
        REQUIRE(created["toolboxProxyUrl"] == fake.toolbox_url());
        const std::string id = created["id"];
        const auto stopping = json::parse(call("POST", fake.url() + "/sandbox/" + id + "/stop").body);
        REQUIRE(stopping["state"] == "stopping");
        REQUIRE(eventually([&] { return json::parse(call("GET", fake.url() + "/sandbox/" + id).body)["state"] == "stopped"; }));
        REQUIRE(call("DELETE", fake.url() + "/sandbox/" + id).status == 200);
        REQUIRE(eventually([&] { return call("GET", fake.url() + "/sandbox/" + id).status == 404; }));
    }
    SECTION("list: labels filter, cursor pagination, limit bounds") {
        for (int i = 0; i < 3; ++i) call("POST", fake.url() + "/sandbox", R"({"labels":{"team":"a"}})");
        call("POST", fake.url() + "/sandbox", R"({"labels":{"team":"b"}})");
        const std::string filter = "labels=" + runbox::url_encode(R"({"team":"a"})");
        const auto page1 = json::parse(call("GET", fake.url() + "/sandbox?limit=2&" + filter).body);
        REQUIRE(page1["items"].size() == 2);
        REQUIRE(page1["nextCursor"].is_string());
        const auto page2 = json::parse(
            call("GET", fake.url() + "/sandbox?limit=2&" + filter + "&cursor=" + page1["nextCursor"].get<std::string>()).body);
        REQUIRE(page2["items"].size() == 1);
        REQUIRE(page2["nextCursor"].is_null());
        REQUIRE(call("GET", fake.url() + "/sandbox?limit=0").status == 400);
    }
    SECTION("toolbox: async session command, status without exit code until done, logs") {
        const std::string id = json::parse(call("POST", fake.url() + "/sandbox", "{}").body)["id"];
        const std::string box = fake.toolbox_url() + "/" + id;
        REQUIRE(call("POST", box + "/process/session", R"({"sessionId":"s"})").status == 201);
        REQUIRE(call("POST", box + "/process/session", R"({"sessionId":"s"})").status == 409);
        const auto started = call("POST", box + "/process/session/s/exec", R"({"command":"echo out; echo err >&2","runAsync":true})");
        REQUIRE(started.status == 202);
        const std::string cmd = json::parse(started.body)["cmdId"];
        REQUIRE(eventually([&] {
            return json::parse(call("GET", box + "/process/session/s/command/" + cmd).body).contains("exitCode");
        }));
        const auto logs = json::parse(call("GET", box + "/process/session/s/command/" + cmd + "/logs").body);
        REQUIRE(logs["stdout"] == "out\n");
        REQUIRE(logs["stderr"] == "err\n");
        const auto exec = json::parse(call("POST", box + "/process/execute", R"({"command":"echo $HOME"})").body);
        REQUIRE(exec["exitCode"] == 0);
        REQUIRE(exec["result"].get<std::string>().find("runbox-fake-daytona") != std::string::npos);  // not the real home
        REQUIRE(call("POST", box + "/process/execute", R"({"command":"sleep 5","timeout":1})").status == 408);
    }
    SECTION("preview proxy: 502 before the server runs, token for private sandboxes, 502 after stop") {
        const auto created = json::parse(call("POST", fake.url() + "/sandbox", R"({"public":false})").body);
        const std::string id = created["id"];
        const auto link = json::parse(call("GET", fake.url() + "/sandbox/" + id + "/ports/4444/preview-url").body);
        const std::string url = link["url"];
        const std::string token = link["token"];
        auto alive = [&](bool with_token) {
            runbox::Request r;
            r.url = url + "/alive";
            if (with_token) r.headers.set("X-Daytona-Preview-Token", token);
            return http.send(r).status;
        };
        REQUIRE(alive(true) == 502);
        const std::string box = fake.toolbox_url() + "/" + id;
        call("POST", box + "/process/session", R"({"sessionId":"srv"})");
        REQUIRE(call("POST", box + "/process/session/srv/exec", R"({"command":"runbox-server 4444","runAsync":true})").status == 202);
        REQUIRE(alive(false) == 401);
        REQUIRE(alive(true) == 200);
        REQUIRE(fake.sandbox(id)->server_running);
        call("POST", fake.url() + "/sandbox/" + id + "/stop");
        REQUIRE_FALSE(fake.sandbox(id)->server_running);
        REQUIRE(alive(true) == 502);
    }
}

TEST_CASE("daytona: the start command quotes every argument: a workspace with a space works, metacharacters stay text") {
    runbox_test::TempDir dir("runbox-quote");
    const auto cwd = dir.path / "server cwd";
    std::filesystem::create_directories(cwd);
    const auto pwned = [&](int n) { return (dir.path / ("pwned" + std::to_string(n))).string(); };
    runbox::Config config;
    config.use_environment({{"DAYTONA_API_KEY", "k"}});
    config.enable_browser = false;
    config.workspace_mount_path_in_sandbox =
        (dir.path / ("work space $(touch " + pwned(1) + ") `touch " + pwned(2) + "`; touch " + pwned(3) + " 'q'")).string();
    config.sandbox.browsergym_eval_env = "$(touch " + pwned(4) + ")";
    // The operator's own command (shell text, not quoted): prints where it runs, then each argument.
    config.providers["daytona"] = {{"server_command", "pwd && printf '%s\\n'"}, {"server_cwd", cwd.string()}};
    runbox::RuntimeOptions options;
    options.plugins = {{"agent_skills"}, {"x;touch " + pwned(5)}};
    runbox::daytona::Auth auth(config);
    const auto words = runbox_test::lines_of(runbox_test::shell_output(auth.server_start_command(config, options)));
    const std::vector<std::string> expected = {cwd.string(), "4444", "--working-dir", config.workspace_mount_path_in_sandbox,
                                               "--plugins", "agent_skills", "x;touch " + pwned(5), "--username",
                                               "openhands", "--user-id", "1000", "--browsergym-eval-env",
                                               *config.sandbox.browsergym_eval_env, "--no-enable-browser"};
    REQUIRE(words == expected);
    REQUIRE(std::filesystem::is_directory(config.workspace_mount_path_in_sandbox));  // mkdir -p made that one directory
    for (int n = 1; n <= 5; ++n) REQUIRE_FALSE(std::filesystem::exists(pwned(n)));
}

TEST_CASE("daytona: one deadline bounds the /alive wait, the preview proxy's 502 window included") {
    FakeDaytona fake(fake_options());
    fake.start();
    fake.inject({.kind = Fault::Kind::reply, .url_contains = "/preview/", .times = -1, .status = 502});
    // On main each /alive attempt ran its own 502 window of alive_timeout: 2000 ms became ~3200.
    auto config = make_config(fake, {{"alive_timeout_ms", 2000}, {"alive_poll_interval_ms", 1200}});
    runbox::EventStream events;
    runbox::DaytonaRuntime rt(config, events, opts("bound"));
    const auto start = std::chrono::steady_clock::now();
    try {
        rt.connect();
        FAIL("connected through a proxy that only answers 502");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::timeout);
        REQUIRE(std::string(e.what()).find("/alive within 2000 ms") != std::string::npos);
    }
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(took >= std::chrono::milliseconds(2000));
    REQUIRE(took < std::chrono::milliseconds(2800));
    REQUIRE(fake.existing_sandboxes() == 0);  // connect_failed deleted it
}

TEST_CASE("daytona: a recorded session holds no API key, preview token or session key") {
    runbox_test::TempDir dir;
    FakeDaytona fake(fake_options());
    fake.start();
    auto config = make_config(fake);
    config.transport.cassette_path = (dir.path / "daytona.jsonl").string();
    runbox::EventStream events;
    std::vector<std::string> secrets{key};
    {
        runbox::Runtime<runbox::daytona::Auth, runbox::RecordingTransport<runbox::HttplibTransport>> rt(
            config, events, opts("recorded"));
        rt.connect();
        // The preview token, as the API hands it to any client holding the key.
        const auto sandboxes = fake.sandboxes();
        REQUIRE(sandboxes.size() == 1);
        runbox::HttplibTransport plain;
        runbox::Request link{.url = fake.url() + "/sandbox/" + sandboxes.front().id + "/ports/4444/preview-url"};
        link.headers.set("Authorization", std::string("Bearer ") + key);
        const std::string token = json::parse(plain.send(link).body).value("token", "");
        REQUIRE_FALSE(token.empty());  // private by default: there is a token to leak
        secrets.push_back(token);
        secrets.push_back(rt.session_api_key().value_or(""));
        REQUIRE(exit_code_of(rt.run("echo recorded-output")) == 0);
        rt.close();
    }
    const std::string cassette = runbox_test::read_file(dir.path / "daytona.jsonl");
    REQUIRE(cassette.find("preview-url") != std::string::npos);      // the link exchange was recorded
    REQUIRE(cassette.find("recorded-output") != std::string::npos);  // and the session's traffic
    for (const auto& secret : secrets) {
        REQUIRE(secret.size() >= 8);
        CHECK(cassette.find(secret) == std::string::npos);
    }
    REQUIRE(fake.live_sandboxes() == 0);
}

}  // namespace test_daytona
