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
//   public             E2B_PUBLIC             false (true: ports need no traffic token)
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
#include "runbox/detail/base64.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/error.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/provider.hpp"
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
struct Settings {
    std::string api_key;
    std::string domain = "e2b.app";
    std::string api_url;      ///< no trailing slash
    std::string sandbox_url;  ///< envd base, may contain {id}
    std::string server_url;   ///< template with {port} and {id}
    std::string template_id = "base";
    int timeout_seconds = 3600;
    bool is_public = false;
    std::optional<std::string> server_command;
    std::string server_cwd = "/openhands/code";
    int server_port = 4444;
    std::optional<std::string> session_api_key;
    std::chrono::milliseconds alive_timeout{120000};
    std::chrono::milliseconds alive_poll_interval{1000};
    std::chrono::milliseconds request_timeout{60000};
    std::chrono::milliseconds retry_initial_backoff{500};
    int retry_max_attempts = 4;
    int list_limit = 100;
    std::chrono::milliseconds close_timeout{30000};

    static Settings from(const Config& config) {
        constexpr std::string_view p = "e2b";
        Settings s;
        s.api_key = config.required_setting(p, "api_key", "E2B_API_KEY");
        if (auto v = config.setting(p, "domain", "E2B_DOMAIN")) s.domain = *v;
        if (s.domain.empty() || s.domain.find_first_of("/{} ") != std::string::npos)
            throw error(errc::config_invalid, "E2B_DOMAIN must be a host name such as e2b.app", std::string(p));
        s.api_url = config.setting(p, "api_url", "E2B_API_URL").value_or("https://api." + s.domain);
        const bool own_domain = s.domain == "e2b.app" || s.domain == "e2b.dev" || s.domain == "e2b.pro" ||
                                s.domain == "e2b-staging.dev";
        s.sandbox_url = config.setting(p, "sandbox_url", "E2B_SANDBOX_URL")
                            .value_or(own_domain ? "https://sandbox." + s.domain
                                                 : "https://" + std::to_string(envd_port) + "-{id}." + s.domain);
        s.server_url = config.setting(p, "server_url", "E2B_SERVER_URL").value_or("https://{port}-{id}." + s.domain);
        for (auto* url : {&s.api_url, &s.sandbox_url, &s.server_url}) {
            while (!url->empty() && url->back() == '/') url->pop_back();
            try {
                std::string probe = *url;
                replace_all(probe, "{id}", "x");
                replace_all(probe, "{port}", "1");
                (void)parse_url(probe);
            } catch (const error&) {
                throw error(errc::config_invalid, "e2b URL settings must be http(s) URLs (got '" + *url + "')",
                            std::string(p));
            }
        }
        if (s.server_url.find("{id}") == std::string::npos)
            throw error(errc::config_invalid, "e2b setting 'server_url' must contain {id}", std::string(p));
        if (config.sandbox.runtime_container_image && !config.sandbox.runtime_container_image->empty())
            s.template_id = *config.sandbox.runtime_container_image;
        if (auto v = config.setting(p, "template", "E2B_TEMPLATE")) s.template_id = *v;
        s.timeout_seconds = config.integer_setting(p, "timeout_seconds", "E2B_TIMEOUT_SECONDS", s.timeout_seconds, 1);
        if (auto v = config.setting(p, "public", "E2B_PUBLIC")) {
            if (*v != "true" && *v != "false" && *v != "1" && *v != "0")
                throw error(errc::config_invalid, "E2B_PUBLIC must be true or false", std::string(p));
            s.is_public = *v == "true" || *v == "1";
        }
        s.server_command = config.setting(p, "server_command", "E2B_SERVER_COMMAND");
        if (auto v = config.setting(p, "server_cwd", "E2B_SERVER_CWD")) s.server_cwd = *v;
        s.server_port = config.integer_setting(p, "server_port", "E2B_SERVER_PORT", s.server_port, 1);
        s.session_api_key = config.setting(p, "session_api_key", "E2B_SESSION_API_KEY");
        s.alive_timeout = config.millis_setting(p, "alive_timeout_ms", "E2B_ALIVE_TIMEOUT_MS", s.alive_timeout);
        s.alive_poll_interval = config.millis_setting(p, "alive_poll_interval_ms", {}, s.alive_poll_interval);
        s.request_timeout = config.millis_setting(p, "request_timeout_ms", "E2B_REQUEST_TIMEOUT_MS", s.request_timeout);
        s.retry_initial_backoff = config.millis_setting(p, "retry_initial_backoff_ms", {}, s.retry_initial_backoff);
        s.retry_max_attempts = config.integer_setting(p, "retry_max_attempts", {}, s.retry_max_attempts, 1);
        s.list_limit = std::min(config.integer_setting(p, "list_limit", {}, s.list_limit, 1), 100);
        s.close_timeout = config.millis_setting(p, "close_timeout_ms", "E2B_CLOSE_TIMEOUT_MS", s.close_timeout);
        return s;
    }

    static void replace_all(std::string& text, std::string_view from, std::string_view to) {
        for (auto pos = text.find(from); pos != std::string::npos; pos = text.find(from, pos + to.size()))
            text.replace(pos, from.size(), to);
    }
};

namespace detail {

/// Compares dotted versions numerically ("0.10.0" > "0.9.9"); missing parts count as 0 and a
/// pre-release suffix is ignored. Negative, zero or positive like strcmp.
inline int compare_versions(std::string_view a, std::string_view b) {
    auto next = [](std::string_view& v) -> long {
        long n = 0;
        std::size_t i = 0;
        while (i < v.size() && v[i] >= '0' && v[i] <= '9' && n < 1000000) n = n * 10 + (v[i++] - '0');
        while (i < v.size() && v[i] != '.') ++i;  // "-rc1" and the like
        v.remove_prefix(i < v.size() ? i + 1 : i);
        return n;
    };
    for (int part = 0; part < 4; ++part) {
        const long x = next(a);
        const long y = next(b);
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

/// Quotes `text` for a POSIX shell as one word.
inline std::string shell_quote(std::string_view text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

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
    static constexpr std::string_view name = "e2b";
    using default_transport = HttplibTransport;

    explicit Auth(const Config& config) : settings_(Settings::from(config)) {}
    Auth(Auth&&) noexcept = default;
    Auth& operator=(Auth&&) noexcept = default;
    ~Auth() { stop_stream(); }

    /// E2B's API auth: `X-API-Key: <E2B_API_KEY>`.
    void authorize(Request& request) const {
        request.headers.set("X-API-Key", settings_.api_key);
        request.headers.set("User-Agent", "runbox/" + std::string(version_string));
    }

    const Settings& settings() const noexcept { return settings_; }
    /// The sandbox connect() created or attached to (empty before).
    const std::string& sandbox_id() const noexcept { return sandbox_id_; }
    /// True when connect() attached to a sandbox it did not create.
    bool attached() const noexcept { return attached_; }
    /// The envd version the sandbox reported.
    const std::string& envd_version() const noexcept { return envd_version_; }

    template <class T>
    ServerEndpoint connect(ProviderContext<T>& ctx) {
        closed_ = false;
        attached_ = false;
        created_ = false;
        sandbox_id_.clear();
        stop_stream();
        session_key_ = settings_.session_api_key.value_or(std::string());
        ctx.status(RuntimeStatus::starting_runtime, "Starting E2B sandbox...");
        std::optional<nlohmann::json> sandbox;
        if (ctx.options.attach_to_existing) {
            if (auto found = find_by_sid(ctx, ctx.options.sid)) {
                sandbox_id_ = text(*found, "sandboxID");
                attached_ = true;
                ctx.status(RuntimeStatus::starting_runtime,
                           text(*found, "state") == "paused" ? "Resuming E2B sandbox " + sandbox_id_ + "..."
                                                             : "Attaching to E2B sandbox " + sandbox_id_ + "...");
                sandbox = resume(ctx);
            }
        }
        if (!sandbox) {
            ctx.status(RuntimeStatus::building_runtime, "Creating E2B sandbox...");
            sandbox = create(ctx);
            ctx.status(RuntimeStatus::runtime_started, "E2B sandbox " + sandbox_id_ + " is running.");
        }
        read_sandbox(*sandbox);

        bool server_running = false;
        if (attached_) {
            if (session_key_.empty()) session_key_ = sandbox_env(ctx).value_or(std::string());
            server_running = find_server_process(ctx);
        }
        if (!server_running) start_server(ctx);

        ServerEndpoint endpoint;
        endpoint.url = settings_.server_url;
        Settings::replace_all(endpoint.url, "{port}", std::to_string(settings_.server_port));
        Settings::replace_all(endpoint.url, "{id}", sandbox_id_);
        endpoint.secrets = secrets();
        if (!traffic_token_.empty()) endpoint.headers.set("e2b-traffic-access-token", traffic_token_);
        if (!session_key_.empty()) endpoint.headers.set("X-Session-API-Key", session_key_);
        endpoint.alive_timeout = settings_.alive_timeout;
        endpoint.alive_poll_interval = settings_.alive_poll_interval;
        endpoint.attached = attached_ && server_running;
        return endpoint;
    }

    /// The server's early exit, when its Start stream has reported one (the /alive wait's probe):
    /// errc::sandbox_gone naming the exit code and the output seen; a stream that failed before
    /// the server answered is that failure.
    std::optional<error> early_failure() const {
        auto stream = stream_;
        if (!stream) return std::nullopt;
        std::lock_guard<std::mutex> lock(stream->mutex);
        if (stream->ended) {
            std::string message = "the action execution server exited at once";
            if (stream->exit_code) message += " with exit code " + std::to_string(*stream->exit_code);
            if (!stream->exit_status.empty()) message += " (" + stream->exit_status + ")";
            message += stream->output.empty() ? std::string(", with no output") : ": " + stream->output;
            return error(errc::sandbox_gone, redact(message, secrets()), std::string(name));
        }
        return std::nullopt;
    }

    template <class T>
    void close(ProviderContext<T>& ctx, CloseReason reason) noexcept {
        stop_stream();
        if (closed_) return;
        closed_ = true;
        if (sandbox_id_.empty() || attached_ || !created_) return;  // someone else's sandbox: leave it
        const bool keep = reason == CloseReason::normal && ctx.config.sandbox.keep_runtime_alive;
        try {
            release_sandbox(ctx, SandboxRecord{std::string(name), sandbox_id_, ctx.options.sid, {}, {}},
                            keep ? ReleaseMode::stop : ReleaseMode::remove);
        } catch (const std::exception& e) {
            ctx.unreleased(sandbox_id_, e.what());  // the sandbox's timeout remains the backstop
        }
    }

    /// Every sandbox (running or paused) whose metadata carries runbox's labels.
    template <class T>
    std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>& ctx) {
        std::vector<SandboxRecord> out;
        for_each_sandbox(ctx, std::string(labels::managed) + "=1", [&](const nlohmann::json& item) {
            const auto map = label_map(item.value("metadata", nlohmann::json::object()));
            if (is_runbox_managed(map))
                out.push_back(SandboxRecord::from_labels(std::string(name), text(item, "sandboxID"), text(item, "state"),
                                                         map.count("OpenHands_SID") ? map.at("OpenHands_SID") : "", map));
            return false;
        });
        return out;
    }

    /// Kills a sandbox (remove) or pauses it (stop), retrying within close_timeout. A sandbox
    /// already gone (404) or already paused (409) is done.
    template <class T>
    void release_sandbox(ProviderContext<T>& ctx, const SandboxRecord& sandbox, ReleaseMode mode) {
        RetryPolicy policy = retry_policy();
        policy.max_attempts = std::max(policy.max_attempts, 8);
        policy.max_elapsed = std::max(settings_.close_timeout, std::chrono::milliseconds(1));
        if (mode == ReleaseMode::stop) {
            api(ctx, "POST", "/sandboxes/" + sandbox.id + "/pause", "{}", policy, true, {404, 409});
        } else {
            api(ctx, "DELETE", "/sandboxes/" + sandbox.id, {}, policy, true, {404});
        }
    }

    /// The server start command line (reference §5), run by envd as `/bin/bash -l -c <line>`.
    std::string server_start_command(const Config& config, const RuntimeOptions& options) const {
        using detail::shell_quote;
        std::string cmd;
        if (!settings_.server_command) {
            cmd = "export MAMBA_ROOT_PREFIX=/openhands/micromamba && "
                  "/openhands/micromamba/bin/micromamba run -n openhands poetry config virtualenvs.path "
                  "/openhands/poetry && /openhands/micromamba/bin/micromamba run -n openhands poetry run python -u "
                  "-m openhands.runtime.action_execution_server";
        } else {
            cmd = *settings_.server_command;
        }
        cmd += " " + std::to_string(settings_.server_port) + " --working-dir " +
               shell_quote(config.workspace_mount_path_in_sandbox);
        if (!options.plugins.empty()) {
            cmd += " --plugins";
            for (const auto& plugin : options.plugins) cmd += " " + shell_quote(plugin.name);
        }
        const auto env = [&](const char* var) -> std::optional<std::string> {
            return config.env ? config.env(var) : std::nullopt;
        };
        const std::string user = env("RUNTIME_USERNAME").value_or(config.run_as_openhands ? "openhands" : "root");
        const std::string uid = env("RUNTIME_UID").value_or(config.run_as_openhands ? "1000" : "0");
        cmd += " --username " + shell_quote(user) + " --user-id " + shell_quote(uid);
        if (config.sandbox.browsergym_eval_env)
            cmd += " --browsergym-eval-env " + shell_quote(*config.sandbox.browsergym_eval_env);
        if (!config.enable_browser) cmd += " --no-enable-browser";
        return "mkdir -p " + shell_quote(config.workspace_mount_path_in_sandbox) + " && " + cmd;
    }

private:
    RetryPolicy retry_policy() const {
        RetryPolicy policy;
        policy.max_attempts = settings_.retry_max_attempts;
        policy.initial_backoff = settings_.retry_initial_backoff;
        policy.retry_statuses = {429, 502, 503, 504};
        policy.max_elapsed = std::max(settings_.request_timeout, std::chrono::milliseconds(1));
        return policy;
    }

    // A 429 means the request was refused, not performed: safe to repeat even for a create.
    RetryPolicy rate_limit_only_policy() const {
        RetryPolicy policy = retry_policy();
        policy.retry_statuses = {429};
        policy.retry_dropped_connections = false;
        return policy;
    }

    std::vector<std::string> secrets() const {
        std::vector<std::string> out{settings_.api_key};
        for (const auto* s : {&session_key_, &envd_token_, &traffic_token_})
            if (!s->empty()) out.push_back(*s);
        return out;
    }

    static std::string text(const nlohmann::json& j, const char* key, std::string fallback = {}) {
        return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : fallback;
    }

    template <class T>
    Response api(ProviderContext<T>& ctx, std::string method, const std::string& path, const std::string& body,
                 const RetryPolicy& policy, bool idempotent, std::initializer_list<int> accepted = {}) {
        Request request;
        request.method = std::move(method);
        request.url = settings_.api_url + path;
        request.body = body;
        request.timeout = settings_.request_timeout;
        request.idempotent = idempotent;
        if (!body.empty()) request.headers.set("Content-Type", "application/json");
        authorize(request);
        Response response = ctx.send(request, policy);
        if (std::find(accepted.begin(), accepted.end(), response.status) == accepted.end())
            raise_for_status(response, name, secrets());
        return response;
    }

    static nlohmann::json parse(const Response& response, const char* what) {
        auto json = runbox::detail::parse_untrusted_json(response.body);
        if (json.is_discarded())
            throw error(errc::bad_response, std::string("E2B answered ") + what + " that is not JSON", "e2b");
        return json;
    }

    // envd's URL for `path` and the headers every envd request carries (the SDK's, §2.4.1).
    Request envd_request(const std::string& path, std::string content_type, std::string body) const {
        Request request;
        request.method = "POST";
        std::string base = settings_.sandbox_url;
        Settings::replace_all(base, "{id}", sandbox_id_);
        request.url = base + path;
        request.body = std::move(body);
        request.timeout = settings_.request_timeout;
        request.headers.set("Content-Type", std::move(content_type));
        request.headers.set("Connect-Protocol-Version", "1");
        request.headers.set("X-Access-Token", envd_token_);
        request.headers.set("E2b-Sandbox-Id", sandbox_id_);
        request.headers.set("E2b-Sandbox-Port", std::to_string(envd_port));
        request.headers.set("User-Agent", "runbox/" + std::string(version_string));
        // envd before 0.4.0 needs a user on every call (the SDK's default user).
        if (!envd_version_.empty() && detail::compare_versions(envd_version_, "0.4.0") < 0)
            request.headers.set("Authorization", "Basic dXNlcjo=");  // base64("user:")
        return request;
    }

    // Walks GET /v2/sandboxes filtered by `metadata` (k=v pairs, each encoded as the SDK does),
    // following X-Next-Token, until `visit(item)` returns true (that item is returned).
    template <class T, class Visit>
    std::optional<nlohmann::json> for_each_sandbox(ProviderContext<T>& ctx, const std::string& metadata, Visit&& visit) {
        std::string token;
        for (int page = 0; page < 1000; ++page) {
            std::string path = "/v2/sandboxes?metadata=" + url_encode(metadata) + "&state=running,paused&limit=" +
                               std::to_string(settings_.list_limit);
            if (!token.empty()) path += "&nextToken=" + url_encode(token);
            const Response response = api(ctx, "GET", path, {}, retry_policy(), true);
            const auto items = parse(response, "a sandbox list");
            if (!items.is_array()) throw error(errc::bad_response, "the sandbox list is not an array", "e2b");
            for (const auto& item : items)
                if (item.is_object() && !text(item, "sandboxID").empty() && visit(item)) return item;
            const std::string next = response.headers.get("X-Next-Token").value_or(std::string());
            if (next.empty() || next == token || items.empty()) return std::nullopt;  // a cursor that does not move ends it
            token = next;
        }
        return std::nullopt;
    }

    static std::string metadata_pair(std::string_view key, std::string_view value) {
        return url_encode(key) + "=" + url_encode(value);
    }

    template <class T>
    std::optional<nlohmann::json> find_by_sid(ProviderContext<T>& ctx, const std::string& sid) {
        return for_each_sandbox(ctx, metadata_pair("OpenHands_SID", sid), [&](const nlohmann::json& item) {
            return label_map(item.value("metadata", nlohmann::json::object()))["OpenHands_SID"] == sid;
        });
    }

    // Resumes (or, when running, connects to) the sandbox with the configured timeout: E2B
    // resets a resumed sandbox's timeout to its default unless told.
    template <class T>
    nlohmann::json resume(ProviderContext<T>& ctx) {
        const std::string body = nlohmann::json{{"timeout", settings_.timeout_seconds}}.dump();
        return parse(api(ctx, "POST", "/v2/sandboxes/" + sandbox_id_ + "/connect", body, retry_policy(), true),
                     "a connect answer");
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
        metadata["OpenHands_SID"] = ctx.options.sid;
        nlohmann::json body = {{"templateID", settings_.template_id},
                               {"timeout", settings_.timeout_seconds},
                               {"metadata", metadata},
                               {"envVars", env}};
        if (!settings_.is_public) body["network"] = {{"allowPublicTraffic", false}};
        // Not idempotent: a create whose answer is lost is looked up by its token, never resent.
        auto sandbox = create_then_dedupe(
            // "idempotent" lets the 429-only policy repeat it: a 429 was refused, not performed.
            [&] { return parse(api(ctx, "POST", "/v2/sandboxes", body.dump(), rate_limit_only_policy(), true), "a create answer"); },
            [&]() -> std::optional<nlohmann::json> {
                ctx.status(RuntimeStatus::building_runtime, "The create answer was lost; looking the sandbox up...");
                auto found = for_each_sandbox(ctx, metadata_pair(labels::token, own.token),
                                              [](const nlohmann::json&) { return true; });
                if (!found) return std::nullopt;
                sandbox_id_ = text(*found, "sandboxID");
                return resume(ctx);  // the list has no access tokens; connect returns them
            });
        sandbox_id_ = text(sandbox, "sandboxID");
        if (sandbox_id_.empty()) throw error(errc::bad_response, "create answered no sandboxID", "e2b");
        created_ = true;
        ctx.created(sandbox_id_);
        return sandbox;
    }

    // Takes the tokens and version from a create/connect answer; refuses an envd older than 0.1.0.
    void read_sandbox(const nlohmann::json& sandbox) {
        if (!sandbox.is_object()) throw error(errc::bad_response, "E2B answered a sandbox that is not an object", "e2b");
        envd_token_ = text(sandbox, "envdAccessToken");
        traffic_token_ = text(sandbox, "trafficAccessToken");
        envd_version_ = text(sandbox, "envdVersion");
        if (envd_version_.empty() || detail::compare_versions(envd_version_, "0.1.0") < 0)
            throw error(errc::unsupported,
                        "sandbox " + sandbox_id_ + " runs envd " + (envd_version_.empty() ? "of no version" : envd_version_) +
                            ", older than 0.1.0: rebuild the template with a current E2B",
                        "e2b");
        if (!settings_.is_public && traffic_token_.empty() && !attached_)
            throw error(errc::bad_response, "sandbox " + sandbox_id_ + " is not public but has no trafficAccessToken", "e2b");
    }

    // The session key of a sandbox runbox did not create: envd's GET /envs has the create's envVars.
    template <class T>
    std::optional<std::string> sandbox_env(ProviderContext<T>& ctx) {
        Request request = envd_request("/envs", "application/json", {});
        request.method = "GET";
        request.headers.erase("Content-Type");
        Response response = ctx.send(request, retry_policy());
        raise_for_status(response, name, secrets());
        const auto env = parse(response, "an env map");
        const std::string key = text(env, "SESSION_API_KEY");
        return key.empty() ? std::nullopt : std::optional<std::string>(key);
    }

    // Whether the action server already runs in the sandbox (envd's process list).
    template <class T>
    bool find_server_process(ProviderContext<T>& ctx) {
        Response response = ctx.send(envd_request("/process.Process/List", "application/json", "{}"), retry_policy());
        raise_for_status(response, name, secrets());
        const auto list = parse(response, "a process list");
        const std::string marker = server_marker();
        if (!list.contains("processes") || !list["processes"].is_array()) return false;
        for (const auto& p : list["processes"]) {
            if (!p.is_object() || !p.contains("config") || !p["config"].is_object()) continue;
            const auto& args = p["config"].value("args", nlohmann::json::array());
            for (const auto& a : args)
                if (a.is_string() && a.get<std::string>().find(marker) != std::string::npos) return true;
        }
        return false;
    }

    std::string server_marker() const {
        if (settings_.server_command) {
            const auto& c = *settings_.server_command;
            return c.substr(0, c.find(' '));
        }
        return "openhands.runtime.action_execution_server";
    }

    // Starts the server with process.Process/Start and reads the stream on a thread: this call
    // returns once the `start` event came (the process runs on after the call returns); what
    // follows (an early `end`) is kept for early_failure().
    template <class T>
    void start_server(ProviderContext<T>& ctx) {
        ctx.status(RuntimeStatus::starting_runtime, "Starting the action execution server...");
        nlohmann::json envs = nlohmann::json::object();
        if (!session_key_.empty()) envs["SESSION_API_KEY"] = session_key_;
        const nlohmann::json start = {{"process",
                                       {{"cmd", "/bin/bash"},
                                        {"args", {"-l", "-c", server_start_command(ctx.config, ctx.options)}},
                                        {"envs", envs},
                                        {"cwd", settings_.server_cwd}}},
                                      {"stdin", false}};
        Request request = envd_request("/process.Process/Start", "application/connect+json", encode_frame(start.dump()));
        constexpr int keepalive_seconds = 50;
        request.headers.set("Keepalive-Ping-Interval", std::to_string(keepalive_seconds));
        // A read may wait through one keepalive interval; the stream is only needed while the
        // server comes up, so the whole exchange ends after the /alive window.
        request.timeout = std::chrono::seconds(keepalive_seconds) + settings_.request_timeout;
        request.deadline = std::chrono::steady_clock::now() + settings_.request_timeout + settings_.alive_timeout;
        request.idempotent = false;

        auto stream = std::make_shared<detail::ServerStream>();
        request.stop = stream->stop.get_token();
        stream_ = stream;
        T& transport = ctx.transport;
        const std::vector<std::string> hidden = secrets();
        stream->reader = std::thread([stream, request = std::move(request), &transport, hidden] {
            try {
                const Response response = send_framed(transport, request, [&](Frame& frame) {
                    return on_frame(*stream, frame);
                });
                if (!response.ok()) raise_for_status(response, name, hidden);
                std::lock_guard<std::mutex> lock(stream->mutex);
                if (!stream->pid && !stream->failure)
                    stream->failure = error(errc::bad_response, "the Start stream ended without a start event", "e2b");
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

    // One Connect message of the Start stream.
    static StreamAction on_frame(detail::ServerStream& stream, Frame& frame) {
        if (frame.compressed()) throw error(errc::bad_response, "envd sent a compressed message unasked", "e2b");
        const auto json = runbox::detail::parse_untrusted_json(frame.payload);
        if (!json.is_object()) throw error(errc::bad_response, "envd sent a message that is not a JSON object", "e2b");
        std::lock_guard<std::mutex> lock(stream.mutex);
        if (frame.end_stream()) {  // {} or {"error": {"code", "message"}}
            if (json.contains("error") && json["error"].is_object() && !stream.ended) {
                const auto& e = json["error"];
                stream.failure = error(errc_from_connect_code(text(e, "code", "unknown")),
                                       "envd: " + text(e, "message", "the Start stream failed"), "e2b");
            }
            stream.changed.notify_all();
            return StreamAction::done;
        }
        const auto& event = json.contains("event") && json["event"].is_object() ? json["event"] : json;
        if (event.contains("start") && event["start"].is_object()) {
            stream.pid = event["start"].value("pid", std::uint32_t{0});
        } else if (!stream.pid && !event.contains("keepalive")) {
            throw error(errc::bad_response, "envd's first event was not `start`", "e2b");
        } else if (event.contains("data") && event["data"].is_object()) {
            for (const char* fd : {"stdout", "stderr", "pty"}) {
                const std::string b64 = text(event["data"], fd);
                if (!b64.empty()) stream.append_output(runbox::detail::base64_decode(b64, "envd's process output"));
            }
        } else if (event.contains("end") && event["end"].is_object()) {
            const auto& end = event["end"];
            stream.ended = true;
            stream.exit_code = end.contains("exitCode") && end["exitCode"].is_number_integer() ? end["exitCode"].get<int>() : 0;
            stream.exit_status = text(end, "status");
            stream.changed.notify_all();
            return StreamAction::done;
        }
        stream.changed.notify_all();
        return StreamAction::next;
    }

    // Connect codes (lower-case names) as runbox errors.
    static errc errc_from_connect_code(std::string_view code) {
        if (code == "unauthenticated" || code == "permission_denied") return errc::auth_failed;
        if (code == "not_found") return errc::not_found;
        if (code == "already_exists" || code == "aborted" || code == "failed_precondition") return errc::conflict;
        if (code == "resource_exhausted") return errc::rate_limited;
        if (code == "deadline_exceeded") return errc::timeout;
        if (code == "unavailable") return errc::sandbox_gone;
        if (code == "unimplemented") return errc::unsupported;
        if (code == "invalid_argument" || code == "out_of_range") return errc::config_invalid;
        return errc::server_error;
    }

    void stop_stream() noexcept {
        if (!stream_) return;
        stream_->stop.request_stop();
        if (stream_->reader.joinable()) stream_->reader.join();
    }

    Settings settings_;
    std::string sandbox_id_;
    std::string session_key_;
    std::string envd_token_;
    std::string traffic_token_;
    std::string envd_version_;
    std::shared_ptr<detail::ServerStream> stream_;
    bool attached_ = false;
    bool created_ = false;
    bool closed_ = false;
};

}  // namespace runbox::e2b

namespace runbox {
/// Runtime over E2B sandboxes.
using E2BRuntime = Runtime<e2b::Auth, HttplibTransport>;
}  // namespace runbox
