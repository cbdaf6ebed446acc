// runbox/providers/e2b.hpp - the E2B provider: runbox::e2b::Auth, runbox::E2BRuntime.
//
// E2B (provider-apis.md §2) has a REST control plane (https://api.e2b.app, X-API-Key) and, in
// every sandbox, the envd daemon that runs processes over Connect RPC. connect() finds the
// session's sandbox by its metadata `OpenHands_SID=<sid>` (attach; a paused one is resumed with
// the configured timeout re-applied) or creates one (templateID, timeout, metadata, envVars), then
// starts the action execution server with envd's process.Process/Start: a server-streaming call
// (5-byte Connect envelopes over HTTP/1.1) whose first event is `start`. The stream is then read
// on a thread while Runtime waits for /alive: an early `end` event (the server exited) stops the
// wait at once with the exit code and the output seen. The server is reached at
// https://{port}-{id}.{domain}, with `e2b-traffic-access-token` when the sandbox is not public
// (runbox's default). close() kills the sandbox (DELETE /sandboxes/{id}) unless runbox attached to
// it; with sandbox.keep_runtime_alive it pauses it instead. A failed connect kills what it created.
//
// Settings (Config::providers["e2b"][key], else the environment variable):
//   api_key            E2B_API_KEY            required (X-API-Key)
//   domain             E2B_DOMAIN             e2b.app
//   api_url            E2B_API_URL            https://api.<domain>
//   sandbox_url        E2B_SANDBOX_URL        envd's base: https://sandbox.<domain> for E2B's own
//                                             domains (routed by the E2b-Sandbox-Id header, as the
//                                             SDK does), else https://49983-{id}.<domain>;
//                                             `{id}` is replaced by the sandbox id
//   server_url         E2B_SERVER_URL         https://{port}-{id}.<domain> (the sandbox's port host;
//                                             set it where that host does not resolve, e.g. a fake)
//   template           E2B_TEMPLATE           sandbox.runtime_container_image, else "base"
//   timeout_seconds    E2B_TIMEOUT_SECONDS    3600 (the sandbox's TTL, the backstop against leaks;
//                                             never 0; re-applied when a paused sandbox is resumed)
//   public             E2B_PUBLIC             false (true or 1: ports need no traffic token)
//   server_command     E2B_SERVER_COMMAND     unset (replaces OpenHands' python launcher, e.g.
//                                             "runbox-server"; the arguments stay)
//   server_cwd         E2B_SERVER_CWD         /openhands/code
//   server_port        E2B_SERVER_PORT        4444
//   session_api_key    E2B_SESSION_API_KEY    random per sandbox (given to the server as
//                                             SESSION_API_KEY, sent as X-Session-API-Key)
//   alive_timeout_ms   E2B_ALIVE_TIMEOUT_MS   120000 (bound of the /alive wait)
//   alive_poll_interval_ms                    1000
//   request_timeout_ms E2B_REQUEST_TIMEOUT_MS 60000  (one API or envd request, as the SDK)
//   retry_initial_backoff_ms                  500    (API retries: 429 with Retry-After, 502-504)
//   retry_max_attempts                        4      (the SDK retries 3 times)
//   list_limit                                100    (page size of the attach lookup, 1..100)
//   close_timeout_ms   E2B_CLOSE_TIMEOUT_MS   30000  (bound of close()'s retries; then the sandbox
//                                             is reported in Runtime::unreleased())
// (the keys shared by every cloud provider are read by cloud::SettingsReader, cloud_api.hpp)
//
// Every sandbox carries runbox's ownership labels (lifecycle.hpp) in its metadata.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/config.hpp"
#include "runbox/detail/linkage.hpp"
#include "runbox/detail/base64.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/detail/shell.hpp"
#include "runbox/error.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/provider.hpp"
#include "runbox/providers/detail/cloud_api.hpp"
#include "runbox/rpc_status.hpp"
#include "runbox/runtime.hpp"
#include "runbox/status.hpp"
#include "runbox/transport/envelope.hpp"
#include "runbox/transport/httplib.hpp"
#include "runbox/transport/transport.hpp"
#include "runbox/version.hpp"

namespace runbox::e2b {

/// envd's port inside every sandbox.
inline constexpr int envd_port = 49983;

/// Every setting, resolved from Config (providers.e2b.*) with environment fallback.
struct Settings : cloud::ApiSettings, cloud::ServerLaunch {
    std::string domain = "e2b.app";  ///< E2B_DOMAIN: the API is `api.{domain}`, sandbox ports `{port}-{id}.{domain}`
    std::string api_url;      ///< no trailing slash
    std::string sandbox_url;  ///< envd base, may contain {id}
    std::string server_url;   ///< template with {port} and {id}
    std::string template_id = "base";  ///< template (or sandbox.runtime_container_image): the sandbox's template
    int timeout_seconds = 3600;        ///< timeout_seconds: the sandbox's TTL, E2B's backstop against leaks
    bool is_public = false;            ///< public: false = traffic to the server needs the traffic token
    std::optional<std::string> session_api_key;  ///< session_api_key: else one is generated per sandbox
    int list_limit = 100;              ///< page size of the attach lookup (E2B allows 1..100)

    /// Reads every setting (E2B_API_KEY required); errc::config_invalid names what is wrong.
    static Settings from(const Config& config);

private:
    // An http(s) URL that may hold {id} / {port} placeholders.
    static std::string template_url(const cloud::SettingsReader& r, std::string_view key, std::string fallback);
};

namespace detail {

/// Compares dotted versions numerically ("0.10.0" > "0.9.9"); missing parts count as 0 and a
/// pre-release suffix is ignored. Negative, zero or positive like strcmp.
RUNBOX_DECL int compare_versions(std::string_view a, std::string_view b);

/// What the action server's Start stream has said so far (shared with the reading thread and
/// with the early-failure probe).
struct ServerStream {
    std::mutex mutex;
    std::condition_variable changed;
    std::optional<std::uint32_t> pid;
    bool ended = false;                    ///< an `end` event came: the server exited
    std::optional<int> exit_code;
    std::string exit_status;               ///< envd's "exit status 3" / "signal: killed"
    std::string output;                    ///< the last bytes of stdout+stderr, bounded
    std::optional<error> failure;          ///< the stream itself failed (before or after start)
    bool finished = false;                 ///< the reading thread is done
    std::stop_source stop;
    std::thread reader;

    static constexpr std::size_t max_output = 16 * 1024;

    ~ServerStream() {
        stop.request_stop();
        if (reader.joinable()) reader.join();
    }
    void append_output(std::string_view bytes) {
        output.append(bytes);
        if (output.size() > max_output) output.erase(0, output.size() - max_output);
    }
};

}  // namespace detail

/// The E2B provider (AuthPolicy). Construction reads and checks the settings (no I/O).
class Auth {
public:
    static constexpr std::string_view name = "e2b";  ///< the name make_runtime knows it by
    using default_transport = HttplibTransport;       ///< REST and Connect over HTTP/1.1 are enough

    /// Reads and checks the settings; no I/O. Throws errc::config_invalid.
    explicit Auth(const Config& config) : settings_(Settings::from(config)) {}
    Auth(Auth&&) noexcept = default;             ///< movable (a Runtime owns it)
    Auth& operator=(Auth&&) noexcept = default;  ///< movable
    ~Auth() { stop_stream(); }

    /// E2B's API auth: `X-API-Key: <E2B_API_KEY>` (envd calls carry the sandbox's own token instead).
    void authorize(Request& request) const {
        request.headers.set("X-API-Key", settings_.api_key);
        request.headers.set("User-Agent", "runbox/" + std::string(version_string));
    }

    /// The resolved settings.
    const Settings& settings() const noexcept { return settings_; }
    /// The sandbox connect() created or attached to (empty before).
    const std::string& sandbox_id() const noexcept { return box_.id; }
    /// True when connect() attached to a sandbox it did not create.
    bool attached() const noexcept { return box_.attached; }
    /// The envd version the sandbox reported.
    const std::string& envd_version() const noexcept { return envd_version_; }

    /// Attaches (by metadata OpenHands_SID, resuming a paused sandbox) or creates a sandbox, starts
    /// the action server through envd's Process/Start and says where it listens; the server's
    /// early exit reaches the /alive wait through the endpoint's probe. A failure kills what it made.
    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        stop_stream();
        box_.reset(settings_.session_api_key.value_or(std::string()));
        created_ = false;
        envd_token_.clear();
        traffic_token_.clear();
        auto api = api_of(ctx);
        ctx.status(RuntimeStatus::starting_runtime, "Starting E2B sandbox...");
        std::optional<nlohmann::json> sandbox;
        if (ctx.options.attach_to_existing) {
            if (auto found = find_by_sid(api, ctx.options.sid)) {
                box_.id = cloud::string_field(*found, "sandboxID");
                box_.attached = true;
                ctx.status(RuntimeStatus::starting_runtime,
                           cloud::string_field(*found, "state") == "paused"
                               ? "Resuming E2B sandbox " + box_.id + "..."
                               : "Attaching to E2B sandbox " + box_.id + "...");
                sandbox = resume(api);
            }
        }
        if (!sandbox) {
            ctx.status(RuntimeStatus::building_runtime, "Creating E2B sandbox...");
            sandbox = create(api);
            ctx.status(RuntimeStatus::runtime_started, "E2B sandbox " + box_.id + " is running.");
        }
        read_sandbox(*sandbox);

        bool server_running = false;
        if (box_.attached) {
            if (box_.session_key.empty()) box_.session_key = sandbox_env(ctx).value_or(std::string());
            server_running = find_server_process(ctx);
        }
        if (!server_running) start_server(ctx);

        std::string url = settings_.server_url;
        runbox::detail::replace_all(url, "{port}", std::to_string(settings_.server_port));
        runbox::detail::replace_all(url, "{id}", box_.id);
        ServerEndpoint endpoint = settings_.endpoint(std::move(url));
        cloud::add_secret_header(endpoint, "e2b-traffic-access-token", traffic_token_, traffic_token_);
        cloud::add_secret_header(endpoint, std::string(cloud::session_key_header), box_.session_key, box_.session_key);
        if (!envd_token_.empty()) endpoint.secrets.push_back(envd_token_);
        // The /alive wait asks the Start stream first: an `end` event stops it at once.
        endpoint.probe = [stream = stream_, hidden = secrets()] { return early_failure_of(stream, hidden); };
        endpoint.attached = box_.attached && server_running;
        return endpoint;
    }

    /// The server's early exit, when its Start stream has reported one (what the /alive wait's
    /// probe asks): errc::sandbox_gone naming the exit code and the output seen.
    std::optional<error> early_failure() const { return early_failure_of(stream_, secrets()); }

    /// Kills the sandbox this runtime created (pauses it with keep_runtime_alive); leaves an
    /// attached one as found. Idempotent; what cannot be released is reported, never thrown.
    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        stop_stream();
        if (!box_.begin_close() || box_.attached || !created_) return;  // someone else's sandbox: leave it
        // OpenHands' E2B always kills; runbox pauses for keep_runtime_alive (a normal close).
        const bool keep = reason == CloseReason::normal && ctx.config.sandbox.keep_runtime_alive;
        // Retried within close_timeout; what is left is reported (the sandbox's timeout remains the backstop).
        cloud::release_or_report(ctx, box_.id, [&] {
            release_sandbox(ctx, SandboxRecord{std::string(name), box_.id, ctx.options.sid, {}, {}},
                            keep ? ReleaseMode::stop : ReleaseMode::remove);
        });
    }

    /// Every sandbox (running or paused) whose metadata carries runbox's labels.
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        auto api = api_of(ctx);
        std::vector<SandboxRecord> out;
        for_each_sandbox(api, metadata_pair(labels::managed, "1"), [&](const nlohmann::json& item) {
            auto map = label_map(item.value("metadata", nlohmann::json::object()));
            if (is_runbox_managed(map))
                out.push_back(SandboxRecord::from_labels(std::string(name), cloud::string_field(item, "sandboxID"),
                                                         cloud::string_field(item, "state"), map["OpenHands_SID"], map));
            return false;
        });
        return out;
    }

    /// Kills a sandbox (remove) or pauses it (stop), retrying within close_timeout. A sandbox
    /// already gone (404) or already paused (409) is done.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& sandbox, ReleaseMode mode) {
        auto api = api_of(ctx).closing();
        if (mode == ReleaseMode::stop) {
            api.call("POST", "/sandboxes/" + sandbox.id + "/pause", nlohmann::json::object(), cloud::Replay::safe,
                     {.accept = {404, 409}});
        } else {
            api.call("DELETE", "/sandboxes/" + sandbox.id, std::nullopt, cloud::Replay::safe, {.accept = {404}});
        }
    }

    /// The server start command line (reference §5), run by envd as `/bin/bash -l -c <line>`:
    /// the workspace is made first; every argument is shell-quoted.
    std::string server_start_command(const Config& config, const RuntimeOptions& options) const {
        std::string line = "mkdir -p " + runbox::detail::shell_quote(config.workspace_mount_path_in_sandbox) + " && ";
        if (!settings_.server_command)
            line += "export MAMBA_ROOT_PREFIX=/openhands/micromamba && /openhands/micromamba/bin/micromamba run -n "
                    "openhands poetry config virtualenvs.path /openhands/poetry && ";
        return line + settings_.command_line(config, options, cloud::ServerUser::from(config));
    }

private:
    Settings settings_;
    cloud::SandboxHandle box_;
    bool created_ = false;  ///< this connect created the sandbox (close kills or pauses only those)
    std::string envd_token_;
    std::string traffic_token_;
    std::string envd_version_;
    std::shared_ptr<detail::ServerStream> stream_;

    std::vector<std::string> secrets() const {
        std::vector<std::string> out{settings_.api_key};
        for (const auto* s : {&box_.session_key, &envd_token_, &traffic_token_})
            if (!s->empty()) out.push_back(*s);
        return out;
    }

    template <class T>
    cloud::Api<T> api_of(ProviderContext<T>& ctx) const {
        std::vector<std::string> hidden = secrets();
        hidden.erase(hidden.begin());  // Api adds the API key itself
        // Sandbox answers carry envd's and the traffic's tokens; a create's env, the session key.
        return cloud::Api<T>(ctx, std::string(name), settings_.api_url, settings_,
                             {.secret_fields = {"envdAccessToken", "trafficAccessToken", std::string(cloud::session_key_env)}},
                             std::move(hidden));
    }

    static std::string metadata_pair(std::string_view key, std::string_view value) {
        return url_encode(key) + "=" + url_encode(value);
    }

    // Walks GET /v2/sandboxes filtered by `metadata` (k=v pairs, encoded as the SDK does),
    // following X-Next-Token, until `visit(item)` returns true (that item is returned).
    template <class T, class Visit>
    std::optional<nlohmann::json> for_each_sandbox(cloud::Api<T>& api, const std::string& metadata, Visit&& visit) {
        const std::string first = "/v2/sandboxes?metadata=" + url_encode(metadata) +
                                  "&state=running,paused&limit=" + std::to_string(settings_.list_limit);
        std::optional<nlohmann::json> found;
        cloud::paginate(
            [&](const std::optional<std::string>& token) {
                const Response response =
                    api.call("GET", first + (token ? "&nextToken=" + url_encode(*token) : ""), std::nullopt,
                             cloud::Replay::safe);
                auto items = api.parse(response);
                if (!items.is_array()) throw error(errc::bad_response, "the sandbox list is not an array", "e2b");
                return nlohmann::json{{"items", std::move(items)},
                                      {"next", response.headers.get("X-Next-Token").value_or(std::string())}};
            },
            [&](const nlohmann::json& page) -> std::optional<std::string> {
                for (const auto& item : page["items"]) {
                    if (!cloud::string_field(item, "sandboxID").empty() && visit(item)) {
                        found = item;
                        return std::nullopt;
                    }
                }
                if (page["items"].empty()) return std::nullopt;
                return page["next"].get<std::string>();  // empty (the last page) or a cursor that must move
            });
        return found;
    }

    template <class T>
    std::optional<nlohmann::json> find_by_sid(cloud::Api<T>& api, const std::string& sid) {
        return for_each_sandbox(api, metadata_pair("OpenHands_SID", sid), [&](const nlohmann::json& item) {
            return label_map(item.value("metadata", nlohmann::json::object()))["OpenHands_SID"] == sid;
        });
    }

    // Resumes (or, when running, connects to) the sandbox with the configured timeout: E2B
    // resets a resumed sandbox's timeout to its default unless told.
    template <class T>
    nlohmann::json resume(cloud::Api<T>& api) {
        return api.parse_object(api.call("POST", "/v2/sandboxes/" + box_.id + "/connect",
                                         nlohmann::json{{"timeout", settings_.timeout_seconds}}, cloud::Replay::safe));
    }

    template <class T>
    nlohmann::json create(cloud::Api<T>& api) {
        auto& ctx = api.context();
        if (box_.session_key.empty()) box_.session_key = runbox::detail::random_hex(24);
        api.add_secret(box_.session_key);
        const Ownership own = cloud::ownership_of(ctx);
        nlohmann::json metadata = own.labels();
        metadata["OpenHands_SID"] = ctx.options.sid;
        nlohmann::json body = {{"templateID", settings_.template_id},
                               {"timeout", settings_.timeout_seconds},
                               {"metadata", metadata},
                               {"envVars", cloud::startup_env(ctx.config, ctx.options.env_vars, box_.session_key)}};
        if (!settings_.is_public) body["network"] = {{"allowPublicTraffic", false}};
        // Not idempotent: a create whose answer is lost is looked up by its token, never resent.
        auto sandbox = create_then_dedupe(
            [&] {
                auto answer = api.parse_object(api.call("POST", "/v2/sandboxes", body, cloud::Replay::refused_only));
                // Performed, but unusable: looked up by its token like a lost answer.
                if (cloud::string_field(answer, "sandboxID").empty())
                    throw error(errc::bad_response, "create answered no sandboxID", "e2b");
                return answer;
            },
            [&]() -> std::optional<nlohmann::json> {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the sandbox up...");
                auto found = for_each_sandbox(api, metadata_pair(labels::token, own.token), [&](const nlohmann::json& item) {
                    return own.matches(label_map(item.value("metadata", nlohmann::json::object())));
                });
                if (!found || cloud::string_field(*found, "sandboxID").empty()) return std::nullopt;
                // Ours from here on: close() releases it even when the connect below fails.
                box_.id = cloud::string_field(*found, "sandboxID");
                created_ = true;
                ctx.created(box_.id);
                return resume(api);  // the list has no access tokens; connect returns them
            });
        if (const auto id = cloud::string_field(sandbox, "sandboxID"); !id.empty()) box_.id = id;
        if (box_.id.empty()) throw error(errc::bad_response, "create answered no sandboxID", "e2b");
        if (!created_) {
            created_ = true;
            ctx.created(box_.id);
        }
        return sandbox;
    }

    // Takes the tokens and version from a create/connect answer; refuses an envd older than 0.1.0.
    void read_sandbox(const nlohmann::json& sandbox) {
        envd_token_ = cloud::string_field(sandbox, "envdAccessToken");
        traffic_token_ = cloud::string_field(sandbox, "trafficAccessToken");
        envd_version_ = cloud::string_field(sandbox, "envdVersion");
        if (envd_version_.empty() || detail::compare_versions(envd_version_, "0.1.0") < 0)
            throw error(errc::unsupported,
                        "sandbox " + box_.id + " runs envd " + (envd_version_.empty() ? "of no version" : envd_version_) +
                            ", older than 0.1.0: rebuild the template with a current E2B",
                        "e2b");
        if (!settings_.is_public && traffic_token_.empty() && !box_.attached)
            throw error(errc::bad_response, "sandbox " + box_.id + " is not public but has no trafficAccessToken", "e2b");
    }

    // An envd request: envd's URL for `path` and the headers the SDK sends (§2.4.1). The sandbox's
    // access token, never the API key: envd runs inside the sandbox.
    Request envd_request(std::string method, const std::string& path, std::string content_type, std::string body) const {
        Request request;
        request.method = std::move(method);
        std::string base = settings_.sandbox_url;
        runbox::detail::replace_all(base, "{id}", box_.id);
        request.url = base + path;
        request.body = std::move(body);
        request.timeout = settings_.request_timeout;
        if (!content_type.empty()) request.headers.set("Content-Type", std::move(content_type));
        request.headers.set("Connect-Protocol-Version", "1");
        request.headers.set("X-Access-Token", envd_token_);
        request.headers.set("E2b-Sandbox-Id", box_.id);
        request.headers.set("E2b-Sandbox-Port", std::to_string(envd_port));
        request.headers.set("User-Agent", "runbox/" + std::string(version_string));
        request.secret_fields = {std::string(cloud::session_key_env)};  // Start's envs, GET /envs
        // envd before 0.4.0 needs a user on every call (the SDK's default user).
        if (!envd_version_.empty() && detail::compare_versions(envd_version_, "0.4.0") < 0)
            request.headers.set("Authorization", "Basic dXNlcjo=");  // base64("user:")
        return request;
    }

    // A unary envd call (safe to repeat: reads) as JSON; errors by status (envd's Connect codes
    // map onto the same HTTP statuses).
    template <class T>
    nlohmann::json envd_call(ProviderContext<T>& ctx, Request request) {
        RetryPolicy policy;
        policy.max_attempts = settings_.retry_max_attempts;
        policy.initial_backoff = settings_.retry_initial_backoff;
        policy.max_elapsed = std::max(settings_.request_timeout, std::chrono::milliseconds(1));
        request.idempotent = true;
        const Response response = ctx.send(request, policy);
        if (!response.ok()) raise_envd_error(response, secrets());
        auto json = runbox::detail::parse_untrusted_json(response.body);
        if (!json.is_object()) throw error(errc::bad_response, "envd answered a body that is not a JSON object", "e2b");
        return json;
    }

    // A Connect error body {"code": "<name>", "message"} is typed by its code (the shared
    // table, with the RPC code kept); anything else by the HTTP status.
    [[noreturn]] static void raise_envd_error(const Response& response, const std::vector<std::string>& hidden) {
        const auto body = runbox::detail::parse_untrusted_json(response.body);
        const std::string code = cloud::string_field(body, "code");
        if (!code.empty() && grpc_code_from_connect(code))
            throw error(errc_from_connect_code(code), redact("envd: " + cloud::string_field(body, "message", code), hidden),
                        std::string(name), response.status, std::nullopt, grpc_code_from_connect(code));
        raise_for_status(response, name, hidden);
        throw error(errc::bad_response, "envd answered HTTP " + std::to_string(response.status), std::string(name));
    }

    // The session key of a sandbox runbox did not create: envd's GET /envs has the create's envVars.
    template <class T>
    std::optional<std::string> sandbox_env(ProviderContext<T>& ctx) {
        const nlohmann::json env = envd_call(ctx, envd_request("GET", "/envs", {}, {}));
        const std::string key = cloud::string_field(env, cloud::session_key_env);
        return key.empty() ? std::nullopt : std::optional<std::string>(key);
    }

    // Whether the action server already runs in the sandbox (envd's process list).
    template <class T>
    bool find_server_process(ProviderContext<T>& ctx) {
        const nlohmann::json list = envd_call(ctx, envd_request("POST", "/process.Process/List", "application/json", "{}"));
        const std::string marker = server_marker();
        if (!list.contains("processes") || !list["processes"].is_array()) return false;
        for (const auto& p : list["processes"]) {
            if (!p.is_object() || !p.contains("config") || !p["config"].is_object()) continue;
            const auto& config = p["config"];
            if (!config.contains("args") || !config["args"].is_array()) continue;
            for (const auto& a : config["args"])
                if (a.is_string() && a.get<std::string>().find(marker) != std::string::npos) return true;
        }
        return false;
    }

    // What identifies the server's command line in a process list.
    std::string server_marker() const {
        if (settings_.server_command) return settings_.server_command->substr(0, settings_.server_command->find(' '));
        return "openhands.runtime.action_execution_server";
    }

    // Starts the server with process.Process/Start and reads the stream on a thread: this call
    // returns once the `start` event came (the process runs on after the call returns); what
    // follows (an early `end`) is kept for the probe.
    template <class T>
    void start_server(ProviderContext<T>& ctx) {
        ctx.status(RuntimeStatus::starting_runtime, "Starting the action execution server...");
        nlohmann::json envs = nlohmann::json::object();
        if (!box_.session_key.empty()) envs[std::string(cloud::session_key_env)] = box_.session_key;
        const nlohmann::json start = {{"process",
                                       {{"cmd", "/bin/bash"},
                                        {"args", {"-l", "-c", server_start_command(ctx.config, ctx.options)}},
                                        {"envs", envs},
                                        {"cwd", settings_.server_cwd}}},
                                      {"stdin", false}};
        Request request =
            envd_request("POST", "/process.Process/Start", "application/connect+json", encode_frame(start.dump()));
        constexpr int keepalive_seconds = 50;
        request.headers.set("Keepalive-Ping-Interval", std::to_string(keepalive_seconds));
        // A read may wait through one keepalive interval; the stream is only needed while the
        // server comes up, so the whole exchange ends after the /alive window.
        request.timeout = std::chrono::seconds(keepalive_seconds) + settings_.request_timeout;
        request.deadline = std::chrono::steady_clock::now() + settings_.request_timeout + settings_.alive_timeout;
        request.idempotent = false;  // starting a process twice is not the same as once

        auto stream = std::make_shared<detail::ServerStream>();
        request.stop = stream->stop.get_token();
        stream_ = stream;
        T& transport = ctx.transport;
        stream->reader = std::thread([stream, request = std::move(request), &transport, hidden = secrets()] {
            try {
                const Response response =
                    send_framed(transport, request, [&](Frame& frame) { return on_frame(*stream, frame, hidden); });
                if (!response.ok()) raise_envd_error(response, hidden);
            } catch (const error& e) {
                std::lock_guard<std::mutex> lock(stream->mutex);
                if (!stream->failure && !stream->ended) stream->failure = e;
            } catch (const std::exception& e) {
                std::lock_guard<std::mutex> lock(stream->mutex);
                if (!stream->failure) stream->failure = error(errc::bad_response, e.what(), "e2b");
            }
            std::lock_guard<std::mutex> lock(stream->mutex);
            stream->finished = true;
            stream->changed.notify_all();
        });
        std::unique_lock<std::mutex> lock(stream->mutex);
        const bool answered = stream->changed.wait_for(lock, settings_.request_timeout, [&] {
            return stream->pid.has_value() || stream->failure.has_value() || stream->finished;
        });
        if (!answered)
            throw error(errc::timeout,
                        "envd did not report the server's start within " +
                            std::to_string(settings_.request_timeout.count()) + " ms",
                        "e2b");
        if (!stream->pid) {
            if (stream->failure) throw *stream->failure;
            throw error(errc::bad_response, "the Start stream ended without a start event", "e2b");
        }
    }

    // One Connect message of the Start stream. envd runs in the sandbox and holds its access
    // token: its words are redacted like every other answer's (`hidden`).
    static StreamAction on_frame(detail::ServerStream& stream, Frame& frame, const std::vector<std::string>& hidden) {
        if (frame.compressed()) throw error(errc::bad_response, "envd sent a compressed message unasked", "e2b");
        const auto json = runbox::detail::parse_untrusted_json(frame.payload);
        if (!json.is_object()) throw error(errc::bad_response, "envd sent a message that is not a JSON object", "e2b");
        std::lock_guard<std::mutex> lock(stream.mutex);
        stream.changed.notify_all();
        if (frame.end_stream()) {  // {} or {"error": {"code", "message"}}
            if (json.contains("error") && json["error"].is_object() && !stream.ended) {
                const auto& e = json["error"];
                const std::string code = cloud::string_field(e, "code", "unknown");
                stream.failure = error(errc_from_connect_code(code),
                                       redact("envd: " + cloud::string_field(e, "message", "the Start stream failed"), hidden),
                                       "e2b", 0, std::nullopt, grpc_code_from_connect(code));
            }
            return StreamAction::done;
        }
        const nlohmann::json& event = json.contains("event") && json["event"].is_object() ? json["event"] : json;
        if (event.contains("start") && event["start"].is_object()) {
            stream.pid = event["start"].value("pid", std::uint32_t{0});
        } else if (!stream.pid && !event.contains("keepalive")) {
            throw error(errc::bad_response, "envd's first event was not `start`", "e2b");
        } else if (event.contains("data") && event["data"].is_object()) {
            for (const char* fd : {"stdout", "stderr", "pty"}) {
                const std::string b64 = cloud::string_field(event["data"], fd);
                if (!b64.empty()) stream.append_output(runbox::detail::base64_decode(b64, "envd's process output"));
            }
        } else if (event.contains("end") && event["end"].is_object()) {
            const auto& end = event["end"];  // proto3 JSON omits a 0 exit code
            stream.ended = true;
            stream.exit_code = end.contains("exitCode") && end["exitCode"].is_number_integer() ? end["exitCode"].get<int>() : 0;
            stream.exit_status = cloud::string_field(end, "status");
            return StreamAction::done;
        }
        return StreamAction::next;
    }

    static std::optional<error> early_failure_of(const std::shared_ptr<detail::ServerStream>& stream,
                                                 const std::vector<std::string>& hidden) {
        if (!stream) return std::nullopt;
        std::lock_guard<std::mutex> lock(stream->mutex);
        if (!stream->ended) return std::nullopt;
        std::string message = "the action execution server exited";
        if (stream->exit_code) message += " with exit code " + std::to_string(*stream->exit_code);
        if (!stream->exit_status.empty()) message += " (" + stream->exit_status + ")";
        message += stream->output.empty() ? std::string(", with no output") : ": " + stream->output;
        return error(errc::sandbox_gone, redact(message, hidden), std::string(name));
    }

    void stop_stream() noexcept {
        if (!stream_) return;
        stream_->stop.request_stop();
        if (stream_->reader.joinable()) stream_->reader.join();
    }
};

}  // namespace runbox::e2b

namespace runbox {
/// Runtime over E2B sandboxes.
using E2BRuntime = Runtime<e2b::Auth, HttplibTransport>;
#if defined(RUNBOX_SEPARATE_COMPILATION)
// Compiled once, in runbox::compiled (runbox/src.hpp); a program's units only declare it.
extern template class Runtime<e2b::Auth, HttplibTransport>;
#endif
}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/providers/impl/e2b.ipp"
#endif
