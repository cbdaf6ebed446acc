// runbox/providers/runloop.hpp - the Runloop provider: runbox::runloop::Auth, runbox::RunloopRuntime.
//
// Behaviour follows OpenHands' RunloopRuntime (reference §9.4) over Runloop's REST API
// (provider-apis §3): a devbox named <sid> is created with the action execution server as its
// entrypoint (or, with attach_to_existing, a running devbox of that name is found by listing),
// waited for with the wait_for_status long-poll (408 = poll again) until `running`, and the
// server is reached through a V2 tunnel (enable_tunnel) to port 4444:
// https://{port}-{tunnel_key}.tunnel.runloop.ai, with X-Runloop-Tunnel-Authorization when the
// tunnel is authenticated. close() shuts the devbox down unless runbox attached to it.
//
// Settings (Config::providers["runloop"][key], else the environment variable):
//   api_key            RUNLOOP_API_KEY            required (Authorization: Bearer)
//   base_url           RUNLOOP_BASE_URL           https://api.runloop.ai
//   blueprint          RUNLOOP_BLUEPRINT          unset  (blueprint_id when it starts with "bpt_", else blueprint_name)
//   snapshot           RUNLOOP_SNAPSHOT           unset  (snapshot_id)
//   prebuilt           RUNLOOP_PREBUILT           unset  (legacy `prebuilt` image; OpenHands used "openhands")
//   resource_size      RUNLOOP_RESOURCE_SIZE      LARGE  (launch_parameters.resource_size_request)
//   keep_alive_time_seconds                       3600   (launch_parameters.keep_alive_time_seconds: the
//                                                          server-side TTL, always sent, never 0)
//   server_command     RUNLOOP_SERVER_COMMAND     unset  (replaces OpenHands' python launcher,
//                                                          e.g. "runbox-server"; arguments stay)
//   server_cwd         RUNLOOP_SERVER_CWD         /openhands/code
//   server_port        RUNLOOP_SERVER_PORT        4444
//   tunnel_url         RUNLOOP_TUNNEL_URL         https://{port}-{tunnel_key}.tunnel.<base domain>
//   tunnel_auth_mode   RUNLOOP_TUNNEL_AUTH_MODE   authenticated (or open)
//   session_api_key    RUNLOOP_SESSION_API_KEY    random per devbox (given to the server as
//                                                          SESSION_API_KEY, sent as X-Session-API-Key;
//                                                          set it to attach to a devbox made elsewhere)
//   poll_interval_ms   RUNLOOP_POLL_INTERVAL_MS   1000   (least time between status polls)
//   start_timeout_ms   RUNLOOP_START_TIMEOUT_MS   120000 (bound of the wait for `running`)
//   alive_timeout_ms   RUNLOOP_ALIVE_TIMEOUT_MS   120000 (bound of the /alive wait)
//   alive_poll_interval_ms                        1000
//   request_timeout_ms RUNLOOP_REQUEST_TIMEOUT_MS 30000  (one API request; long-polls get 60 s more)
//   retry_initial_backoff_ms                      500    (API retries: 429/500/502/503/504)
//   retry_max_attempts                            6      (the official SDK retries 5 times)
//   list_limit                                    100    (page size of the attach lookup)
//   close_timeout_ms   RUNLOOP_CLOSE_TIMEOUT_MS   30000  (bound of close()'s retries; then the devbox
//                                                          is reported in Runtime::unreleased())
//
// Every devbox carries runbox's ownership labels (lifecycle.hpp) in its metadata; Runloop's list
// has no metadata filter, so lookups list and filter here.
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <initializer_list>
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

namespace runbox::runloop {

/// Every setting, resolved from Config (providers.runloop.*) with environment fallback.
struct Settings {
    std::string api_key;
    std::string base_url = "https://api.runloop.ai";
    std::optional<std::string> blueprint;
    std::optional<std::string> snapshot;
    std::optional<std::string> prebuilt;
    std::string resource_size = "LARGE";
    int keep_alive_time_seconds = 3600;
    std::optional<std::string> server_command;
    std::string server_cwd = "/openhands/code";
    int server_port = 4444;
    std::string tunnel_url;  ///< template with {port} and {tunnel_key}
    std::string tunnel_auth_mode = "authenticated";
    std::optional<std::string> session_api_key;
    std::chrono::milliseconds poll_interval{1000};
    std::chrono::milliseconds start_timeout{120000};
    std::chrono::milliseconds alive_timeout{120000};
    std::chrono::milliseconds alive_poll_interval{1000};
    std::chrono::milliseconds request_timeout{30000};
    std::chrono::milliseconds retry_initial_backoff{500};
    int retry_max_attempts = 6;
    int list_limit = 100;  ///< page size when listing devboxes for attach
    std::chrono::milliseconds close_timeout{30000};

    static Settings from(const Config& config) {
        constexpr std::string_view p = "runloop";
        Settings s;
        s.api_key = config.required_setting(p, "api_key", "RUNLOOP_API_KEY");
        if (auto v = config.setting(p, "base_url", "RUNLOOP_BASE_URL")) s.base_url = *v;
        while (!s.base_url.empty() && s.base_url.back() == '/') s.base_url.pop_back();
        Url base;
        try {
            base = parse_url(s.base_url);
        } catch (const error&) {
            throw error(errc::config_invalid, "RUNLOOP_BASE_URL must be an http(s) URL", std::string(p));
        }
        s.blueprint = config.setting(p, "blueprint", "RUNLOOP_BLUEPRINT");
        s.snapshot = config.setting(p, "snapshot", "RUNLOOP_SNAPSHOT");
        s.prebuilt = config.setting(p, "prebuilt", "RUNLOOP_PREBUILT");
        if ((s.blueprint ? 1 : 0) + (s.snapshot ? 1 : 0) + (s.prebuilt ? 1 : 0) > 1)
            throw error(errc::config_invalid, "set at most one of runloop blueprint, snapshot and prebuilt", std::string(p));
        if (auto v = config.setting(p, "resource_size", "RUNLOOP_RESOURCE_SIZE")) s.resource_size = *v;
        s.keep_alive_time_seconds = config.integer_setting(p, "keep_alive_time_seconds", {}, s.keep_alive_time_seconds, 1);
        s.server_command = config.setting(p, "server_command", "RUNLOOP_SERVER_COMMAND");
        if (auto v = config.setting(p, "server_cwd", "RUNLOOP_SERVER_CWD")) s.server_cwd = *v;
        s.server_port = config.integer_setting(p, "server_port", "RUNLOOP_SERVER_PORT", s.server_port, 1);
        // The SDK's rule: api.<domain> -> https://{port}-{key}.tunnel.<domain>.
        std::string domain = base.host.rfind("api.", 0) == 0 ? base.host.substr(4) : base.host;
        s.tunnel_url = config.setting(p, "tunnel_url", "RUNLOOP_TUNNEL_URL")
                           .value_or("https://{port}-{tunnel_key}.tunnel." + domain);
        if (s.tunnel_url.find("{tunnel_key}") == std::string::npos)
            throw error(errc::config_invalid, "runloop setting 'tunnel_url' must contain {tunnel_key}", std::string(p));
        if (auto v = config.setting(p, "tunnel_auth_mode", "RUNLOOP_TUNNEL_AUTH_MODE")) s.tunnel_auth_mode = *v;
        if (s.tunnel_auth_mode != "open" && s.tunnel_auth_mode != "authenticated")
            throw error(errc::config_invalid, "runloop setting 'tunnel_auth_mode' must be open or authenticated",
                        std::string(p));
        s.session_api_key = config.setting(p, "session_api_key", "RUNLOOP_SESSION_API_KEY");
        s.poll_interval = config.millis_setting(p, "poll_interval_ms", "RUNLOOP_POLL_INTERVAL_MS", s.poll_interval);
        s.start_timeout = config.millis_setting(p, "start_timeout_ms", "RUNLOOP_START_TIMEOUT_MS", s.start_timeout);
        s.alive_timeout = config.millis_setting(p, "alive_timeout_ms", "RUNLOOP_ALIVE_TIMEOUT_MS", s.alive_timeout);
        s.alive_poll_interval = config.millis_setting(p, "alive_poll_interval_ms", {}, s.alive_poll_interval);
        s.request_timeout = config.millis_setting(p, "request_timeout_ms", "RUNLOOP_REQUEST_TIMEOUT_MS", s.request_timeout);
        s.retry_initial_backoff = config.millis_setting(p, "retry_initial_backoff_ms", {}, s.retry_initial_backoff);
        s.retry_max_attempts = config.integer_setting(p, "retry_max_attempts", {}, s.retry_max_attempts, 1);
        s.list_limit = config.integer_setting(p, "list_limit", {}, s.list_limit, 1);
        s.close_timeout = config.millis_setting(p, "close_timeout_ms", "RUNLOOP_CLOSE_TIMEOUT_MS", s.close_timeout);
        return s;
    }
};

namespace detail {

/// Quotes `text` for a POSIX shell as one word.
inline std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text) {
        if (c == '\'') {
            out += "'\\''";
        } else {
            out += c;
        }
    }
    out += "'";
    return out;
}

inline void replace_all(std::string& text, std::string_view from, std::string_view to) {
    for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
        text.replace(pos, from.size(), to);
}

}  // namespace detail

/// The Runloop provider (AuthPolicy). Construction reads and checks the settings (no I/O).
class Auth {
public:
    static constexpr std::string_view name = "runloop";
    using default_transport = HttplibTransport;

    explicit Auth(const Config& config) : settings_(Settings::from(config)) {}

    /// Runloop's API auth: `Authorization: Bearer <RUNLOOP_API_KEY>`.
    void authorize(Request& request) const {
        request.headers.set("Authorization", "Bearer " + settings_.api_key);
        request.headers.set("User-Agent", "runbox/" + std::string(version_string));
        if (!request.headers.contains("Accept")) request.headers.set("Accept", "application/json");
    }

    const Settings& settings() const noexcept { return settings_; }
    /// The devbox connect() created or attached to (empty before).
    const std::string& devbox_id() const noexcept { return devbox_id_; }
    /// True when connect() attached to a devbox it did not create.
    bool attached() const noexcept { return attached_; }

    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        closed_ = false;
        attached_ = false;
        created_ = false;
        devbox_id_.clear();
        session_key_ = settings_.session_api_key.value_or(std::string());
        ctx.status(RuntimeStatus::starting_runtime, "Starting Runloop devbox...");
        std::optional<nlohmann::json> devbox;
        if (ctx.options.attach_to_existing) {
            devbox = find_running_by_name(ctx, ctx.options.sid);
            if (devbox) {
                attached_ = true;
                devbox_id_ = (*devbox)["id"].template get<std::string>();
            }
        }
        if (!devbox) {
            ctx.status(RuntimeStatus::building_runtime, "Creating Runloop devbox...");
            devbox = create(ctx);
            devbox = wait_until_running(ctx, std::move(*devbox));
            ctx.status(RuntimeStatus::runtime_started, "Runloop devbox " + devbox_id_ + " is running.");
        }
        const nlohmann::json tunnel = ensure_tunnel(ctx, *devbox);

        ServerEndpoint endpoint;
        endpoint.url = settings_.tunnel_url;
        detail::replace_all(endpoint.url, "{port}", std::to_string(settings_.server_port));
        detail::replace_all(endpoint.url, "{tunnel_key}", tunnel.value("tunnel_key", std::string()));
        while (!endpoint.url.empty() && endpoint.url.back() == '/') endpoint.url.pop_back();
        endpoint.secrets = {settings_.api_key};
        if (tunnel.value("auth_mode", std::string("open")) == "authenticated") {
            const std::string token = tunnel.contains("auth_token") && tunnel["auth_token"].is_string()
                                          ? tunnel["auth_token"].get<std::string>()
                                          : std::string();
            if (token.empty())
                throw error(errc::bad_response, "devbox " + devbox_id_ + " has an authenticated tunnel but no auth_token",
                            "runloop");
            endpoint.headers.set("X-Runloop-Tunnel-Authorization", "Bearer " + token);
            endpoint.secrets.push_back(token);
        }
        if (!session_key_.empty()) {
            endpoint.headers.set("X-Session-API-Key", session_key_);
            endpoint.secrets.push_back(session_key_);
        }
        endpoint.alive_timeout = settings_.alive_timeout;
        endpoint.alive_poll_interval = settings_.alive_poll_interval;
        ctx.status(RuntimeStatus::starting_runtime, "Waiting for the action execution server...");
        endpoint.attached = attached_;  // a devbox found running already has its environment
        return endpoint;
    }

    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        if (closed_) return;
        closed_ = true;
        if (devbox_id_.empty() || attached_ || !created_) return;  // someone else's devbox: leave it
        // OpenHands' Runloop ignores keep_runtime_alive; runbox honours it for a normal close.
        if (reason == CloseReason::normal && ctx.config.sandbox.keep_runtime_alive) return;
        try {
            release_sandbox(ctx, SandboxRecord{std::string(name), devbox_id_, ctx.options.sid, {}, {}}, ReleaseMode::remove);
        } catch (const std::exception& e) {
            // Retried within close_timeout; what is left is reported, never dropped silently
            // (the keep-alive timer remains the backstop).
            ctx.unreleased(devbox_id_, e.what());
        }
    }

    /// Every devbox whose metadata carries runbox's labels and that is not shut down or failed.
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        std::vector<SandboxRecord> out;
        for_each_devbox(ctx, {}, [&](const nlohmann::json& item) {
            const std::string status = text(item, "status");
            if (status == "shutdown" || status == "failure") return false;
            const auto map = label_map(item.value("metadata", nlohmann::json::object()));
            if (!is_runbox_managed(map)) return false;
            out.push_back(SandboxRecord::from_labels(std::string(name), text(item, "id"), status, text(item, "name"), map));
            return false;
        });
        return out;
    }

    /// Shuts a devbox down (remove; Runloop's only terminal state) or suspends it (stop),
    /// retrying within close_timeout.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& devbox, ReleaseMode mode) {
        RetryPolicy policy = retry_policy();
        policy.max_attempts = std::max(policy.max_attempts, 8);
        policy.max_elapsed = std::max(settings_.close_timeout, std::chrono::milliseconds(1));
        try {
            api(ctx, "POST", "/v1/devboxes/" + devbox.id + (mode == ReleaseMode::stop ? "/suspend" : "/shutdown"), {},
                policy, true);
        } catch (const error& e) {
            if (e.code() != errc::not_found) throw;  // already gone
        }
    }

    /// The server start command line (reference §5, port 4444), without the Runloop wrapping.
    std::string server_start_command(const Config& config, const RuntimeOptions& options) const {
        const std::string& ws = config.workspace_mount_path_in_sandbox;
        std::string cmd = settings_.server_command.value_or(
            "/openhands/micromamba/bin/micromamba run -n openhands poetry run python -u -m openhands.runtime.action_execution_server");
        cmd += " " + std::to_string(settings_.server_port) + " --working-dir " + ws;
        if (!options.plugins.empty()) {
            cmd += " --plugins";
            for (const auto& plugin : options.plugins) cmd += " " + plugin.name;
        }
        // §5: username/uid from RUNTIME_USERNAME/RUNTIME_UID, else by run_as_openhands.
        const auto env = [&](const char* var) -> std::optional<std::string> {
            return config.env ? config.env(var) : std::nullopt;
        };
        const std::string user = env("RUNTIME_USERNAME").value_or(config.run_as_openhands ? "openhands" : "root");
        const std::string uid = env("RUNTIME_UID").value_or(config.run_as_openhands ? "1000" : "0");
        cmd += " --username " + user + " --user-id " + uid;
        if (config.sandbox.browsergym_eval_env) cmd += " --browsergym-eval-env " + *config.sandbox.browsergym_eval_env;
        if (!config.enable_browser) cmd += " --no-enable-browser";
        return cmd;
    }

    /// The devbox entrypoint: OpenHands' `sudo bash -c '<setup> && cd <cwd> && <server command>'`.
    std::string entrypoint(const Config& config, const RuntimeOptions& options) const {
        std::string script;
        if (!settings_.server_command) {
            script = "export MAMBA_ROOT_PREFIX=/openhands/micromamba && cd " + settings_.server_cwd +
                     " && /openhands/micromamba/bin/micromamba run -n openhands poetry config virtualenvs.path "
                     "/openhands/poetry && ";
        } else {
            script = "cd " + settings_.server_cwd + " && ";
        }
        script += server_start_command(config, options);
        return "sudo bash -c " + detail::shell_quote(script);
    }

private:
    RetryPolicy retry_policy() const {
        RetryPolicy policy;
        policy.max_attempts = settings_.retry_max_attempts;
        policy.initial_backoff = settings_.retry_initial_backoff;
        policy.retry_statuses = {429, 500, 502, 503, 504};
        policy.max_elapsed = std::max(settings_.start_timeout, std::chrono::milliseconds(1));
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
                 const RetryPolicy& policy, bool idempotent, std::chrono::milliseconds timeout = {},
                 std::initializer_list<int> accepted = {}) {
        Request request;
        request.method = std::move(method);
        request.url = settings_.base_url + path;
        request.body = body;
        request.timeout = timeout.count() > 0 ? timeout : settings_.request_timeout;
        if (idempotent) request.idempotent = true;
        if (request.method != "GET") request.headers.set("Content-Type", "application/json");
        authorize(request);
        Response response = ctx.send(request, policy);
        if (std::find(accepted.begin(), accepted.end(), response.status) == accepted.end())
            raise_for_status(response, "runloop", secrets());
        return response;
    }

    std::vector<std::string> secrets() const {
        std::vector<std::string> out{settings_.api_key};
        if (!session_key_.empty()) out.push_back(session_key_);
        return out;
    }

    static nlohmann::json parse(const Response& response) {
        auto json = runbox::detail::parse_untrusted_json(response.body);
        if (json.is_discarded() || !json.is_object())
            throw error(errc::bad_response, "Runloop answered a body that is not a JSON object", "runloop");
        return json;
    }

    static std::string text(const nlohmann::json& j, const char* key, std::string fallback = {}) {
        return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
    }

    // Walks the devbox list page by page (starting_after = the last id), with `query` added
    // (e.g. "&status=running"), until `visit(item)` returns true (that item is returned).
    template <class T, class Visit>
    std::optional<nlohmann::json> for_each_devbox(ProviderContext<T>& ctx, const std::string& query, Visit&& visit) {
        std::string after;
        for (int page = 0; page < 1000; ++page) {
            std::string path = "/v1/devboxes?limit=" + std::to_string(settings_.list_limit) + query;
            if (!after.empty()) path += "&starting_after=" + url_encode(after);
            const auto json = parse(api(ctx, "GET", path, {}, retry_policy(), true));
            if (!json.contains("devboxes") || !json["devboxes"].is_array())
                throw error(errc::bad_response, "devbox list has no devboxes array", "runloop");
            const auto& items = json["devboxes"];
            for (const auto& item : items) {
                if (item.is_object() && !text(item, "id").empty() && visit(item)) return item;
            }
            if (!json.value("has_more", false) || items.empty()) return std::nullopt;
            const std::string last = items.back().is_object() ? text(items.back(), "id") : std::string();
            if (last.empty() || last == after) return std::nullopt;  // a cursor that does not move ends the walk
            after = last;
        }
        return std::nullopt;
    }

    // The running devbox named `wanted`.
    template <class T>
    std::optional<nlohmann::json> find_running_by_name(ProviderContext<T>& ctx, const std::string& wanted) {
        return for_each_devbox(ctx, "&status=running", [&](const nlohmann::json& item) {
            return text(item, "name") == wanted && text(item, "status") == "running";
        });
    }

    template <class T>
    nlohmann::json create(ProviderContext<T>& ctx) {
        const Config& config = ctx.config;
        nlohmann::json env = nlohmann::json::object();
        for (const auto& [k, v] : config.sandbox.runtime_startup_env_vars) env[k] = v;
        for (const auto& [k, v] : ctx.options.env_vars) env[k] = v;
        if (config.debug) env["DEBUG"] = "true";
        if (session_key_.empty()) session_key_ = runbox::detail::random_hex(24);
        env["SESSION_API_KEY"] = session_key_;
        const Ownership own = ctx.ownership ? *ctx.ownership : Ownership::make(config, runbox::detail::random_hex(12));
        nlohmann::json metadata = own.labels();
        metadata["container-name"] = "openhands-runtime-" + ctx.options.sid;
        metadata["OpenHands_SID"] = ctx.options.sid;
        nlohmann::json launch = {
            {"resource_size_request", settings_.resource_size},
            {"launch_commands", nlohmann::json::array({"mkdir -p " + config.workspace_mount_path_in_sandbox})},
        };
        launch["keep_alive_time_seconds"] = settings_.keep_alive_time_seconds;  // the TTL backstop
        nlohmann::json body = {
            {"name", ctx.options.sid},
            {"entrypoint", entrypoint(config, ctx.options)},
            {"environment_variables", env},
            {"metadata", metadata},
            {"launch_parameters", launch},
        };
        if (settings_.blueprint) {
            body[settings_.blueprint->rfind("bpt_", 0) == 0 ? "blueprint_id" : "blueprint_name"] = *settings_.blueprint;
        }
        if (settings_.snapshot) body["snapshot_id"] = *settings_.snapshot;
        if (settings_.prebuilt) body["prebuilt"] = *settings_.prebuilt;
        // Not idempotent: a create whose answer is lost is looked up by its token, never resent.
        auto devbox = create_then_dedupe(
            [&] { return parse(api(ctx, "POST", "/v1/devboxes", body.dump(), rate_limit_only_policy(), true)); },
            [&] {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the devbox up...");
                return for_each_devbox(ctx, {}, [&](const nlohmann::json& item) {
                    return label_map(item.value("metadata", nlohmann::json::object()))[std::string(labels::token)] ==
                           own.token;
                });
            });
        devbox_id_ = text(devbox, "id");
        if (devbox_id_.empty()) throw error(errc::bad_response, "create answered no devbox id", "runloop");
        created_ = true;
        ctx.created(devbox_id_);
        return devbox;
    }

    // Long-polls wait_for_status until `running` within start_timeout; 408 means "not yet".
    template <class T>
    nlohmann::json wait_until_running(ProviderContext<T>& ctx, nlohmann::json devbox) {
        const auto deadline = std::chrono::steady_clock::now() + settings_.start_timeout;
        // The goal and the two terminal statuses, as the official SDK asks.
        const std::string body = nlohmann::json{{"statuses", nlohmann::json::array({"running", "failure", "shutdown"})}}.dump();
        const std::string path = "/v1/devboxes/" + devbox_id_ + "/wait_for_status";
        RetryPolicy policy = retry_policy();
        for (;;) {
            const std::string status = text(devbox, "status", "unknown");
            if (status == "running") return devbox;
            if (status == "failure" || status == "shutdown") {
                const std::string reason = text(devbox, status == "failure" ? "failure_reason" : "shutdown_reason",
                                                "no reason given");
                throw error(errc::sandbox_gone,
                            redact("devbox " + devbox_id_ + " ended in status " + status + " (" + reason + ")", secrets()),
                            "runloop");
            }
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                throw error(errc::timeout,
                            "devbox " + devbox_id_ + " did not reach running within " +
                                std::to_string(settings_.start_timeout.count()) + " ms (status " + status + ")",
                            "runloop");
            }
            ctx.status(RuntimeStatus::starting_runtime, "Waiting for Runloop devbox " + devbox_id_ + " (" + status + ")...");
            const auto remaining = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now);
            policy.max_elapsed = std::max(remaining, std::chrono::milliseconds(1));
            const auto started = std::chrono::steady_clock::now();
            // The server holds the request up to ~30 s; the client waits longer than that.
            const auto response = api(ctx, "POST", path, body, policy, true,
                                      settings_.request_timeout + std::chrono::seconds(60), {408});
            if (response.status != 408) {
                devbox = parse(response);
                const std::string next = text(devbox, "status", "unknown");
                if (next == "running" || next == "failure" || next == "shutdown") continue;
            }
            // Not there yet: poll again, but never more often than poll_interval.
            const auto spent = std::chrono::steady_clock::now() - started;
            if (spent < settings_.poll_interval) {
                const auto pause = std::min<std::chrono::steady_clock::duration>(
                    settings_.poll_interval - spent, std::max<std::chrono::steady_clock::duration>(
                                                         deadline - std::chrono::steady_clock::now(), {}));
                std::this_thread::sleep_for(pause);
            }
        }
    }

    // The V2 tunnel: reuse the devbox's tunnel when it has one, else enable it.
    template <class T>
    nlohmann::json ensure_tunnel(ProviderContext<T>& ctx, const nlohmann::json& devbox) {
        if (devbox.contains("tunnel") && devbox["tunnel"].is_object() && !text(devbox["tunnel"], "tunnel_key").empty()) {
            const auto& t = devbox["tunnel"];
            if (text(t, "auth_mode", "open") == "open" || !text(t, "auth_token").empty()) return t;
        }
        ctx.status(RuntimeStatus::starting_runtime, "Opening a tunnel to the action execution server...");
        const nlohmann::json body = {{"auth_mode", settings_.tunnel_auth_mode}, {"http_keep_alive", true}};
        auto tunnel = parse(api(ctx, "POST", "/v1/devboxes/" + devbox_id_ + "/enable_tunnel", body.dump(),
                                retry_policy(), true));
        if (text(tunnel, "tunnel_key").empty())
            throw error(errc::bad_response, "enable_tunnel answered no tunnel_key", "runloop");
        return tunnel;
    }

    Settings settings_;
    std::string devbox_id_;
    std::string session_key_;
    bool attached_ = false;
    bool created_ = false;
    bool closed_ = false;
};

}  // namespace runbox::runloop

namespace runbox {
/// Runtime over Runloop devboxes.
using RunloopRuntime = Runtime<runloop::Auth, HttplibTransport>;
}  // namespace runbox
