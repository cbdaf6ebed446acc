// runbox/provider.hpp - the seam between Runtime and a provider (AuthPolicy).
//
// A provider is a type like runbox::daytona::Auth:
//
//   struct Auth {
//       static constexpr std::string_view name = "daytona";
//       using default_transport = runbox::HttplibTransport;
//       explicit Auth(const runbox::Config&);            // reads + checks credentials, no I/O
//       void authorize(runbox::Request&) const;           // adds credentials to a control-plane request
//                                                          // (called through ProviderContext::authorize)
//       template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&);
//       template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept;
//       // optional: static constexpr bool requires_http2 = true;
//       // optional: template <class T> void refresh(runbox::ProviderContext<T>&);  // renew a token first
//   };
//
// connect() creates or attaches to a sandbox, starts the action execution server in it and says
// where it listens; Runtime then waits for /alive and drives it. close() is idempotent and, with
// CloseReason::connect_failed, removes whatever connect() created (Runtime calls it whenever
// connect() fails, at any step). The concepts in contract.hpp check each clause.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "runbox/config.hpp"
#include "runbox/error.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/status.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

/// A plugin the action execution server should load (OpenHands: jupyter, agent_skills, vscode).
struct PluginRequirement {
    std::string name{};  ///< the plugin's name, e.g. "jupyter"
    bool operator==(const PluginRequirement&) const = default;  ///< same name
};

/// status_callback(level, status, message): level is "info" or "error".
using StatusCallback = std::function<void(std::string_view level, RuntimeStatus status, std::string_view message)>;

/// The seed's keyword arguments, with the same names and defaults, so that
/// `DaytonaRuntime rt(cfg, events, {.sid = "s1", .env_vars = {{"A", "1"}}});` reads like Python.
struct RuntimeOptions {
    // Every member has an initializer, so designated initializers that name only some of
    // them stay clean under -Wextra (-Wmissing-field-initializers).
    std::string sid = "default";  ///< session id: names the sandbox (and finds it again with attach_to_existing)
    std::vector<PluginRequirement> plugins{};  ///< plugins the server loads; "vscode" is added when headless_mode is false
    std::map<std::string, std::string> env_vars{};  ///< exported in the sandbox's shell by connect() (see Runtime::initial_env_vars)
    StatusCallback status_callback{};  ///< progress and errors as they happen; empty = none
    bool attach_to_existing = false;  ///< reuse the running sandbox named by `sid` instead of creating one
    bool headless_mode = true;  ///< false adds the vscode plugin (OpenHands' UI mode)
    std::optional<std::string> user_id{};  ///< OpenHands' user id; accepted for the seed's signature, not used by runbox
    /// Git provider name ("github", "gitlab", "bitbucket", "enterprise_sso") -> token.
    std::map<std::string, std::string> git_provider_tokens{};
};

/// Where the action execution server listens, as a provider's connect() reports it.
struct ServerEndpoint {
    std::string url{};                  ///< base URL, no trailing slash
    Headers headers{};                  ///< sent with every action-server request
    std::vector<std::string> secrets{};  ///< values never to show in errors (session keys, preview tokens)
    std::chrono::milliseconds alive_timeout{120000};      ///< bound of the /alive wait
    std::chrono::milliseconds alive_poll_interval{1000};  ///< pause between /alive attempts
    /// How the client retries idempotent action-server requests (and each /alive attempt) when
    /// the provider's proxy needs more than the default (Daytona's preview proxy answers 502
    /// while the server starts). nullopt = the client's default. The /alive wait caps its
    /// budget by the wait's one deadline.
    std::optional<RetryPolicy> retry{};
    /// The early-failure probe: called before every /alive attempt and between retries; an
    /// error means the server is known to have exited (E2B's `end` event, Modal's sandbox
    /// result) and the wait stops at once with it. Empty = nothing to ask.
    std::function<std::optional<error>()> probe{};
    /// True when connect() re-attached to a sandbox whose server was already running: the
    /// runtime then skips the initial environment setup (it was done when the server started).
    /// An attach that found nothing and created a sandbox reports false, so its env is set up.
    bool attached = false;
};

/// Why a provider's close() runs: it decides what the provider removes.
enum class CloseReason {
    normal,          ///< the user closed the runtime
    connect_failed,  ///< connect() failed: remove what it created
};

/// What a provider gets to work with during connect() and close().
template <class Transport>
struct ProviderContext {
    const Config& config;  ///< the runtime's configuration
    const RuntimeOptions& options;  ///< the runtime's options
    Transport& transport;  ///< the transport for control-plane requests (shared with the action client)
    std::function<void(RuntimeStatus, std::string_view)> set_status;  ///< reports progress; may be empty
    /// This connect's ownership labels and create token (Runtime sets it; without a Runtime the
    /// provider makes its own).
    const Ownership* ownership = nullptr;
    /// Called with the id of a sandbox this connect created (the lease file records it).
    std::function<void(const std::string& id)> on_created{};
    /// Called by close() for a sandbox it could not release, with the reason.
    std::function<void(const std::string& id, const std::string& why)> on_unreleased{};

    /// Applies the provider's credentials to a control-plane request (bind_credentials in
    /// contract.hpp sets it: the provider's optional refresh(ctx), then its authorize(request)).
    std::function<void(ProviderContext&, Request&)> credentials{};

    /// The provider's credentials on `request`, through the runtime's seam. Throws
    /// errc::unsupported when nothing bound them (a provider driven without Runtime or sweep
    /// must call bind_credentials first).
    void authorize(Request& request) {
        if (!credentials) throw error(errc::unsupported, "no credentials bound to this ProviderContext (runbox::bind_credentials)");
        credentials(*this, request);
    }

    /// One attempt.
    Response send(const Request& request) { return transport.send(request); }
    /// With retries, for idempotent requests only (RetryPolicy decides which statuses).
    Response send(const Request& request, const RetryPolicy& policy) { return send_with_retry(transport, request, policy); }
    /// Reports progress through set_status, if set.
    void status(RuntimeStatus value, std::string_view message) {
        if (set_status) set_status(value, message);
    }
    /// Reports a sandbox this connect created through on_created, if set.
    void created(const std::string& id) {
        if (on_created) on_created(id);
    }
    /// Reports a sandbox close() could not release through on_unreleased, if set.
    void unreleased(const std::string& id, const std::string& why) {
        if (on_unreleased) on_unreleased(id, why);
    }
};

/// Polls `done` every `interval` until it returns true or `timeout` passes; returns whether it
/// became true. Providers use it for their bounded state waits.
template <class Predicate>
bool poll_until(Predicate&& done, std::chrono::milliseconds timeout, std::chrono::milliseconds interval) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        if (done()) return true;
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return false;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(interval, deadline - now));
    }
}

}  // namespace runbox
