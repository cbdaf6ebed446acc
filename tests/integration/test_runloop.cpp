// The Runloop provider against FakeRunloop: create, attach, every boot status path, errors,
// retries, cleanup and a full session whose commands run in the fake devbox's real action server.
// Every test ends with no active devbox unless it keeps one on purpose (and then cleans it).
#include <chrono>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"
#include "shell_output.hpp"
#include "temp_files.hpp"

#include "runbox/event_stream.hpp"
#include "runbox/providers/runloop.hpp"
#include "runbox/testing/fake_runloop.hpp"

namespace test_runloop {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::testing::FakeRunloop;
using runbox::Fault;
using runbox::testing::FakeRunloopOptions;
using runbox::testing::FakeRequest;

namespace {

runbox::Config fake_config(const FakeRunloop& fake, nlohmann::json extra = nlohmann::json::object()) {
    runbox::Config config;
    config.use_environment({});  // nothing from the process environment
    nlohmann::json runloop = {
        {"api_key", fake.api_key()},
        {"base_url", fake.url()},
        {"tunnel_url", fake.tunnel_url_template()},
        {"poll_interval_ms", 5},
        {"start_timeout_ms", 10000},
        {"alive_timeout_ms", 10000},
        {"alive_poll_interval_ms", 20},
        {"request_timeout_ms", 10000},
        {"retry_initial_backoff_ms", 5},
    };
    for (const auto& [k, v] : extra.items()) runloop[k] = v;
    config.providers["runloop"] = runloop;
    return config;
}

FakeRunloopOptions fast_options(bool servers = true) {
    FakeRunloopOptions options;
    options.provisioning_delay = 20ms;
    options.initializing_delay = 20ms;
    options.long_poll_timeout = 200ms;
    options.start_action_servers = servers;
    return options;
}

// The provider driven directly, as Runtime drives it.
struct Driver {
    runbox::Config config;
    runbox::RuntimeOptions options;
    runbox::HttplibTransport transport;
    runbox::runloop::Auth auth;
    std::vector<std::string> statuses;

    Driver(runbox::Config c, runbox::RuntimeOptions o) : config(std::move(c)), options(std::move(o)), auth(config) {}

    runbox::ProviderContext<runbox::HttplibTransport> ctx() {
        runbox::ProviderContext<runbox::HttplibTransport> c{
            config, options, transport,
            [this](runbox::RuntimeStatus s, std::string_view) { statuses.emplace_back(runbox::to_string(s)); }};
        runbox::bind_credentials(c, auth);  // as Runtime does: the provider's credentials through the context
        return c;
    }
    runbox::ServerEndpoint connect() {
        auto c = ctx();
        return auth.connect(c);
    }
    void close(runbox::CloseReason reason = runbox::CloseReason::normal) {
        auto c = ctx();
        auth.close(c, reason);
    }
};

std::vector<FakeRequest> requests_to(const FakeRunloop& fake, const std::string& method, const std::string& suffix) {
    std::vector<FakeRequest> out;
    for (const auto& r : fake.requests()) {
        if (r.method == method && r.path.size() >= suffix.size() &&
            r.path.compare(r.path.size() - suffix.size(), suffix.size(), suffix) == 0)
            out.push_back(r);
    }
    return out;
}

std::set<std::string> keys_of(const nlohmann::json& j) {
    std::set<std::string> out;
    if (j.is_object())
        for (const auto& [k, v] : j.items()) out.insert(k);
    return out;
}

// The official SDK's requests (sdk-captures/runloop.capture.jsonl, @runloop/api-client 1.32.0):
// field names runbox shares with them for the operations both perform.
const std::set<std::string> capture_create_fields = {"name", "environment_variables", "metadata", "blueprint_name",
                                                      "launch_parameters"};
const std::set<std::string> capture_launch_fields = {"resource_size_request", "keep_alive_time_seconds", "after_idle"};
const std::set<std::string> documented_create_fields = {"name", "entrypoint", "environment_variables", "metadata",
                                                         "launch_parameters", "blueprint_id", "blueprint_name",
                                                         "snapshot_id", "tunnel"};
const std::set<std::string> documented_launch_fields = {"resource_size_request", "keep_alive_time_seconds",
                                                         "launch_commands", "after_idle"};

// Every request carries the bearer credential and the SDK's JSON content headers.
void check_sdk_shape(const FakeRequest& r) {
    CHECK(r.headers.at("authorization") == "Bearer ***");  // the fake redacts the token it checked
    CHECK(r.headers.at("accept") == "application/json");
    if (r.method == "POST") CHECK(r.headers.at("content-type") == "application/json");
    CHECK(r.status == 200);
}

runbox::RuntimeOptions opts(std::string sid, bool attach = false) {
    runbox::RuntimeOptions o;  // assigned, not designated: g++ 12 warns about omitted members
    o.sid = std::move(sid);
    o.attach_to_existing = attach;
    return o;
}

template <class F>
runbox::error capture_error(F&& f) {
    try {
        f();
    } catch (const runbox::error& e) {
        return e;
    }
    FAIL("expected runbox::error");
    throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("runloop: construction needs RUNLOOP_API_KEY and validates settings without I/O") {
    runbox::Config config;
    config.use_environment({});
    auto e = capture_error([&] { runbox::runloop::Auth auth(config); });
    CHECK(e.code() == runbox::errc::config_invalid);
    CHECK(std::string(e.what()).find("RUNLOOP_API_KEY") != std::string::npos);

    config.use_environment({{"RUNLOOP_API_KEY", "rl_env_key"}});
    runbox::runloop::Auth from_env(config);
    CHECK(from_env.settings().api_key == "rl_env_key");
    CHECK(from_env.settings().base_url == "https://api.runloop.ai");
    CHECK(from_env.settings().tunnel_url == "https://{port}-{tunnel_key}.tunnel.runloop.ai");
    CHECK(from_env.settings().tunnel_auth_mode == "authenticated");
    CHECK(from_env.settings().resource_size == "LARGE");
    runbox::Request request;
    from_env.authorize(request);
    CHECK(request.headers.get("Authorization") == "Bearer rl_env_key");

    config.use_environment({{"RUNLOOP_API_KEY", "k"}, {"RUNLOOP_BASE_URL", "https://api.example.dev/"}});
    CHECK(runbox::runloop::Auth(config).settings().base_url == "https://api.example.dev");
    CHECK(runbox::runloop::Auth(config).settings().tunnel_url == "https://{port}-{tunnel_key}.tunnel.example.dev");

    config.providers["runloop"] = {{"tunnel_auth_mode", "secret"}};
    CHECK(capture_error([&] { runbox::runloop::Auth a(config); }).code() == runbox::errc::config_invalid);
    config.providers["runloop"] = {{"poll_interval_ms", "soon"}};
    auto bad = capture_error([&] { runbox::runloop::Auth a(config); });
    CHECK(bad.detail().find("poll_interval_ms") != std::string::npos);
    config.providers["runloop"] = {{"blueprint", "bp"}, {"snapshot", "snp_1"}};
    CHECK(capture_error([&] { runbox::runloop::Auth a(config); }).code() == runbox::errc::config_invalid);
    config.providers["runloop"] = {{"base_url", "ftp://x"}};
    CHECK(capture_error([&] { runbox::runloop::Auth a(config); }).code() == runbox::errc::config_invalid);
}

TEST_CASE("runloop: the entrypoint is OpenHands' server command, configurable") {
    runbox::Config config;
    config.use_environment({{"RUNLOOP_API_KEY", "k"}});
    config.enable_browser = false;
    runbox::RuntimeOptions options;
    options.plugins = {{"agent_skills"}, {"jupyter"}};
    runbox::runloop::Auth auth(config);
    const auto cmd = auth.server_start_command(config, options);
    CHECK(cmd ==
          "/openhands/micromamba/bin/micromamba run -n openhands poetry run python -u -m "
          "openhands.runtime.action_execution_server 4444 --working-dir /workspace --plugins agent_skills jupyter "
          "--username openhands --user-id 1000 --no-enable-browser");
    const auto entry = auth.entrypoint(config, options);
    CHECK(entry.rfind("sudo bash -c 'export MAMBA_ROOT_PREFIX=/openhands/micromamba && cd /openhands/code && ", 0) == 0);
    CHECK(entry.find("poetry config virtualenvs.path /openhands/poetry && " + cmd + "'") != std::string::npos);

    config.run_as_openhands = false;
    config.providers["runloop"] = {{"server_command", "runbox-server"}, {"server_cwd", "/srv"}};
    runbox::runloop::Auth custom(config);
    CHECK(custom.entrypoint(config, {}) ==
          "sudo bash -c 'cd /srv && runbox-server 4444 --working-dir /workspace --username root --user-id 0 "
          "--no-enable-browser'");
}

TEST_CASE("runloop: connect creates a devbox, waits for running, tunnels to the server; close shuts it down") {
    FakeRunloop fake(fast_options());
    fake.start();
    auto config = fake_config(fake, {{"blueprint", "openhands-bp"}, {"keep_alive_time_seconds", 600}});
    config.debug = true;
    auto options = opts("sess-create");
    options.env_vars = {{"MY_VAR", "value"}};
    Driver d(config, options);
    const auto endpoint = d.connect();
    REQUIRE_FALSE(d.auth.devbox_id().empty());
    CHECK_FALSE(d.auth.attached());

    const auto box = fake.devbox(d.auth.devbox_id());
    REQUIRE(box);
    CHECK(box->status == "running");
    CHECK(box->name == "sess-create");
    CHECK(box->metadata["OpenHands_SID"] == "sess-create");
    CHECK(box->metadata["container-name"] == "openhands-runtime-sess-create");
    CHECK(box->environment_variables["MY_VAR"] == "value");
    CHECK(box->environment_variables["DEBUG"] == "true");
    CHECK(box->launch_parameters["resource_size_request"] == "LARGE");
    CHECK(box->launch_parameters["keep_alive_time_seconds"] == 600);
    CHECK(box->launch_parameters["launch_commands"] == nlohmann::json::array({"mkdir -p /workspace"}));
    CHECK(box->create_request["blueprint_name"] == "openhands-bp");
    CHECK(box->entrypoint.find("action_execution_server 4444 --working-dir /workspace") != std::string::npos);

    // The endpoint is the tunnel to port 4444, authenticated by default.
    CHECK(endpoint.url == fake.tunnel_url(d.auth.devbox_id(), 4444));
    CHECK(box->tunnel_auth_mode == "authenticated");
    const auto tunnel_auth = endpoint.headers.get("X-Runloop-Tunnel-Authorization");
    REQUIRE(tunnel_auth);
    CHECK(tunnel_auth->rfind("Bearer ", 0) == 0);
    CHECK(std::find(endpoint.secrets.begin(), endpoint.secrets.end(), tunnel_auth->substr(7)) != endpoint.secrets.end());
    runbox::Request alive;
    alive.url = endpoint.url + "/alive";
    alive.headers = endpoint.headers;
    CHECK(d.transport.send(alive).status == 200);
    runbox::Request unauthenticated;
    unauthenticated.url = endpoint.url + "/alive";
    CHECK(d.transport.send(unauthenticated).status == 401);

    // Status steps were reported.
    CHECK(std::find(d.statuses.begin(), d.statuses.end(), "STATUS$BUILDING_RUNTIME") != d.statuses.end());
    CHECK(std::find(d.statuses.begin(), d.statuses.end(), "STATUS$RUNTIME_STARTED") != d.statuses.end());

    d.close();
    CHECK(fake.running_devboxes() == 0);
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.devbox(d.auth.devbox_id())->shutdown_reason == "api_shutdown");
    d.close();  // idempotent: no second shutdown
    CHECK(requests_to(fake, "POST", "/shutdown").size() == 1);
}

TEST_CASE("runloop: requests match the official SDK's captures") {
    FakeRunloop fake(fast_options());
    fake.start();
    {
        // A devbox to attach to, so that the list request is exercised too.
        const auto other = fake.create_devbox({{"name", "sess-capture-attach"}});
        REQUIRE(fake.wait_until([&] { return fake.devbox(other)->status == "running"; }));
        Driver attach(fake_config(fake), opts("sess-capture-attach", true));
        attach.connect();
        attach.close();
        fake.shutdown_devbox(other, "api_shutdown");
    }
    Driver d(fake_config(fake, {{"blueprint", "bp"}}), opts("sess-capture"));
    d.connect();
    d.close();

    const auto creates = requests_to(fake, "POST", "/v1/devboxes");
    REQUIRE(creates.size() == 1);
    check_sdk_shape(creates[0]);
    CHECK(creates[0].path == "/v1/devboxes");
    const auto body = creates[0].json();
    for (const auto& key : keys_of(body)) {
        INFO("create field " << key);
        CHECK(documented_create_fields.count(key) == 1);
    }
    // runbox sends every field of the captured create, with the same names.
    for (const auto& key : capture_create_fields) {
        INFO("captured create field " << key);
        CHECK(body.contains(key));
    }
    CHECK(body["name"].is_string());
    CHECK(body["environment_variables"].is_object());
    CHECK(body["metadata"].is_object());
    CHECK(body["launch_parameters"].is_object());
    for (const auto& key : keys_of(body["launch_parameters"])) {
        INFO("launch_parameters field " << key);
        CHECK(documented_launch_fields.count(key) == 1);
    }
    for (const auto& key : keys_of(body["launch_parameters"]))
        if (key != "launch_commands") CHECK(capture_launch_fields.count(key) == 1);
    CHECK(body["launch_parameters"]["resource_size_request"].is_string());

    const auto waits = requests_to(fake, "POST", "/wait_for_status");
    REQUIRE_FALSE(waits.empty());
    for (const auto& w : waits) {
        CHECK(w.path == "/v1/devboxes/" + d.auth.devbox_id() + "/wait_for_status");
        CHECK(w.json() == nlohmann::json::parse(R"({"statuses":["running","failure","shutdown"]})"));  // as captured
        CHECK(w.headers.at("authorization") == "Bearer ***");
    }

    const auto lists = requests_to(fake, "GET", "/v1/devboxes");
    REQUIRE(lists.size() == 1);
    check_sdk_shape(lists[0]);
    CHECK(lists[0].param("status") == "running");  // captured: GET /v1/devboxes?limit=10&status=running
    CHECK(lists[0].params.count("limit") == 1);
    CHECK(lists[0].body.empty());

    const auto tunnels = requests_to(fake, "POST", "/enable_tunnel");
    REQUIRE(tunnels.size() == 2);
    for (const auto& t : tunnels) {
        check_sdk_shape(t);
        CHECK(keys_of(t.json()).count("auth_mode") == 1);  // captured: {"auth_mode":"open"}
        for (const auto& key : keys_of(t.json()))
            CHECK((key == "auth_mode" || key == "http_keep_alive" || key == "wake_on_http"));
    }

    const auto shutdowns = requests_to(fake, "POST", "/shutdown");
    REQUIRE(shutdowns.size() == 1);  // the attached devbox was not shut down by runbox
    check_sdk_shape(shutdowns[0]);
    CHECK(shutdowns[0].path == "/v1/devboxes/" + d.auth.devbox_id() + "/shutdown");
    CHECK(shutdowns[0].body.empty());  // captured: content-length 0

    // No request log line shows the key.
    for (const auto& r : fake.requests()) {
        CHECK(r.body.find(fake.api_key()) == std::string::npos);
        for (const auto& [k, v] : r.headers) CHECK(v.find(fake.api_key()) == std::string::npos);
    }
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: attach finds the running devbox named sid across list pages and leaves it running") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    const auto target = fake.create_devbox({{"name", "sess-attach"}});
    std::vector<std::string> decoys;
    for (int i = 0; i < 5; ++i) decoys.push_back(fake.create_devbox({{"name", "decoy-" + std::to_string(i)}}));
    // A devbox with the right name that is not running must not be picked.
    const auto stale = fake.create_devbox({{"name", "sess-attach"}});
    fake.shutdown_devbox(stale);
    REQUIRE(fake.wait_until([&] { return fake.running_devboxes() == 6; }));

    Driver d(fake_config(fake, {{"list_limit", 2}}), opts("sess-attach", true));
    d.connect();
    CHECK(d.auth.attached());
    CHECK(d.auth.devbox_id() == target);
    CHECK(requests_to(fake, "POST", "/v1/devboxes").empty());  // nothing created
    const auto lists = requests_to(fake, "GET", "/v1/devboxes");
    REQUIRE(lists.size() >= 3);  // the target is the oldest: the walk needs several pages
    CHECK(lists[0].params.count("starting_after") == 0);
    for (std::size_t i = 1; i < lists.size(); ++i) CHECK(lists[i].params.count("starting_after") == 1);
    CHECK(lists[0].param("limit") == "2");

    d.close();
    CHECK(requests_to(fake, "POST", "/shutdown").empty());
    CHECK(fake.devbox(target)->status == "running");  // kept on purpose: attached
    CHECK(fake.running_devboxes() == 6);
    fake.shutdown_devbox(target);
    for (const auto& id : decoys) fake.shutdown_devbox(id);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: attach reuses the tunnel the devbox already has") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    const auto id = fake.create_devbox({{"name", "sess-tunnel"}, {"tunnel", {{"auth_mode", "open"}}}});
    REQUIRE(fake.wait_until([&] { return fake.devbox(id)->status == "running"; }));
    Driver d(fake_config(fake), opts("sess-tunnel", true));
    const auto endpoint = d.connect();
    CHECK(d.auth.attached());
    CHECK(requests_to(fake, "POST", "/enable_tunnel").empty());
    CHECK(endpoint.url == fake.tunnel_url(id, 4444));
    CHECK_FALSE(endpoint.headers.contains("X-Runloop-Tunnel-Authorization"));  // an open tunnel
    d.close();
    CHECK(fake.devbox(id)->status == "running");  // kept on purpose: attached
    fake.shutdown_devbox(id);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: attach that finds nothing creates a devbox, and close shuts that one down") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    Driver d(fake_config(fake), opts("sess-missing", true));
    d.connect();
    CHECK_FALSE(d.auth.attached());
    CHECK(requests_to(fake, "GET", "/v1/devboxes").size() == 1);
    CHECK(requests_to(fake, "POST", "/v1/devboxes").size() == 1);
    CHECK(fake.running_devboxes() == 1);
    d.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: slow provisioning is waited out with wait_for_status long-polls (408 = poll again)") {
    auto options = fast_options(false);
    options.provisioning_delay = 400ms;
    options.long_poll_timeout = 100ms;
    FakeRunloop fake(options);
    fake.start();
    Driver d(fake_config(fake), opts("sess-slow"));
    d.connect();
    const auto waits = requests_to(fake, "POST", "/wait_for_status");
    const auto timeouts = std::count_if(waits.begin(), waits.end(), [](const auto& r) { return r.status == 408; });
    CHECK(timeouts >= 2);
    CHECK(waits.back().status == 200);
    CHECK(fake.devbox(d.auth.devbox_id())->status == "running");
    d.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: a devbox that ends in failure or shutdown is a typed error, and is cleaned up") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    SECTION("failure") {
        fake.inject({.kind = Fault::Kind::start_failure, .method = "POST", .url_contains = "/v1/devboxes", .body = "out_of_memory"});
        Driver d(fake_config(fake), opts("sess-fail"));
        auto e = capture_error([&] { d.connect(); });
        CHECK(e.code() == runbox::errc::sandbox_gone);
        CHECK(e.provider() == "runloop");
        CHECK(e.detail().find("failure") != std::string::npos);
        CHECK(e.detail().find("out_of_memory") != std::string::npos);
        d.close(runbox::CloseReason::connect_failed);
        CHECK(requests_to(fake, "POST", "/shutdown").size() == 1);
    }
    SECTION("shutdown") {
        fake.inject({.kind = Fault::Kind::start_failure, .method = "POST", .url_contains = "/v1/devboxes", .body = "entrypoint_exit"});
        Driver d(fake_config(fake), opts("sess-exit"));
        auto e = capture_error([&] { d.connect(); });
        CHECK(e.code() == runbox::errc::sandbox_gone);
        CHECK(e.detail().find("entrypoint_exit") != std::string::npos);
        d.close(runbox::CloseReason::connect_failed);
    }
    SECTION("never running within start_timeout") {
        fake.configure([](auto& o) {
            o.provisioning_delay = 60s;
            o.initializing_delay = 0ms;
        });
        Driver d(fake_config(fake, {{"start_timeout_ms", 300}}), opts("sess-timeout"));
        const auto started = std::chrono::steady_clock::now();
        auto e = capture_error([&] { d.connect(); });
        CHECK(e.code() == runbox::errc::timeout);
        CHECK(e.detail().find("provisioning") != std::string::npos);
        CHECK(std::chrono::steady_clock::now() - started < 5s);  // bounded
        CHECK(fake.live_sandboxes() == 1);
        d.close(runbox::CloseReason::connect_failed);  // the created devbox is shut down
        CHECK(fake.devbox(d.auth.devbox_id())->status == "shutdown");
    }
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: errors are typed by status, carry Runloop's message and never the key") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    SECTION("401 wrong key") {
        auto config = fake_config(fake, {{"api_key", "rl_wrong_key_123"}});
        Driver d(config, opts("sess-auth"));
        auto e = capture_error([&] { d.connect(); });
        CHECK(e.code() == runbox::errc::auth_failed);
        CHECK(e.http_status() == 401);
        CHECK(e.detail().find("invalid API key") != std::string::npos);
        CHECK(std::string(e.what()).find("rl_wrong_key_123") == std::string::npos);
        d.close(runbox::CloseReason::connect_failed);
    }
    SECTION("403 / 404 / 409 / 5xx / message redaction") {
        struct Case { int status; runbox::errc code; };
        for (const auto& c : {Case{403, runbox::errc::auth_failed}, Case{404, runbox::errc::not_found},
                              Case{409, runbox::errc::conflict}, Case{500, runbox::errc::server_error}}) {
            fake.inject({.kind = Fault::Kind::reply, .method = "POST", .url_contains = "/v1/devboxes",
                         .times = 1,  // a create is retried only on 429
                         .status = c.status, .body = "refused for key " + fake.api_key()});
            Driver d(fake_config(fake), opts("sess-err"));
            auto e = capture_error([&] { d.connect(); });
            INFO("status " << c.status);
            CHECK(e.code() == c.code);
            CHECK(e.http_status() == c.status);
            CHECK(e.detail().find("refused for key ***") != std::string::npos);
            CHECK(std::string(e.what()).find(fake.api_key()) == std::string::npos);
            d.close(runbox::CloseReason::connect_failed);
            fake.clear_requests();
        }
    }
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: 429 is retried honouring retry-after-ms and retry-after") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    SECTION("retry-after-ms on create") {
        fake.inject({.kind = Fault::Kind::reply, .method = "POST", .url_contains = "/v1/devboxes", .times = 2,
                     .status = 429, .headers = {{"retry-after-ms", "150"}}});
        Driver d(fake_config(fake), opts("sess-429"));
        const auto started = std::chrono::steady_clock::now();
        d.connect();
        CHECK(std::chrono::steady_clock::now() - started >= 300ms);
        const auto creates = requests_to(fake, "POST", "/v1/devboxes");
        REQUIRE(creates.size() == 3);
        CHECK(creates[0].status == 429);
        CHECK(creates[1].status == 429);
        CHECK(creates[2].status == 200);
        CHECK(fake.devboxes().size() == 1);  // a refused create created nothing
        d.close();
    }
    SECTION("retry-after (seconds) on the list") {
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/v1/", .status = 429, .headers = {{"retry-after", "1"}}});
        Driver d(fake_config(fake), opts("sess-429s", true));
        const auto started = std::chrono::steady_clock::now();
        d.connect();
        CHECK(std::chrono::steady_clock::now() - started >= 1s);
        const auto lists = requests_to(fake, "GET", "/v1/devboxes");
        REQUIRE(lists.size() == 2);
        CHECK(lists[0].status == 429);
        CHECK(lists[1].status == 200);
        d.close();
    }
    SECTION("5xx on the idempotent wait_for_status is retried, 5xx on create is not") {
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/wait_for_status", .times = 2, .status = 502});
        Driver d(fake_config(fake), opts("sess-502"));
        d.connect();
        const auto waits = requests_to(fake, "POST", "/wait_for_status");
        REQUIRE(waits.size() >= 3);
        CHECK(waits[0].status == 502);
        CHECK(waits[1].status == 502);
        d.close();
        fake.inject({.kind = Fault::Kind::reply, .method = "POST", .url_contains = "/v1/devboxes", .status = 503});
        fake.clear_requests();
        Driver once(fake_config(fake), opts("sess-503"));
        CHECK(capture_error([&] { once.connect(); }).code() == runbox::errc::server_error);
        CHECK(requests_to(fake, "POST", "/v1/devboxes").size() == 1);  // a create is never repeated after a 5xx
        once.close(runbox::CloseReason::connect_failed);
    }
    SECTION("exhausted retries surface rate_limited with the hint") {
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/v1/", .times = 50, .status = 429,
                     .headers = {{"retry-after-ms", "20"}}});
        Driver d(fake_config(fake, {{"retry_max_attempts", 3}}), opts("sess-429x"));
        auto e = capture_error([&] { d.connect(); });
        CHECK(e.code() == runbox::errc::rate_limited);
        REQUIRE(e.retry_after());
        CHECK(*e.retry_after() == 20ms);
        CHECK(requests_to(fake, "POST", "/v1/devboxes").size() == 3);
        d.close(runbox::CloseReason::connect_failed);
        CHECK(fake.devboxes().empty());
    }
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: close modes") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    SECTION("keep_runtime_alive leaves a created devbox running") {
        auto config = fake_config(fake);
        config.sandbox.keep_runtime_alive = true;
        Driver d(config, opts("sess-keep"));
        d.connect();
        d.close();
        CHECK(fake.running_devboxes() == 1);  // kept on purpose
        CHECK(requests_to(fake, "POST", "/shutdown").empty());
        fake.shutdown_devbox(d.auth.devbox_id());
    }
    SECTION("connect_failed always shuts down what connect created, even with keep_runtime_alive") {
        auto config = fake_config(fake);
        config.sandbox.keep_runtime_alive = true;
        Driver d(config, opts("sess-keep-fail"));
        d.connect();
        d.close(runbox::CloseReason::connect_failed);
        CHECK(requests_to(fake, "POST", "/shutdown").size() == 1);
    }
    SECTION("a devbox already gone (404) closes quietly") {
        Driver d(fake_config(fake), opts("sess-gone"));
        d.connect();
        fake.inject({.kind = Fault::Kind::reply, .url_contains = "/shutdown", .status = 404});
        d.close();  // no throw
        CHECK(requests_to(fake, "POST", "/shutdown").size() == 1);
        fake.shutdown_devbox(d.auth.devbox_id());
    }
    SECTION("close before connect does nothing") {
        Driver d(fake_config(fake), opts("sess-none"));
        d.close();
        CHECK(fake.requests().empty());
    }
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: a failed Runtime::connect shuts down the devbox it created") {
    FakeRunloop fake(fast_options(false));
    fake.start();
    fake.inject({.kind = Fault::Kind::reply, .url_contains = "/enable_tunnel", .times = 100, .status = 503,
                 .body = "tunnel service unavailable"});
    runbox::EventStream events;
    auto config = fake_config(fake, {{"retry_max_attempts", 2}});
    runbox::RunloopRuntime rt(config, events, opts("sess-cleanup"));
    auto e = capture_error([&] { rt.connect(); });
    CHECK(e.code() == runbox::errc::server_error);
    CHECK(e.detail().find("tunnel service unavailable") != std::string::npos);
    CHECK(requests_to(fake, "POST", "/enable_tunnel").size() == 2);
    CHECK(requests_to(fake, "POST", "/shutdown").size() == 1);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: a full session runs commands in the fake devbox's action server") {
    FakeRunloop fake(fast_options());
    fake.start();
    runbox::EventStream events;
    std::vector<std::string> statuses;
    auto config = fake_config(fake, {{"session_api_key", "sess-secret-key"}});
    {
        auto options = opts("sess-full");
        options.env_vars = {{"RUNBOX_GREETING", "hello-from-runloop"}};
        options.status_callback = [&](std::string_view, runbox::RuntimeStatus s, std::string_view) {
            statuses.emplace_back(runbox::to_string(s));
        };
        runbox::RunloopRuntime rt(config, events, options);
        rt.connect();
        CHECK(fake.running_devboxes() == 1);
        const auto box = fake.devboxes().front();
        CHECK(box.environment_variables["SESSION_API_KEY"] == "***");  // the fake never shows it

        auto obs = rt.run("echo $RUNBOX_GREETING && pwd");
        REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
        const auto& out = std::get<runbox::CmdOutputObservation>(obs);
        CHECK(out.content.find("hello-from-runloop") != std::string::npos);
        CHECK(out.metadata.exit_code == 0);

        auto failing = rt.run("exit_code_test() { return 3; }; exit_code_test");
        REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(failing));
        CHECK(std::get<runbox::CmdOutputObservation>(failing).metadata.exit_code == 3);

        // Action-server traffic went through the tunnel with both credentials.
        bool through_tunnel = false;
        for (const auto& r : fake.requests()) {
            if (!r.proxied) continue;
            through_tunnel = true;
            CHECK(r.headers.at("x-runloop-tunnel-authorization") == "Bearer ***");
            CHECK(r.headers.at("x-session-api-key") == "***");
        }
        CHECK(through_tunnel);
        runbox::HttplibTransport t;
        runbox::Request raw;
        raw.url = fake.tunnel_url(box.id, 4444) + "/alive";
        CHECK(t.send(raw).status == 401);  // no tunnel credential
        CHECK(std::find(statuses.begin(), statuses.end(), "STATUS$READY") != statuses.end());
    }  // the destructor closes
    CHECK(fake.running_devboxes() == 0);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: the entrypoint quotes every argument: a workspace with a space works, metacharacters stay text") {
    runbox_test::TempDir dir("runbox-quote");
    const auto cwd = dir.path / "server cwd";
    std::filesystem::create_directories(cwd);
    const auto pwned = [&](int n) { return (dir.path / ("pwned" + std::to_string(n))).string(); };
    runbox::Config config;
    config.use_environment({{"RUNLOOP_API_KEY", "k"}});
    config.enable_browser = false;
    config.run_as_openhands = false;
    config.workspace_mount_path_in_sandbox =
        (dir.path / ("work space $(touch " + pwned(1) + ") `touch " + pwned(2) + "`; touch " + pwned(3) + " 'q'")).string();
    config.sandbox.browsergym_eval_env = "$(touch " + pwned(4) + ")";
    config.providers["runloop"] = {{"server_command", "pwd && printf '%s\\n'"}, {"server_cwd", cwd.string()}};
    runbox::RuntimeOptions options;
    options.plugins = {{"x;touch " + pwned(5)}};
    runbox::runloop::Auth auth(config);
    const std::string entry = auth.entrypoint(config, options);
    REQUIRE(entry.rfind("sudo bash -c ", 0) == 0);
    const auto words = runbox_test::lines_of(runbox_test::shell_output(entry.substr(5)));  // the same line without sudo
    const std::vector<std::string> expected = {cwd.string(), "4444", "--working-dir", config.workspace_mount_path_in_sandbox,
                                               "--plugins", "x;touch " + pwned(5), "--username", "root", "--user-id",
                                               "0", "--browsergym-eval-env", *config.sandbox.browsergym_eval_env,
                                               "--no-enable-browser"};
    REQUIRE(words == expected);
    for (int n = 1; n <= 5; ++n) REQUIRE_FALSE(std::filesystem::exists(pwned(n)));
}

TEST_CASE("runloop: a recorded session holds no API key, tunnel token or session key") {
    runbox_test::TempDir dir;
    FakeRunloop fake(fast_options());
    fake.start();
    auto config = fake_config(fake);
    config.transport.cassette_path = (dir.path / "runloop.jsonl").string();
    runbox::EventStream events;
    std::vector<std::string> secrets{fake.api_key()};
    {
        runbox::Runtime<runbox::runloop::Auth, runbox::RecordingTransport<runbox::HttplibTransport>> rt(
            config, events, {.sid = "recorded"});
        rt.connect();
        // The tunnel's token, as the API shows it to any client holding the key.
        runbox::HttplibTransport plain;
        runbox::Request list{.url = fake.url() + "/v1/devboxes"};
        list.headers.set("Authorization", "Bearer " + fake.api_key());
        const auto devboxes = nlohmann::json::parse(plain.send(list).body);
        std::string token;
        for (const auto& d : devboxes.at("devboxes")) {
            if (d.value("name", "") == "recorded") token = d.at("tunnel").value("auth_token", "");
        }
        REQUIRE_FALSE(token.empty());  // the fake's tunnels are authenticated: there is a token to leak
        secrets.push_back(token);
        secrets.push_back(rt.session_api_key().value_or(""));
        runbox::CmdRunAction echo;
        echo.command = "echo recorded-output";
        REQUIRE(std::get<runbox::CmdOutputObservation>(rt.run(echo)).content.find("recorded-output") !=
                std::string::npos);
        rt.close();
    }
    const std::string cassette = runbox_test::read_file(dir.path / "runloop.jsonl");
    REQUIRE(cassette.find("enable_tunnel") != std::string::npos);     // the tunnel exchange was recorded
    REQUIRE(cassette.find("recorded-output") != std::string::npos);   // and the session's traffic
    for (const auto& secret : secrets) {
        REQUIRE(secret.size() >= 8);
        CHECK(cassette.find(secret) == std::string::npos);
    }
    REQUIRE(fake.live_sandboxes() == 0);
}

TEST_CASE("runloop: a kept devbox is attached from a new runtime without a session-key setting") {
    FakeRunloop fake(fast_options());
    fake.start();
    auto config = fake_config(fake);
    config.sandbox.keep_runtime_alive = true;
    runbox::EventStream events;
    std::string id;
    {
        runbox::RunloopRuntime first(config, events, {.sid = "kept"});
        first.connect();
        id = first.provider().devbox_id();
        first.close();  // kept: still running
    }
    REQUIRE(fake.live_sandboxes() == 1);
    {
        // A second process knows only the API key and the sid (runbox exec --sid kept).
        auto later = fake_config(fake);
        runbox::RunloopRuntime second(later, events, {.sid = "kept", .attach_to_existing = true});
        second.connect();
        REQUIRE(second.provider().attached());
        runbox::CmdRunAction echo;
        echo.command = "echo attached-ok";
        const auto obs = std::get<runbox::CmdOutputObservation>(second.run(echo));
        REQUIRE(obs.content.find("attached-ok") != std::string::npos);
        second.close();  // attached: left as found
    }
    REQUIRE(fake.live_sandboxes() == 1);
    fake.shutdown_devbox(id);
    REQUIRE(fake.live_sandboxes() == 0);
}

}  // namespace test_runloop
