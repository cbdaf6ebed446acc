// runbox/providers/detail/cloud_api.hpp - what every cloud provider's control plane shares.
//
// A cloud provider (Daytona, Runloop; E2B and Modal next) is its own API calls and state names
// on top of the same skeleton, written here once:
//   - SettingsReader: providers.<name>.<key> from Config, else the variable <PREFIX><KEY>, with
//     typed errors (errc::config_invalid) that name the key and the variable;
//   - ApiSettings / ServerLaunch: the settings every provider has (key, timeouts, retries; the
//     action server's command, cwd, port) and the server command line, every argument quoted
//     by runbox::detail::shell_quote;
//   - Replay: how a call may be repeated (safe / only when refused with 429 / never), mapped
//     onto RetryPolicy by Api;
//   - Api<T>: base URL, the provider's credentials (applied through ProviderContext::authorize,
//     i.e. the runtime's seam), per-call timeout, raise-for-status with secrets redacted, JSON
//     parsing with errc::bad_response, bounded state waits under one Deadline;
//   - paginate(): cursor pagination with a page bound and a cursor that must move;
//   - endpoint helpers and release_or_report() for close().
// Nothing here is HTTP/JSON-only by necessity: a gRPC provider (Modal) uses SettingsReader,
// ServerLaunch, Deadline, Replay's policies and release_or_report with its own calls.
#pragma once

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/client.hpp"  // detail::random_hex
#include "runbox/config.hpp"
#include "runbox/detail/linkage.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/detail/shell.hpp"
#include "runbox/error.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/provider.hpp"
#include "runbox/transport/transport.hpp"
#include "runbox/version.hpp"

namespace runbox::cloud {

/// The env var that gives the action server its session key (runbox-server and OpenHands read it).
inline constexpr std::string_view session_key_env = "SESSION_API_KEY";
/// The header that carries it.
inline constexpr std::string_view session_key_header = "X-Session-API-Key";
/// OpenHands' launcher of the action execution server (server_command replaces it).
inline constexpr std::string_view openhands_launcher =
    "/openhands/micromamba/bin/micromamba run -n openhands poetry run python -u -m "
    "openhands.runtime.action_execution_server";

/// `text` without trailing slashes (base URLs are joined with paths that start with '/').
inline std::string trim_slashes(std::string text) {
    while (!text.empty() && text.back() == '/') text.pop_back();
    return text;
}

/// j[key] when it is a string, else `fallback` (provider answers are untrusted: no throwing get).
RUNBOX_DECL std::string string_field(const nlohmann::json& j, std::string_view key, std::string fallback = {});

/// The credentials most control planes take: `Authorization: Bearer <key>`, runbox's
/// User-Agent, and `Accept: application/json` unless the request chose another.
RUNBOX_DECL void authorize_bearer(Request& request, const std::string& key);

// ---- settings -------------------------------------------------------------------------------

/// One provider's settings: Config::providers[provider][key], else the environment variable
/// `<env_prefix><KEY>` (key upper-cased) unless the key has none (`env = false`). Malformed
/// values are errc::config_invalid naming the key and the variable.
class SettingsReader {
public:
    /// E.g. SettingsReader(config, "daytona", "DAYTONA_").
    SettingsReader(const Config& config, std::string provider, std::string env_prefix)
        : config_(config), provider_(std::move(provider)), prefix_(std::move(env_prefix)) {}

    const Config& config() const noexcept { return config_; }
    const std::string& provider() const noexcept { return provider_; }

    /// The environment variable of `key`: "server_port" -> "DAYTONA_SERVER_PORT".
    std::string env_name(std::string_view key) const;
    std::optional<std::string> text(std::string_view key, bool env = true) const {
        return config_.setting(provider_, key, var(key, env));
    }
    std::string text(std::string_view key, std::string fallback, bool env = true) const {
        return text(key, env).value_or(std::move(fallback));
    }
    /// A setting that must be present (the message names providers.<p>.<key> and the variable).
    std::string required(std::string_view key) const { return config_.required_setting(provider_, key, env_name(key)); }
    bool flag(std::string_view key, bool fallback, bool env = true) const {
        return config_.flag_setting(provider_, key, var(key, env), fallback);
    }
    int integer(std::string_view key, int fallback, int minimum = 0, bool env = true) const {
        return config_.integer_setting(provider_, key, var(key, env), fallback, minimum);
    }
    std::chrono::milliseconds millis(std::string_view key, std::chrono::milliseconds fallback, bool env = true) const {
        return config_.millis_setting(provider_, key, var(key, env), fallback);
    }
    /// An http(s) URL without trailing slashes.
    std::string url(std::string_view key, std::string fallback, bool env = true) const;
    /// One of `choices`.
    std::string choice(std::string_view key, std::string fallback, std::initializer_list<std::string_view> choices,
                       bool env = true) const;

private:
    std::string var(std::string_view key, bool env) const { return env ? env_name(key) : std::string(); }

    const Config& config_;
    std::string provider_;
    std::string prefix_;
};

/// The control-plane settings every cloud provider has (keys as in the providers' tables).
struct ApiSettings {
    std::string api_key{};
    std::chrono::milliseconds poll_interval{1000};          ///< poll_interval_ms: least time between state polls
    std::chrono::milliseconds start_timeout{120000};        ///< start_timeout_ms: bound of every state wait
    std::chrono::milliseconds alive_timeout{120000};        ///< alive_timeout_ms: bound of the /alive wait
    std::chrono::milliseconds alive_poll_interval{1000};    ///< alive_poll_interval_ms (no variable)
    std::chrono::milliseconds request_timeout{60000};       ///< request_timeout_ms: one API request
    std::chrono::milliseconds retry_initial_backoff{500};   ///< retry_initial_backoff_ms (no variable)
    int retry_max_attempts = 4;                             ///< retry_max_attempts (no variable)
    std::chrono::milliseconds close_timeout{30000};         ///< close_timeout_ms: bound of close()'s retries

    /// Reads every key above (api_key required unless `with_key` is false: Modal's credentials
    /// are a token pair); the current values are the defaults.
    void read_api(const SettingsReader& r, bool with_key = true);

    /// An endpoint at `url` with the API key as a secret and the /alive bounds set.
    ServerEndpoint endpoint(std::string url) const;

    /// The retry budget of connect()'s calls: retry_max_attempts, all within start_timeout.
    RetryPolicy start_retry(RetryPolicy p) const {
        p.max_attempts = retry_max_attempts;
        p.initial_backoff = retry_initial_backoff;
        p.max_elapsed = std::max(start_timeout, std::chrono::milliseconds(1));
        return p;
    }
    /// The budget of close() and sweep: at least 8 attempts, all within close_timeout.
    RetryPolicy closing_retry(RetryPolicy p) const {
        p.max_attempts = std::max(p.max_attempts, 8);
        p.max_elapsed = std::max(close_timeout, std::chrono::milliseconds(1));
        return p;
    }
};

/// Sets a header the action server's proxy needs and records its secret (never shown in errors).
RUNBOX_DECL void add_secret_header(ServerEndpoint& endpoint, std::string name, std::string value, std::string secret);

/// The user the action server runs commands as (`--username`, `--user-id`).
struct ServerUser {
    std::string name = "openhands";
    std::string id = "1000";
    /// Reference §5: RUNTIME_USERNAME / RUNTIME_UID, else by run_as_openhands.
    static ServerUser from(const Config& config);
};

/// How the action server is launched in a sandbox (keys server_command, server_cwd, server_port).
struct ServerLaunch {
    /// Shell text that replaces OpenHands' launcher (e.g. "runbox-server"); the operator's own
    /// command, so it is not quoted. Every argument after it is.
    std::optional<std::string> server_command{};
    std::string server_cwd = "/openhands/code";
    int server_port = 4444;

    /// Reads server_command, server_cwd and server_port; the current values are the defaults.
    void read_launch(const SettingsReader& r);

    /// `cd <cwd>`, quoted.
    std::string cd_command() const;

    /// The arguments after the launcher, reference §5: `<port> --working-dir <ws> [--plugins
    /// <p>...] --username <u> --user-id <id> [--browsergym-eval-env <e>] [--no-enable-browser]`,
    /// unquoted (an argv; Modal takes the entrypoint as one).
    std::vector<std::string> server_args(const Config& config, const RuntimeOptions& options, const ServerUser& user) const;

    /// `<launcher> <server_args...>`, each argument quoted (the launcher is the operator's text).
    std::string command_line(const Config& config, const RuntimeOptions& options, const ServerUser& user) const;
};

/// A provider's Settings (derived from ApiSettings and ServerLaunch) with the shared keys read;
/// the provider reads its own keys next.
template <class S>
S read_shared_settings(const SettingsReader& r) {
    S s;
    s.read_api(r);
    s.read_launch(r);
    return s;
}

/// The action server's session key for a sandbox runbox created: HMAC-SHA256 of the sandbox's
/// create token (the runbox_token label, lifecycle.hpp) under the provider's API key, in hex. A
/// later process that holds the same key and finds the sandbox by its labels derives the same
/// session key, so `runbox exec --sid S` can attach to a kept sandbox without a setting; without
/// the API key the label alone gives nothing. Empty when either input is.
RUNBOX_DECL std::string derived_session_key(std::string_view api_key, std::string_view create_token);

/// The sandbox environment every provider sets at create: the configured startup vars, `extra`
/// (the user's env_vars where the provider sends them at create), DEBUG, and the session key.
RUNBOX_DECL nlohmann::json startup_env(const Config& config, const std::map<std::string, std::string>& extra,
                                       const std::string& session_key);

/// What one connect knows of its sandbox; close() acts once per connect.
struct SandboxHandle {
    std::string id{};           ///< the provider's id (empty before create/attach)
    std::string session_key{};  ///< the action server's key (SESSION_API_KEY)
    bool attached = false;      ///< found by attach, not created by this connect
    bool closed = false;

    /// Starts a connect: forgets the previous one, keeps `key` as the session key.
    void reset(std::string key = {}) {
        *this = SandboxHandle{};
        session_key = std::move(key);
    }
    /// The first close() after a connect that got a sandbox: true (and marks it closed).
    bool begin_close() {
        if (closed) return false;
        closed = true;
        return !id.empty();
    }
};

/// The ownership labels of this connect (the runtime's, else fresh ones for a provider driven alone).
template <class T>
Ownership ownership_of(const ProviderContext<T>& ctx) {
    return ctx.ownership ? *ctx.ownership : Ownership::make(ctx.config, runbox::detail::random_hex(12));
}

// ---- time -----------------------------------------------------------------------------------

/// One deadline for a whole wait: every request and pause inside it is capped by remaining().
class Deadline {
public:
    explicit Deadline(std::chrono::milliseconds bound)
        : bound_(bound), end_(std::chrono::steady_clock::now() + bound) {}
    std::chrono::milliseconds bound() const noexcept { return bound_; }
    bool expired() const noexcept { return std::chrono::steady_clock::now() >= end_; }
    /// What is left, at least 1 ms (a zero budget would mean "unbounded" to some callees).
    std::chrono::milliseconds remaining() const noexcept {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(end_ - std::chrono::steady_clock::now());
        return std::max(left, std::chrono::milliseconds(1));
    }
    /// Sleeps `pause`, never past the deadline.
    void sleep_for(std::chrono::steady_clock::duration pause) const {
        const auto left = end_ - std::chrono::steady_clock::now();
        if (left > std::chrono::steady_clock::duration::zero()) std::this_thread::sleep_for(std::min(pause, left));
    }

private:
    std::chrono::milliseconds bound_;
    std::chrono::steady_clock::time_point end_;
};

// ---- replay classes and the control-plane client ---------------------------------------------

/// How a call may be repeated when it fails before its answer is known.
enum class Replay {
    safe,          ///< reads and converging state changes: retried on the retry statuses and dropped connections
    refused_only,  ///< creates: retried only when refused with 429 (the request was not performed)
    never,         ///< one attempt (commands in the sandbox)
};

/// What differs between providers' control planes apart from their calls.
struct ApiStyle {
    std::vector<int> retry_statuses{429, 502, 503, 504};
    /// Content-Type: application/json on every non-GET request (else only when there is a body).
    bool content_type_on_every_write = false;
    /// JSON fields of this API's requests and answers that hold secrets (tunnel tokens, the
    /// session key in a create's environment): set as Request::secret_fields on every call, so a
    /// RecordingTransport redacts them before it writes.
    std::vector<std::string> secret_fields{};
};

/// Options of one call.
struct CallOptions {
    std::chrono::milliseconds timeout{0};  ///< 0 = ApiSettings::request_timeout
    std::vector<int> accept{};             ///< non-2xx statuses returned instead of raised (e.g. 408 of a long-poll)
    const Deadline* within = nullptr;      ///< caps the retry budget of this call
};

/// One provider's control plane during one connect/close: `base_url + path`, the provider's
/// credentials applied through the context (ProviderContext::authorize), the replay class's
/// RetryPolicy, and errors tagged with the provider and redacted.
template <class T>
class Api {
public:
    Api(ProviderContext<T>& ctx, std::string provider, std::string base_url, const ApiSettings& settings,
        ApiStyle style = {}, std::vector<std::string> secrets = {})
        : ctx_(ctx), provider_(std::move(provider)), base_url_(trim_slashes(std::move(base_url))),
          settings_(settings), style_(std::move(style)), secrets_(std::move(secrets)) {
        secrets_.push_back(settings_.api_key);
        base_ = settings_.start_retry(base_);
        base_.retry_statuses = style_.retry_statuses;
    }

    /// The same client for close() and sweep (ApiSettings::closing_retry).
    Api closing() const {
        Api copy = *this;
        copy.base_ = settings_.closing_retry(copy.base_);
        return copy;
    }

    ProviderContext<T>& context() noexcept { return ctx_; }
    const std::string& provider() const noexcept { return provider_; }
    const std::vector<std::string>& secrets() const noexcept { return secrets_; }
    /// A secret learned from a response (a tunnel token): redacted from later errors.
    void add_secret(std::string secret) {
        if (!secret.empty()) secrets_.push_back(std::move(secret));
    }

    /// The RetryPolicy of a replay class.
    RetryPolicy policy(Replay replay) const {
        if (replay == Replay::never) return RetryPolicy::none();
        RetryPolicy p = base_;
        if (replay == Replay::refused_only) {
            p.retry_statuses = {429};
            p.retry_dropped_connections = false;
            p.honor_should_retry = false;
        }
        return p;
    }

    /// Sends `request` (an absolute URL) with credentials and the replay class's retries; raises
    /// every status outside 2xx/3xx and `options.accept`.
    Response send(Request request, Replay replay, const CallOptions& options = {}) {
        request.timeout = options.timeout.count() > 0 ? options.timeout : settings_.request_timeout;
        request.idempotent = replay != Replay::never;
        request.secret_fields.insert(request.secret_fields.end(), style_.secret_fields.begin(), style_.secret_fields.end());
        const bool writes = !detail::iequals(request.method, "GET");
        if (!request.headers.contains("Content-Type") &&
            (!request.body.empty() || (writes && style_.content_type_on_every_write)))
            request.headers.set("Content-Type", "application/json");
        ctx_.authorize(request);
        RetryPolicy p = policy(replay);
        if (options.within) p.max_elapsed = std::min(p.max_elapsed, options.within->remaining());
        Response response = ctx_.send(request, p);
        if (std::find(options.accept.begin(), options.accept.end(), response.status) == options.accept.end())
            raise_for_status(response, provider_, secrets_);
        return response;
    }

    /// `method base_url+path` with an optional JSON body.
    Response call(std::string method, const std::string& path, const std::optional<nlohmann::json>& body,
                  Replay replay, const CallOptions& options = {}) {
        return send(to(std::move(method), base_url_ + path, body), replay, options);
    }

    /// call() and parse the answer as JSON.
    nlohmann::json json(std::string method, const std::string& path, const std::optional<nlohmann::json>& body,
                        Replay replay, const CallOptions& options = {}) {
        return parse(call(std::move(method), path, body, replay, options));
    }

    /// A request to an absolute URL (another host of the provider, e.g. Daytona's toolbox).
    static Request to(std::string method, std::string url, const std::optional<nlohmann::json>& body = std::nullopt) {
        Request request;
        request.method = std::move(method);
        request.url = std::move(url);
        if (body) request.body = body->dump();
        return request;
    }

    /// The body as JSON (depth and size bounded); errc::bad_response naming the provider otherwise.
    nlohmann::json parse(const Response& response) const {
        runbox::detail::json_failure failure{};
        auto json = runbox::detail::parse_untrusted_json(response.body, {}, &failure);
        if (json.is_discarded())
            throw error(errc::bad_response,
                        provider_ + " answered a body that " + runbox::detail::json_failure_text(failure), provider_,
                        response.status);
        return json;
    }

    /// parse() that also requires an object.
    nlohmann::json parse_object(const Response& response) const {
        auto json = parse(response);
        if (!json.is_object())
            throw error(errc::bad_response, provider_ + " answered a body that is not a JSON object", provider_,
                        response.status);
        return json;
    }

    /// A bounded state wait: step(deadline) returns the value when the state is reached (and
    /// throws when it can never be), nullopt to poll again; calls start at least poll_interval
    /// apart (a long-poll that took that long needs no pause). Past the deadline:
    /// errc::timeout "<what()> within <bound> ms".
    template <class Step, class What>
    auto wait(std::chrono::milliseconds bound, Step&& step, What&& what) {
        const Deadline deadline(bound);
        for (;;) {
            const auto started = std::chrono::steady_clock::now();
            if (auto value = step(deadline)) return std::move(*value);
            if (deadline.expired())
                throw error(errc::timeout, what() + " within " + std::to_string(bound.count()) + " ms", provider_);
            const auto spent = std::chrono::steady_clock::now() - started;
            if (spent < settings_.poll_interval) deadline.sleep_for(settings_.poll_interval - spent);
        }
    }

private:
    ProviderContext<T>& ctx_;
    std::string provider_;
    std::string base_url_;
    const ApiSettings& settings_;
    ApiStyle style_;
    std::vector<std::string> secrets_;
    RetryPolicy base_;
};

/// Walks a cursor-paginated list: fetch(cursor) gets one page (nullopt cursor = the first),
/// visit(page) handles it and returns the next cursor (nullopt = the end). At most `max_pages`
/// pages; a cursor that does not move ends the walk (a server must not loop us forever).
template <class Fetch, class Visit>
void paginate(Fetch&& fetch, Visit&& visit, int max_pages = 1000) {
    std::optional<std::string> cursor;
    for (int page = 0; page < max_pages; ++page) {
        const nlohmann::json json = fetch(cursor);
        std::optional<std::string> next = visit(json);
        if (!next || next->empty() || next == cursor) return;
        cursor = std::move(next);
    }
}

/// Runs release() and swallows "already gone" (errc::not_found): releasing converges.
template <class F>
void unless_gone(F&& release) {
    try {
        release();
    } catch (const error& e) {
        if (e.code() != errc::not_found) throw;
    }
}

/// close()'s skeleton: release() within its own retries; what still fails is reported through
/// the context (Runtime::unreleased()), never thrown and never dropped.
template <class T, class F>
void release_or_report(ProviderContext<T>& ctx, const std::string& id, F&& release) noexcept {
    try {
        release();
    } catch (const std::exception& e) {
        ctx.unreleased(id, e.what());
    } catch (...) {
        ctx.unreleased(id, "unknown error");
    }
}

}  // namespace runbox::cloud

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/providers/detail/impl/cloud_api.ipp"
#endif
