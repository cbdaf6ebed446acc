// FakeModal where Modal's SDK does not reach: a gRPC client (CurlTransport over h2c, the codec of
// providers/detail/modal_proto.hpp) drives the control plane and the command router and checks
// auth refusals (token pair, JWT, expiry, router JWT), the sandbox lifecycle with a real action
// server behind its tunnel, exec output and exit codes, list paging, waits, faults, limits and
// hostile frames. Skipped (77) without libcurl or libnghttp2.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"

#if defined(RUNBOX_WITH_CURL) && defined(RUNBOX_WITH_HTTP2_SERVER)
#include <httplib.h>

#include "runbox/providers/detail/modal_auth.hpp"
#include "runbox/providers/detail/modal_proto.hpp"
#include "runbox/rpc_status.hpp"
#include "runbox/testing/fake_modal.hpp"
#include "runbox/transport/curl.hpp"
#include "runbox/transport/envelope.hpp"

namespace test_fake_modal {  // several files share a unit (tests/CMakeLists.txt)

namespace pb = runbox::detail::modal;
using runbox::testing::FakeModal;
using runbox::testing::FakeModalOptions;

namespace {

constexpr const char* control = "modal.client.ModalClient";
constexpr const char* router = "modal.task_command_router.TaskCommandRouter";

/// One gRPC answer: its status, message and every message of its body.
struct Answer {
    int http = 0;
    int code = -1;
    std::string message;
    std::vector<std::string> messages;
};

/// A minimal gRPC client of the fake: raw bytes in, frames and statuses out.
class Client {
public:
    explicit Client(FakeModal& fake) : fake_(fake) {}

    std::string token;       // x-modal-auth-token
    std::string router_jwt;  // authorization: Bearer
    std::string token_id = "ak-fake";
    std::string token_secret = "as-fake";

    Answer raw(const std::string& service, const std::string& method, const std::string& body,
               std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        runbox::Request r;
        r.method = "POST";
        r.url = fake_.url() + "/" + service + "/" + method;
        r.version = runbox::HttpVersion::http2;
        r.timeout = timeout;
        r.headers.add("content-type", "application/grpc");
        r.headers.add("te", "trailers");
        if (service == control) {
            r.headers.add("x-modal-token-id", token_id);
            r.headers.add("x-modal-token-secret", token_secret);
            if (!token.empty()) r.headers.add("x-modal-auth-token", token);
        } else if (!router_jwt.empty()) {
            r.headers.add("authorization", "Bearer " + router_jwt);
        }
        r.body = body;
        const auto response = transport_.send(r);
        Answer a;
        a.http = response.status;
        a.code = runbox::grpc_status_of(response).value_or(-1);
        const auto& fields = response.trailers.contains("grpc-status") ? response.trailers : response.headers;
        a.message = fields.get("grpc-message").value_or("");
        runbox::FrameReader reader(64 * 1024 * 1024);
        reader.feed(response.body);
        while (auto frame = reader.next()) a.messages.push_back(frame->payload);
        return a;
    }
    template <class Message>
    Answer call(const std::string& service, const std::string& method, const Message& message,
                std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        return raw(service, method, runbox::encode_frame(pb::encode(message)), timeout);
    }
    /// A unary call that must succeed; its answer decoded.
    template <class Response, class Message>
    Response ok(const std::string& service, const std::string& method, const Message& message) {
        const auto a = call(service, method, message);
        INFO(method << ": grpc-status " << a.code << " " << a.message);
        REQUIRE(a.code == 0);
        REQUIRE(a.messages.size() == 1);
        return pb::decode<Response>(a.messages[0]);
    }

    void login() { token = ok<pb::AuthTokenGetResponse>(control, "AuthTokenGet", pb::Empty{}).token; }
    std::string app(const std::string& name = "runbox-test") {
        pb::AppGetOrCreateRequest req;
        req.app_name = name;
        req.object_creation_type = 1;
        return ok<pb::AppGetOrCreateResponse>(control, "AppGetOrCreate", req).app_id;
    }
    std::string image(const std::string& app_id) {
        pb::ImageGetOrCreateRequest req;
        req.app_id = app_id;
        req.image = pb::Image{{"FROM python:3.12-slim"}};
        return ok<pb::ImageGetOrCreateResponse>(control, "ImageGetOrCreate", req).image_id;
    }
    pb::SandboxCreateV2Response create(const std::string& app_id, const std::string& image_id,
                                       std::vector<std::string> entrypoint = {}, std::vector<pb::SandboxTag> tags = {},
                                       std::map<std::string, std::string> env = {}, std::vector<std::uint32_t> ports = {}) {
        pb::SandboxCreateV2Request req;
        req.app_id = app_id;
        pb::SandboxDefinition def;
        def.image_id = image_id;
        def.entrypoint_args = std::move(entrypoint);
        def.timeout_secs = 300;
        if (!ports.empty()) {
            def.open_ports = std::vector<pb::PortSpec>{};
            for (auto p : ports) def.open_ports->push_back(pb::PortSpec{p, false});
        }
        req.definition = def;
        req.tags = std::move(tags);
        if (!env.empty()) req.secret_sources.push_back(pb::SecretSource{std::nullopt, env});
        auto resp = ok<pb::SandboxCreateV2Response>(control, "SandboxCreateV2", req);
        REQUIRE(resp.command_router_access);
        router_jwt = resp.command_router_access->jwt;
        return resp;
    }
    void terminate(const std::string& id) {
        ok<pb::SandboxTerminateResponse>(control, "SandboxTerminateV2", pb::SandboxIdRequest{id});
    }

    /// Runs `args` through the router; returns {stdout, stderr, exit code}.
    struct Run {
        std::string out, err;
        int code = -1;
    };
    Run exec(const std::string& task_id, std::vector<std::string> args, std::map<std::string, std::string> env = {},
             int stderr_config = 1) {
        pb::TaskExecStartRequest start;
        start.task_id = task_id;
        start.exec_id = runbox::detail::random_hex(8);
        start.command_args = std::move(args);
        start.stdout_config = 1;
        start.stderr_config = stderr_config;
        if (!env.empty()) start.secret_sources.push_back(pb::SecretSource{std::nullopt, env});
        ok<pb::Empty>(router, "TaskExecStart", start);
        Run run;
        for (int fd : {0, 1}) {
            pb::TaskExecStdioReadRequest read{task_id, start.exec_id, 0, fd};
            const auto a = call(router, "TaskExecStdioRead", read);
            REQUIRE(a.code == 0);
            for (const auto& m : a.messages) (fd == 0 ? run.out : run.err) += pb::decode<pb::TaskExecStdioReadResponse>(m).data;
        }
        const auto wait = ok<pb::TaskExecWaitResponse>(router, "TaskExecWait", pb::TaskExecRequest{task_id, start.exec_id});
        REQUIRE(wait.code);
        run.code = *wait.code;
        return run;
    }

private:
    FakeModal& fake_;
    runbox::CurlTransport transport_;
};

}  // namespace

TEST_CASE("FakeModal refuses bad token pairs, missing or foreign JWTs and expired ones", "[fake][modal]") {
    FakeModalOptions options;
    options.token_lifetime = std::chrono::seconds(2);
    FakeModal fake(options);
    fake.start();
    Client c(fake);

    c.token_secret = "as-wrong";
    CHECK(c.call(control, "AuthTokenGet", pb::Empty{}).code == 16);
    c.token_secret = "as-fake";
    // Without a JWT every call but AuthTokenGet is UNAUTHENTICATED; a made-up one too.
    CHECK(c.call(control, "AppGetOrCreate", pb::AppGetOrCreateRequest{"a", "", 1}).code == 16);
    c.token = "a.b.c";
    CHECK(c.call(control, "AppGetOrCreate", pb::AppGetOrCreateRequest{"a", "", 1}).code == 16);

    c.login();
    const auto exp = runbox::detail::modal::jwt_expiry(c.token);
    REQUIRE(exp);
    CHECK(*exp > std::chrono::system_clock::now());
    CHECK(*exp <= std::chrono::system_clock::now() + std::chrono::seconds(3));
    CHECK(c.call(control, "AppGetOrCreate", pb::AppGetOrCreateRequest{"a", "", 1}).code == 0);
    // The right JWT with a wrong secret is still refused: the pair is checked on every call.
    c.token_secret = "as-wrong";
    CHECK(c.call(control, "AppGetOrCreate", pb::AppGetOrCreateRequest{"a", "", 1}).code == 16);
    c.token_secret = "as-fake";

    // Past its exp the JWT is refused (poll with a bound: no fixed sleep decides the outcome).
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    int code = 0;
    while (std::chrono::steady_clock::now() < until &&
           (code = c.call(control, "AppGetOrCreate", pb::AppGetOrCreateRequest{"a", "", 1}).code) == 0)
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    CHECK(code == 16);
    CHECK(std::chrono::system_clock::now() >= *exp);

    // Secrets never reach the request log.
    for (const auto& r : fake.requests()) {
        CHECK(r.body.find("as-fake") == std::string::npos);
        for (const auto& [k, v] : r.headers) {
            CHECK(v.find("as-fake") == std::string::npos);
            CHECK(v.find(c.token) == std::string::npos);
        }
    }
}

TEST_CASE("FakeModal runs a sandbox: action server behind its tunnel, exec, tags, wait, terminate", "[fake][modal]") {
    FakeModal fake;
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();
    const auto image = c.image(app);
    auto created = c.create(app, image, {"/bin/sh", "-c", "runbox-server --port 3000"}, {{"OpenHands_SID", "s1"}},
                            {{"SESSION_API_KEY", "sk-session-secret"}, {"FOO", "bar"}}, {3000});
    CHECK(fake.live_sandboxes() == 1);
    // A V2 id (never sb- + 22 alphanumerics) and a router URL the SDK accepts.
    CHECK(created.sandbox_id.size() != 25);
    CHECK(created.command_router_access->url == fake.router_url());
    REQUIRE(created.tunnels.size() == 1);
    const auto tunnel = created.tunnels[0];
    CHECK(tunnel.container_port == 3000);
    CHECK(tunnel.host == "127.0.0.1");
    CHECK(tunnel.unencrypted_port == tunnel.port);

    // The tunnel reaches the real action server, which knows the session key.
    httplib::Client http("127.0.0.1", static_cast<int>(tunnel.port));
    auto alive = http.Get("/alive", {{"X-Session-API-Key", "sk-session-secret"}});
    REQUIRE(alive);
    CHECK(alive->status == 200);
    auto refused = http.Post("/execute_action", {{"X-Session-API-Key", "wrong"}}, "{}", "application/json");
    REQUIRE(refused);
    CHECK(refused->status == 403);

    // Exec: stdout, stderr, exit code, env from the sandbox and from the exec, in the sandbox dir.
    auto run = c.exec(created.task_id, {"sh", "-c", "echo out:$FOO:$BAR; echo err >&2; pwd; exit 7"}, {{"BAR", "baz"}});
    CHECK(run.out.find("out:bar:baz\n") == 0);
    CHECK(run.err == "err\n");
    CHECK(run.code == 7);
    const auto snap = fake.sandbox(created.sandbox_id);
    REQUIRE(snap);
    CHECK(run.out.find(snap->directory.string()) != std::string::npos);
    // The session key never reaches a shell.
    CHECK(c.exec(created.task_id, {"sh", "-c", "echo \"[$SESSION_API_KEY]\""}).out == "[]\n");
    // stderr merged into stdout (config 2).
    CHECK(c.exec(created.task_id, {"sh", "-c", "echo a; echo b >&2"}, {}, 2).out == "a\nb\n");

    // Tags: set replaces the whole set; get returns it.
    pb::SandboxTagsSetRequest tags;
    tags.sandbox_id = created.sandbox_id;
    tags.tags = {{"k", "v"}};
    c.ok<pb::Empty>(control, "SandboxTagsSetV2", tags);
    CHECK(c.ok<pb::SandboxTagsGetResponse>(control, "SandboxTagsGetV2", pb::SandboxIdRequest{created.sandbox_id}).tags ==
          std::vector<pb::SandboxTag>{{"k", "v"}});

    // Wait with timeout 0 = poll: still running, no result.
    auto wait = c.ok<pb::SandboxWaitResponse>(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{created.sandbox_id, 0});
    CHECK_FALSE(wait.result);
    // A V1 RPC does not know a V2 id.
    CHECK(c.call(control, "SandboxWait", pb::SandboxTimeoutRequest{created.sandbox_id, 0}).code == 5);

    c.terminate(created.sandbox_id);
    CHECK(fake.live_sandboxes() == 0);
    wait = c.ok<pb::SandboxWaitResponse>(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{created.sandbox_id, 5});
    REQUIRE(wait.result);
    CHECK(wait.result->status == 3);  // TERMINATED
    CHECK_FALSE(http.Get("/alive"));  // the server is gone with it
    // Terminate again: OK with the existing result; the router refuses the ended sandbox.
    auto again = c.ok<pb::SandboxTerminateResponse>(control, "SandboxTerminateV2", pb::SandboxIdRequest{created.sandbox_id});
    REQUIRE(again.result);
    CHECK(again.result->status == 3);
    CHECK(c.call(router, "TaskExecStart", pb::TaskExecStartRequest{created.task_id, "x", {"true"}}).code == 5);
    // The session key is redacted from the log.
    for (const auto& r : fake.requests()) CHECK(r.body.find("sk-session-secret") == std::string::npos);
}

TEST_CASE("FakeModal: an entrypoint's exit ends the sandbox; SandboxWait blocks until then", "[fake][modal]") {
    FakeModal fake;
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();
    const auto image = c.image(app);
    // The entrypoint waits for a file the test creates, then exits 3.
    auto created = c.create(app, image, {"sh", "-c", "while [ ! -e go ]; do sleep 0.05; done; exit 3"});
    const auto snap = fake.sandbox(created.sandbox_id);
    REQUIRE(snap);
    std::thread release([dir = snap->directory] {
        std::this_thread::sleep_for(std::chrono::milliseconds(300));  // lets the wait below block first
        std::FILE* f = std::fopen((dir / "go").c_str(), "w");
        if (f) std::fclose(f);
    });
    const auto started = std::chrono::steady_clock::now();
    auto wait = c.ok<pb::SandboxWaitResponse>(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{created.sandbox_id, 20});
    release.join();
    REQUIRE(wait.result);
    CHECK(wait.result->status == 2);  // FAILURE: non-zero exit
    CHECK(wait.result->exitcode == 3);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(20));
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("FakeModal lists newest first, strictly before the timestamp, by tags, and pages to an end", "[fake][modal]") {
    FakeModalOptions options;
    options.list_page_size = 2;
    FakeModal fake(options);
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();
    const auto image = c.image(app);
    std::vector<std::string> ids;
    for (int i = 0; i < 5; ++i) ids.push_back(c.create(app, image, {}, {{"n", std::to_string(i)}, {"group", i % 2 ? "odd" : "even"}}).sandbox_id);

    std::vector<std::string> seen;
    double before = 0;
    for (int page = 0; page < 10; ++page) {
        pb::SandboxListRequest req;
        req.app_id = app;
        req.before_timestamp = before;
        auto resp = c.ok<pb::SandboxListResponse>(control, "SandboxListV2", req);
        if (resp.sandboxes.empty()) break;
        CHECK(resp.sandboxes.size() <= 2);
        for (const auto& s : resp.sandboxes) {
            if (before > 0) CHECK(s.created_at < before);
            seen.push_back(s.id);
        }
        before = resp.sandboxes.back().created_at;
    }
    CHECK(seen == std::vector<std::string>(ids.rbegin(), ids.rend()));

    pb::SandboxListRequest odd;
    odd.tags = {{"group", "odd"}};
    auto resp = c.ok<pb::SandboxListResponse>(control, "SandboxListV2", odd);
    REQUIRE(resp.sandboxes.size() == 2);
    CHECK(resp.sandboxes[0].id == ids[3]);
    CHECK(resp.sandboxes[1].id == ids[1]);

    for (const auto& id : ids) c.terminate(id);
    CHECK(c.ok<pb::SandboxListResponse>(control, "SandboxListV2", pb::SandboxListRequest{}).sandboxes.empty());
    pb::SandboxListRequest finished;
    finished.include_finished = true;
    CHECK(c.ok<pb::SandboxListResponse>(control, "SandboxListV2", finished).sandboxes.size() == 2);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("FakeModal answers NOT_FOUND and UNIMPLEMENTED where Modal does", "[fake][modal]") {
    FakeModal fake;
    fake.start();
    Client c(fake);
    c.login();
    const std::string unknown = "sb-v2-0123456789abcdef0123";
    CHECK(c.call(control, "SandboxTagsGetV2", pb::SandboxIdRequest{unknown}).code == 5);
    CHECK(c.call(control, "SandboxTerminateV2", pb::SandboxIdRequest{unknown}).code == 5);
    CHECK(c.call(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{unknown, 1}).code == 5);
    CHECK(c.call(control, "SandboxGetFromNameV2", pb::Empty{}).code == 5);
    CHECK(c.call(control, "SandboxGetFromName", pb::Empty{}).code == 5);
    CHECK(c.call(control, "FunctionCreate", pb::Empty{}).code == 12);
    CHECK(c.call("modal.other.Service", "X", pb::Empty{}).code == 12);
    CHECK(c.call(router, "TaskMountDirectory", pb::Empty{}).code == 12);
    pb::AppGetOrCreateRequest lookup{"missing", "", 0};
    CHECK(c.call(control, "AppGetOrCreate", lookup).code == 5);
}

TEST_CASE("FakeModal: task id and router access lookups, environment, timeouts of sandboxes and execs", "[fake][modal]") {
    FakeModal fake;
    fake.start();
    Client c(fake);
    c.login();
    auto env = c.ok<pb::EnvironmentGetOrCreateResponse>(control, "EnvironmentGetOrCreate", pb::Empty{});
    CHECK(env.image_builder_version == "2025.06");
    const auto app = c.app();
    const auto image = c.image(app);

    // A sandbox found again by id (fromId, list) gets its task and router access by RPC.
    pb::SandboxCreateV2Request creq;
    creq.app_id = app;
    creq.definition = pb::SandboxDefinition{};
    creq.definition->image_id = image;
    creq.definition->timeout_secs = 1;
    auto created = c.ok<pb::SandboxCreateV2Response>(control, "SandboxCreateV2", creq);
    auto task = c.ok<pb::SandboxGetTaskIdResponse>(control, "SandboxGetTaskIdV2", pb::SandboxTimeoutRequest{created.sandbox_id, 0});
    CHECK(task.task_id == created.task_id);
    auto access = c.ok<pb::CommandRouterAccess>(control, "SandboxGetCommandRouterAccess",
                                                pb::SandboxGetCommandRouterAccessRequest{created.sandbox_id, ""});
    CHECK(access.jwt == created.command_router_access->jwt);
    CHECK(access.url == fake.router_url());

    // An exec past its timeout_secs is killed; closing stdin (eof, no data) is accepted.
    c.router_jwt = access.jwt;
    pb::TaskExecStartRequest start{created.task_id, "slow", {"sleep", "30"}};
    start.timeout_secs = 1;
    REQUIRE(c.call(router, "TaskExecStart", start).code == 0);
    pb::TaskExecStdinWriteRequest eof{created.task_id, "slow", 0, "", true};
    CHECK(c.call(router, "TaskExecStdinWrite", eof).code == 0);
    eof.data = "data";
    CHECK(c.call(router, "TaskExecStdinWrite", eof).code == 12);
    const auto started = std::chrono::steady_clock::now();
    auto wait = c.ok<pb::TaskExecWaitResponse>(router, "TaskExecWait", pb::TaskExecRequest{created.task_id, "slow"});
    REQUIRE(wait.code);
    CHECK(*wait.code == 137);  // SIGKILL
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(20));

    // The sandbox reaches its own timeout (1 s): TIMEOUT, and the task lookup gives the result.
    auto ended = c.ok<pb::SandboxWaitResponse>(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{created.sandbox_id, 30});
    REQUIRE(ended.result);
    CHECK(ended.result->status == 4);
    task = c.ok<pb::SandboxGetTaskIdResponse>(control, "SandboxGetTaskIdV2", pb::SandboxTimeoutRequest{created.sandbox_id, 0});
    CHECK_FALSE(task.task_id);
    REQUIRE(task.task_result);
    CHECK(task.task_result->status == 4);
    CHECK(c.call(control, "SandboxGetCommandRouterAccess", pb::SandboxGetCommandRouterAccessRequest{created.sandbox_id, ""}).code == 9);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("FakeModal bounds the calls in progress", "[fake][modal]") {
    FakeModalOptions options;
    options.max_concurrent_calls = 1;
    options.max_wait = std::chrono::milliseconds(1500);
    FakeModal fake(options);
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();
    auto sb = c.create(app, c.image(app));
    std::thread blocked([&] {
        Client waiter(fake);
        waiter.token = c.token;
        (void)waiter.call(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{sb.sandbox_id, 60});
    });
    // The wait is logged once it holds its slot; then a second call is refused.
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    auto waiting = [&] {
        for (const auto& r : fake.requests())
            if (r.path.ends_with("/SandboxWaitV2")) return true;
        return false;
    };
    while (!waiting() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(waiting());
    CHECK(c.call(control, "SandboxTagsGetV2", pb::SandboxIdRequest{sb.sandbox_id}).code == 8);
    blocked.join();  // max_wait ends it
    CHECK(c.call(control, "SandboxTagsGetV2", pb::SandboxIdRequest{sb.sandbox_id}).code == 0);
    c.terminate(sb.sandbox_id);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("FakeModal checks the router JWT of the task", "[fake][modal]") {
    FakeModal fake;
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();
    const auto image = c.image(app);
    auto a = c.create(app, image);
    const auto jwt_a = c.router_jwt;
    auto b = c.create(app, image);
    // b's JWT does not open a's task; no JWT neither.
    CHECK(c.call(router, "TaskExecStart", pb::TaskExecStartRequest{a.task_id, "e1", {"true"}}).code == 16);
    c.router_jwt.clear();
    CHECK(c.call(router, "TaskExecStart", pb::TaskExecStartRequest{a.task_id, "e1", {"true"}}).code == 16);
    c.router_jwt = jwt_a;
    CHECK(c.exec(a.task_id, {"true"}).code == 0);
    CHECK(c.call(router, "TaskExecWait", pb::TaskExecRequest{a.task_id, "nope"}).code == 5);
    c.terminate(a.sandbox_id);
    c.terminate(b.sandbox_id);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("FakeModal faults: a reply, a dropped call, a failed start, an image build in N entries", "[fake][modal]") {
    FakeModalOptions options;
    options.image_build_entries = 3;
    FakeModal fake(options);
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();

    // The build streams its entries, then the result; resuming after entry 2 gives 3 and the result.
    pb::ImageGetOrCreateRequest ireq;
    ireq.app_id = app;
    ireq.image = pb::Image{{"FROM alpine:3.21"}};
    auto image = c.ok<pb::ImageGetOrCreateResponse>(control, "ImageGetOrCreate", ireq);
    CHECK_FALSE(image.result);
    auto join = c.call(control, "ImageJoinStreaming", pb::ImageJoinStreamingRequest{image.image_id, 55, ""});
    REQUIRE(join.code == 0);
    REQUIRE(join.messages.size() == 4);
    auto last = pb::decode<pb::ImageJoinStreamingResponse>(join.messages.back());
    REQUIRE(last.result);
    CHECK(last.result->status == 1);
    join = c.call(control, "ImageJoinStreaming", pb::ImageJoinStreamingRequest{image.image_id, 55, "2"});
    REQUIRE(join.messages.size() == 2);
    CHECK(pb::decode<pb::ImageJoinStreamingResponse>(join.messages[0]).entry_id == "3");

    // A failing build.
    fake.inject(runbox::Fault{.kind = runbox::Fault::Kind::start_failure, .url_contains = "/ImageGetOrCreate", .body = "no such image"});
    auto failed = c.ok<pb::ImageGetOrCreateResponse>(control, "ImageGetOrCreate", ireq);
    REQUIRE(failed.result);
    CHECK(failed.result->status == 2);
    CHECK(failed.result->exception == "no such image");

    // A throttle reply with its retry policy detail in the trailers.
    fake.inject(runbox::Fault{.kind = runbox::Fault::Kind::reply, .url_contains = "/SandboxListV2", .status = 8,
                              .headers = {{"grpc-retry-pushback-ms", "250"}}, .body = "slow down"});
    auto throttled = c.call(control, "SandboxListV2", pb::SandboxListRequest{});
    CHECK(throttled.code == 8);
    CHECK(throttled.message == "slow down");
    CHECK(c.call(control, "SandboxListV2", pb::SandboxListRequest{}).code == 0);  // used up

    // A sandbox that fails to start ends at once with INIT_FAILURE.
    fake.inject(runbox::Fault{.kind = runbox::Fault::Kind::start_failure, .url_contains = "/SandboxCreateV2", .body = "boom"});
    const auto img = c.image(app);  // (build_entries: the id is usable while it builds)
    auto sb = c.create(app, img, {"runbox-server"});
    auto wait = c.ok<pb::SandboxWaitResponse>(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{sb.sandbox_id, 0});
    REQUIRE(wait.result);
    CHECK(wait.result->status == 5);
    CHECK(wait.result->exception == "boom");
    CHECK(fake.live_sandboxes() == 0);

    // lose_response: the fake performs the create, the caller gets UNAVAILABLE.
    fake.inject(runbox::Fault{.kind = runbox::Fault::Kind::lose_response, .url_contains = "/SandboxCreateV2"});
    pb::SandboxCreateV2Request creq;
    creq.app_id = app;
    creq.definition = pb::SandboxDefinition{};
    creq.definition->timeout_secs = 60;  // (an empty definition is not on the wire at all)
    CHECK(c.call(control, "SandboxCreateV2", creq).code == 14);
    CHECK(fake.live_sandboxes() == 1);
    // drop: nothing happens, UNAVAILABLE.
    fake.inject(runbox::Fault{.kind = runbox::Fault::Kind::drop, .url_contains = "/SandboxCreateV2"});
    CHECK(c.call(control, "SandboxCreateV2", creq).code == 14);
    CHECK(fake.live_sandboxes() == 1);
    fake.stop();
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("FakeModal bounds messages, sandboxes, tags and waits; hostile frames are errors", "[fake][modal]") {
    FakeModalOptions options;
    options.max_message_bytes = 1024;
    options.max_sandboxes = 2;
    options.max_tags = 3;
    options.max_wait = std::chrono::milliseconds(300);
    FakeModal fake(options);
    fake.start();
    Client c(fake);
    c.login();
    const auto app = c.app();
    const auto image = c.image(app);

    // A frame announcing more than the limit, a truncated frame, two frames, a compressed one, garbage protobuf.
    CHECK(c.raw(control, "AppGetOrCreate", runbox::encode_frame(std::string(4096, 'x')).substr(0, 64)).code == 8);
    // A body past the limit is cut off: the server resets the stream.
    try {
        (void)c.raw(control, "AppGetOrCreate", runbox::encode_frame(std::string(4096, 'x')));
        FAIL("a body past max_message_bytes was read");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::transport);
    }
    CHECK(c.raw(control, "AppGetOrCreate", runbox::encode_frame("abc").substr(0, 6)).code == 3);
    CHECK(c.raw(control, "AppGetOrCreate", runbox::encode_frame("") + runbox::encode_frame("")).code == 3);
    CHECK(c.raw(control, "AppGetOrCreate", runbox::encode_frame("", runbox::frame_compressed)).code == 12);
    CHECK(c.raw(control, "AppGetOrCreate", runbox::encode_frame(std::string("\x0a\xff\xff\xff\xff\x0f", 6))).code == 3);
    CHECK(c.raw(control, "AppGetOrCreate", "").code == 3);

    // Tags past the limit; sandboxes past the limit.
    std::vector<pb::SandboxTag> many = {{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}};
    pb::SandboxCreateV2Request creq;
    creq.app_id = app;
    creq.definition = pb::SandboxDefinition{};
    creq.definition->timeout_secs = 60;
    creq.tags = many;
    CHECK(c.call(control, "SandboxCreateV2", creq).code == 3);
    // Concurrent creates keep the bound: of 6 at once, exactly 2 succeed.
    creq.tags.clear();
    std::vector<std::thread> racers;
    std::vector<int> codes(6, -1);
    std::vector<std::string> won(6);
    for (std::size_t i = 0; i < codes.size(); ++i) {
        racers.emplace_back([&, i] {
            Client racer(fake);
            racer.token = c.token;
            const auto answer = racer.call(control, "SandboxCreateV2", creq);
            codes[i] = answer.code;
            if (answer.code == 0) won[i] = pb::decode<pb::SandboxCreateV2Response>(answer.messages.at(0)).sandbox_id;
        });
    }
    for (auto& t : racers) t.join();
    CHECK(std::count(codes.begin(), codes.end(), 0) == 2);
    CHECK(std::count(codes.begin(), codes.end(), 8) == 4);
    CHECK(fake.live_sandboxes() == 2);
    for (const auto& id : won)
        if (!id.empty()) c.terminate(id);
    CHECK(fake.live_sandboxes() == 0);

    auto a = c.create(app, image);
    auto b = c.create(app, image);
    CHECK(c.call(control, "SandboxCreateV2", creq).code == 8);

    // A wait is bounded by max_wait, whatever the client asks; an exec wait answers DEADLINE_EXCEEDED.
    const auto started = std::chrono::steady_clock::now();
    auto wait = c.ok<pb::SandboxWaitResponse>(control, "SandboxWaitV2", pb::SandboxTimeoutRequest{a.sandbox_id, 3600});
    CHECK_FALSE(wait.result);
    CHECK(std::chrono::steady_clock::now() - started < std::chrono::seconds(10));
    c.router_jwt = b.command_router_access->jwt;
    pb::TaskExecStartRequest start{b.task_id, "long", {"sleep", "30"}};
    REQUIRE(c.call(router, "TaskExecStart", start).code == 0);
    CHECK(c.call(router, "TaskExecWait", pb::TaskExecRequest{b.task_id, "long"}).code == 4);
    auto poll = c.ok<pb::TaskExecWaitResponse>(router, "TaskExecPoll", pb::TaskExecRequest{b.task_id, "long"});
    CHECK_FALSE(poll.code);
    CHECK_FALSE(poll.signal);

    // Not gRPC at all: 415.
    httplib::Client h1("127.0.0.1", fake.port());
    CHECK_FALSE(h1.Get("/"));  // h2c only: an HTTP/1.1 request gets no HTTP/1.1 answer

    c.terminate(a.sandbox_id);
    c.terminate(b.sandbox_id);
    CHECK(fake.live_sandboxes() == 0);
}

}  // namespace test_fake_modal
#else
TEST_CASE("FakeModal needs libcurl and libnghttp2", "[fake][modal]") {
    RUNBOX_SKIP_TEST("built without runbox::curl or runbox::http2_server");
}
#endif
