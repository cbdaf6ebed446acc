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
//   session_api_key    RUNLOOP_SESSION_API_KEY    derived per devbox (HMAC of its create token under the API
//                                                          key, so a later process can attach; given to the server as
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
// has no metadata filter, so lookups list and filter here. The control-plane skeleton (settings,
// retries, errors, waits) is cloud_api.hpp.
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

namespace runbox::runloop {

/// Every setting, resolved from Config (providers.runloop.*) with environment fallback.
struct Settings : cloud::ApiSettings, cloud::ServerLaunch {
    std::string base_url = "https://api.runloop.ai";  ///< REST API base (base_url, RUNLOOP_BASE_URL)
    std::optional<std::string> blueprint;  ///< blueprint id ("bpt_...") or name; at most one of blueprint, snapshot, prebuilt
    std::optional<std::string> snapshot;  ///< snapshot id to boot from
    std::optional<std::string> prebuilt;  ///< legacy prebuilt image name
    std::string resource_size = "LARGE";  ///< launch_parameters.resource_size_request
    int keep_alive_time_seconds = 3600;  ///< server-side TTL of the devbox, seconds (> 0)
    std::string tunnel_url;  ///< template with {port} and {tunnel_key}
    std::string tunnel_auth_mode = "authenticated";  ///< "authenticated" or "open"
    std::optional<std::string> session_api_key;  ///< the server's session key; unset = a random one per devbox
    int list_limit = 100;  ///< page size when listing devboxes for attach

    Settings() {
        request_timeout = std::chrono::milliseconds(30000);
        retry_max_attempts = 6;  // the official SDK retries 5 times
    }

    /// Reads every setting (table above); errc::config_invalid for a missing API key, a malformed value, more
    /// than one image source, or a tunnel_url without {tunnel_key}.
    static Settings from(const Config& config);
};

/// The Runloop provider (AuthPolicy). Construction reads and checks the settings (no I/O).
class Auth {
public:
    static constexpr std::string_view name = "runloop";  ///< provider name (make_runtime, errors)
    using default_transport = HttplibTransport;  ///< make_runtime's transport for Runloop

    explicit Auth(const Config& config) : settings_(Settings::from(config)) {}  ///< reads Settings::from(config); no I/O

    /// Runloop's API auth: `Authorization: Bearer <RUNLOOP_API_KEY>`.
    void authorize(Request& request) const { cloud::authorize_bearer(request, settings_.api_key); }

    const Settings& settings() const noexcept { return settings_; }  ///< the resolved settings
    /// The devbox connect() created or attached to (empty before).
    const std::string& devbox_id() const noexcept { return box_.id; }
    /// True when connect() attached to a devbox it did not create.
    bool attached() const noexcept { return box_.attached; }

    /// Creates the devbox named by the sid (or with attach_to_existing finds a running one), waits until it
    /// is running, opens its tunnel and returns the server's endpoint. Errors: the API status as errc,
    /// errc::timeout past start_timeout_ms, errc::sandbox_gone if it fails or shuts down.
    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        box_.reset(settings_.session_api_key.value_or(std::string()));
        created_ = false;
        auto api = api_of(ctx);
        ctx.status(RuntimeStatus::starting_runtime, "Starting Runloop devbox...");
        std::optional<nlohmann::json> devbox;
        if (ctx.options.attach_to_existing) {
            devbox = find_running_by_name(api, ctx.options.sid);
            if (devbox) {
                box_.attached = true;
                box_.id = cloud::string_field(*devbox, "id");
                // A devbox runbox created: its session key follows from its create token.
                if (box_.session_key.empty() && devbox->contains("metadata") && (*devbox)["metadata"].is_object())
                    box_.session_key = cloud::derived_session_key(
                        settings_.api_key, cloud::string_field((*devbox)["metadata"], std::string(labels::token)));
            }
        }
        if (!devbox) {
            ctx.status(RuntimeStatus::building_runtime, "Creating Runloop devbox...");
            devbox = wait_until_running(api, create(api));
            ctx.status(RuntimeStatus::runtime_started, "Runloop devbox " + box_.id + " is running.");
        }
        const nlohmann::json tunnel = ensure_tunnel(api, *devbox);

        std::string url = settings_.tunnel_url;
        runbox::detail::replace_all(url, "{port}", std::to_string(settings_.server_port));
        runbox::detail::replace_all(url, "{tunnel_key}", cloud::string_field(tunnel, "tunnel_key"));
        ServerEndpoint endpoint = settings_.endpoint(std::move(url));
        if (cloud::string_field(tunnel, "auth_mode", "open") == "authenticated") {
            const std::string token = cloud::string_field(tunnel, "auth_token");
            if (token.empty())
                throw error(errc::bad_response, "devbox " + box_.id + " has an authenticated tunnel but no auth_token",
                            "runloop");
            cloud::add_secret_header(endpoint, "X-Runloop-Tunnel-Authorization", "Bearer " + token, token);
        }
        cloud::add_secret_header(endpoint, std::string(cloud::session_key_header), box_.session_key, box_.session_key);
        ctx.status(RuntimeStatus::starting_runtime, "Waiting for the action execution server...");
        endpoint.attached = box_.attached;  // a devbox found running already has its environment
        return endpoint;
    }

    /// Shuts down the devbox connect() created (not an attached one; kept with keep_runtime_alive on a normal
    /// close). Retries within close_timeout_ms; what it could not release goes to
    /// ProviderContext::unreleased. Never throws.
    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        if (!box_.begin_close() || box_.attached || !created_) return;  // someone else's devbox: leave it
        // OpenHands' Runloop ignores keep_runtime_alive; runbox honours it for a normal close.
        if (reason == CloseReason::normal && ctx.config.sandbox.keep_runtime_alive) return;
        // Retried within close_timeout; what is left is reported (the keep-alive timer remains the backstop).
        cloud::release_or_report(ctx, box_.id, [&] {
            release_sandbox(ctx, SandboxRecord{std::string(name), box_.id, ctx.options.sid, {}, {}}, ReleaseMode::remove);
        });
    }

    /// Every devbox whose metadata carries runbox's labels and that is not shut down or failed.
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        auto api = api_of(ctx);
        std::vector<SandboxRecord> out;
        for_each_devbox(api, {}, [&](const nlohmann::json& item) {
            const std::string status = cloud::string_field(item, "status");
            if (status == "shutdown" || status == "failure") return false;
            const auto map = label_map(item.value("metadata", nlohmann::json::object()));
            if (!is_runbox_managed(map)) return false;
            out.push_back(SandboxRecord::from_labels(std::string(name), cloud::string_field(item, "id"), status,
                                                     cloud::string_field(item, "name"), map));
            return false;
        });
        return out;
    }

    /// Shuts a devbox down (remove; Runloop's only terminal state) or suspends it (stop),
    /// retrying within close_timeout.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& devbox, ReleaseMode mode) {
        auto api = api_of(ctx).closing();
        cloud::unless_gone([&] {
            api.call("POST", "/v1/devboxes/" + devbox.id + (mode == ReleaseMode::stop ? "/suspend" : "/shutdown"), {},
                     cloud::Replay::safe);
        });
    }

    /// The server start command line (reference §5, port 4444), without the Runloop wrapping;
    /// every argument is shell-quoted.
    std::string server_start_command(const Config& config, const RuntimeOptions& options) const {
        return settings_.command_line(config, options, cloud::ServerUser::from(config));
    }

    /// The devbox entrypoint: OpenHands' ``sudo bash -c '<setup> && cd <cwd> && <server command>'``.
    std::string entrypoint(const Config& config, const RuntimeOptions& options) const {
        std::string script;
        if (!settings_.server_command) {
            script = "export MAMBA_ROOT_PREFIX=/openhands/micromamba && " + settings_.cd_command() +
                     " && /openhands/micromamba/bin/micromamba run -n openhands poetry config virtualenvs.path "
                     "/openhands/poetry && ";
        } else {
            script = settings_.cd_command() + " && ";
        }
        script += server_start_command(config, options);
        return "sudo bash -c " + runbox::detail::shell_quote(script);
    }

private:
    Settings settings_;
    cloud::SandboxHandle box_;
    bool created_ = false;  ///< this connect created the devbox (close shuts down only those)

    template <class T>
    cloud::Api<T> api_of(ProviderContext<T>& ctx) const {
        std::vector<std::string> secrets;
        if (!box_.session_key.empty()) secrets.push_back(box_.session_key);
        return cloud::Api<T>(ctx, std::string(name), settings_.base_url, settings_,
                             {.retry_statuses = {429, 500, 502, 503, 504},
                              .content_type_on_every_write = true,
                              .secret_fields = {"auth_token", std::string(cloud::session_key_env)}},
                             std::move(secrets));
    }

    // Walks the devbox list page by page (starting_after = the last id), with `query` added
    // (e.g. "&status=running"), until `visit(item)` returns true (that item is returned).
    template <class T, class Visit>
    std::optional<nlohmann::json> for_each_devbox(cloud::Api<T>& api, const std::string& query, Visit&& visit) {
        const std::string first = "/v1/devboxes?limit=" + std::to_string(settings_.list_limit) + query;
        std::optional<nlohmann::json> found;
        cloud::paginate(
            [&](const std::optional<std::string>& after) {
                return api.parse_object(
                    api.call("GET", first + (after ? "&starting_after=" + url_encode(*after) : ""), {}, cloud::Replay::safe));
            },
            [&](const nlohmann::json& json) -> std::optional<std::string> {
                if (!json.contains("devboxes") || !json["devboxes"].is_array())
                    throw error(errc::bad_response, "devbox list has no devboxes array", "runloop");
                const auto& items = json["devboxes"];
                for (const auto& item : items) {
                    if (!cloud::string_field(item, "id").empty() && visit(item)) {
                        found = item;
                        return std::nullopt;
                    }
                }
                if (!json.value("has_more", false) || items.empty()) return std::nullopt;
                return cloud::string_field(items.back(), "id");  // a cursor that does not move ends the walk
            });
        return found;
    }

    // The running devbox named `wanted`.
    template <class T>
    std::optional<nlohmann::json> find_running_by_name(cloud::Api<T>& api, const std::string& wanted) {
        return for_each_devbox(api, "&status=running", [&](const nlohmann::json& item) {
            return cloud::string_field(item, "name") == wanted && cloud::string_field(item, "status") == "running";
        });
    }

    template <class T>
    nlohmann::json create(cloud::Api<T>& api) {
        auto& ctx = api.context();
        const Config& config = ctx.config;
        const Ownership own = cloud::ownership_of(ctx);
        if (box_.session_key.empty()) box_.session_key = cloud::derived_session_key(settings_.api_key, own.token);
        api.add_secret(box_.session_key);
        nlohmann::json metadata = own.labels();
        metadata["container-name"] = "openhands-runtime-" + ctx.options.sid;
        metadata["OpenHands_SID"] = ctx.options.sid;
        nlohmann::json launch = {
            {"resource_size_request", settings_.resource_size},
            {"launch_commands",
             nlohmann::json::array({"mkdir -p " + runbox::detail::shell_quote(config.workspace_mount_path_in_sandbox)})},
        };
        launch["keep_alive_time_seconds"] = settings_.keep_alive_time_seconds;  // the TTL backstop
        nlohmann::json body = {
            {"name", ctx.options.sid},
            {"entrypoint", entrypoint(config, ctx.options)},
            {"environment_variables", cloud::startup_env(config, ctx.options.env_vars, box_.session_key)},
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
            [&] {
                auto answer = api.parse_object(api.call("POST", "/v1/devboxes", body, cloud::Replay::refused_only));
                // Performed, but unusable: looked up by its token like a lost answer.
                if (cloud::string_field(answer, "id").empty())
                    throw error(errc::bad_response, "create answered no devbox id", "runloop");
                return answer;
            },
            [&] {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the devbox up...");
                return for_each_devbox(api, {}, [&](const nlohmann::json& item) {
                    return !cloud::string_field(item, "id").empty() &&
                           own.matches(label_map(item.value("metadata", nlohmann::json::object())));
                });
            });
        box_.id = cloud::string_field(devbox, "id");
        if (box_.id.empty()) throw error(errc::bad_response, "create answered no devbox id", "runloop");
        created_ = true;
        ctx.created(box_.id);
        return devbox;
    }

    // Long-polls wait_for_status until `running` within start_timeout; 408 means "not yet".
    template <class T>
    nlohmann::json wait_until_running(cloud::Api<T>& api, nlohmann::json devbox) {
        // The goal and the two terminal statuses, as the official SDK asks.
        const nlohmann::json body = {{"statuses", nlohmann::json::array({"running", "failure", "shutdown"})}};
        std::string status;
        bool first = true;
        return api.wait(
            settings_.start_timeout,
            [&](const cloud::Deadline& deadline) -> std::optional<nlohmann::json> {
                for (;;) {
                    status = cloud::string_field(devbox, "status", "unknown");
                    if (status == "running") return devbox;
                    if (status == "failure" || status == "shutdown") {
                        const std::string reason = cloud::string_field(
                            devbox, status == "failure" ? "failure_reason" : "shutdown_reason", "no reason given");
                        throw error(errc::sandbox_gone,
                                    redact("devbox " + box_.id + " ended in status " + status + " (" + reason + ")",
                                           api.secrets()),
                                    "runloop");
                    }
                    if (!first && deadline.expired()) return std::nullopt;
                    first = false;
                    api.context().status(RuntimeStatus::starting_runtime,
                                         "Waiting for Runloop devbox " + box_.id + " (" + status + ")...");
                    // The server holds the request up to ~30 s; the client waits longer than that.
                    const auto response =
                        api.call("POST", "/v1/devboxes/" + box_.id + "/wait_for_status", body, cloud::Replay::safe,
                                 {.timeout = settings_.request_timeout + std::chrono::seconds(60), .accept = {408}, .within = &deadline});
                    if (response.status == 408) return std::nullopt;  // not yet: poll again
                    devbox = api.parse_object(response);
                    const std::string next = cloud::string_field(devbox, "status", "unknown");
                    if (next != "running" && next != "failure" && next != "shutdown") return std::nullopt;
                }
            },
            [&] { return "devbox " + box_.id + " did not reach running (status " + status + ")"; });
    }

    // The V2 tunnel: reuse the devbox's tunnel when it has one, else enable it.
    template <class T>
    nlohmann::json ensure_tunnel(cloud::Api<T>& api, const nlohmann::json& devbox) {
        if (devbox.contains("tunnel") && devbox["tunnel"].is_object() &&
            !cloud::string_field(devbox["tunnel"], "tunnel_key").empty()) {
            const auto& t = devbox["tunnel"];
            if (cloud::string_field(t, "auth_mode", "open") == "open" || !cloud::string_field(t, "auth_token").empty())
                return t;
        }
        api.context().status(RuntimeStatus::starting_runtime, "Opening a tunnel to the action execution server...");
        const nlohmann::json body = {{"auth_mode", settings_.tunnel_auth_mode}, {"http_keep_alive", true}};
        auto tunnel = api.parse_object(
            api.call("POST", "/v1/devboxes/" + box_.id + "/enable_tunnel", body, cloud::Replay::safe));
        if (cloud::string_field(tunnel, "tunnel_key").empty())
            throw error(errc::bad_response, "enable_tunnel answered no tunnel_key", "runloop");
        return tunnel;
    }
};

}  // namespace runbox::runloop

namespace runbox {
/// Runtime over Runloop devboxes.
using RunloopRuntime = Runtime<runloop::Auth, HttplibTransport>;
#if defined(RUNBOX_SEPARATE_COMPILATION)
// Compiled once, in runbox::compiled (runbox/src.hpp); a program's units only declare it.
extern template class Runtime<runloop::Auth, HttplibTransport>;
#endif
}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/providers/impl/runloop.ipp"
#endif
