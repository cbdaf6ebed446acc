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
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/config.hpp"
#include "runbox/error.hpp"
#include "runbox/provider.hpp"
#include "runbox/runtime.hpp"
#include "runbox/status.hpp"
#include "runbox/transport/httplib.hpp"
#include "runbox/transport/transport.hpp"
#include "runbox/version.hpp"

namespace runbox::daytona {

/// The label that ties a sandbox to a runbox/OpenHands session id.
inline constexpr std::string_view sid_label = "OpenHands_SID";
/// The session the action server runs in (OpenHands' name).
inline constexpr std::string_view server_session_id = "action-execution-server";
/// Daytona's daemon picks response shapes from the SDK version; >= 0.167 gives JSON logs.
inline constexpr std::string_view sdk_version = "0.218.0";
/// The env var that gives the action server its session key.
inline constexpr std::string_view session_key_env = "SESSION_API_KEY";

/// Every setting, resolved from Config (providers.daytona.*) with environment fallback.
struct Settings {
    std::string api_key;
    std::string api_url = "https://app.daytona.io/api";
    std::string target = "eu";
    bool disable_auto_stop = false;
    bool delete_on_close = false;
    std::optional<std::string> organization_id;
    bool is_public = false;
    std::optional<std::string> server_command;
    std::string server_cwd = "/openhands/code";
    int server_port = 4444;
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds start_timeout{120000};
    std::chrono::milliseconds alive_timeout{120000};
    std::chrono::milliseconds alive_poll_interval{1000};
    std::chrono::milliseconds request_timeout{60000};
    std::chrono::milliseconds retry_initial_backoff{500};
    int retry_max_attempts = 4;
    std::chrono::milliseconds close_timeout{30000};

    static Settings from(const Config& config) {
        constexpr std::string_view p = "daytona";
        Settings s;
        s.api_key = config.required_setting(p, "api_key", "DAYTONA_API_KEY");
        if (auto v = config.setting(p, "api_url", "DAYTONA_API_URL")) s.api_url = *v;
        while (!s.api_url.empty() && s.api_url.back() == '/') s.api_url.pop_back();
        if (s.api_url.rfind("http://", 0) != 0 && s.api_url.rfind("https://", 0) != 0)
            throw error(errc::config_invalid, "DAYTONA_API_URL must be an http(s) URL", std::string(p));
        if (auto v = config.setting(p, "target", "DAYTONA_TARGET")) s.target = *v;
        s.disable_auto_stop = config.flag_setting(p, "disable_auto_stop", "DAYTONA_DISABLE_AUTO_STOP", false);
        s.delete_on_close = config.flag_setting(p, "delete_on_close", "DAYTONA_DELETE_ON_CLOSE", false);
        s.is_public = config.flag_setting(p, "public", "DAYTONA_PUBLIC", false);
        s.organization_id = config.setting(p, "organization_id", "DAYTONA_ORGANIZATION_ID");
        s.server_command = config.setting(p, "server_command", "DAYTONA_SERVER_COMMAND");
        if (auto v = config.setting(p, "server_cwd", "DAYTONA_SERVER_CWD")) s.server_cwd = *v;
        s.server_port = config.integer_setting(p, "server_port", "DAYTONA_SERVER_PORT", s.server_port, 1);
        s.poll_interval = config.millis_setting(p, "poll_interval_ms", "DAYTONA_POLL_INTERVAL_MS", s.poll_interval);
        s.start_timeout = config.millis_setting(p, "start_timeout_ms", "DAYTONA_START_TIMEOUT_MS", s.start_timeout);
        s.alive_timeout = config.millis_setting(p, "alive_timeout_ms", "DAYTONA_ALIVE_TIMEOUT_MS", s.alive_timeout);
        s.alive_poll_interval = config.millis_setting(p, "alive_poll_interval_ms", {}, s.alive_poll_interval);
        s.request_timeout = config.millis_setting(p, "request_timeout_ms", "DAYTONA_REQUEST_TIMEOUT_MS", s.request_timeout);
        s.retry_initial_backoff = config.millis_setting(p, "retry_initial_backoff_ms", {}, s.retry_initial_backoff);
        s.retry_max_attempts = config.integer_setting(p, "retry_max_attempts", {}, s.retry_max_attempts, 1);
        s.close_timeout = config.millis_setting(p, "close_timeout_ms", "DAYTONA_CLOSE_TIMEOUT_MS", s.close_timeout);
        return s;
    }
};

/// The Daytona provider (AuthPolicy). Construction reads and checks the settings (no I/O).
class Auth {
public:
    static constexpr std::string_view name = "daytona";
    using default_transport = HttplibTransport;

    explicit Auth(const Config& config) : settings_(Settings::from(config)) {}

    /// Daytona's API and toolbox auth: `Authorization: Bearer <key>` (+ organization header).
    void authorize(Request& request) const {
        request.headers.set("Authorization", "Bearer " + settings_.api_key);
        if (settings_.organization_id) request.headers.set("X-Daytona-Organization-ID", *settings_.organization_id);
        request.headers.set("X-Daytona-Source", "runbox-cpp");
        request.headers.set("X-Daytona-SDK-Version", std::string(sdk_version));
        request.headers.set("User-Agent", "runbox/" + std::string(version_string));
        if (!request.headers.contains("Accept")) request.headers.set("Accept", "application/json");
    }

    const Settings& settings() const noexcept { return settings_; }
    /// The sandbox connect() created or attached to (empty before).
    const std::string& sandbox_id() const noexcept { return sandbox_id_; }
    /// True when connect() attached to a sandbox it did not create.
    bool attached() const noexcept { return attached_; }

    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        closed_ = false;
        session_key_.clear();
        ctx.status(RuntimeStatus::starting_runtime, "Starting Daytona sandbox...");
        bool start_server = !ctx.options.attach_to_existing;
        std::optional<nlohmann::json> sandbox;
        if (ctx.options.attach_to_existing) {
            sandbox = find_by_sid(ctx);
            if (sandbox) {
                attached_ = true;
                sandbox_id_ = (*sandbox)["id"].template get<std::string>();
                // The key its server was started with (a sandbox runbox created has one).
                if ((*sandbox).contains("env") && (*sandbox)["env"].is_object())
                    session_key_ = (*sandbox)["env"].value(std::string(session_key_env), std::string());
            } else {
                start_server = true;  // unlike OpenHands, a sandbox created here gets its server
            }
        }
        if (!sandbox) {
            ctx.status(RuntimeStatus::building_runtime, "Creating Daytona sandbox...");
            sandbox = create(ctx);
        }
        sandbox = wait_until_started(ctx, std::move(*sandbox), start_server);

        if (start_server) {
            ctx.status(RuntimeStatus::starting_runtime, "Starting the action execution server...");
            start_action_server(ctx);
        }
        // The preview token resets when a sandbox restarts: fetch the link after starting.
        const nlohmann::json link = api_json(ctx, "GET",
                                   "/sandbox/" + sandbox_id_ + "/ports/" + std::to_string(settings_.server_port) + "/preview-url",
                                   {}, retry_policy());
        ServerEndpoint endpoint;
        endpoint.url = link.value("url", std::string());
        while (!endpoint.url.empty() && endpoint.url.back() == '/') endpoint.url.pop_back();
        if (endpoint.url.empty()) throw error(errc::bad_response, "preview-url response has no url", "daytona");
        endpoint.secrets = {settings_.api_key};
        const std::string token = link.value("token", std::string());
        if (!token.empty()) endpoint.secrets.push_back(token);
        if (!sandbox->value("public", false) && !token.empty()) endpoint.headers.set("X-Daytona-Preview-Token", token);
        if (!session_key_.empty()) {
            endpoint.headers.set("X-Session-API-Key", session_key_);
            endpoint.secrets.push_back(session_key_);
        }
        endpoint.alive_timeout = settings_.alive_timeout;
        endpoint.alive_poll_interval = settings_.alive_poll_interval;
        endpoint.bad_gateway_retry_window = settings_.alive_timeout;  // OpenHands: 502s retried up to 120 s
        // A server started by this connect (new sandbox, or a stopped one restarted) needs the
        // initial environment; one found running already has it.
        endpoint.attached = !start_server;
        return endpoint;
    }

    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        if (closed_) return;
        closed_ = true;
        if (sandbox_id_.empty()) return;
        if (attached_) return;  // someone else's sandbox: leave it as it was
        try {
            const SandboxRecord record{std::string(name), sandbox_id_, ctx.options.sid, {}, {}};
            release_sandbox(ctx, record,
                            reason == CloseReason::connect_failed || settings_.delete_on_close ? ReleaseMode::remove
                                                                                               : ReleaseMode::stop);
        } catch (const std::exception& e) {
            // Retried within close_timeout; what is left is reported, never dropped silently
            // (Daytona's auto-stop remains the backstop).
            ctx.unreleased(sandbox_id_, e.what());
        }
    }

    /// Every sandbox carrying runbox's labels that is not destroyed (for sweep and the lease file).
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        std::vector<SandboxRecord> out;
        for (const auto& item : list_labelled(ctx, {{std::string(labels::managed), "1"}})) {
            const auto map = label_map(item.value("labels", nlohmann::json::object()));
            if (!is_runbox_managed(map)) continue;
            const auto sid = map.find(std::string(sid_label));
            out.push_back(SandboxRecord::from_labels(std::string(name), item.value("id", std::string()),
                                                     item.value("state", std::string()),
                                                     sid == map.end() ? std::string() : sid->second, map));
        }
        return out;
    }

    /// Stops (POST stop, when it runs) or deletes a sandbox, retrying within close_timeout.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& sandbox, ReleaseMode mode) {
        const RetryPolicy policy = close_policy();
        try {
            if (mode == ReleaseMode::remove) {
                api(ctx, "DELETE", "/sandbox/" + sandbox.id, {}, policy);
                return;
            }
            const nlohmann::json current = api_json(ctx, "GET", "/sandbox/" + sandbox.id, {}, policy);
            const std::string state = current.value("state", std::string());
            if (state == "started" || state == "starting")
                api(ctx, "POST", "/sandbox/" + sandbox.id + "/stop?force=false", {}, policy, true);
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;  // already gone
        }
    }

    /// The command that starts the action server (reference §5, as OpenHands' Daytona runs it).
    std::string server_start_command(const Config& config, const RuntimeOptions& options) const {
        const std::string& ws = config.workspace_mount_path_in_sandbox;
        std::string cmd = "mkdir -p " + ws + " && cd " + settings_.server_cwd + " && ";
        cmd += settings_.server_command.value_or(
            "/openhands/micromamba/bin/micromamba run -n openhands poetry run python -u -m openhands.runtime.action_execution_server");
        cmd += " " + std::to_string(settings_.server_port) + " --working-dir " + ws;
        if (!options.plugins.empty()) {
            cmd += " --plugins";
            for (const auto& plugin : options.plugins) cmd += " " + plugin.name;
        }
        cmd += " --username openhands --user-id 1000";  // OpenHands' Daytona forces this user
        if (config.sandbox.browsergym_eval_env) cmd += " --browsergym-eval-env " + *config.sandbox.browsergym_eval_env;
        if (!config.enable_browser) cmd += " --no-enable-browser";
        return cmd;
    }

private:
    RetryPolicy retry_policy() const {
        RetryPolicy policy;
        policy.max_attempts = settings_.retry_max_attempts;
        policy.initial_backoff = settings_.retry_initial_backoff;
        policy.max_elapsed = std::max(settings_.start_timeout, std::chrono::milliseconds(1));
        return policy;
    }

    // close() and sweep: dropped connections and gateway errors retried, all within close_timeout.
    RetryPolicy close_policy() const {
        RetryPolicy policy = retry_policy();
        policy.max_attempts = std::max(policy.max_attempts, 8);
        policy.max_elapsed = std::max(settings_.close_timeout, std::chrono::milliseconds(1));
        return policy;
    }

    // A 429 means the request was refused, not performed: safe to repeat even for a create.
    RetryPolicy rate_limit_only_policy() const {
        RetryPolicy policy = retry_policy();
        policy.retry_statuses = {429};
        policy.retry_dropped_connections = false;
        return policy;
    }

    template <class T>
    Response api(ProviderContext<T>& ctx, std::string method, const std::string& path, const std::string& body,
                 const RetryPolicy& policy, bool idempotent = false) {
        return send(ctx, std::move(method), settings_.api_url + path, body, policy, idempotent);
    }

    template <class T>
    nlohmann::json api_json(ProviderContext<T>& ctx, std::string method, const std::string& path, const std::string& body,
                            const RetryPolicy& policy, bool idempotent = false) {
        return parse(api(ctx, std::move(method), path, body, policy, idempotent));
    }

    template <class T>
    Response toolbox(ProviderContext<T>& ctx, const std::string& path, const nlohmann::json& body, const RetryPolicy& policy) {
        return send(ctx, "POST", toolbox_url_ + "/" + sandbox_id_ + path, body.dump(), policy, false);
    }

    template <class T>
    Response send(ProviderContext<T>& ctx, std::string method, std::string url, const std::string& body,
                  const RetryPolicy& policy, bool idempotent) {
        Request request;
        request.method = std::move(method);
        request.url = std::move(url);
        request.body = body;
        request.timeout = settings_.request_timeout;
        if (idempotent) request.idempotent = true;
        if (!body.empty()) request.headers.set("Content-Type", "application/json");
        authorize(request);
        Response response = ctx.send(request, policy);
        raise_for_status(response, "daytona", {settings_.api_key});
        return response;
    }

    static nlohmann::json parse(const Response& response) {
        runbox::detail::json_failure failure{};
        auto json = runbox::detail::parse_untrusted_json(response.body, {}, &failure);
        if (json.is_discarded()) {
            throw error(errc::bad_response, "Daytona answered a body that " + runbox::detail::json_failure_text(failure), "daytona");
        }
        return json;
    }

    void remember(const nlohmann::json& sandbox) {
        if (sandbox.contains("id") && sandbox["id"].is_string()) sandbox_id_ = sandbox["id"].get<std::string>();
        if (sandbox.contains("toolboxProxyUrl") && sandbox["toolboxProxyUrl"].is_string()) {
            toolbox_url_ = sandbox["toolboxProxyUrl"].get<std::string>();
            while (!toolbox_url_.empty() && toolbox_url_.back() == '/') toolbox_url_.pop_back();
        }
    }

    // Lists the sandboxes carrying all of `labels` (not destroyed), following nextCursor.
    template <class T>
    std::vector<nlohmann::json> list_labelled(ProviderContext<T>& ctx, const nlohmann::json& labels) {
        const std::string filter = labels.dump();
        std::vector<nlohmann::json> found;
        std::optional<std::string> cursor;
        for (int page = 0; page < 1000; ++page) {
            std::string path = "/sandbox?limit=100&labels=" + url_encode(filter);
            if (cursor) path += "&cursor=" + url_encode(*cursor);
            const nlohmann::json json = api_json(ctx, "GET", path, {}, retry_policy());
            const nlohmann::json* items = &json;  // before ~v0.180 the API answered a bare array
            if (json.is_object()) {
                if (!json.contains("items") || !json["items"].is_array())
                    throw error(errc::bad_response, "sandbox list has no items", "daytona");
                items = &json["items"];
            }
            if (!items->is_array()) throw error(errc::bad_response, "sandbox list is not a list", "daytona");
            for (const auto& item : *items) {
                if (!item.is_object() || !item.contains("id") || !item["id"].is_string()) continue;
                const std::string state = item.value("state", std::string());
                if (state != "destroyed" && state != "destroying") found.push_back(item);
            }
            cursor.reset();
            if (json.is_object() && json.contains("nextCursor") && json["nextCursor"].is_string() &&
                !json["nextCursor"].get<std::string>().empty())
                cursor = json["nextCursor"].get<std::string>();
            if (!cursor) break;
        }
        return found;
    }

    // The sandbox labelled with the session id; at most one may match.
    template <class T>
    std::optional<nlohmann::json> find_by_sid(ProviderContext<T>& ctx) {
        const auto found = list_labelled(ctx, {{std::string(sid_label), ctx.options.sid}});
        if (found.empty()) return std::nullopt;
        if (found.size() > 1)
            throw error(errc::conflict, "multiple sandboxes found for sid " + ctx.options.sid, "daytona");
        remember(found.front());
        if (toolbox_url_.empty()) fetch_toolbox_url(ctx);
        return found.front();
    }

    template <class T>
    void fetch_toolbox_url(ProviderContext<T>& ctx) {
        const nlohmann::json json = api_json(ctx, "GET", "/sandbox/" + sandbox_id_ + "/toolbox-proxy-url", {}, retry_policy());
        toolbox_url_ = json.value("url", std::string());
        while (!toolbox_url_.empty() && toolbox_url_.back() == '/') toolbox_url_.pop_back();
        if (toolbox_url_.empty()) throw error(errc::bad_response, "no toolbox proxy URL for the sandbox", "daytona");
    }

    template <class T>
    nlohmann::json create(ProviderContext<T>& ctx) {
        const Config& config = ctx.config;
        nlohmann::json env = nlohmann::json::object();
        for (const auto& [k, v] : config.sandbox.runtime_startup_env_vars) env[k] = v;
        env["port"] = std::to_string(settings_.server_port);
        env["PYTHONUNBUFFERED"] = "1";
        env["VSCODE_PORT"] = std::to_string(settings_.server_port + 1);
        if (config.debug) env["DEBUG"] = "true";
        session_key_ = detail::random_hex(24);
        env[std::string(session_key_env)] = session_key_;  // runbox-server and OpenHands read it
        const Ownership own = ctx.ownership ? *ctx.ownership : Ownership::make(config, detail::random_hex(12));
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
            [&] { return api_json(ctx, "POST", "/sandbox", body.dump(), rate_limit_only_policy(), true); },
            [&]() -> std::optional<nlohmann::json> {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the sandbox up...");
                auto found = list_labelled(ctx, {{std::string(labels::token), own.token}});
                if (found.empty()) return std::nullopt;
                return found.front();
            });
        created_ = true;
        attached_ = false;
        remember(sandbox);
        if (sandbox_id_.empty()) throw error(errc::bad_response, "create answered no sandbox id", "daytona");
        ctx.created(sandbox_id_);
        if (toolbox_url_.empty()) fetch_toolbox_url(ctx);
        return sandbox;
    }

    // Brings the sandbox to `started` within start_timeout. Starting a stopped sandbox means its
    // server must be started again.
    template <class T>
    nlohmann::json wait_until_started(ProviderContext<T>& ctx, nlohmann::json sandbox, bool& start_server) {
        const auto deadline = std::chrono::steady_clock::now() + settings_.start_timeout;
        bool start_requested = false;
        for (;;) {
            const std::string state = sandbox.value("state", std::string("unknown"));
            if (state == "started") return sandbox;
            if (state == "error" || state == "build_failed") {
                const std::string reason = sandbox.contains("errorReason") && sandbox["errorReason"].is_string()
                                               ? sandbox["errorReason"].get<std::string>()
                                               : std::string("no reason given");
                throw error(errc::sandbox_gone,
                            redact("sandbox " + sandbox_id_ + " is in state " + state + ": " + reason, {settings_.api_key}),
                            "daytona");
            }
            if (state == "destroyed" || state == "destroying")
                throw error(errc::sandbox_gone, "sandbox " + sandbox_id_ + " is " + state, "daytona");
            const bool resting = state == "stopped" || state == "archived" || state == "paused";
            if (resting && !start_requested) {
                ctx.status(RuntimeStatus::starting_runtime, "Starting the stopped Daytona sandbox...");
                sandbox = api_json(ctx, "POST", "/sandbox/" + sandbox_id_ + "/start", {}, retry_policy(), true);
                start_requested = true;
                start_server = true;
                continue;
            }
            // creating, starting, stopping (wait for stopped), pending_build, unknown, ...: poll.
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline)
                throw error(errc::timeout,
                            "sandbox " + sandbox_id_ + " did not reach state started within " +
                                std::to_string(settings_.start_timeout.count()) + " ms (last state: " + state + ")",
                            "daytona");
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(settings_.poll_interval, deadline - now));
            sandbox = api_json(ctx, "GET", "/sandbox/" + sandbox_id_, {}, retry_policy());
        }
    }

    template <class T>
    void start_action_server(ProviderContext<T>& ctx) {
        try {
            toolbox(ctx, "/process/session", {{"sessionId", std::string(server_session_id)}}, RetryPolicy::none());
        } catch (const error& e) {
            if (e.code() != errc::conflict) throw;  // the session survives a restart: reuse it
        }
        const std::string command = server_start_command(ctx.config, ctx.options);
        toolbox(ctx, "/process/session/" + std::string(server_session_id) + "/exec",
                {{"command", command}, {"runAsync", true}}, RetryPolicy::none());
    }

    Settings settings_;
    std::string sandbox_id_;
    std::string toolbox_url_;
    std::string session_key_;
    bool attached_ = false;
    bool created_ = false;
    bool closed_ = false;
};

}  // namespace runbox::daytona

namespace runbox {
/// The seed's DaytonaRuntime: `DaytonaRuntime rt(config, events, {.sid = "s1"}); rt.connect();`
using DaytonaRuntime = Runtime<daytona::Auth, HttplibTransport>;
}  // namespace runbox
