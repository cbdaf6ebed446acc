// runbox/providers/daytona.hpp - the Daytona provider: runbox::daytona::Auth, runbox::DaytonaRuntime.
//
// Behaviour follows OpenHands' DaytonaRuntime (reference §9.1) over Daytona's REST API
// (provider-apis §1): a sandbox labelled OpenHands_SID=<sid> is created from the snapshot
// `sandbox.runtime_container_image` (or found, with attach_to_existing), brought to `started`,
// the action execution server is started in a toolbox process session with an asynchronous
// command, and the server is reached through the sandbox's preview link for port 4444.
//
// Settings (Config::providers["daytona"][key], else the environment variable):
//   api_key            DAYTONA_API_KEY            required
//   api_url            DAYTONA_API_URL            https://app.daytona.io/api
//   target             DAYTONA_TARGET             eu
//   disable_auto_stop  DAYTONA_DISABLE_AUTO_STOP  false  (auto-stop 60 min, or 0 when disabled)
//   delete_on_close    DAYTONA_DELETE_ON_CLOSE    false  (close() stops; true: deletes)
//   organization_id    DAYTONA_ORGANIZATION_ID    unset  (sent as X-Daytona-Organization-ID)
//   public             DAYTONA_PUBLIC             false  (private: preview requests carry the token;
//                                                          true opts out: the preview URL is public)
//   server_command     DAYTONA_SERVER_COMMAND     unset  (replaces OpenHands' python launcher,
//                                                          e.g. "runbox-server"; arguments stay)
//   server_cwd         DAYTONA_SERVER_CWD         /openhands/code
//   server_port        DAYTONA_SERVER_PORT        4444
//   poll_interval_ms   DAYTONA_POLL_INTERVAL_MS   1000   (sandbox state polling)
//   start_timeout_ms   DAYTONA_START_TIMEOUT_MS   120000 (bound of every sandbox state wait)
//   alive_timeout_ms   DAYTONA_ALIVE_TIMEOUT_MS   120000 (bound of the /alive wait and 502 retries)
//   alive_poll_interval_ms                        1000
//   request_timeout_ms DAYTONA_REQUEST_TIMEOUT_MS 60000  (one API request)
//   retry_initial_backoff_ms                      500    (API retries: 429/502/503/504)
//   retry_max_attempts                            4
//   close_timeout_ms   DAYTONA_CLOSE_TIMEOUT_MS   30000  (bound of close()'s retries; then the sandbox
//                                                          is reported in Runtime::unreleased())
//
// Every sandbox is labelled OpenHands_SID plus runbox's ownership labels (lifecycle.hpp), and its
// action server gets a random session key (SESSION_API_KEY in the sandbox env, sent as
// X-Session-API-Key), so neither the preview URL nor its token alone can run commands.
// A stopped sandbox that attach had to start is stopped again on close (unless
// sandbox.keep_runtime_alive): it is returned to the state it was found in.
// The control-plane skeleton (settings, retries, errors, waits) is cloud_api.hpp.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/config.hpp"
#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/provider.hpp"
#include "runbox/providers/detail/cloud_api.hpp"
#include "runbox/runtime.hpp"
#include "runbox/status.hpp"
#include "runbox/transport/httplib.hpp"

namespace runbox::daytona {

/// The label that ties a sandbox to a runbox/OpenHands session id.
inline constexpr std::string_view sid_label = "OpenHands_SID";
/// The session the action server runs in (OpenHands' name).
inline constexpr std::string_view server_session_id = "action-execution-server";
/// Daytona's daemon picks response shapes from the SDK version; >= 0.167 gives JSON logs.
inline constexpr std::string_view sdk_version = "0.218.0";
/// The env var that gives the action server its session key.
inline constexpr std::string_view session_key_env = cloud::session_key_env;

/// Every setting, resolved from Config (providers.daytona.*) with environment fallback.
struct Settings : cloud::ApiSettings, cloud::ServerLaunch {
    std::string api_url = "https://app.daytona.io/api";  ///< REST API base (api_url, DAYTONA_API_URL)
    std::string target = "eu";  ///< region the sandbox is created in (target, DAYTONA_TARGET)
    bool disable_auto_stop = false;  ///< true: auto-stop interval 0 instead of 60 minutes
    bool delete_on_close = false;  ///< true: close() deletes the sandbox instead of stopping it
    std::optional<std::string> organization_id;  ///< sent as X-Daytona-Organization-ID when set
    bool is_public = false;  ///< true: public preview URL, no preview token sent (key `public`)

    /// Reads every setting (table above); errc::config_invalid for a missing API key or a malformed value.
    static Settings from(const Config& config);
};

/// The Daytona provider (AuthPolicy). Construction reads and checks the settings (no I/O).
class Auth {
public:
    static constexpr std::string_view name = "daytona";  ///< provider name (make_runtime, errors)
    using default_transport = HttplibTransport;  ///< make_runtime's transport for Daytona

    explicit Auth(const Config& config) : settings_(Settings::from(config)) {}  ///< reads Settings::from(config); no I/O

    /// Daytona's API and toolbox auth: `Authorization: Bearer <key>` (+ organization header).
    void authorize(Request& request) const {
        cloud::authorize_bearer(request, settings_.api_key);
        if (settings_.organization_id) request.headers.set("X-Daytona-Organization-ID", *settings_.organization_id);
        request.headers.set("X-Daytona-Source", "runbox-cpp");
        request.headers.set("X-Daytona-SDK-Version", std::string(sdk_version));
    }

    const Settings& settings() const noexcept { return settings_; }  ///< the resolved settings
    /// The sandbox connect() created or attached to (empty before).
    const std::string& sandbox_id() const noexcept { return box_.id; }
    /// True when connect() attached to a sandbox it did not create.
    bool attached() const noexcept { return box_.attached; }
    /// True when connect() attached to a resting (stopped/archived) sandbox and started it.
    bool restarted() const noexcept { return restarted_; }

    /// Creates (or with attach_to_existing finds) the sandbox labelled with the sid, waits until it is
    /// started, starts the action server unless it found one running, and returns its preview endpoint.
    /// Errors: the API status as errc, errc::timeout past start_timeout_ms, errc::sandbox_gone if it ends in
    /// error.
    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        box_.reset();
        restarted_ = false;
        auto api = api_of(ctx);
        ctx.status(RuntimeStatus::starting_runtime, "Starting Daytona sandbox...");
        bool start_server = !ctx.options.attach_to_existing;
        std::optional<nlohmann::json> sandbox;
        if (ctx.options.attach_to_existing) {
            sandbox = find_by_sid(api);
            if (sandbox) {
                box_.attached = true;
                // The key its server was started with (a sandbox runbox created has one).
                if (sandbox->contains("env") && (*sandbox)["env"].is_object())
                    box_.session_key = cloud::string_field((*sandbox)["env"], session_key_env);
            } else {
                start_server = true;  // unlike OpenHands, a sandbox created here gets its server
            }
        }
        if (!sandbox) {
            ctx.status(RuntimeStatus::building_runtime, "Creating Daytona sandbox...");
            sandbox = create(api);
        }
        sandbox = wait_until_started(api, std::move(*sandbox), start_server);

        if (start_server) {
            ctx.status(RuntimeStatus::starting_runtime, "Starting the action execution server...");
            start_action_server(api);
        }
        // The preview token resets when a sandbox restarts: fetch the link after starting.
        const nlohmann::json link = api.json(
            "GET", "/sandbox/" + box_.id + "/ports/" + std::to_string(settings_.server_port) + "/preview-url", {},
            cloud::Replay::safe);
        ServerEndpoint endpoint = settings_.endpoint(cloud::string_field(link, "url"));
        if (endpoint.url.empty()) throw error(errc::bad_response, "preview-url response has no url", "daytona");
        const std::string token = cloud::string_field(link, "token");
        if (!token.empty()) endpoint.secrets.push_back(token);
        if (!sandbox->value("public", false))
            cloud::add_secret_header(endpoint, "X-Daytona-Preview-Token", token, token);
        cloud::add_secret_header(endpoint, std::string(cloud::session_key_header), box_.session_key, box_.session_key);
        endpoint.retry = preview_retry();
        // A server started by this connect (new sandbox, or a stopped one restarted) needs the
        // initial environment; one found running already has it.
        endpoint.attached = !start_server;
        return endpoint;
    }

    /// Stops the sandbox (deletes it with delete_on_close or after a failed connect); leaves an attached
    /// sandbox as found (one it had to start is stopped again, unless keep_runtime_alive). Retries within
    /// close_timeout_ms; what it could not release goes to ProviderContext::unreleased. Never throws.
    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        if (!box_.begin_close()) return;
        ReleaseMode mode = reason == CloseReason::connect_failed || settings_.delete_on_close ? ReleaseMode::remove
                                                                                                : ReleaseMode::stop;
        if (box_.attached) {
            // Someone else's sandbox: left as found. Found stopped and started here: stopped again.
            if (!restarted_ || (reason == CloseReason::normal && ctx.config.sandbox.keep_runtime_alive)) return;
            mode = ReleaseMode::stop;
        }
        // Retried within close_timeout; what is left is reported (Daytona's auto-stop remains the backstop).
        cloud::release_or_report(ctx, box_.id, [&] {
            release_sandbox(ctx, SandboxRecord{std::string(name), box_.id, ctx.options.sid, {}, {}}, mode);
        });
    }

    /// Every sandbox carrying runbox's labels that is not destroyed (for sweep and the lease file).
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        auto api = api_of(ctx);
        std::vector<SandboxRecord> out;
        for (const auto& item : list_labelled(api, {{std::string(labels::managed), "1"}})) {
            const auto map = label_map(item.value("labels", nlohmann::json::object()));
            if (!is_runbox_managed(map)) continue;
            const auto sid = map.find(std::string(sid_label));
            out.push_back(SandboxRecord::from_labels(std::string(name), cloud::string_field(item, "id"),
                                                     cloud::string_field(item, "state"),
                                                     sid == map.end() ? std::string() : sid->second, map));
        }
        return out;
    }

    /// Stops (POST stop, when it runs) or deletes a sandbox, retrying within close_timeout.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& sandbox, ReleaseMode mode) {
        auto api = api_of(ctx).closing();
        cloud::unless_gone([&] {
            if (mode == ReleaseMode::remove) {
                api.call("DELETE", "/sandbox/" + sandbox.id, {}, cloud::Replay::safe);
                return;
            }
            const std::string state = cloud::string_field(api.json("GET", "/sandbox/" + sandbox.id, {}, cloud::Replay::safe), "state");
            if (state == "started" || state == "starting")
                api.call("POST", "/sandbox/" + sandbox.id + "/stop?force=false", {}, cloud::Replay::safe);
        });
    }

    /// The command that starts the action server (reference §5, as OpenHands' Daytona runs it,
    /// which forces the openhands user); every argument is shell-quoted.
    std::string server_start_command(const Config& config, const RuntimeOptions& options) const {
        return "mkdir -p " + runbox::detail::shell_quote(config.workspace_mount_path_in_sandbox) + " && " +
               settings_.cd_command() + " && " + settings_.command_line(config, options, cloud::ServerUser{});
    }

private:
    template <class T>
    cloud::Api<T> api_of(ProviderContext<T>& ctx) const {
        // The preview link's `token` and the session key in a create's env are secrets.
        return cloud::Api<T>(ctx, std::string(name), settings_.api_url, settings_,
                             {.secret_fields = {"token", std::string(cloud::session_key_env)}});
    }

    // The preview proxy answers 502 while the server starts: idempotent action-server requests
    // that get one are retried every alive_poll_interval, within alive_timeout (OpenHands: 120 s).
    RetryPolicy preview_retry() const {
        RetryPolicy policy;
        const auto interval = std::max(settings_.alive_poll_interval, std::chrono::milliseconds(1));
        policy.max_elapsed = settings_.alive_timeout;
        policy.max_attempts = static_cast<int>(settings_.alive_timeout / interval) + 1;
        policy.initial_backoff = policy.max_backoff = interval;
        policy.jitter = 0;
        return policy;
    }

    void remember(const nlohmann::json& sandbox) {
        if (auto id = cloud::string_field(sandbox, "id"); !id.empty()) box_.id = id;
        if (auto url = cloud::string_field(sandbox, "toolboxProxyUrl"); !url.empty()) toolbox_url_ = cloud::trim_slashes(url);
    }

    // Lists the sandboxes carrying all of `labels` (not destroyed), following nextCursor.
    template <class T>
    std::vector<nlohmann::json> list_labelled(cloud::Api<T>& api, const nlohmann::json& labels) {
        const std::string filter = "/sandbox?limit=100&labels=" + url_encode(labels.dump());
        std::vector<nlohmann::json> found;
        cloud::paginate(
            [&](const std::optional<std::string>& cursor) {
                return api.json("GET", filter + (cursor ? "&cursor=" + url_encode(*cursor) : ""), {}, cloud::Replay::safe);
            },
            [&](const nlohmann::json& json) -> std::optional<std::string> {
                const nlohmann::json* items = &json;  // before ~v0.180 the API answered a bare array
                if (json.is_object()) {
                    if (!json.contains("items") || !json["items"].is_array())
                        throw error(errc::bad_response, "sandbox list has no items", "daytona");
                    items = &json["items"];
                }
                if (!items->is_array()) throw error(errc::bad_response, "sandbox list is not a list", "daytona");
                for (const auto& item : *items) {
                    if (cloud::string_field(item, "id").empty()) continue;
                    const std::string state = cloud::string_field(item, "state");
                    if (state != "destroyed" && state != "destroying") found.push_back(item);
                }
                if (!json.is_object()) return std::nullopt;
                return cloud::string_field(json, "nextCursor");
            });
        return found;
    }

    // The sandbox labelled with the session id; at most one may match.
    template <class T>
    std::optional<nlohmann::json> find_by_sid(cloud::Api<T>& api) {
        const auto& sid = api.context().options.sid;
        const auto found = list_labelled(api, {{std::string(sid_label), sid}});
        if (found.empty()) return std::nullopt;
        if (found.size() > 1) throw error(errc::conflict, "multiple sandboxes found for sid " + sid, "daytona");
        remember(found.front());
        if (toolbox_url_.empty()) fetch_toolbox_url(api);
        return found.front();
    }

    template <class T>
    void fetch_toolbox_url(cloud::Api<T>& api) {
        const auto json = api.json("GET", "/sandbox/" + box_.id + "/toolbox-proxy-url", {}, cloud::Replay::safe);
        toolbox_url_ = cloud::trim_slashes(cloud::string_field(json, "url"));
        if (toolbox_url_.empty()) throw error(errc::bad_response, "no toolbox proxy URL for the sandbox", "daytona");
    }

    template <class T>
    nlohmann::json create(cloud::Api<T>& api) {
        auto& ctx = api.context();
        const Config& config = ctx.config;
        box_.session_key = runbox::detail::random_hex(24);
        nlohmann::json env = cloud::startup_env(config, {}, box_.session_key);
        env["port"] = std::to_string(settings_.server_port);
        env["PYTHONUNBUFFERED"] = "1";
        env["VSCODE_PORT"] = std::to_string(settings_.server_port + 1);
        const Ownership own = cloud::ownership_of(ctx);
        nlohmann::json labels = own.labels();
        labels[std::string(sid_label)] = ctx.options.sid;
        labels["code-toolbox-language"] = "python";
        nlohmann::json body = {
            {"env", env},
            {"labels", labels},
            {"public", settings_.is_public},
            {"target", settings_.target},
            {"autoStopInterval", settings_.disable_auto_stop ? 0 : 60},
        };
        if (config.sandbox.runtime_container_image) body["snapshot"] = *config.sandbox.runtime_container_image;
        // Not idempotent: a create whose answer is lost is looked up by its token, never resent.
        nlohmann::json sandbox = create_then_dedupe(
            [&] {
                auto answer = api.json("POST", "/sandbox", body, cloud::Replay::refused_only);
                // Performed, but unusable: looked up by its token like a lost answer.
                if (cloud::string_field(answer, "id").empty())
                    throw error(errc::bad_response, "create answered no sandbox id", "daytona");
                return answer;
            },
            [&]() -> std::optional<nlohmann::json> {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the sandbox up...");
                for (auto& item : list_labelled(api, {{std::string(labels::token), own.token}})) {
                    if (own.matches(label_map(item.value("labels", nlohmann::json::object())))) return std::move(item);
                }
                return std::nullopt;
            });
        box_.attached = false;
        remember(sandbox);
        if (box_.id.empty()) throw error(errc::bad_response, "create answered no sandbox id", "daytona");
        ctx.created(box_.id);
        if (toolbox_url_.empty()) fetch_toolbox_url(api);
        return sandbox;
    }

    // Brings the sandbox to `started` within start_timeout. Starting a stopped sandbox means its
    // server must be started again.
    template <class T>
    nlohmann::json wait_until_started(cloud::Api<T>& api, nlohmann::json sandbox, bool& start_server) {
        bool polled = false;
        bool start_requested = false;
        std::string state;
        return api.wait(
            settings_.start_timeout,
            [&](const cloud::Deadline& deadline) -> std::optional<nlohmann::json> {
                if (polled) sandbox = api.json("GET", "/sandbox/" + box_.id, {}, cloud::Replay::safe, {.within = &deadline});
                polled = true;
                state = cloud::string_field(sandbox, "state", "unknown");
                if (state == "started") return sandbox;
                if (state == "error" || state == "build_failed")
                    throw error(errc::sandbox_gone,
                                redact("sandbox " + box_.id + " is in state " + state + ": " +
                                           cloud::string_field(sandbox, "errorReason", "no reason given"),
                                       api.secrets()),
                                "daytona");
                if (state == "destroyed" || state == "destroying")
                    throw error(errc::sandbox_gone, "sandbox " + box_.id + " is " + state, "daytona");
                const bool resting = state == "stopped" || state == "archived" || state == "paused";
                if (resting && !start_requested) {
                    api.context().status(RuntimeStatus::starting_runtime, "Starting the stopped Daytona sandbox...");
                    sandbox = api.json("POST", "/sandbox/" + box_.id + "/start", {}, cloud::Replay::safe);
                    start_requested = true;
                    restarted_ = box_.attached;  // close() returns it to stopped
                    start_server = true;
                    if (cloud::string_field(sandbox, "state") == "started") return sandbox;
                }
                return std::nullopt;  // creating, starting, stopping (wait for stopped), unknown, ...: poll
            },
            [&] { return "sandbox " + box_.id + " did not reach state started (last state: " + state + ")"; });
    }

    template <class T>
    void start_action_server(cloud::Api<T>& api) {
        const std::string session = toolbox_url_ + "/" + box_.id + "/process/session";
        try {
            api.send(api.to("POST", session, nlohmann::json{{"sessionId", std::string(server_session_id)}}),
                     cloud::Replay::never);
        } catch (const error& e) {
            if (e.code() != errc::conflict) throw;  // the session survives a restart: reuse it
        }
        const nlohmann::json exec = {{"command", server_start_command(api.context().config, api.context().options)},
                                     {"runAsync", true}};
        api.send(api.to("POST", session + "/" + std::string(server_session_id) + "/exec", exec), cloud::Replay::never);
    }

    Settings settings_;
    cloud::SandboxHandle box_;
    std::string toolbox_url_;
    bool restarted_ = false;
};

}  // namespace runbox::daytona

namespace runbox {
/// The seed's DaytonaRuntime: `DaytonaRuntime rt(config, events, {.sid = "s1"}); rt.connect();`
using DaytonaRuntime = Runtime<daytona::Auth, HttplibTransport>;
#if defined(RUNBOX_SEPARATE_COMPILATION)
// Compiled once, in runbox::compiled (runbox/src.hpp); a program's units only declare it.
extern template class Runtime<daytona::Auth, HttplibTransport>;
#endif
}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/providers/impl/daytona.ipp"
#endif
