// ModalRuntime (providers/modal.hpp) against the gRPC fake (testing/fake_modal.hpp) over real
// HTTP/2 (CurlTransport, h2c on loopback): connect/run/close, the RPC sequence and metadata
// compared with the official JS SDK's capture (tests/conformance/modal/sdk-capture.jsonl),
// attach by tag across runtimes, an early server exit, JWT refresh, throttling, retries, errors
// by status code, list/sweep, and no sandbox left. Skipped (77) without libcurl or libnghttp2.
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

#if defined(RUNBOX_WITH_CURL) && defined(RUNBOX_WITH_HTTP2_SERVER)
#include <nlohmann/json.hpp>

#include "runbox/detail/base64.hpp"
#include "runbox/factory.hpp"
#include "runbox/providers/modal.hpp"
#include "runbox/runbox.hpp"
#include "runbox/sweep.hpp"
#include "runbox/testing/fake_modal.hpp"

namespace test_modal {  // several files share a unit (tests/CMakeLists.txt)

namespace pb = runbox::detail::modal;
using runbox::Fault;
using runbox::testing::FakeModal;
using runbox::testing::FakeModalOptions;
using runbox::testing::FakeRequest;

namespace {

runbox::Config fake_config(const FakeModal& fake, nlohmann::json extra = nlohmann::json::object()) {
    runbox::Config config;
    config.use_environment({});  // nothing from the process environment (no ~/.modal.toml either)
    config.sandbox.runtime_container_image = "python:3.12-slim";
    nlohmann::json modal = {
        {"token_id", fake.token_id()},
        {"token_secret", fake.token_secret()},
        {"server_url", fake.url()},
        {"server_command", "runbox-server"},
        {"poll_interval_ms", 10},
        {"start_timeout_ms", 20000},
        {"alive_timeout_ms", 20000},
        {"alive_poll_interval_ms", 20},
        {"request_timeout_ms", 10000},
        {"retry_initial_backoff_ms", 5},
    };
    for (const auto& [k, v] : extra.items()) modal[k] = v;
    config.providers["modal"] = modal;
    return config;
}

std::string rpc(const FakeRequest& r) { return r.path.substr(r.path.rfind('/') + 1); }

std::vector<std::string> control_calls(const FakeModal& fake) {
    std::vector<std::string> out;
    for (const auto& r : fake.requests()) {
        if (r.path.find("/modal.client.ModalClient/") == 0) out.push_back(rpc(r));
    }
    return out;
}

std::size_t count(const std::vector<std::string>& calls, const std::string& name) {
    return static_cast<std::size_t>(std::count(calls.begin(), calls.end(), name));
}

bool is_uuid4(const std::string& s) {
    if (s.size() != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' || s[14] != '4') return false;
    return std::string("89ab").find(s[19]) != std::string::npos;
}

// A throttle as Modal sends it: RESOURCE_EXHAUSTED with grpc-status-details-bin =
// base64(RPCStatus{details: [Any{RPCRetryPolicy{retry_after_secs}}]}).
Fault throttle(const std::string& method, float seconds, int times = 1) {
    pb::RpcStatus status;
    status.code = 8;
    status.message = "rate limited";
    status.details.push_back({"type.googleapis.com/modal.client.RPCRetryPolicy", pb::encode(pb::RpcRetryPolicy{seconds})});
    Fault f;
    f.kind = Fault::Kind::reply;
    f.method = "POST";
    f.url_contains = "/modal.client.ModalClient/" + method;
    f.status = 8;
    f.times = times;
    f.body = "rate limited";
    f.headers.set("grpc-status-details-bin", runbox::detail::base64_encode(pb::encode(status)));
    return f;
}

Fault grpc_error(const std::string& method, int code, int times = 1) {
    Fault f;
    f.kind = Fault::Kind::reply;
    f.method = "POST";
    f.url_contains = "/modal.client.ModalClient/" + method;
    f.status = code;
    f.times = times;
    f.body = "injected";
    return f;
}

}  // namespace

TEST_CASE("modal: construction reads credentials and settings without I/O; the entrypoint is an argv") {
    runbox::Config config;
    config.use_environment({});
    CHECK_THROWS_MATCHES(runbox::modal::Auth(config), runbox::error,
                         Catch::Predicate<runbox::error>([](const runbox::error& e) {
                             return e.code() == runbox::errc::config_invalid &&
                                    std::string(e.what()).find("MODAL_TOKEN_ID") != std::string::npos;
                         }));
    config.use_environment({{"MODAL_TOKEN_ID", "ak-1"}, {"MODAL_TOKEN_SECRET", "as-1"}});
    config.workspace_mount_path_in_sandbox = "/work space";
    runbox::modal::Auth auth(config);
    CHECK(auth.settings().credentials.server_url == "https://api.modal.com:443");
    CHECK(auth.settings().tunnel_scheme == "https");
    CHECK(auth.settings().server_port == 3000);
    CHECK(auth.settings().timeout_secs == 3600);
    const auto args = auth.entrypoint_args(config, {});
    REQUIRE(args.size() > 8);
    CHECK(args[0] == "/openhands/micromamba/bin/micromamba");
    // Each argument is one element, unquoted: a workspace with a space stays one word.
    CHECK(std::find(args.begin(), args.end(), "/work space") != args.end());
    CHECK(std::find(args.begin(), args.end(), "3000") != args.end());

    config.providers["modal"] = {{"timeout_secs", "0"}};
    CHECK_THROWS_AS(runbox::modal::Auth(config), runbox::error);
    config.providers["modal"] = {{"server_url", "ftp://x"}};
    CHECK_THROWS_AS(runbox::modal::Auth(config), runbox::error);
}

TEST_CASE("modal: connect, run, close; the RPC sequence and metadata match the official SDK's") {
    FakeModal fake;
    fake.start();
    runbox::EventStream events;
    auto config = fake_config(fake);
    std::vector<runbox::RuntimeStatus> statuses;
    {
        runbox::ModalRuntime rt(config, events,
                                {.sid = "s-one",
                                 .env_vars = {{"GREETING", "hello"}},
                                 .status_callback = [&](std::string_view, runbox::RuntimeStatus s, std::string_view) {
                                     statuses.push_back(s);
                                 }});
        rt.connect();
        REQUIRE(fake.live_sandboxes() == 1);
        const auto sandboxes = fake.sandboxes();
        REQUIRE(sandboxes.size() == 1);
        const auto& sb = sandboxes[0];
        CHECK(sb.tags.at("OpenHands_SID") == "s-one");
        CHECK(sb.tags.at("runbox") == "1");
        CHECK(!sb.tags.at("runbox_token").empty());
        CHECK(sb.env.at("GREETING") == "hello");
        CHECK(sb.env.count("SESSION_API_KEY") == 1);
        REQUIRE(!sb.entrypoint_args.empty());
        CHECK(sb.entrypoint_args[0] == "runbox-server");
        CHECK(sb.entrypoint_args[1] == "3000");

        auto obs = rt.run("echo modal-$GREETING");
        auto* out = std::get_if<runbox::CmdOutputObservation>(&obs);
        REQUIRE(out);
        CHECK(out->content.find("modal-hello") != std::string::npos);
        CHECK(out->exit_code() == 0);
        rt.close();
        CHECK(fake.live_sandboxes() == 0);
        CHECK(rt.unreleased().empty());
    }
    CHECK(std::find(statuses.begin(), statuses.end(), runbox::RuntimeStatus::ready) != statuses.end());

    const auto calls = control_calls(fake);
    // The SDK's V2 order (EnvironmentGetOrCreate only learns the builder version: runbox has a setting).
    const std::vector<std::string> head{"AuthTokenGet", "AppGetOrCreate", "ImageGetOrCreate", "SandboxCreateV2"};
    REQUIRE(calls.size() >= head.size() + 1);
    CHECK(std::vector<std::string>(calls.begin(), calls.begin() + 4) == head);
    CHECK(calls.back() == "SandboxTerminateV2");
    CHECK(count(calls, "AuthTokenGet") == 1);  // one JWT for the whole session

    // Metadata: the names the SDK sends on every control-plane call, the same token pair, a
    // fresh uuid4 idempotency key per logical call, attempt counters at 0.
    std::ifstream capture(std::string(RUNBOX_SOURCE_DIR) + "/tests/conformance/modal/sdk-capture.jsonl");
    REQUIRE(capture);
    std::set<std::string> sdk_names;
    for (std::string line; std::getline(capture, line);) {
        const auto j = nlohmann::json::parse(line);
        if (j["path"].get<std::string>().find("/modal.client.ModalClient/") != 0) continue;
        if (j["path"] == "/modal.client.ModalClient/AuthTokenGet") continue;
        for (const auto& [name, value] : j["metadata"].items()) sdk_names.insert(name);
    }
    REQUIRE(sdk_names.count("x-modal-auth-token") == 1);
    std::set<std::string> keys;
    for (const auto& r : fake.requests()) {
        if (r.path.find("/modal.client.ModalClient/") != 0) continue;
        INFO(r.path);
        for (const auto& name : sdk_names) {
            if (name == "x-modal-auth-token" && rpc(r) == "AuthTokenGet") continue;
            CHECK(r.headers.count(name) == 1);
        }
        CHECK(r.headers.at("content-type") == "application/grpc");
        CHECK(r.headers.at("x-modal-token-id") == "***");  // the fake's log redacts x-modal-* values
        CHECK(r.headers.at("x-retry-attempt") == "0");
        CHECK(r.headers.at("x-throttle-retry-attempt") == "0");
        CHECK(is_uuid4(r.headers.at("x-idempotency-key")));
        keys.insert(r.headers.at("x-idempotency-key"));
        if (rpc(r) == "AuthTokenGet") CHECK(r.headers.count("x-modal-auth-token") == 0);
        CHECK(r.rpc_status == 0);
    }
    CHECK(keys.size() == calls.size());  // one key per logical call
    // The create request as the SDK sends it: an encrypted port, OPEN network, a timeout, workdir.
    for (const auto& r : fake.requests()) {
        if (rpc(r) != "SandboxCreateV2") continue;
        CHECK(r.body.find(fake.token_secret()) == std::string::npos);
    }
}

TEST_CASE("modal: attach finds the sandbox by its OpenHands_SID tag from another runtime and leaves it running") {
    FakeModal fake;
    fake.start();
    runbox::EventStream events;
    // No session-key setting: the attaching runtime derives the key from the sandbox's create token
    // (a tag) under the token secret, as a second process would.
    auto config = fake_config(fake);
    runbox::ModalRuntime other(config, events, {.sid = "other"});
    other.connect();
    runbox::ModalRuntime first(config, events, {.sid = "shared"});
    first.connect();
    REQUIRE(fake.live_sandboxes() == 2);
    (void)first.run("echo marker > attach-marker.txt");
    {
        runbox::EventStream second_events;  // another process's runtime: its own stream
        runbox::ModalRuntime second(config, second_events, {.sid = "shared", .attach_to_existing = true});
        second.connect();
        CHECK(fake.live_sandboxes() == 2);  // nothing new was created
        auto obs = second.read("attach-marker.txt");
        auto* file = std::get_if<runbox::FileReadObservation>(&obs);
        REQUIRE(file);
        CHECK(file->content.find("marker") != std::string::npos);
        second.close();
    }
    CHECK(fake.live_sandboxes() == 2);  // the attached runtime left it running
    const auto calls = control_calls(fake);
    CHECK(count(calls, "SandboxListV2") >= 1);
    first.close();
    other.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("modal: attach that finds nothing creates a sandbox, and close terminates that one") {
    FakeModal fake;
    fake.start();
    runbox::EventStream events;
    runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "fresh", .attach_to_existing = true});
    rt.connect();
    CHECK(fake.live_sandboxes() == 1);
    rt.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("modal: a server that exits early fails connect at once with its exit code (SandboxWaitV2 probe)") {
    FakeModal fake;
    fake.start();
    runbox::EventStream events;
    // `false 3000 --working-dir ...` exits 1 at once; the /alive bound is long, so only the probe
    // can end the wait with sandbox_gone instead of errc::timeout.
    auto config = fake_config(fake, {{"server_command", "false"}, {"alive_timeout_ms", 60000}});
    runbox::ModalRuntime rt(config, events, {.sid = "exits"});
    try {
        rt.connect();
        FAIL("connect should fail");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::sandbox_gone);
        CHECK(std::string(e.what()).find("exit code 1") != std::string::npos);
    }
    CHECK(fake.live_sandboxes() == 0);
    CHECK(count(control_calls(fake), "SandboxWaitV2") >= 1);
}

TEST_CASE("modal: a sandbox that fails to start fails connect, and the failed connect terminates it") {
    FakeModal fake;
    fake.start();
    Fault f;
    f.kind = Fault::Kind::start_failure;
    f.method = "POST";
    f.url_contains = "SandboxCreateV2";
    f.body = "no capacity";
    fake.inject(f);
    runbox::EventStream events;
    runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "fails"});
    CHECK_THROWS_MATCHES(rt.connect(), runbox::error, Catch::Predicate<runbox::error>([](const runbox::error& e) {
                             return e.code() == runbox::errc::sandbox_gone &&
                                    std::string(e.what()).find("no capacity") != std::string::npos;
                         }));
    CHECK(fake.live_sandboxes() == 0);
    CHECK(count(control_calls(fake), "SandboxTerminateV2") == 1);
}

TEST_CASE("modal: the JWT is refreshed before its exp through the credential-refresh hook") {
    FakeModalOptions options;
    options.token_lifetime = std::chrono::seconds(2);
    FakeModal fake(options);
    fake.start();
    runbox::EventStream events;
    runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "jwt"});
    rt.connect();
    const auto connected = std::chrono::steady_clock::now();
    // Let the first token lapse (the fake refuses it after 2 s), then close: terminate needs a fresh one.
    while (std::chrono::steady_clock::now() - connected < std::chrono::milliseconds(2200))
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    rt.close();
    CHECK(rt.unreleased().empty());
    CHECK(fake.live_sandboxes() == 0);
    const auto calls = control_calls(fake);
    CHECK(count(calls, "AuthTokenGet") == 2);
    for (const auto& r : fake.requests()) {
        if (r.path.find("/modal.client.ModalClient/") == 0) CHECK(r.rpc_status == 0);  // never UNAUTHENTICATED
    }
}

TEST_CASE("modal: a throttled call waits the server's delay and is retried with the same idempotency key") {
    FakeModal fake;
    fake.start();
    fake.inject(throttle("AppGetOrCreate", 0.2f));
    fake.inject(throttle("SandboxCreateV2", 0.05f));  // a create refused by a throttle was not performed
    runbox::EventStream events;
    runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "throttled"});
    const auto started = std::chrono::steady_clock::now();
    rt.connect();
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took >= std::chrono::milliseconds(250));  // both delays were waited
    std::vector<FakeRequest> apps, creates;
    for (const auto& r : fake.requests()) {
        if (rpc(r) == "AppGetOrCreate") apps.push_back(r);
        if (rpc(r) == "SandboxCreateV2") creates.push_back(r);
    }
    REQUIRE(apps.size() == 2);
    CHECK(apps[0].rpc_status == 8);
    CHECK(apps[1].rpc_status == 0);
    CHECK(apps[0].headers.at("x-idempotency-key") == apps[1].headers.at("x-idempotency-key"));
    CHECK(apps[1].headers.at("x-throttle-retry-attempt") == "1");
    CHECK(apps[1].headers.at("x-retry-attempt") == "0");
    REQUIRE(creates.size() == 2);
    CHECK(fake.live_sandboxes() == 1);
    rt.close();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("modal: errors come from gRPC status codes; UNAVAILABLE is retried for idempotent calls only") {
    FakeModal fake;
    fake.start();
    runbox::EventStream events;
    SECTION("UNAVAILABLE on an idempotent call is retried with x-retry-attempt") {
        fake.inject(grpc_error("ImageGetOrCreate", 14, 2));
        runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "retry"});
        rt.connect();
        std::vector<FakeRequest> images;
        for (const auto& r : fake.requests())
            if (rpc(r) == "ImageGetOrCreate") images.push_back(r);
        REQUIRE(images.size() == 3);
        CHECK(images[2].headers.at("x-retry-attempt") == "2");
        CHECK(images[0].headers.at("x-idempotency-key") == images[2].headers.at("x-idempotency-key"));
        rt.close();
    }
    SECTION("UNAVAILABLE on SandboxCreateV2 is not retried: the create may have happened") {
        fake.inject(grpc_error("SandboxCreateV2", 14, 1));
        runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "noretry"});
        try {
            rt.connect();
            FAIL("connect should fail");
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::server_error);
            CHECK(e.rpc_code() == 14);
        }
        CHECK(count(control_calls(fake), "SandboxCreateV2") == 1);
    }
    SECTION("a wrong token secret is UNAUTHENTICATED -> auth_failed, and the secret is never shown") {
        auto config = fake_config(fake, {{"token_secret", "as-wrong-secret"}});
        runbox::ModalRuntime rt(config, events, {.sid = "badauth"});
        try {
            rt.connect();
            FAIL("connect should fail");
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::auth_failed);
            CHECK(e.rpc_code() == 16);
            CHECK(std::string(e.what()).find("as-wrong-secret") == std::string::npos);
        }
    }
    SECTION("NOT_FOUND -> not_found") {
        fake.inject(grpc_error("AppGetOrCreate", 5, 1));
        runbox::ModalRuntime rt(fake_config(fake), events, {.sid = "missing"});
        CHECK_THROWS_MATCHES(rt.connect(), runbox::error, Catch::Predicate<runbox::error>([](const runbox::error& e) {
                                 return e.code() == runbox::errc::not_found && e.rpc_code() == 5;
                             }));
    }
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("modal: list_sandboxes and sweep find runbox's sandboxes by their tags") {
    FakeModalOptions options;
    options.list_page_size = 1;  // the listing must page through SandboxListV2 (before_timestamp)
    FakeModal fake(options);
    fake.start();
    runbox::EventStream events;
    const auto config = fake_config(fake);
    runbox::ModalRuntime rt(config, events, {.sid = "listed"});
    rt.connect();
    runbox::ModalRuntime rt2(config, events, {.sid = "listed-too"});
    rt2.connect();
    const auto found = runbox::list_sandboxes<runbox::modal::Auth, runbox::CurlTransport>(config);
    REQUIRE(found.size() == 2);
    std::set<std::string> sids;
    for (const auto& r : found) {
        CHECK(r.provider == "modal");
        CHECK(!r.ownership.token.empty());
        sids.insert(r.sid);
    }
    CHECK(sids == std::set<std::string>{"listed", "listed-too"});
    rt.close();
    rt2.close();
    CHECK(runbox::list_sandboxes<runbox::modal::Auth, runbox::CurlTransport>(config).empty());
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("modal: make_runtime(\"modal\") works where runbox::curl is linked") {
    FakeModal fake;
    fake.start();
    runbox::EventStream events;
    auto rt = runbox::make_runtime("modal", fake_config(fake), events, {.sid = "factory"});
    CHECK(rt.provider_name() == "modal");
    rt.connect();
    CHECK(fake.live_sandboxes() == 1);
    rt.close();
    CHECK(fake.live_sandboxes() == 0);
}

}  // namespace test_modal
#else
TEST_CASE("modal: needs libcurl and libnghttp2") {
    WARN("skipped: built without runbox::curl or runbox::http2_server");
    std::exit(77);
}
#endif
