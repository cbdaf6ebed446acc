// runbox/testing/fake_modal.hpp - a gRPC fake of Modal (control plane and command router).
//
// One h2c port (testing/http2_server.hpp) serves both services Modal's SDKs speak:
//   modal.client.ModalClient                    AuthTokenGet, AppGetOrCreate, EnvironmentGetOrCreate,
//                                               ImageGetOrCreate, ImageJoinStreaming (stream),
//                                               SandboxCreateV2, SandboxGetTaskId[V2],
//                                               SandboxGetCommandRouterAccess, SandboxGetTunnels[V2],
//                                               SandboxWait[V2], SandboxTerminate[V2],
//                                               SandboxTagsSet/Get[V2], SandboxList[V2],
//                                               SandboxGetFromName[V2] (NOT_FOUND); the rest UNIMPLEMENTED
//   modal.task_command_router.TaskCommandRouter TaskExecStart, TaskExecStdioRead (stream),
//                                               TaskExecWait, TaskExecPoll, TaskExecStdinWrite
// Sandboxes are real: an entrypoint that starts the action server (runbox-server /
// action_execution_server) runs a real runbox ActionServer in the sandbox's temporary directory,
// any other entrypoint runs under `sh -c`, and an exec runs its command there. A sandbox's
// encrypted port is a tunnel to 127.0.0.1: the action server's port for the port its command
// asked for, else the same port (what a process in the sandbox listens on). Tunnels carry the
// same address as their unencrypted (raw TCP) half: the fake speaks no TLS.
//
// Auth as Modal does it: x-modal-token-id / x-modal-token-secret on every control-plane call,
// x-modal-auth-token = a JWT from AuthTokenGet (expiring after `token_lifetime`) on every other
// call, `authorization: Bearer <router JWT>` on the router. A bad one is UNAUTHENTICATED.
// Errors are gRPC statuses in trailers-only answers. Everything is bounded: message sizes,
// sandboxes, execs, tags, each wait and each stream.
#pragma once

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/client.hpp"
#include "runbox/detail/base64.hpp"
#include "runbox/detail/shell.hpp"
#include "runbox/error.hpp"
#include "runbox/providers/detail/modal_proto.hpp"
#include "runbox/testing/detail/fake_shell.hpp"
#include "runbox/testing/fake_base.hpp"
#include "runbox/testing/http2_server.hpp"
#include "runbox/transport/envelope.hpp"

namespace runbox::testing {

/// gRPC status codes the fake answers.
namespace grpc_code {
inline constexpr int ok = 0;  ///< OK
inline constexpr int cancelled = 1;  ///< CANCELLED
inline constexpr int invalid_argument = 3;  ///< INVALID_ARGUMENT
inline constexpr int deadline_exceeded = 4;  ///< DEADLINE_EXCEEDED
inline constexpr int not_found = 5;  ///< NOT_FOUND
inline constexpr int permission_denied = 7;  ///< PERMISSION_DENIED
inline constexpr int resource_exhausted = 8;  ///< RESOURCE_EXHAUSTED
inline constexpr int failed_precondition = 9;  ///< FAILED_PRECONDITION
inline constexpr int unimplemented = 12;  ///< UNIMPLEMENTED
inline constexpr int internal = 13;  ///< INTERNAL
inline constexpr int unavailable = 14;  ///< UNAVAILABLE
inline constexpr int unauthenticated = 16;  ///< UNAUTHENTICATED
}  // namespace grpc_code

/// Settings of a FakeModal.
struct FakeModalOptions {
    int port = 0;                         ///< 0 = any free port
    std::string token_id = "ak-fake";     ///< the only x-modal-token-id accepted
    std::string token_secret = "as-fake";  ///< the only x-modal-token-secret accepted
    /// Non-empty: the token id and the token secret are both this (runbox-fake --api-key).
    std::string api_key{};
    /// How long a JWT from AuthTokenGet (and a router JWT) is accepted; its `exp` says so.
    std::chrono::seconds token_lifetime{3600};
    /// Log entries an image build streams through ImageJoinStreaming before its result
    /// (0 = ImageGetOrCreate answers the result at once).
    int image_build_entries = 0;
    std::size_t max_message_bytes = 4 * 1024 * 1024;  ///< one request message (RESOURCE_EXHAUSTED past it)
    std::size_t max_sandboxes = 64;                   ///< live at once (RESOURCE_EXHAUSTED past it)
    std::size_t max_execs_per_sandbox = 256;          ///< execs one sandbox may start (RESOURCE_EXHAUSTED past it)
    std::size_t max_tags = 64;            ///< tags of one sandbox
    std::size_t max_tag_bytes = 1024;     ///< name + value of one tag
    std::size_t list_page_size = 100;     ///< largest SandboxList page
    std::chrono::milliseconds max_wait{55000};     ///< the longest a blocking RPC blocks
    std::chrono::milliseconds max_stream{120000};  ///< the longest a server stream stays open
    std::size_t max_concurrent_calls = 256;        ///< RPCs in progress at once (RESOURCE_EXHAUSTED past it)
    std::uint32_t default_timeout_secs = 300;       ///< a sandbox created with timeout_secs 0 (Modal's default)
    std::vector<std::string> server_plugins{};      ///< the action servers' plugins
};

/// A snapshot of one sandbox of a FakeModal.
struct FakeModalSandbox {
    std::string id;                            ///< sandbox_id (the V2 shape)
    std::string task_id;                       ///< its task (the command router's key)
    std::string app_id;                        ///< the app it was created in
    std::vector<std::string> entrypoint_args;  ///< the command it runs
    std::map<std::string, std::string> env;     ///< from the create request's secret_sources
    std::map<std::string, std::string> tags;                 ///< its tags, name -> value
    std::vector<runbox::detail::modal::TunnelData> tunnels;  ///< one per open port, pointing at 127.0.0.1
    std::optional<runbox::detail::modal::GenericResult> result;  ///< set once it ended
    bool server_running = false;  ///< a real action server runs for it
    int server_port = 0;          ///< that server's real port on 127.0.0.1
    std::filesystem::path directory;  ///< the directory standing for its file system
    std::size_t execs = 0;            ///< TaskExecStart calls it has had
};

/// The gRPC fake of Modal. Thread-safe; stop() (or the destructor) ends every sandbox.
class FakeModal : public FakeProvider {
public:
    using Options = FakeModalOptions;  ///< the options type (runbox-fake's table uses it)

    /// Builds the fake (`api_key`, when set, is both the token id and secret); start() serves it.
    explicit FakeModal(FakeModalOptions options = {}) : options_(std::move(options)) {
        if (!options_.api_key.empty()) options_.token_id = options_.token_secret = options_.api_key;
        log_.add_secret(options_.token_secret);
    }
    FakeModal(const FakeModal&) = delete;
    FakeModal& operator=(const FakeModal&) = delete;
    ~FakeModal() override { stop(); }

    void start() override {
        std::lock_guard lock(lifecycle_);
        if (server_) return;
        Http2ServerOptions so;
        so.max_body_bytes = options_.max_message_bytes + 5;
        so.port = options_.port;
        server_ = std::make_unique<Http2Server>([this](const Http2Request& r, Http2Stream& s) { handle(r, s); }, so);
        reaper_ = std::thread([this] { reap_loop(); });
    }

    void stop() override {
        std::lock_guard lock(lifecycle_);
        if (!server_) return;
        {
            std::lock_guard guard(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
        shells_.kill_all();
        servers_.stop_all();
        server_->stop();  // handlers return: waits see stopping_, streams see cancelled()
        if (reaper_.joinable()) reaper_.join();
        std::map<std::string, std::shared_ptr<Sandbox>> sandboxes;
        {
            std::lock_guard guard(mutex_);
            sandboxes.swap(sandboxes_);
        }
        for (auto& [id, sb] : sandboxes) release(take_resources(*sb));
        sandboxes.clear();
        server_.reset();
    }

    std::string base_url() const override { return server_ ? server_->url("") : std::string(); }
    /// MODAL_SERVER_URL for clients: http://127.0.0.1:PORT (plaintext h2c).
    std::string url() const override { return base_url(); }
    /// The command router's URL as create answers give it: https://127.0.0.1:PORT (the SDKs
    /// dial it without TLS because the server URL is 127.0.0.1).
    std::string router_url() const { return server_ ? "https://127.0.0.1:" + std::to_string(server_->port()) : ""; }
    /// The port it listens on (0 before start()).
    int port() const { return server_ ? server_->port() : 0; }
    /// The token id clients must send (x-modal-token-id).
    const std::string& token_id() const noexcept { return options_.token_id; }
    /// The token secret clients must send (x-modal-token-secret).
    const std::string& token_secret() const noexcept { return options_.token_secret; }

    std::size_t live_sandboxes() const override {
        std::lock_guard lock(mutex_);
        return static_cast<std::size_t>(
            std::count_if(sandboxes_.begin(), sandboxes_.end(), [](const auto& e) { return !e.second->result; }));
    }

    /// Fault rules, matched against "POST" and the RPC path ("/modal.client.ModalClient/SandboxCreateV2"):
    /// `reply` answers grpc-status `status` with grpc-message `body` (its headers go into the
    /// trailers, e.g. grpc-status-details-bin); `drop` answers UNAVAILABLE without doing anything;
    /// `delay` waits (bounded by the stream) then serves; `lose_response` serves, then answers
    /// UNAVAILABLE; `start_failure` on SandboxCreateV2 makes the sandbox end at once with
    /// INIT_FAILURE and `body` as its exception, and on ImageGetOrCreate makes the build fail so.
    void inject(Fault fault) override { faults_.add(std::move(fault)); }
    void clear_faults() override { faults_.clear(); }
    /// Every RPC so far. `status` is the HTTP status (200 for every gRPC answer), `rpc_status`
    /// the gRPC status answered; `body` is the request message (protobuf bytes, secrets redacted).
    std::vector<FakeRequest> requests() const override { return log_.all(); }
    void clear_requests() override { log_.clear(); }

    /// One sandbox, or nullopt for an unknown id.
    std::optional<FakeModalSandbox> sandbox(const std::string& id) const {
        std::lock_guard lock(mutex_);
        auto it = sandboxes_.find(id);
        if (it == sandboxes_.end()) return std::nullopt;
        return snapshot(*it->second);
    }
    /// Every sandbox the fake knows (live and ended), oldest first.
    std::vector<FakeModalSandbox> sandboxes() const {
        std::lock_guard lock(mutex_);
        std::vector<const Sandbox*> all;
        for (const auto& [id, sb] : sandboxes_) all.push_back(sb.get());
        std::sort(all.begin(), all.end(), [](const Sandbox* a, const Sandbox* b) { return a->created_at < b->created_at; });
        std::vector<FakeModalSandbox> out;
        for (const auto* sb : all) out.push_back(snapshot(*sb));
        return out;
    }

private:
    struct Exec {
        std::shared_ptr<ShellCommand> command;
        bool stdout_pipe = true;
        bool stderr_pipe = true;  // false: DEVNULL, or merged into stdout
        std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
    };
    struct Sandbox {
        std::string id, task_id, app_id, router_jwt;
        double created_at = 0;
        std::vector<std::string> entrypoint_args;
        std::map<std::string, std::string> env;
        std::vector<runbox::detail::modal::SandboxTag> tags;
        std::vector<runbox::detail::modal::TunnelData> tunnels;
        std::optional<runbox::detail::modal::GenericResult> result;
        std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
        std::shared_ptr<SandboxDir> dir;
        std::filesystem::path directory;
        SandboxServers::Server server;
        int server_port = 0;
        std::shared_ptr<ShellCommand> entrypoint;
        std::map<std::string, Exec> execs;
    };
    /// What ending a sandbox releases, outside the lock (stopping a server or destroying a
    /// command waits for threads that may take the lock).
    struct Resources {
        SandboxServers::Server server;
        std::shared_ptr<ShellCommand> entrypoint;
        std::vector<std::shared_ptr<ShellCommand>> commands;
        std::shared_ptr<SandboxDir> dir;
    };

    // ---- gRPC plumbing -----------------------------------------------------------------

    struct Call {
        const Http2Request& request;
        Http2Stream& stream;
        std::string service;
        std::string method;
        std::string message;   // the request message's bytes
        std::size_t log_index = 0;
        bool answered = false;
        bool lose = false;  // a lose_response fault: serve, answer nothing, then UNAVAILABLE
    };

    static std::string percent_encode(std::string_view text) {
        static constexpr char hex[] = "0123456789ABCDEF";
        std::string out;
        for (const unsigned char c : text) {
            if (c < 0x20 || c > 0x7e || c == '%') {
                out += '%';
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += static_cast<char>(c);
            }
        }
        return out;
    }

    void log_status(Call& call, int code) {
        call.answered = true;
        log_.set_status(call.log_index, 200);
        log_.set_rpc_status(call.log_index, code);
    }

    void fail(Call& call, int code, const std::string& message, const Headers& extra = {}) {
        if (call.answered) return;
        if (call.lose) {
            call.lose = false;
            return fail(call, grpc_code::unavailable, "the answer was lost (injected fault)");
        }
        Headers head{{"content-type", "application/grpc"}, {"grpc-status", std::to_string(code)},
                     {"grpc-message", percent_encode(log_.redact(message))}};
        for (const auto& [name, value] : extra) head.add(name, value);
        log_status(call, code);  // before the answer leaves: a client that has it sees it logged
        call.stream.trailers_only(200, std::move(head));
    }

    template <class Message>
    void reply(Call& call, const Message& message) {
        if (call.answered) return;
        if (call.lose) return fail(call, grpc_code::ok, "");
        call.stream.respond(200, Headers{{"content-type", "application/grpc"}});
        call.stream.write(encode_frame(runbox::detail::modal::encode(message)));
        log_status(call, grpc_code::ok);
        call.stream.finish(Headers{{"grpc-status", "0"}});
    }
    /// One message of a server stream (the head goes with the first).
    template <class Message>
    void stream_message(Call& call, const Message& message) {
        if (call.lose) return;
        if (!call.stream.responded()) call.stream.respond(200, Headers{{"content-type", "application/grpc"}});
        call.stream.write(encode_frame(runbox::detail::modal::encode(message)));
    }
    void end_stream(Call& call) {
        if (call.answered) return;
        if (call.lose) return fail(call, grpc_code::ok, "");
        if (!call.stream.responded()) call.stream.respond(200, Headers{{"content-type", "application/grpc"}});
        log_status(call, grpc_code::ok);
        call.stream.finish(Headers{{"grpc-status", "0"}});
    }

    template <class Message>
    std::optional<Message> parse(Call& call) {
        try {
            return runbox::detail::modal::decode<Message>(call.message, "request");
        } catch (const error&) {
            fail(call, grpc_code::invalid_argument, "malformed " + call.method + " request");
            return std::nullopt;
        }
    }

    void handle(const Http2Request& request, Http2Stream& stream) {
        // Every RPC in progress counts (blocking waits and streams hold a thread each).
        const auto in_flight = in_flight_.fetch_add(1) + 1;
        struct Release {
            std::atomic<std::size_t>& count;
            ~Release() { --count; }
        } release{in_flight_};
        Call call{request, stream, {}, {}, {}, 0, false};
        const auto& path = request.path;
        const auto slash = path.find('/', 1);
        if (path.size() > 1 && slash != std::string::npos) {
            call.service = path.substr(1, slash - 1);
            call.method = path.substr(slash + 1);
        }
        // The request: exactly one whole, uncompressed frame.
        const auto content_type = request.headers.get("content-type").value_or("");
        const bool grpc = request.method == "POST" && content_type.starts_with("application/grpc");
        int refused = grpc_code::ok;
        std::string refusal;
        if (grpc) {
            try {
                FrameReader reader(options_.max_message_bytes);
                reader.feed(request.body);
                auto frame = reader.next();
                if (!frame || reader.next() || !reader.idle()) {
                    refused = grpc_code::invalid_argument;
                    refusal = "a request holds exactly one message";
                } else if (frame->compressed()) {
                    refused = grpc_code::unimplemented;
                    refusal = "compressed messages are not supported";
                } else {
                    call.message = std::move(frame->payload);
                }
            } catch (const error&) {
                refused = grpc_code::resource_exhausted;
                refusal = "request message larger than " + std::to_string(options_.max_message_bytes) + " bytes";
            }
        }
        learn_secrets(call);
        FakeRequest entry;
        entry.method = request.method;
        entry.path = path;
        entry.target = path;
        for (const auto& [name, value] : request.headers) entry.headers[name] = value;
        entry.body = call.message;
        call.log_index = log_.add(std::move(entry));
        if (!grpc) {
            stream.respond(415, Headers{{"content-type", "text/plain"}});
            stream.write("gRPC only: POST with content-type application/grpc\n");
            stream.finish();
            log_.set_status(call.log_index, 415);
            return;
        }
        if (refused != grpc_code::ok) return fail(call, refused, refusal);
        if (in_flight > options_.max_concurrent_calls)
            return fail(call, grpc_code::resource_exhausted, "too many calls in progress");

        auto fault = faults_.take("POST", path, false);
        if (fault) {
            switch (fault->kind) {
                case Fault::Kind::reply:
                    return fail(call, fault->status, fault->body, fault->headers);
                case Fault::Kind::drop:
                    return fail(call, grpc_code::unavailable, "connection dropped (injected fault)");
                case Fault::Kind::delay: {
                    std::unique_lock lock(mutex_);
                    const auto until = std::chrono::steady_clock::now() + fault->delay;
                    while (!stopping_ && !stream.cancelled() && std::chrono::steady_clock::now() < until)
                        cv_.wait_until(lock, std::min(until, std::chrono::steady_clock::now() + slice));
                    if (stopping_ || stream.cancelled()) return fail(call, grpc_code::cancelled, "stopping");
                    break;
                }
                case Fault::Kind::lose_response: call.lose = true; break;
                default: break;
            }
        }
        try {
            if (call.service == "modal.client.ModalClient") control(call);
            else if (call.service == "modal.task_command_router.TaskCommandRouter") router(call);
            else fail(call, grpc_code::unimplemented, "unknown service " + call.service);
        } catch (const error& e) {
            fail(call, e.code() == errc::sandbox_gone ? grpc_code::unavailable : grpc_code::internal, e.what());
        } catch (const std::exception& e) {
            fail(call, grpc_code::internal, e.what());
        }
    }

    /// Adds the secret-looking env values of a create or exec request to the log's secrets
    /// before the request is logged (a session key must not appear in requests()).
    void learn_secrets(const Call& call) {
        std::map<std::string, std::string> env;
        try {
            if (call.method == "SandboxCreateV2") {
                for (const auto& s : runbox::detail::modal::decode<runbox::detail::modal::SandboxCreateV2Request>(call.message).secret_sources)
                    if (s.env) env.insert(s.env->begin(), s.env->end());
            } else if (call.method == "TaskExecStart") {
                auto req = runbox::detail::modal::decode<runbox::detail::modal::TaskExecStartRequest>(call.message);
                env = req.env;
                for (const auto& s : req.secret_sources)
                    if (s.env) env.insert(s.env->begin(), s.env->end());
            }
        } catch (const error&) {
            return;  // malformed: refused later, logged as it came
        }
        if (!env.empty()) log_.add_secrets_from_env(nlohmann::json(env));
    }

    // ---- Auth --------------------------------------------------------------------------

    static std::string base64url(std::string_view bytes) {
        auto text = runbox::detail::base64_encode(bytes);
        for (auto& c : text) c = c == '+' ? '-' : c == '/' ? '_' : c;
        while (!text.empty() && text.back() == '=') text.pop_back();
        return text;
    }
    /// A JWT-shaped token: {"alg":"HS256"}.{"exp":...,"sub":...}.random, the kind the SDKs read
    /// `exp` from (the fake keeps the tokens it issued; nothing verifies a signature).
    std::string issue_jwt(const std::string& subject) const {
        const auto exp = std::chrono::duration_cast<std::chrono::seconds>(
                             (std::chrono::system_clock::now() + options_.token_lifetime).time_since_epoch())
                             .count();
        const nlohmann::json header = {{"alg", "HS256"}, {"typ", "JWT"}};
        const nlohmann::json payload = {{"exp", exp}, {"sub", subject}, {"jti", runbox::detail::random_hex(8)}};
        return base64url(header.dump()) + "." + base64url(payload.dump()) + "." + base64url(runbox::detail::random_hex(16));
    }

    bool token_pair_ok(const Call& call) const {
        const auto id = call.request.headers.get("x-modal-token-id").value_or("");
        const auto secret = call.request.headers.get("x-modal-token-secret").value_or("");
        return key_matches(id, options_.token_id) && key_matches(secret, options_.token_secret);
    }

    /// True when the call's x-modal-auth-token is one this fake issued and has not expired.
    bool auth_token_ok(const Call& call) {
        const auto token = call.request.headers.get("x-modal-auth-token").value_or("");
        std::lock_guard lock(mutex_);
        const auto now = std::chrono::steady_clock::now();
        std::erase_if(auth_tokens_, [&](const auto& t) { return t.second <= now; });
        for (const auto& [issued, expires] : auth_tokens_)
            if (key_matches(token, issued)) return true;
        return false;
    }

    // ---- Control plane -------------------------------------------------------------------

    void control(Call& call) {
        if (!token_pair_ok(call)) return fail(call, grpc_code::unauthenticated, "invalid token id or secret");
        const auto& m = call.method;
        if (m == "AuthTokenGet") return auth_token_get(call);
        if (!auth_token_ok(call)) return fail(call, grpc_code::unauthenticated, "missing, unknown or expired auth token");
        if (m == "AppGetOrCreate") return app_get_or_create(call);
        if (m == "EnvironmentGetOrCreate") return environment_get_or_create(call);
        if (m == "ImageGetOrCreate") return image_get_or_create(call);
        if (m == "ImageJoinStreaming") return image_join_streaming(call);
        if (m == "SandboxCreateV2") return sandbox_create(call);
        if (m == "SandboxGetTaskIdV2" || m == "SandboxGetTaskId") return sandbox_get_task_id(call, m.ends_with("V2"));
        if (m == "SandboxGetCommandRouterAccess") return sandbox_router_access(call);
        if (m == "SandboxGetTunnelsV2" || m == "SandboxGetTunnels") return sandbox_get_tunnels(call, m.ends_with("V2"));
        if (m == "SandboxWaitV2" || m == "SandboxWait") return sandbox_wait(call, m.ends_with("V2"));
        if (m == "SandboxTerminateV2" || m == "SandboxTerminate") return sandbox_terminate(call, m.ends_with("V2"));
        if (m == "SandboxTagsSetV2" || m == "SandboxTagsSet") return sandbox_tags_set(call, m.ends_with("V2"));
        if (m == "SandboxTagsGetV2" || m == "SandboxTagsGet") return sandbox_tags_get(call, m.ends_with("V2"));
        if (m == "SandboxListV2" || m == "SandboxList") return sandbox_list(call);
        if (m == "SandboxGetFromNameV2" || m == "SandboxGetFromName")
            return fail(call, grpc_code::not_found, "no sandbox with that name");  // names are not kept
        fail(call, grpc_code::unimplemented, "the fake does not implement ModalClient/" + m);
    }

    void auth_token_get(Call& call) {
        auto token = issue_jwt("client");
        log_.add_secret(token);
        {
            std::lock_guard lock(mutex_);
            if (auth_tokens_.size() >= 256) auth_tokens_.erase(auth_tokens_.begin());
            auth_tokens_.emplace_back(token, std::chrono::steady_clock::now() + options_.token_lifetime);
        }
        reply(call, runbox::detail::modal::AuthTokenGetResponse{token});
    }

    void app_get_or_create(Call& call) {
        auto req = parse<runbox::detail::modal::AppGetOrCreateRequest>(call);
        if (!req) return;
        if (req->app_name.empty() || req->app_name.size() > 256) return fail(call, grpc_code::invalid_argument, "app_name is required");
        std::lock_guard lock(mutex_);
        auto it = apps_.find(req->app_name);
        if (it == apps_.end()) {
            if (req->object_creation_type == static_cast<std::int32_t>(runbox::detail::modal::ObjectCreationType::lookup))
                return fail(call, grpc_code::not_found, "app not found");
            if (apps_.size() >= 1024) return fail(call, grpc_code::resource_exhausted, "too many apps");
            it = apps_.emplace(req->app_name, "ap-" + runbox::detail::random_hex(11)).first;
        }
        reply(call, runbox::detail::modal::AppGetOrCreateResponse{it->second});
    }

    void environment_get_or_create(Call& call) {
        runbox::detail::modal::EnvironmentGetOrCreateResponse resp;
        resp.environment_id = "en-fake";
        resp.name = "main";
        resp.image_builder_version = "2025.06";
        reply(call, resp);
    }

    void image_get_or_create(Call& call) {
        auto req = parse<runbox::detail::modal::ImageGetOrCreateRequest>(call);
        if (!req) return;
        if (!req->image || req->image->dockerfile_commands.empty())
            return fail(call, grpc_code::invalid_argument, "image.dockerfile_commands is required");
        auto failure = faults_.take("POST", call.request.path, true);
        runbox::detail::modal::GenericResult result;
        result.status = static_cast<std::int32_t>(runbox::detail::modal::GenericStatus::success);
        if (failure) {
            result.status = static_cast<std::int32_t>(runbox::detail::modal::GenericStatus::failure);
            result.exception = failure->body.empty() ? "image build failed (injected fault)" : failure->body;
        }
        runbox::detail::modal::ImageGetOrCreateResponse resp;
        {
            std::lock_guard lock(mutex_);
            if (images_.size() >= 1024) images_.erase(images_.begin());
            resp.image_id = "im-" + runbox::detail::random_hex(11);
            images_[resp.image_id] = result;
        }
        if (options_.image_build_entries <= 0 || failure) resp.result = result;
        reply(call, resp);
    }

    void image_join_streaming(Call& call) {
        auto req = parse<runbox::detail::modal::ImageJoinStreamingRequest>(call);
        if (!req) return;
        runbox::detail::modal::GenericResult result;
        {
            std::lock_guard lock(mutex_);
            auto it = images_.find(req->image_id);
            if (it == images_.end()) return fail(call, grpc_code::not_found, "image not found");
            result = it->second;
        }
        int next = 1;
        if (!req->last_entry_id.empty()) {
            try {
                next = std::stoi(req->last_entry_id) + 1;
            } catch (...) {
                return fail(call, grpc_code::invalid_argument, "bad last_entry_id");
            }
        }
        for (; next <= options_.image_build_entries && !call.stream.cancelled(); ++next) {
            runbox::detail::modal::ImageJoinStreamingResponse entry;
            entry.entry_id = std::to_string(next);
            stream_message(call, entry);
        }
        runbox::detail::modal::ImageJoinStreamingResponse last;
        last.entry_id = std::to_string(std::max(next, options_.image_build_entries + 1));
        last.result = result;
        last.eof = true;
        stream_message(call, last);
        end_stream(call);
    }

    static bool v2_id(std::string_view id) {
        // Modal's SDKs take sb- + exactly 22 alphanumerics for a V1 sandbox, anything else for V2.
        if (id.size() != 25 || !id.starts_with("sb-")) return true;
        return !std::all_of(id.begin() + 3, id.end(), [](unsigned char c) { return std::isalnum(c) != 0; });
    }

    /// The sandbox of a V1 or V2 RPC (mutex_ held), or nullptr after answering NOT_FOUND: a V2
    /// RPC knows V2 ids only and a V1 RPC V1 ids only (this fake creates V2 sandboxes).
    Sandbox* find(Call& call, const std::string& id, bool v2) {
        auto it = sandboxes_.find(id);
        if (id.empty() || it == sandboxes_.end() || v2_id(id) != v2) {
            fail(call, grpc_code::not_found, "sandbox not found");
            return nullptr;
        }
        return it->second.get();
    }

    static std::string join_command(const std::vector<std::string>& args) {
        std::string out;
        for (const auto& a : args) out += (out.empty() ? "" : " ") + runbox::detail::shell_quote(a);
        return out;
    }

    void sandbox_create(Call& call) {
        auto req = parse<runbox::detail::modal::SandboxCreateV2Request>(call);
        if (!req) return;
        if (!req->definition) return fail(call, grpc_code::invalid_argument, "definition is required");
        const auto& def = *req->definition;
        if (req->app_id.empty()) return fail(call, grpc_code::invalid_argument, "app_id is required");
        if (req->tags.size() > options_.max_tags) return fail(call, grpc_code::invalid_argument, "too many tags");
        for (const auto& t : req->tags)
            if (t.tag_name.size() + t.tag_value.size() > options_.max_tag_bytes)
                return fail(call, grpc_code::invalid_argument, "tag too long");
        auto sb = std::make_shared<Sandbox>();
        for (const auto& source : req->secret_sources) {
            if (source.secret_id) return fail(call, grpc_code::not_found, "secret not found");
            if (source.env) {
                for (const auto& [k, v] : *source.env) sb->env[k] = v;
            }
        }
        log_.add_secrets_from_env(nlohmann::json(sb->env));
        if (def.open_ports && def.open_ports->size() > 16) return fail(call, grpc_code::invalid_argument, "too many ports");
        {
            std::lock_guard lock(mutex_);
            if (stopping_) return fail(call, grpc_code::unavailable, "the fake is stopping");
            if (apps_.empty() || std::none_of(apps_.begin(), apps_.end(), [&](const auto& a) { return a.second == req->app_id; }))
                return fail(call, grpc_code::not_found, "app not found");
            if (!def.image_id.empty() && images_.find(def.image_id) == images_.end())
                return fail(call, grpc_code::not_found, "image not found");
            const auto live = std::count_if(sandboxes_.begin(), sandboxes_.end(), [](const auto& e) { return !e.second->result; });
            if (static_cast<std::size_t>(live) + creating_ >= options_.max_sandboxes)
                return fail(call, grpc_code::resource_exhausted, "too many sandboxes");
            ++creating_;  // the slot is held while the sandbox starts, so concurrent creates keep the bound
        }
        struct Slot {  // released when the sandbox is inserted, or when the create fails
            FakeModal& fake;
            bool held = true;
            ~Slot() {
                if (!held) return;
                std::lock_guard lock(fake.mutex_);
                --fake.creating_;
            }
        } slot{*this};
        sb->id = "sb-v2-" + runbox::detail::random_hex(10);
        sb->task_id = "ta-" + runbox::detail::random_hex(11);
        sb->app_id = req->app_id;
        sb->tags = req->tags;
        sb->entrypoint_args = def.entrypoint_args;
        sb->router_jwt = issue_jwt(sb->task_id);
        log_.add_secret(sb->router_jwt);
        sb->dir = std::make_shared<SandboxDir>("modal");
        sb->directory = sb->dir->path();
        const auto timeout = def.timeout_secs != 0 ? def.timeout_secs : options_.default_timeout_secs;
        sb->deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout);

        auto failure = faults_.take("POST", call.request.path, true);
        const auto command = join_command(def.entrypoint_args);
        auto env = sb->env;
        env["HOME"] = sb->directory.string();
        int asked_port = 0;
        if (failure) {
            runbox::detail::modal::GenericResult r;
            r.status = static_cast<std::int32_t>(runbox::detail::modal::GenericStatus::init_failure);
            r.exception = failure->body.empty() ? "the sandbox failed to start (injected fault)" : failure->body;
            sb->result = r;
        } else if (!command.empty() && is_server_command(command)) {
            auto so = sandbox_server_options(sb->directory, env);
            so.plugins = options_.server_plugins;
            sb->server = servers_.start(std::move(so));
            sb->server_port = sb->server->port();
            asked_port = server_port_of(command);
        } else if (!command.empty()) {
            sb->entrypoint = shells_.start(command, sb->directory, env, false, [this] { wake(); });
        }
        if (def.open_ports) {
            for (const auto& p : *def.open_ports) {
                runbox::detail::modal::TunnelData t;
                t.container_port = p.port;
                const auto target = (sb->server && static_cast<int>(p.port) == asked_port) ? static_cast<std::uint32_t>(sb->server_port) : p.port;
                t.host = "127.0.0.1";
                t.port = target;
                t.unencrypted_host = "127.0.0.1";
                t.unencrypted_port = target;
                sb->tunnels.push_back(t);
            }
        }
        runbox::detail::modal::SandboxCreateV2Response resp;
        resp.sandbox_id = sb->id;
        resp.task_id = sb->task_id;
        resp.tunnels = sb->tunnels;
        resp.command_router_access = runbox::detail::modal::CommandRouterAccess{sb->router_jwt, router_url()};
        {
            std::lock_guard lock(mutex_);
            // Distinct, increasing created_at values: SandboxList pages by them (strictly older).
            double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
            last_created_ = sb->created_at = std::max(now, last_created_ + 0.001);
            prune_ended();
            sandboxes_[sb->id] = sb;
            --creating_;
            slot.held = false;
        }
        cv_.notify_all();
        reply(call, resp);
    }

    /// Forgets the oldest ended sandboxes past 1024 records (mutex_ held; their resources are gone).
    void prune_ended() {
        while (sandboxes_.size() >= 1024) {
            auto oldest = sandboxes_.end();
            for (auto it = sandboxes_.begin(); it != sandboxes_.end(); ++it)
                if (it->second->result && !it->second->server && !it->second->entrypoint && it->second->execs.empty() &&
                    (oldest == sandboxes_.end() || it->second->created_at < oldest->second->created_at))
                    oldest = it;
            if (oldest == sandboxes_.end()) return;
            sandboxes_.erase(oldest);
        }
    }

    void sandbox_get_task_id(Call& call, bool v2) {
        auto req = parse<runbox::detail::modal::SandboxTimeoutRequest>(call);
        if (!req) return;
        std::lock_guard lock(mutex_);
        auto* sb = find(call, req->sandbox_id, v2);
        if (!sb) return;
        runbox::detail::modal::SandboxGetTaskIdResponse resp;
        if (sb->result) resp.task_result = sb->result;
        else resp.task_id = sb->task_id;
        reply(call, resp);
    }

    void sandbox_router_access(Call& call) {
        auto req = parse<runbox::detail::modal::SandboxGetCommandRouterAccessRequest>(call);
        if (!req) return;
        std::lock_guard lock(mutex_);
        Sandbox* sb = nullptr;
        for (auto& [id, s] : sandboxes_)
            if ((!req->sandbox_id.empty() && id == req->sandbox_id) || (!req->task_id.empty() && s->task_id == req->task_id)) sb = s.get();
        if (!sb) return fail(call, grpc_code::not_found, "sandbox not found");
        if (sb->result) return fail(call, grpc_code::failed_precondition, "the sandbox has finished");
        reply(call, runbox::detail::modal::CommandRouterAccess{sb->router_jwt, router_url()});
    }

    /// Waits on cv_ (lock held) until `done()`, the stream ends, the fake stops or `bound` passes.
    template <class Done>
    void wait_for(std::unique_lock<std::mutex>& lock, Call& call, std::chrono::milliseconds bound, Done done) {
        const auto until = std::chrono::steady_clock::now() + std::min(bound, options_.max_wait);
        while (!done() && !stopping_ && !call.stream.cancelled() && std::chrono::steady_clock::now() < until)
            cv_.wait_until(lock, std::min(until, std::chrono::steady_clock::now() + slice));
    }
    static std::chrono::milliseconds seconds_bound(float timeout) {
        if (!(timeout > 0)) return std::chrono::milliseconds(0);
        return std::chrono::milliseconds(static_cast<std::int64_t>(std::min(timeout, 3600.0F) * 1000));
    }

    void sandbox_get_tunnels(Call& call, bool v2) {
        auto req = parse<runbox::detail::modal::SandboxTimeoutRequest>(call);
        if (!req) return;
        std::lock_guard lock(mutex_);
        auto* sb = find(call, req->sandbox_id, v2);
        if (!sb) return;
        runbox::detail::modal::SandboxGetTunnelsResponse resp;
        resp.tunnels = sb->tunnels;
        resp.result = sb->result;
        reply(call, resp);
    }

    void sandbox_wait(Call& call, bool v2) {
        auto req = parse<runbox::detail::modal::SandboxTimeoutRequest>(call);
        if (!req) return;
        std::unique_lock lock(mutex_);
        auto* sb = find(call, req->sandbox_id, v2);
        if (!sb) return;
        auto keep = sandboxes_[req->sandbox_id];  // the record outlives the wait
        wait_for(lock, call, seconds_bound(req->timeout), [&] { return keep->result.has_value(); });
        runbox::detail::modal::SandboxWaitResponse resp;
        resp.result = keep->result;
        reply(call, resp);
    }

    void sandbox_terminate(Call& call, bool v2) {
        auto req = parse<runbox::detail::modal::SandboxIdRequest>(call);
        if (!req) return;
        Resources freed;
        runbox::detail::modal::SandboxTerminateResponse resp;
        {
            std::lock_guard lock(mutex_);
            auto* sb = find(call, req->sandbox_id, v2);
            if (!sb) return;
            if (sb->result) {
                resp.result = sb->result;
            } else {
                runbox::detail::modal::GenericResult r;
                r.status = static_cast<std::int32_t>(runbox::detail::modal::GenericStatus::terminated);
                r.exception = "terminated";
                freed = end_sandbox(*sb, r);
            }
        }
        cv_.notify_all();
        release(std::move(freed));
        reply(call, resp);
    }

    void sandbox_tags_set(Call& call, bool v2) {
        auto req = parse<runbox::detail::modal::SandboxTagsSetRequest>(call);
        if (!req) return;
        if (req->tags.size() > options_.max_tags) return fail(call, grpc_code::invalid_argument, "too many tags");
        for (const auto& t : req->tags)
            if (t.tag_name.empty() || t.tag_name.size() + t.tag_value.size() > options_.max_tag_bytes)
                return fail(call, grpc_code::invalid_argument, "a tag needs a name and at most max_tag_bytes");
        std::lock_guard lock(mutex_);
        auto* sb = find(call, req->sandbox_id, v2);
        if (!sb) return;
        sb->tags = req->tags;  // replaces the whole set
        reply(call, runbox::detail::modal::Empty{});
    }

    void sandbox_tags_get(Call& call, bool v2) {
        auto req = parse<runbox::detail::modal::SandboxIdRequest>(call);
        if (!req) return;
        std::lock_guard lock(mutex_);
        auto* sb = find(call, req->sandbox_id, v2);
        if (!sb) return;
        reply(call, runbox::detail::modal::SandboxTagsGetResponse{sb->tags});
    }

    void sandbox_list(Call& call) {
        auto req = parse<runbox::detail::modal::SandboxListRequest>(call);
        if (!req) return;
        std::lock_guard lock(mutex_);
        std::vector<const Sandbox*> matching;
        for (const auto& entry : sandboxes_) {
            const auto& sb = entry.second;  // (clang 14 lambdas cannot capture structured bindings)
            if (!req->app_id.empty() && sb->app_id != req->app_id) continue;
            if (req->before_timestamp > 0 && !(sb->created_at < req->before_timestamp)) continue;
            if (sb->result && !req->include_finished) continue;
            const bool has_tags = std::all_of(req->tags.begin(), req->tags.end(), [&](const auto& want) {
                return std::find(sb->tags.begin(), sb->tags.end(), want) != sb->tags.end();
            });
            if (has_tags) matching.push_back(sb.get());
        }
        std::sort(matching.begin(), matching.end(), [](const Sandbox* a, const Sandbox* b) { return a->created_at > b->created_at; });
        if (matching.size() > options_.list_page_size) matching.resize(options_.list_page_size);
        runbox::detail::modal::SandboxListResponse resp;
        for (const auto* sb : matching) {
            runbox::detail::modal::SandboxInfo info;
            info.id = sb->id;
            info.created_at = sb->created_at;
            info.app_id = sb->app_id;
            info.tags = sb->tags;
            resp.sandboxes.push_back(std::move(info));
        }
        reply(call, resp);
    }

    // ---- Command router ------------------------------------------------------------------

    /// The live sandbox of `task_id` whose router JWT the call presents (mutex_ held), or
    /// nullptr after answering UNAUTHENTICATED / NOT_FOUND / FAILED_PRECONDITION.
    Sandbox* router_sandbox(Call& call, const std::string& task_id) {
        Sandbox* sb = nullptr;
        for (auto& [id, s] : sandboxes_)
            if (s->task_id == task_id) sb = s.get();
        const auto auth = call.request.headers.get("authorization").value_or("");
        const std::string_view bearer = std::string_view(auth).starts_with("Bearer ") ? std::string_view(auth).substr(7) : "";
        if (!sb || !key_matches(bearer, sb->router_jwt)) {
            // Unknown task or wrong JWT look the same to a caller without the right JWT.
            fail(call, sb ? grpc_code::unauthenticated : grpc_code::not_found, sb ? "invalid router token" : "task not found");
            return nullptr;
        }
        if (sb->result) {
            fail(call, grpc_code::not_found, "the sandbox has finished");
            return nullptr;
        }
        return sb;
    }
    /// The exec `exec_id` of the router call's sandbox (mutex_ held), or nullptr after answering.
    Exec* router_exec(Call& call, const std::string& task_id, const std::string& exec_id) {
        auto* sb = router_sandbox(call, task_id);
        if (!sb) return nullptr;
        auto it = sb->execs.find(exec_id);
        if (it == sb->execs.end()) {
            fail(call, grpc_code::not_found, "exec not found");
            return nullptr;
        }
        return &it->second;
    }

    void router(Call& call) {
        const auto& m = call.method;
        if (m == "TaskExecStart") return exec_start(call);
        if (m == "TaskExecStdioRead") return exec_stdio_read(call);
        if (m == "TaskExecWait") return exec_wait(call, true);
        if (m == "TaskExecPoll") return exec_wait(call, false);
        if (m == "TaskExecStdinWrite") return exec_stdin_write(call);
        fail(call, grpc_code::unimplemented, "the fake does not implement TaskCommandRouter/" + m);
    }

    void exec_start(Call& call) {
        auto req = parse<runbox::detail::modal::TaskExecStartRequest>(call);
        if (!req) return;
        if (req->exec_id.empty() || req->exec_id.size() > 128 || req->command_args.empty())
            return fail(call, grpc_code::invalid_argument, "exec_id and command_args are required");
        std::map<std::string, std::string> env;
        for (const auto& source : req->secret_sources) {
            if (source.secret_id) return fail(call, grpc_code::not_found, "secret not found");
            if (source.env)
                for (const auto& [k, v] : *source.env) env[k] = v;
        }
        for (const auto& [k, v] : req->env) env[k] = v;
        log_.add_secrets_from_env(nlohmann::json(env));
        std::unique_lock lock(mutex_);
        auto* sb = router_sandbox(call, req->task_id);
        if (!sb) return;
        if (sb->execs.count(req->exec_id) != 0) return reply(call, runbox::detail::modal::Empty{});  // idempotent
        if (sb->execs.size() >= options_.max_execs_per_sandbox)
            return fail(call, grpc_code::resource_exhausted, "too many execs in this sandbox");
        auto full_env = sb->env;
        for (const auto& [k, v] : env) full_env[k] = v;
        full_env["HOME"] = sb->directory.string();
        std::filesystem::path cwd = sb->directory;
        if (req->workdir && !req->workdir->empty()) {
            // The sandbox's filesystem is the host's: an existing directory is used as is, another
            // path is made inside the sandbox's directory.
            std::error_code ec;
            std::filesystem::path wanted(*req->workdir);
            if (std::filesystem::is_directory(wanted, ec)) {
                cwd = wanted;
            } else {
                cwd = sb->directory / wanted.relative_path();
                std::filesystem::create_directories(cwd, ec);
            }
        }
        Exec exec;
        exec.stdout_pipe = req->stdout_config == 1;
        exec.stderr_pipe = req->stderr_config == 1;
        if (req->timeout_secs && *req->timeout_secs > 0)
            exec.deadline = std::chrono::steady_clock::now() + std::chrono::seconds(*req->timeout_secs);
        exec.command = shells_.start("exec " + join_command(req->command_args), cwd, full_env, req->stderr_config == 2,
                                     [this] { wake(); });
        sb->execs.emplace(req->exec_id, std::move(exec));
        lock.unlock();
        cv_.notify_all();
        reply(call, runbox::detail::modal::Empty{});
    }

    void exec_stdio_read(Call& call) {
        auto req = parse<runbox::detail::modal::TaskExecStdioReadRequest>(call);
        if (!req) return;
        std::shared_ptr<ShellCommand> command;
        bool piped = false;
        {
            std::lock_guard lock(mutex_);
            auto* exec = router_exec(call, req->task_id, req->exec_id);
            if (!exec) return;
            command = exec->command;
            piped = req->file_descriptor == 0 ? exec->stdout_pipe : exec->stderr_pipe;
        }
        std::uint64_t offset = req->offset;
        const auto until = std::chrono::steady_clock::now() + options_.max_stream;
        constexpr std::size_t chunk = 64 * 1024;
        for (;;) {
            const bool done = command->done();  // read before the output: what follows is complete
            if (piped) {
                const auto result = command->result();
                const auto& text = req->file_descriptor == 0 ? result.out : result.err;
                while (offset < text.size() && !call.stream.cancelled()) {
                    const auto n = std::min<std::size_t>(chunk, text.size() - offset);
                    stream_message(call, runbox::detail::modal::TaskExecStdioReadResponse{text.substr(offset, n)});
                    offset += n;
                }
            }
            if (done) return end_stream(call);
            if (call.stream.cancelled() || stopping()) return;
            if (std::chrono::steady_clock::now() >= until)
                return fail_stream(call, grpc_code::deadline_exceeded, "stream open too long: read again from the offset");
            command->wait(slice);
        }
    }

    /// Ends a stream that may have sent messages with a non-OK status in its trailers.
    void fail_stream(Call& call, int code, const std::string& message) {
        if (!call.stream.responded()) return fail(call, code, message);
        log_status(call, code);
        call.stream.finish(Headers{{"grpc-status", std::to_string(code)}, {"grpc-message", percent_encode(message)}});
    }

    void exec_wait(Call& call, bool block) {
        auto req = parse<runbox::detail::modal::TaskExecRequest>(call);
        if (!req) return;
        std::shared_ptr<ShellCommand> command;
        {
            std::lock_guard lock(mutex_);
            auto* exec = router_exec(call, req->task_id, req->exec_id);
            if (!exec) return;
            command = exec->command;
        }
        if (block) {
            const auto until = std::chrono::steady_clock::now() + options_.max_wait;
            while (!command->done() && !call.stream.cancelled() && !stopping() && std::chrono::steady_clock::now() < until)
                command->wait(slice);
            if (!command->done()) return fail(call, grpc_code::deadline_exceeded, "still running: wait again");
        }
        runbox::detail::modal::TaskExecWaitResponse resp;
        if (command->done()) resp.code = command->result().exit_code;
        reply(call, resp);
    }

    void exec_stdin_write(Call& call) {
        auto req = parse<runbox::detail::modal::TaskExecStdinWriteRequest>(call);
        if (!req) return;
        std::lock_guard lock(mutex_);
        if (!router_exec(call, req->task_id, req->exec_id)) return;
        // The fake's commands read no stdin (it is /dev/null): closing it is all it accepts.
        if (!req->data.empty()) return fail(call, grpc_code::unimplemented, "the fake's execs take no stdin data");
        reply(call, runbox::detail::modal::Empty{});
    }

    // ---- Sandbox ends ----------------------------------------------------------------------

    bool stopping() {
        std::lock_guard lock(mutex_);
        return stopping_;
    }
    void wake() {
        {
            std::lock_guard lock(mutex_);
            dirty_ = true;
        }
        cv_.notify_all();
    }

    /// Takes what a sandbox holds (mutex_ held).
    static Resources take_resources(Sandbox& sb) {
        Resources r;
        r.server = std::move(sb.server);
        r.entrypoint = std::move(sb.entrypoint);
        for (auto& [id, exec] : sb.execs) r.commands.push_back(std::move(exec.command));
        sb.execs.clear();
        r.dir = std::move(sb.dir);
        return r;
    }
    /// Marks `sb` ended with `result` and takes its resources (mutex_ held).
    static Resources end_sandbox(Sandbox& sb, runbox::detail::modal::GenericResult result) {
        sb.result = std::move(result);
        return take_resources(sb);
    }
    /// Stops and removes what a sandbox held (mutex_ NOT held).
    static void release(Resources r) {
        if (r.entrypoint) r.entrypoint->kill();
        for (auto& c : r.commands)
            if (c) c->kill();
        SandboxServers::stop(std::move(r.server));
        r.entrypoint.reset();
        r.commands.clear();
        if (r.dir) r.dir->remove();
    }

    /// Ends sandboxes whose entrypoint exited or whose timeout passed, and kills execs past theirs.
    void reap_loop() {
        std::unique_lock lock(mutex_);
        while (!stopping_) {
            auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
            std::vector<Resources> freed;
            const auto now = std::chrono::steady_clock::now();
            for (auto& [id, sb] : sandboxes_) {
                if (sb->result) continue;
                if (sb->entrypoint && sb->entrypoint->done()) {
                    runbox::detail::modal::GenericResult r;
                    r.exitcode = sb->entrypoint->result().exit_code;
                    r.status = static_cast<std::int32_t>(r.exitcode == 0 ? runbox::detail::modal::GenericStatus::success
                                                                         : runbox::detail::modal::GenericStatus::failure);
                    freed.push_back(end_sandbox(*sb, r));
                } else if (now >= sb->deadline) {
                    runbox::detail::modal::GenericResult r;
                    r.status = static_cast<std::int32_t>(runbox::detail::modal::GenericStatus::timeout);
                    r.exception = "the sandbox reached its timeout";
                    freed.push_back(end_sandbox(*sb, r));
                } else {
                    next = std::min(next, sb->deadline);
                    for (auto& [eid, exec] : sb->execs) {
                        if (exec.command && !exec.command->done()) {
                            if (now >= exec.deadline) exec.command->kill();
                            else next = std::min(next, exec.deadline);
                        }
                    }
                }
            }
            if (!freed.empty()) {
                lock.unlock();
                cv_.notify_all();
                for (auto& r : freed) release(std::move(r));
                lock.lock();
                continue;
            }
            cv_.wait_until(lock, next, [&] { return stopping_ || dirty_; });
            dirty_ = false;
        }
    }

    FakeModalSandbox snapshot(const Sandbox& sb) const {
        FakeModalSandbox s;
        s.id = sb.id;
        s.task_id = sb.task_id;
        s.app_id = sb.app_id;
        s.entrypoint_args = sb.entrypoint_args;
        s.env = sb.env;
        for (const auto& t : sb.tags) s.tags[t.tag_name] = t.tag_value;
        s.tunnels = sb.tunnels;
        s.result = sb.result;
        s.server_running = sb.server != nullptr;
        s.server_port = sb.server_port;
        s.directory = sb.directory;
        s.execs = sb.execs.size();
        return s;
    }

    static constexpr std::chrono::milliseconds slice{50};  // how often a blocked RPC looks at its stream

    FakeModalOptions options_;
    std::mutex lifecycle_;
    std::unique_ptr<Http2Server> server_;
    std::thread reaper_;
    RequestLog log_;
    FaultList faults_;
    ShellRunner shells_;
    SandboxServers servers_;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool dirty_ = false;
    double last_created_ = 0;
    std::atomic<std::size_t> in_flight_{0};
    std::size_t creating_ = 0;  // creates between their limit check and their sandbox's insertion
    std::map<std::string, std::string> apps_;  // name -> id
    std::map<std::string, runbox::detail::modal::GenericResult> images_;
    std::vector<std::pair<std::string, std::chrono::steady_clock::time_point>> auth_tokens_;
    std::map<std::string, std::shared_ptr<Sandbox>> sandboxes_;
};

}  // namespace runbox::testing
