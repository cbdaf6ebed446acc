// runbox/providers/modal.hpp - the Modal provider: runbox::modal::Auth, runbox::ModalRuntime.
//
// Modal has no HTTP/JSON API: its control plane (modal.client.ModalClient) is gRPC over HTTP/2
// (shared/reference/provider-apis.md §4), so this provider needs CurlTransport (link the CMake
// target runbox::curl) and says so at compile time over any other transport (requires_http2).
// connect() follows the official SDK's V2 sandbox path:
//   AuthTokenGet (a JWT, renewed before its `exp` through the contract's refresh hook) ->
//   AppGetOrCreate (app_name, created if missing) -> ImageGetOrCreate from
//   sandbox.runtime_container_image (ImageJoinStreaming until the build has a result) ->
//   SandboxCreateV2 with the action server as entrypoint_args (an argv: nothing is quoted), an
//   encrypted port, the environment as a secret source, a non-zero timeout, the tag
//   OpenHands_SID=<sid> and runbox's ownership labels as tags -> the server's tunnel (from the
//   create answer, else SandboxGetTunnelsV2). The runtime then polls /alive; SandboxWaitV2 with
//   timeout 0 is the early-failure probe (a server that exited fails the wait at once with its
//   exit code). attach_to_existing finds a running sandbox tagged OpenHands_SID=<sid> with
//   SandboxListV2 (across processes, unlike OpenHands' in-memory map). A failed connect
//   terminates what it created; close() terminates it (SandboxTerminateV2) unless attached or
//   keep_runtime_alive.
//
// Settings (Config::providers["modal"][key], else the environment variable):
//   token_id / token_secret  MODAL_TOKEN_ID / MODAL_TOKEN_SECRET, else ~/.modal.toml (detail/modal_auth.hpp)
//   server_url               MODAL_SERVER_URL           https://api.modal.com:443 (http:// = plaintext h2c)
//   environment              MODAL_ENVIRONMENT          the workspace's default
//   app_name                 MODAL_APP_NAME             runbox
//   image_builder_version    MODAL_IMAGE_BUILDER_VERSION 2025.06
//   timeout_secs             MODAL_TIMEOUT_SECS         3600   (the sandbox's lifetime: the backstop)
//   idle_timeout_secs        MODAL_IDLE_TIMEOUT_SECS    unset
//   memory_mb / milli_cpu    MODAL_MEMORY_MB / MODAL_MILLI_CPU  unset (Modal's defaults)
//   tunnel_scheme            MODAL_TUNNEL_SCHEME        https; http when server_url is http:// (a local fake)
//   client_type              MODAL_CLIENT_TYPE          8 (x-modal-client-type: the JS SDK's ClientType)
//   server_command / server_cwd / server_port           unset / /openhands/code / 3000 (OpenHands' port)
//   session_api_key          MODAL_SESSION_API_KEY      derived per sandbox: HMAC of its create token under the token
//                                                        secret, so another process can attach (SESSION_API_KEY, X-Session-API-Key)
//   start_timeout_ms, alive_timeout_ms, request_timeout_ms, close_timeout_ms, retry_max_attempts,
//   retry_initial_backoff_ms, poll_interval_ms as for the other cloud providers (cloud_api.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runbox/config.hpp"
#include "runbox/detail/base64.hpp"
#include "runbox/error.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/provider.hpp"
#include "runbox/providers/detail/cloud_api.hpp"
#include "runbox/providers/detail/grpc_call.hpp"
#include "runbox/providers/detail/modal_auth.hpp"
#include "runbox/providers/detail/modal_proto.hpp"
#include "runbox/rpc_status.hpp"
#include "runbox/runtime.hpp"
#include "runbox/status.hpp"
#include "runbox/transport/curl.hpp"

namespace runbox::modal {

/// The control plane's gRPC service.
inline constexpr std::string_view service = "/modal.client.ModalClient/";
/// The tag a sandbox's session id goes in (what OpenHands names its sandboxes by).
inline constexpr std::string_view sid_tag = "OpenHands_SID";

/// Every setting, resolved from Config (providers.modal.*) with environment fallback.
struct Settings : cloud::ApiSettings, cloud::ServerLaunch {
    runbox::detail::modal::Credentials credentials{};  ///< token id/secret, server URL, environment
    std::string app_name = "runbox";                   ///< app_name: the app the sandboxes belong to
    std::string image_builder_version = "2025.06";     ///< image_builder_version (ImageGetOrCreate)
    std::uint32_t timeout_secs = 3600;                 ///< timeout_secs: the sandbox's TTL, the backstop against leaks
    std::optional<std::uint32_t> idle_timeout_secs{};  ///< idle_timeout_secs: unset = none
    std::uint32_t memory_mb = 0;                       ///< memory_mb: 0 = Modal's default
    std::uint32_t milli_cpu = 0;                       ///< milli_cpu: 0 = Modal's default
    std::string tunnel_scheme = "https";               ///< tunnel_scheme: how the server's tunnel is reached
    std::string client_type = "8";                     ///< client_type: x-modal-client-type
    std::optional<std::string> session_api_key{};      ///< session_api_key: else derived per sandbox

    Settings() {
        server_port = 3000;  // OpenHands' Modal runtime
        request_timeout = std::chrono::milliseconds(60000);
        retry_initial_backoff = std::chrono::milliseconds(100);  // the SDK: 100 ms -> 1 s
        retry_max_attempts = 4;
    }

    /// Reads every setting and the credentials; errc::config_invalid names what is wrong.
    static Settings from(const Config& config) {
        const cloud::SettingsReader r(config, "modal", "MODAL_");
        Settings s;
        s.read_api(r, false);
        s.read_launch(r);
        s.credentials = runbox::detail::modal::resolve_credentials(config);
        s.api_key = s.credentials.token_secret;  // redacted wherever the API key would be
        (void)parse_url(s.credentials.server_url);  // config_invalid now, not at the first call
        s.app_name = r.text("app_name", s.app_name);
        s.image_builder_version = r.text("image_builder_version", s.image_builder_version);
        s.timeout_secs = static_cast<std::uint32_t>(r.integer("timeout_secs", static_cast<int>(s.timeout_secs), 1));
        if (r.text("idle_timeout_secs"))
            s.idle_timeout_secs = static_cast<std::uint32_t>(r.integer("idle_timeout_secs", 0, 1));
        s.memory_mb = static_cast<std::uint32_t>(r.integer("memory_mb", 0, 0));
        s.milli_cpu = static_cast<std::uint32_t>(r.integer("milli_cpu", 0, 0));
        const bool plaintext = parse_url(s.credentials.server_url).scheme == "http";
        s.tunnel_scheme = r.choice("tunnel_scheme", plaintext ? "http" : "https", {"http", "https"});
        s.client_type = r.text("client_type", s.client_type);
        s.session_api_key = r.text("session_api_key");
        return s;
    }
};

namespace detail {

namespace proto = runbox::detail::modal;

/// The throttle delay of a RESOURCE_EXHAUSTED answer: grpc-status-details-bin (base64 of
/// modal.client.RPCStatus) holding an RPCRetryPolicy{retry_after_secs}, else
/// grpc-retry-pushback-ms. nullopt when neither says how long to wait.
inline std::optional<std::chrono::milliseconds> throttle_delay(const Response& response) {
    const Headers& fields = response.trailers.contains("grpc-status") ? response.trailers : response.headers;
    if (auto bin = fields.get("grpc-status-details-bin"); bin && bin->size() <= 16 * 1024) {
        try {
            const auto status = proto::decode<proto::RpcStatus>(runbox::detail::base64_decode(*bin), "error detail");
            for (const auto& any : status.details) {
                if (!any.type_url.ends_with("modal.client.RPCRetryPolicy")) continue;
                const auto policy = proto::decode<proto::RpcRetryPolicy>(any.value, "retry policy");
                if (policy.retry_after_secs >= 0 && policy.retry_after_secs < 3600)
                    return runbox::detail::to_millis(static_cast<double>(policy.retry_after_secs) * 1000.0);
            }
        } catch (const error&) {
            // A malformed hint is no hint.
        }
    }
    if (auto ms = fields.get("grpc-retry-pushback-ms")) {
        if (auto value = runbox::detail::parse_non_negative(*ms)) return runbox::detail::to_millis(*value);
    }
    return std::nullopt;
}

/// The exit code the SDK reports for a finished sandbox: TIMEOUT 124, TERMINATED 137, else exitcode.
inline int exit_code_of(const proto::GenericResult& result) {
    if (result.status == static_cast<std::int32_t>(proto::GenericStatus::timeout)) return 124;
    if (result.status == static_cast<std::int32_t>(proto::GenericStatus::terminated)) return 137;
    return result.exitcode;
}

inline std::map<std::string, std::string> tag_map(const std::vector<proto::SandboxTag>& tags) {
    std::map<std::string, std::string> out;
    for (const auto& t : tags) out[t.tag_name] = t.tag_value;
    return out;
}

}  // namespace detail

/// The Modal provider (AuthPolicy). Construction reads and checks the settings and
/// credentials (no I/O).
class Auth {
public:
    static constexpr std::string_view name = "modal";  ///< the name make_runtime knows it by
    /// gRPC needs HTTP/2: Modal over an HTTP/1.1-only transport does not compile.
    static constexpr bool requires_http2 = true;
    /// ImageJoinStreaming is a server stream.
    static constexpr bool requires_streaming = true;
    using default_transport = CurlTransport;  ///< HTTP/2 (h2 by ALPN, h2c on http://) through libcurl

    /// Reads and checks the settings and credentials; no I/O. Throws errc::config_invalid.
    explicit Auth(const Config& config) : settings_(Settings::from(config)) {
        host_ = parse_url(settings_.credentials.server_url).host;
    }

    /// The metadata of every control-plane call (reference §4.3): client type and version,
    /// the token pair, the server's host, and the JWT (except on AuthTokenGet itself).
    void authorize(Request& request) const {
        request.headers.set("x-modal-client-type", settings_.client_type);
        request.headers.set("x-modal-client-version", "1.0.0");
        request.headers.set("x-modal-libmodal-version", "runbox/" + std::string(version_string));
        request.headers.set("x-modal-token-id", settings_.credentials.token_id);
        request.headers.set("x-modal-token-secret", settings_.credentials.token_secret);
        request.headers.set("x-modal-host", host_);
        request.headers.set("user-agent", "runbox/" + std::string(version_string));
        if (!jwt_.empty() && !request.url.ends_with("/AuthTokenGet")) request.headers.set("x-modal-auth-token", jwt_);
    }

    /// Fetches the JWT (AuthTokenGet) when there is none or it is near its `exp` (5 minutes
    /// before, or half its lifetime when that is shorter); a no-op while the token is fresh.
    template <class T>
    void refresh(ProviderContext<T>& ctx) {
        if (refreshing_) return;  // the AuthTokenGet call itself
        const auto now = std::chrono::system_clock::now();
        if (!jwt_.empty() && now < renew_at_) return;
        refreshing_ = true;
        try {
            auto channel = channel_of(ctx);
            const auto answer = decode<runbox::detail::modal::AuthTokenGetResponse>(
                channel.unary(method("AuthTokenGet"), encode(runbox::detail::modal::Empty{})), "token");
            refreshing_ = false;
            if (answer.token.empty()) throw error(errc::bad_response, "AuthTokenGet answered no token", "modal");
            jwt_ = answer.token;
            const auto exp = runbox::detail::modal::jwt_expiry(jwt_);
            const auto lifetime = exp ? *exp - now : std::chrono::system_clock::duration(std::chrono::minutes(10));
            const auto margin = std::min<std::chrono::system_clock::duration>(std::chrono::minutes(5), lifetime / 2);
            renew_at_ = now + lifetime - margin;
            ++tokens_fetched_;
        } catch (...) {
            refreshing_ = false;
            throw;
        }
    }

    /// The resolved settings.
    const Settings& settings() const noexcept { return settings_; }
    /// The sandbox connect() created or attached to (empty before).
    const std::string& sandbox_id() const noexcept { return box_.id; }
    /// True when connect() attached to a sandbox it did not create.
    bool attached() const noexcept { return box_.attached; }
    /// The app the sandboxes belong to (after connect()).
    const std::string& app_id() const noexcept { return app_id_; }
    /// How many JWTs AuthTokenGet gave this provider so far.
    int tokens_fetched() const noexcept { return tokens_fetched_; }

    /// Attaches (SandboxListV2 by the OpenHands_SID tag) or builds the image and creates a sandbox
    /// running the action server, and says where its tunnel is; SandboxWaitV2 is the endpoint's
    /// early-failure probe. A failure terminates what it created.
    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        box_.reset(settings_.session_api_key.value_or(std::string()));
        created_ = false;
        auto channel = channel_of(ctx);
        ctx.status(RuntimeStatus::starting_runtime, "Starting Modal sandbox...");
        app_id_ = get_app(channel);
        channel.add_secret(jwt_);  // fetched by that first call, after the channel was built
        std::vector<runbox::detail::modal::TunnelData> tunnels;
        if (ctx.options.attach_to_existing) {
            if (auto found = find_by_sid(channel, ctx.options.sid)) {
                box_.id = found->id;
                box_.attached = true;
                // A sandbox runbox created: its session key follows from its create token's tag.
                if (box_.session_key.empty()) {
                    const auto tags = detail::tag_map(found->tags);
                    if (const auto token = tags.find(std::string(labels::token)); token != tags.end())
                        box_.session_key = cloud::derived_session_key(settings_.credentials.token_secret, token->second);
                }
            }
        }
        if (!box_.attached) {
            const std::string image_id = build_image(channel);
            tunnels = create(channel, image_id);
            ctx.status(RuntimeStatus::runtime_started, "Modal sandbox " + box_.id + " started.");
        }
        const auto tunnel = server_tunnel(channel, std::move(tunnels));
        std::string url = settings_.tunnel_scheme + "://" + tunnel.host;
        const bool default_port = tunnel.port == 0 || (settings_.tunnel_scheme == "https" && tunnel.port == 443);
        if (!default_port) url += ":" + std::to_string(tunnel.port);
        ServerEndpoint endpoint = settings_.endpoint(std::move(url));
        endpoint.secrets.push_back(jwt_);
        cloud::add_secret_header(endpoint, std::string(cloud::session_key_header), box_.session_key, box_.session_key);
        // The probe: a sandbox that ended (its server exited) fails the /alive wait at once.
        // It runs only inside Runtime::connect, while `ctx` lives.
        endpoint.probe = [this, &ctx]() -> std::optional<error> { return ended(ctx); };
        endpoint.attached = box_.attached;
        ctx.status(RuntimeStatus::starting_runtime, "Waiting for the action execution server...");
        return endpoint;
    }

    /// SandboxTerminateV2 for a sandbox this runtime created (kept with keep_runtime_alive);
    /// an attached one is left as found. Idempotent; failures are reported, never thrown.
    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        if (!box_.begin_close() || box_.attached || !created_) return;  // someone else's sandbox: leave it
        if (reason == CloseReason::normal && ctx.config.sandbox.keep_runtime_alive) return;
        cloud::release_or_report(ctx, box_.id, [&] {
            release_sandbox(ctx, SandboxRecord{std::string(name), box_.id, ctx.options.sid, {}, {}}, ReleaseMode::remove);
        });
    }

    /// Every running sandbox of the app that carries runbox's labels as tags.
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        auto channel = channel_of(ctx);
        if (app_id_.empty()) app_id_ = get_app(channel);
        std::vector<SandboxRecord> out;
        for_each_sandbox(channel, {{std::string(labels::managed), "1"}}, [&](const runbox::detail::modal::SandboxInfo& info) {
            const auto map = detail::tag_map(info.tags);
            if (is_runbox_managed(map)) {
                const auto sid = map.find(std::string(sid_tag));
                out.push_back(SandboxRecord::from_labels(std::string(name), info.id, "running",
                                                         sid == map.end() ? std::string() : sid->second, map));
            }
            return false;
        });
        return out;
    }

    /// Terminates a sandbox (Modal has no stopped state: both modes terminate), retrying within
    /// close_timeout; one already gone counts as released.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& sandbox, ReleaseMode mode) {
        (void)mode;
        auto channel = channel_of(ctx).closing();
        cloud::unless_gone([&] {
            channel.unary(method("SandboxTerminateV2"), encode(runbox::detail::modal::SandboxTerminateRequest{sandbox.id}));
        });
    }

    /// The sandbox's entrypoint: the launcher's words, then the server's arguments (reference
    /// §5), one argv element each; nothing is quoted because no shell reads it.
    std::vector<std::string> entrypoint_args(const Config& config, const RuntimeOptions& options) const {
        std::vector<std::string> args;
        const std::string launcher = settings_.server_command.value_or(std::string(cloud::openhands_launcher));
        for (std::size_t i = 0; i < launcher.size();) {
            const auto start = launcher.find_first_not_of(" \t", i);
            if (start == std::string::npos) break;
            const auto end = std::min(launcher.find_first_of(" \t", start), launcher.size());
            args.push_back(launcher.substr(start, end - start));
            i = end;
        }
        for (auto& arg : settings_.server_args(config, options, cloud::ServerUser::from(config))) args.push_back(std::move(arg));
        return args;
    }

private:
    Settings settings_;
    std::string host_;
    std::string jwt_;
    std::chrono::system_clock::time_point renew_at_{};
    bool refreshing_ = false;
    int tokens_fetched_ = 0;
    std::string app_id_;
    cloud::SandboxHandle box_;
    bool created_ = false;

    template <class M>
    static std::string encode(const M& message) {
        return runbox::detail::modal::encode(message);
    }
    template <class M>
    static M decode(std::string_view bytes, std::string_view what) {
        return runbox::detail::modal::decode<M>(bytes, what);
    }
    static std::string method(std::string_view rpc) { return std::string(service) + std::string(rpc); }

    template <class T>
    cloud::GrpcChannel<T> channel_of(ProviderContext<T>& ctx) const {
        std::vector<std::string> secrets{settings_.credentials.token_secret};
        if (!jwt_.empty()) secrets.push_back(jwt_);
        if (!box_.session_key.empty()) secrets.push_back(box_.session_key);
        // The SDK's retry codes for unary calls: DEADLINE_EXCEEDED, UNAVAILABLE, CANCELLED, INTERNAL, UNKNOWN.
        return cloud::GrpcChannel<T>(ctx, std::string(name), settings_.credentials.server_url, settings_,
                                     std::move(secrets), detail::throttle_delay, {4, 14, 1, 13, 2});
    }

    template <class T>
    std::string get_app(cloud::GrpcChannel<T>& channel) {
        runbox::detail::modal::AppGetOrCreateRequest req;
        req.app_name = settings_.app_name;
        req.environment_name = settings_.credentials.environment;
        req.object_creation_type = static_cast<std::int32_t>(runbox::detail::modal::ObjectCreationType::create_if_missing);
        const auto answer = decode<runbox::detail::modal::AppGetOrCreateResponse>(
            channel.unary(method("AppGetOrCreate"), encode(req)), "app");
        if (answer.app_id.empty()) throw error(errc::bad_response, "AppGetOrCreate answered no app id", "modal");
        return answer.app_id;
    }

    // ImageGetOrCreate from the registry image; ImageJoinStreaming (resuming at the last entry)
    // until the build has a result, all within start_timeout.
    template <class T>
    std::string build_image(cloud::GrpcChannel<T>& channel) {
        auto& ctx = channel.context();
        const auto& image = ctx.config.sandbox.runtime_container_image;
        if (!image || image->empty())
            throw error(errc::config_invalid, "the modal runtime needs sandbox.runtime_container_image (a registry image)",
                        "modal");
        ctx.status(RuntimeStatus::building_runtime, "Preparing Modal image " + *image + "...");
        runbox::detail::modal::ImageGetOrCreateRequest req;
        req.image = runbox::detail::modal::Image{{"FROM " + *image}};
        req.app_id = app_id_;
        req.builder_version = settings_.image_builder_version;
        const auto answer = decode<runbox::detail::modal::ImageGetOrCreateResponse>(
            channel.unary(method("ImageGetOrCreate"), encode(req)), "image");
        if (answer.image_id.empty()) throw error(errc::bad_response, "ImageGetOrCreate answered no image id", "modal");
        std::optional<runbox::detail::modal::GenericResult> result;
        if (answer.result && answer.result->status != 0) result = answer.result;
        const cloud::Deadline deadline(settings_.start_timeout);
        std::string last_entry;
        int entries = 0;
        while (!result) {
            if (deadline.expired())
                throw error(errc::timeout,
                            "image " + answer.image_id + " was not built within " +
                                std::to_string(settings_.start_timeout.count()) + " ms",
                            "modal");
            runbox::detail::modal::ImageJoinStreamingRequest join;
            join.image_id = answer.image_id;
            join.timeout = 55;
            join.last_entry_id = last_entry;
            const std::string before = last_entry;
            channel.server_stream(
                method("ImageJoinStreaming"), encode(join),
                [&](std::string_view bytes) {
                    const auto item = decode<runbox::detail::modal::ImageJoinStreamingResponse>(bytes, "image build entry");
                    if (!item.entry_id.empty()) last_entry = item.entry_id;
                    if (item.result && item.result->status != 0) {
                        result = item.result;
                        return StreamAction::done;
                    }
                    if (++entries % 10 == 1)
                        ctx.status(RuntimeStatus::building_runtime, "Building Modal image " + answer.image_id + "...");
                    return item.eof ? StreamAction::done : StreamAction::next;
                },
                {.idempotent = true, .timeout = std::chrono::milliseconds(65000), .within = &deadline});
            if (!result && last_entry == before) deadline.sleep_for(settings_.poll_interval);  // nothing new: pace the rejoin
        }
        if (result->status != static_cast<std::int32_t>(runbox::detail::modal::GenericStatus::success))
            throw error(errc::sandbox_gone,
                        redact("image " + answer.image_id + " failed to build (status " + std::to_string(result->status) +
                                   (result->exception.empty() ? std::string() : ": " + result->exception) + ")",
                               channel.secrets()),
                        "modal");
        return answer.image_id;
    }

    // SandboxCreateV2; retried only when throttled (the create was not performed), and a lost
    // answer is looked up by this create's ownership token.
    template <class T>
    std::vector<runbox::detail::modal::TunnelData> create(cloud::GrpcChannel<T>& channel, const std::string& image_id) {
        auto& ctx = channel.context();
        const Config& config = ctx.config;
        const Ownership own = cloud::ownership_of(ctx);
        if (box_.session_key.empty())
            box_.session_key = cloud::derived_session_key(settings_.credentials.token_secret, own.token);
        channel.add_secret(box_.session_key);

        runbox::detail::modal::SandboxDefinition def;
        def.entrypoint_args = entrypoint_args(config, ctx.options);
        def.image_id = image_id;
        if (settings_.memory_mb || settings_.milli_cpu)
            def.resources = runbox::detail::modal::Resources{settings_.memory_mb, settings_.milli_cpu};
        def.timeout_secs = settings_.timeout_secs;
        def.workdir = settings_.server_cwd;
        def.open_ports = std::vector<runbox::detail::modal::PortSpec>{{static_cast<std::uint32_t>(settings_.server_port), false}};
        def.network_access = runbox::detail::modal::NetworkAccess{1};  // OPEN
        def.idle_timeout_secs = settings_.idle_timeout_secs;

        runbox::detail::modal::SandboxCreateV2Request req;
        req.app_id = app_id_;
        req.definition = std::move(def);
        req.tags.push_back({std::string(sid_tag), ctx.options.sid});
        for (const auto& [k, v] : own.labels()) req.tags.push_back({k, v});
        std::map<std::string, std::string> env;
        const nlohmann::json startup = cloud::startup_env(config, ctx.options.env_vars, box_.session_key);
        for (const auto& [k, v] : startup.items()) env[k] = v.is_string() ? v.template get<std::string>() : v.dump();
        env["PYTHONUNBUFFERED"] = "1";
        req.secret_sources.push_back(runbox::detail::modal::SecretSource{std::nullopt, std::move(env)});

        ctx.status(RuntimeStatus::building_runtime, "Creating Modal sandbox...");
        auto answer = create_then_dedupe(
            [&] {
                auto created = decode<runbox::detail::modal::SandboxCreateV2Response>(
                    channel.unary(method("SandboxCreateV2"), encode(req), {.idempotent = false}), "sandbox");
                // Performed, but unusable: looked up by its tags like a lost answer.
                if (created.sandbox_id.empty())
                    throw error(errc::bad_response, "SandboxCreateV2 answered no sandbox id", "modal");
                return created;
            },
            [&]() -> std::optional<runbox::detail::modal::SandboxCreateV2Response> {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the sandbox up...");
                std::optional<runbox::detail::modal::SandboxCreateV2Response> found;
                for_each_sandbox(channel, {{std::string(labels::token), own.token}}, [&](const auto& info) {
                    if (!own.matches(detail::tag_map(info.tags))) return false;
                    found = runbox::detail::modal::SandboxCreateV2Response{};
                    found->sandbox_id = info.id;
                    return true;
                });
                return found;
            });
        box_.id = answer.sandbox_id;
        if (box_.id.empty()) throw error(errc::bad_response, "SandboxCreateV2 answered no sandbox id", "modal");
        created_ = true;
        ctx.created(box_.id);
        return std::move(answer.tunnels);
    }

    // The tunnel to the server's port: from the create answer, else SandboxGetTunnelsV2
    // (long-polled by the server up to its timeout) within start_timeout.
    template <class T>
    runbox::detail::modal::TunnelData server_tunnel(cloud::GrpcChannel<T>& channel,
                                                    std::vector<runbox::detail::modal::TunnelData> tunnels) {
        const auto port = static_cast<std::uint32_t>(settings_.server_port);
        const auto pick = [&]() -> std::optional<runbox::detail::modal::TunnelData> {
            for (const auto& t : tunnels) {
                if (t.container_port == port && !t.host.empty()) return t;
            }
            return std::nullopt;
        };
        if (auto t = pick()) return *t;
        const cloud::Deadline deadline(settings_.start_timeout);
        for (;;) {
            runbox::detail::modal::SandboxGetTunnelsRequest req{box_.id, 50};
            const auto answer = decode<runbox::detail::modal::SandboxGetTunnelsResponse>(
                channel.unary(method("SandboxGetTunnelsV2"), encode(req),
                              {.idempotent = true, .timeout = std::chrono::milliseconds(60000), .within = &deadline}),
                "tunnels");
            if (answer.result && answer.result->status != 0)
                throw error(errc::sandbox_gone, "sandbox " + box_.id + " ended before its tunnel opened", "modal");
            tunnels = answer.tunnels;
            if (auto t = pick()) return *t;
            if (deadline.expired())
                throw error(errc::timeout, "sandbox " + box_.id + " has no tunnel to port " + std::to_string(port), "modal");
            deadline.sleep_for(settings_.poll_interval);
        }
    }

    // SandboxWaitV2 with timeout 0: the sandbox's result when it ended, as an error.
    template <class T>
    std::optional<error> ended(ProviderContext<T>& ctx) {
        auto channel = channel_of(ctx);
        const auto answer = decode<runbox::detail::modal::SandboxWaitResponse>(
            channel.unary(method("SandboxWaitV2"), encode(runbox::detail::modal::SandboxWaitRequest{box_.id, 0})), "wait");
        if (!answer.result || answer.result->status == 0) return std::nullopt;
        const int code = detail::exit_code_of(*answer.result);
        std::string why = "sandbox " + box_.id + " ended with exit code " + std::to_string(code) + " (status " +
                          std::to_string(answer.result->status) + ")";
        if (!answer.result->exception.empty()) why += ": " + answer.result->exception;
        return error(errc::sandbox_gone, redact(std::move(why), channel.secrets()), "modal");
    }

    // Walks SandboxListV2 pages (before_timestamp = the last item's created_at) of running
    // sandboxes of the app having `tags`, until visit(info) returns true. At most 1000 pages; a
    // page that does not move back in time ends the walk.
    template <class T, class Visit>
    void for_each_sandbox(cloud::GrpcChannel<T>& channel, const std::map<std::string, std::string>& tags, Visit&& visit) {
        runbox::detail::modal::SandboxListRequest req;
        req.app_id = app_id_;
        req.environment_name = settings_.credentials.environment;
        for (const auto& [k, v] : tags) req.tags.push_back({k, v});
        for (int page = 0; page < 1000; ++page) {
            const auto answer = decode<runbox::detail::modal::SandboxListResponse>(
                channel.unary(method("SandboxListV2"), encode(req)), "sandbox list");
            if (answer.sandboxes.empty()) return;
            for (const auto& info : answer.sandboxes) {
                if (!info.id.empty() && visit(info)) return;
            }
            const double next = answer.sandboxes.back().created_at;
            if (next <= 0 || (req.before_timestamp != 0 && next >= req.before_timestamp)) return;
            req.before_timestamp = next;
        }
    }

    // The newest running sandbox tagged OpenHands_SID=<sid>.
    template <class T>
    std::optional<runbox::detail::modal::SandboxInfo> find_by_sid(cloud::GrpcChannel<T>& channel, const std::string& sid) {
        std::optional<runbox::detail::modal::SandboxInfo> found;
        for_each_sandbox(channel, {{std::string(sid_tag), sid}}, [&](const runbox::detail::modal::SandboxInfo& info) {
            const auto map = detail::tag_map(info.tags);
            const auto it = map.find(std::string(sid_tag));
            if (it == map.end() || it->second != sid) return false;
            found = info;
            return true;
        });
        return found;
    }
};

}  // namespace runbox::modal

namespace runbox {
/// Runtime over Modal sandboxes (gRPC over HTTP/2 through libcurl: link runbox::curl).
using ModalRuntime = Runtime<modal::Auth, CurlTransport>;
}  // namespace runbox
