// The E2B provider against FakeE2B: create, attach by metadata (paginated) and resume, the action
// server started over envd's Start stream and reached through the port host with the traffic
// token, a server that exits at once, envd too old, errors, retries, close modes, and runbox's
// requests compared with what the official SDK sends (tests/conformance/e2b/sdk-capture.jsonl).
// Every test ends with no live sandbox and no process left running.
#include <chrono>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "catch.hpp"

#include "runbox/event_stream.hpp"
#include "runbox/providers/e2b.hpp"
#include "runbox/testing/fake_e2b.hpp"

namespace test_e2b {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::testing::FakeE2B;
using runbox::testing::FakeE2BOptions;
using runbox::testing::FakeRequest;

namespace {

runbox::Config fake_config(const FakeE2B& fake, nlohmann::json extra = nlohmann::json::object()) {
    runbox::Config config;
    config.use_environment({});  // nothing from the process environment
    nlohmann::json e2b = {
        {"api_key", fake.api_key()},
        {"api_url", fake.url()},
        {"sandbox_url", fake.url()},
        {"server_url", fake.port_url_template()},
        {"server_command", "runbox-server"},
        {"server_cwd", "/"},
        {"timeout_seconds", 600},
        {"alive_timeout_ms", 10000},
        {"alive_poll_interval_ms", 20},
        {"request_timeout_ms", 10000},
        {"retry_initial_backoff_ms", 5},
    };
    for (const auto& [k, v] : extra.items()) e2b[k] = v;
    config.providers["e2b"] = e2b;
    return config;
}

// The provider driven directly, as Runtime drives it.
struct Driver {
    runbox::Config config;
    runbox::RuntimeOptions options;
    runbox::HttplibTransport transport;
    runbox::e2b::Auth auth;

    Driver(runbox::Config c, runbox::RuntimeOptions o) : config(std::move(c)), options(std::move(o)), auth(config) {}

    runbox::ProviderContext<runbox::HttplibTransport> ctx() {
        runbox::ProviderContext<runbox::HttplibTransport> c{config, options, transport,
                                                            [](runbox::RuntimeStatus, std::string_view) {}};
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

std::vector<FakeRequest> requests_to(const FakeE2B& fake, const std::string& method, const std::string& path_part) {
    std::vector<FakeRequest> out;
    for (const auto& r : fake.requests())
        if (r.method == method && r.path.find(path_part) != std::string::npos) out.push_back(r);
    return out;
}

std::set<std::string> keys_of(const nlohmann::json& j) {
    std::set<std::string> out;
    if (j.is_object())
        for (const auto& [k, v] : j.items()) out.insert(k);
    return out;
}

// An alive check through the port proxy with the endpoint's headers.
int alive_status(const runbox::ServerEndpoint& endpoint, bool with_headers = true) {
    runbox::HttplibTransport t;
    runbox::Request r;
    r.url = endpoint.url + "/alive";
    if (with_headers) r.headers = endpoint.headers;
    return t.send(r).status;
}

}  // namespace

TEST_CASE("e2b: construction needs E2B_API_KEY and validates settings without I/O") {
    runbox::Config config;
    config.use_environment({});
    auto e = capture_error([&] { runbox::e2b::Auth auth(config); });
    CHECK(e.code() == runbox::errc::config_invalid);
    CHECK(e.detail().find("E2B_API_KEY") != std::string::npos);

    config.use_environment({{"E2B_API_KEY", "e2b_k"}});
    runbox::e2b::Auth defaults(config);
    CHECK(defaults.settings().api_url == "https://api.e2b.app");
    CHECK(defaults.settings().sandbox_url == "https://sandbox.e2b.app");
    CHECK(defaults.settings().server_url == "https://{port}-{id}.e2b.app");
    CHECK(defaults.settings().template_id == "base");
    CHECK(defaults.settings().timeout_seconds > 0);  // the TTL backstop is on by default
    CHECK_FALSE(defaults.settings().is_public);  // ports need the traffic token unless E2B_PUBLIC=true

    config.use_environment({{"E2B_API_KEY", "e2b_k"}, {"E2B_DOMAIN", "example.org"}, {"E2B_TEMPLATE", "tpl"}});
    config.sandbox.runtime_container_image = "image-as-template";
    runbox::e2b::Auth custom(config);
    CHECK(custom.settings().api_url == "https://api.example.org");
    CHECK(custom.settings().sandbox_url == "https://49983-{id}.example.org");  // not E2B's own domain
    CHECK(custom.settings().template_id == "tpl");                            // the E2B setting wins
    config.use_environment({{"E2B_API_KEY", "e2b_k"}});
    CHECK(runbox::e2b::Auth(config).settings().template_id == "image-as-template");

    for (const auto& [key, value] : std::vector<std::pair<std::string, std::string>>{
             {"E2B_TIMEOUT_SECONDS", "0"}, {"E2B_SERVER_URL", "https://no-placeholder"}, {"E2B_API_URL", "ftp://x"}}) {
        config.use_environment({{"E2B_API_KEY", "e2b_k"}, {key, value}});
        INFO(key << "=" << value);
        auto bad = capture_error([&] { runbox::e2b::Auth auth(config); });
        CHECK(bad.code() == runbox::errc::config_invalid);
    }
}

TEST_CASE("e2b: connect creates a sandbox, starts the server over envd's Start stream; close kills it") {
    FakeE2B fake;
    fake.start();
    {
        Driver d(fake_config(fake), opts("sess-create"));
        const auto endpoint = d.connect();
        REQUIRE(fake.live_sandboxes() == 1);
        const auto sb = fake.sandboxes().front();
        CHECK(sb.id == d.auth.sandbox_id());
        CHECK(sb.template_id == "base");
        CHECK(sb.timeout_seconds == 600);
        CHECK(sb.metadata["OpenHands_SID"] == "sess-create");
        CHECK(sb.metadata["runbox"] == "1");
        CHECK(sb.env_vars["SESSION_API_KEY"] == "***");  // the fake never shows it
        CHECK_FALSE(sb.allow_public_traffic);
        REQUIRE(sb.commands.size() == 1);
        CHECK(sb.commands[0].find("runbox-server 4444 --working-dir /workspace") != std::string::npos);
        CHECK(sb.server_port == 4444);
        CHECK_FALSE(endpoint.attached);
        CHECK(endpoint.url == fake.port_url(sb.id, 4444));
        CHECK(endpoint.headers.contains("e2b-traffic-access-token"));
        CHECK(endpoint.headers.contains("X-Session-API-Key"));
        CHECK(alive_status(endpoint) == 200);
        CHECK(alive_status(endpoint, false) == 403);  // the traffic token is what lets it in
        CHECK_FALSE(d.auth.early_failure());
        d.close();
        CHECK(fake.live_sandboxes() == 0);
        CHECK(requests_to(fake, "DELETE", "/sandboxes/" + sb.id).size() == 1);
    }
    CHECK(fake.running_processes() == 0);
}

TEST_CASE("e2b: requests match the official SDK's captures (method, path, headers, body field names)") {
    FakeE2B fake;
    fake.start();
    auto config = fake_config(fake, {{"public", "true"}});
    config.sandbox.keep_runtime_alive = true;  // so that close pauses, as the capture does
    {
        Driver d(config, opts("sess-capture"));
        d.connect();
        d.close();
    }
    {
        Driver d(config, opts("sess-capture", true));  // attach: list by metadata, connect
        d.connect();
        CHECK(d.auth.attached());
        d.close();
    }
    std::ifstream capture_file(std::string(RUNBOX_SOURCE_DIR) + "/tests/conformance/e2b/sdk-capture.jsonl");
    REQUIRE(capture_file);
    std::map<std::string, nlohmann::json> sdk;  // "METHOD path-shape" -> the captured request
    auto shape = [](std::string method, std::string path) {
        for (const char* id : {"sbx_test1"}) runbox::detail::replace_all(path, id, "{id}");
        return method + " " + path.substr(0, path.find('?'));
    };
    for (std::string line; std::getline(capture_file, line);) {
        auto j = nlohmann::json::parse(line);
        sdk[shape(j["method"], j["url"])] = j;
    }
    const auto requests = fake.requests();
    REQUIRE(fake.sandboxes().size() == 1);
    const std::string id = fake.sandboxes().front().id;
    auto ours = [&](const std::string& key) {
        std::vector<FakeRequest> out;
        for (const auto& r : requests) {
            std::string path = r.path;
            runbox::detail::replace_all(path, id, "{id}");
            if (r.method + " " + path == key) out.push_back(r);
        }
        return out;
    };
    const std::set<std::string> sdk_only_headers = {"browser", "lang", "lang_version", "package_version", "publisher",
                                                    "sdk_runtime", "system", "accept", "accept-language",
                                                    "sec-fetch-mode", "accept-encoding", "transfer-encoding",
                                                    "content-length", "connection", "host", "user-agent",
                                                    "connect-timeout-ms"};
    int compared = 0;
    for (const char* key : {"POST /v2/sandboxes", "POST /process.Process/Start", "GET /v2/sandboxes",
                            "POST /sandboxes/{id}/pause", "POST /v2/sandboxes/{id}/connect"}) {
        INFO(key);
        REQUIRE(sdk.count(key) == 1);
        const auto mine = ours(key);
        REQUIRE_FALSE(mine.empty());
        const auto& theirs = sdk[key];
        for (const auto& r : mine) {
            ++compared;
            CHECK(r.status / 100 == 2);
            // Every header the SDK sends that means something to E2B, runbox sends too.
            for (const auto& [name, value] : theirs["headers"].items()) {
                if (sdk_only_headers.count(name) || (name == "content-type" && r.method == "GET")) continue;
                INFO(name);
                CHECK(r.headers.count(name) == 1);
                if (name == "content-type" || name == "connect-protocol-version" || name == "e2b-sandbox-port" ||
                    name == "keepalive-ping-interval")
                    CHECK(r.headers.at(name) == value.get<std::string>());
            }
            // Body field names: what the SDK sends, runbox sends (and nothing the API does not know).
            nlohmann::json their_body;
            if (theirs["body"].is_array()) {
                their_body = nlohmann::json::parse(theirs["body"][0]["json"].get<std::string>());
                CHECK(r.headers.at("content-type") == "application/connect+json");
            } else if (!theirs["body"].get<std::string>().empty()) {
                their_body = nlohmann::json::parse(theirs["body"].get<std::string>());
            }
            const auto my_body = theirs["body"].is_array() ? FakeE2B::stream_json(r) : r.json();
            if (std::string(key) == "POST /v2/sandboxes") {
                for (const auto& k : keys_of(their_body)) CHECK(keys_of(my_body).count(k) == 1);
                const std::set<std::string> documented = {"templateID", "timeout", "metadata", "envVars", "network",
                                                          "autoPause", "allow_internet_access"};
                for (const auto& k : keys_of(my_body)) CHECK(documented.count(k) == 1);
            } else if (std::string(key) == "POST /process.Process/Start") {
                CHECK(keys_of(my_body) == keys_of(their_body));
                CHECK(keys_of(my_body["process"]) == keys_of(their_body["process"]));
                CHECK(my_body["process"]["cmd"] == "/bin/bash");
                CHECK(my_body["process"]["args"][0] == "-l");
                CHECK(my_body["process"]["args"][1] == "-c");
            } else if (std::string(key) == "POST /v2/sandboxes/{id}/connect") {
                CHECK(my_body["timeout"] == 600);  // re-applied on resume
                for (const auto& k : keys_of(my_body)) CHECK((k == "timeout" || k == "memory"));
            } else if (std::string(key) == "GET /v2/sandboxes") {
                CHECK(r.param("metadata") == "OpenHands_SID=sess-capture");
                CHECK(r.param("state") == "running,paused");
            } else {
                for (const auto& k : keys_of(my_body)) CHECK(k == "memory");
            }
        }
    }
    CHECK(compared >= 5);
    // The attached runtime left the sandbox as it found it; clean up here.
    runbox::HttplibTransport t;
    runbox::Request del;
    del.method = "DELETE";
    del.url = fake.url() + "/sandboxes/" + fake.sandboxes().front().id;
    del.headers.set("X-API-Key", fake.api_key());
    CHECK(t.send(del).status == 204);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("e2b: attach finds the sandbox by OpenHands_SID across list pages, resumes a paused one with the timeout") {
    FakeE2B fake;
    fake.start();
    auto config = fake_config(fake, {{"list_limit", 2}, {"session_api_key", "sess-key-attach"}});
    config.sandbox.keep_runtime_alive = true;
    std::string id;
    {
        Driver first(config, opts("sess-attach"));
        first.connect();
        id = first.auth.sandbox_id();
        first.close();  // keep_runtime_alive: paused, not killed
    }
    REQUIRE(fake.sandbox(id));
    CHECK(fake.sandbox(id)->state == "paused");
    for (int i = 0; i < 5; ++i) fake.create_sandbox({{"templateID", "base"}, {"metadata", {{"OpenHands_SID", "other"}}}});
    // Newer sandboxes of the same sid family come first in the list: the walk follows X-Next-Token.
    for (int i = 0; i < 3; ++i)
        fake.create_sandbox({{"templateID", "base"}, {"metadata", {{"OpenHands_SID", "sess-attach-not"}}}});
    fake.clear_requests();
    {
        Driver d(config, opts("sess-attach", true));
        const auto endpoint = d.connect();
        CHECK(d.auth.attached());
        CHECK(d.auth.sandbox_id() == id);
        CHECK(fake.sandbox(id)->state == "running");
        CHECK(fake.sandbox(id)->timeout_seconds == 600);  // re-applied, not the platform's 300 default
        CHECK(endpoint.attached);  // the paused server went on running
        CHECK(alive_status(endpoint) == 200);
        CHECK(requests_to(fake, "POST", "/process.Process/Start").empty());  // not started twice
        d.close();
        CHECK(fake.live_sandboxes() == 9);  // attached: left alone
    }
    const auto lists = requests_to(fake, "GET", "/v2/sandboxes");
    REQUIRE(lists.size() == 1);  // the metadata filter does the finding: one page
    CHECK(lists[0].param("metadata") == "OpenHands_SID=sess-attach");
    CHECK(lists[0].param("limit") == "2");

    // The list walk follows X-Next-Token over every page (sweep's listing uses the same walk).
    for (int i = 0; i < 4; ++i)
        fake.create_sandbox({{"templateID", "base"}, {"metadata", {{"runbox", "1"}, {"OpenHands_SID", "swept"}}}});
    fake.clear_requests();
    {
        Driver d(config, opts("lister"));
        auto c = d.ctx();
        const auto found = d.auth.list_sandboxes(c);
        CHECK(found.size() == 5);  // the paused-then-resumed one and the four
        const auto pages = requests_to(fake, "GET", "/v2/sandboxes");
        REQUIRE(pages.size() == 3);
        CHECK(pages[0].params.count("nextToken") == 0);
        CHECK(pages[1].params.count("nextToken") == 1);
        CHECK(pages[2].params.count("nextToken") == 1);
    }
    // Clean up everything through the provider's own release.
    {
        Driver d(config, opts("cleanup"));
        auto c = d.ctx();
        for (const auto& sb : fake.sandboxes())
            d.auth.release_sandbox(c, runbox::SandboxRecord{"e2b", sb.id, "", "", {}}, runbox::ReleaseMode::remove);
    }
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.running_processes() == 0);
}

TEST_CASE("e2b: attach that finds nothing creates a sandbox, and close kills that one") {
    FakeE2B fake;
    fake.start();
    Driver d(fake_config(fake), opts("sess-none", true));
    d.connect();
    CHECK_FALSE(d.auth.attached());
    CHECK(fake.live_sandboxes() == 1);
    d.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("e2b: the server command exits at once: connect() fails within a second or two with the exit code and "
          "the output, and nothing is left running") {
    FakeE2B fake;
    fake.start();
    runbox::EventStream events;
    auto config = fake_config(fake, {{"server_command", "sh -c 'echo python3: not found >&2; exit 3'"},
                                     {"alive_timeout_ms", 60000}});
    runbox::E2BRuntime rt(config, events, opts("sess-dies"));
    const auto started = std::chrono::steady_clock::now();
    auto e = capture_error([&] { rt.connect(); });
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(e.code() == runbox::errc::sandbox_gone);
    CHECK(e.detail().find("exit code 3") != std::string::npos);
    CHECK(e.detail().find("python3: not found") != std::string::npos);
    CHECK(took < 30s);  // the probe stopped the wait: it did not run out the 60 s /alive window
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.wait_until([&] { return fake.running_processes() == 0; }));
}

TEST_CASE("e2b: a create whose answer is lost is found by its token and is ours even when connecting to it fails") {
    FakeE2B fake;
    fake.start();
    fake.inject({.kind = runbox::Fault::Kind::lose_response, .method = "POST", .url_contains = "/v2/sandboxes"});
    // The lookup finds the sandbox; resuming it (POST .../connect) then fails.
    fake.inject({.kind = runbox::Fault::Kind::reply, .method = "POST", .url_contains = "/connect", .status = 404});
    runbox::EventStream events;
    runbox::E2BRuntime rt(fake_config(fake), events, opts("sess-lost"));
    auto e = capture_error([&] { rt.connect(); });
    CHECK(e.code() == runbox::errc::not_found);
    CHECK(requests_to(fake, "POST", "/v2/sandboxes").size() == 2);  // the create once, the failed connect
    CHECK(fake.live_sandboxes() == 0);  // the failed connect() killed the sandbox it had found
    CHECK(rt.unreleased().empty());
}

TEST_CASE("e2b: an envd older than 0.1.0 is refused and its sandbox killed") {
    FakeE2BOptions options;
    options.envd_version = "0.0.9";
    FakeE2B fake(options);
    fake.start();
    runbox::EventStream events;
    runbox::E2BRuntime rt(fake_config(fake), events, opts("sess-old"));
    auto e = capture_error([&] { rt.connect(); });
    CHECK(e.code() == runbox::errc::unsupported);
    CHECK(e.detail().find("0.0.9") != std::string::npos);
    CHECK(requests_to(fake, "POST", "/process.Process/Start").empty());
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("e2b: errors are typed by status and Connect code, carry E2B's message and never a secret") {
    FakeE2B fake;
    fake.start();
    runbox::EventStream events;
    SECTION("a wrong API key") {
        runbox::E2BRuntime rt(fake_config(fake, {{"api_key", "e2b_wrong_key"}}), events, opts("s"));
        auto e = capture_error([&] { rt.connect(); });
        CHECK(e.code() == runbox::errc::auth_failed);
        CHECK(e.http_status() == 401);
        CHECK(std::string(e.what()).find("e2b_wrong_key") == std::string::npos);
    }
    SECTION("a create refused with 500 leaves nothing") {
        runbox::Fault f;
        f.kind = runbox::Fault::Kind::reply;
        f.method = "POST";
        f.url_contains = "/v2/sandboxes";
        f.status = 500;
        f.body = R"({"code":500,"message":"sandbox_create_failed: no capacity","error_code":"sandbox_create_failed"})";
        fake.inject(f);
        runbox::E2BRuntime rt(fake_config(fake), events, opts("s"));
        auto e = capture_error([&] { rt.connect(); });
        CHECK(e.code() == runbox::errc::server_error);
        CHECK(e.detail().find("no capacity") != std::string::npos);
        CHECK(requests_to(fake, "POST", "/v2/sandboxes").size() == 1);  // a create is never resent on 500
    }
    SECTION("envd refusing the Start call kills the created sandbox") {
        runbox::Fault f;
        f.kind = runbox::Fault::Kind::reply;
        f.url_contains = "/process.Process/Start";
        f.status = 401;
        f.body = R"({"code":"unauthenticated","message":"invalid access token"})";
        fake.inject(f);
        runbox::E2BRuntime rt(fake_config(fake), events, opts("s"));
        auto e = capture_error([&] { rt.connect(); });
        CHECK(e.code() == runbox::errc::auth_failed);
        CHECK(e.rpc_code() == 16);  // unauthenticated, from envd's Connect error body
        CHECK(requests_to(fake, "DELETE", "/sandboxes/").size() == 1);
    }
    SECTION("a Start stream that ends with a Connect error is that error") {
        runbox::E2BRuntime rt(fake_config(fake, {{"server_cwd", "/no/such/dir"}}), events, opts("s"));
        auto e = capture_error([&] { rt.connect(); });
        CHECK(e.code() == runbox::errc::config_invalid);  // invalid_argument
        CHECK(e.rpc_code() == 3);                           // the shared table keeps the RPC code
        CHECK(e.detail().find("/no/such/dir") != std::string::npos);
    }
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.wait_until([&] { return fake.running_processes() == 0; }));
}

TEST_CASE("e2b: 429 with Retry-After is retried, a create included (it was refused, not performed)") {
    FakeE2B fake;
    fake.start();
    runbox::Fault f;
    f.kind = runbox::Fault::Kind::reply;
    f.method = "POST";
    f.url_contains = "/v2/sandboxes";
    f.status = 429;
    f.times = 2;
    f.headers.set("Retry-After", "0");
    f.body = R"({"code":429,"message":"rate limited"})";
    fake.inject(f);
    Driver d(fake_config(fake), opts("sess-429"));
    d.connect();
    const auto creates = requests_to(fake, "POST", "/v2/sandboxes");
    REQUIRE(creates.size() == 3);
    CHECK(creates[0].status == 429);
    CHECK(creates[2].status == 201);
    CHECK(fake.live_sandboxes() == 1);
    d.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("e2b: a public sandbox needs no traffic token") {
    FakeE2B fake;
    fake.start();
    Driver d(fake_config(fake, {{"public", "true"}}), opts("sess-public"));
    const auto endpoint = d.connect();
    CHECK(fake.sandboxes().front().allow_public_traffic);
    CHECK_FALSE(endpoint.headers.contains("e2b-traffic-access-token"));
    CHECK(requests_to(fake, "POST", "/v2/sandboxes").front().json().count("network") == 0);
    CHECK(alive_status(endpoint) == 200);
    d.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("e2b: a full session runs commands in the sandbox's action server, and close kills it") {
    FakeE2B fake;
    fake.start();
    runbox::EventStream events;
    {
        auto options = opts("sess-full");
        options.env_vars = {{"RUNBOX_GREETING", "hello-from-e2b"}};
        runbox::E2BRuntime rt(fake_config(fake), events, options);
        rt.connect();
        CHECK(fake.live_sandboxes() == 1);
        auto obs = rt.run("echo $RUNBOX_GREETING");
        REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
        const auto& out = std::get<runbox::CmdOutputObservation>(obs);
        CHECK(out.content.find("hello-from-e2b") != std::string::npos);
        CHECK(out.metadata.exit_code == 0);
        bool through_port = false;
        for (const auto& r : fake.requests()) {
            if (!r.proxied) continue;
            through_port = true;
            CHECK(r.headers.at("e2b-traffic-access-token") == "***");
            CHECK(r.headers.at("x-session-api-key") == "***");
        }
        CHECK(through_port);
    }  // the destructor closes
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.wait_until([&] { return fake.running_processes() == 0; }));
}

}  // namespace test_e2b
