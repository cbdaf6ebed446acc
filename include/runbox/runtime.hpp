// runbox/runtime.hpp - Runtime<AuthPolicy, TransportPolicy>: one API over every provider.
//
//   runbox::EventStream events;
//   runbox::LocalRuntime rt(runbox::Config{}, events, {.sid = "session-001"});
//   rt.connect();                                   // create/attach, start the server, wait for /alive
//   auto obs = rt.run("echo hi");                   // CmdOutputObservation (or ErrorObservation)
//   rt.close();                                     // also done by the destructor
//
// Construction authenticates (the provider reads and checks its credentials) and does no network
// I/O. The runtime subscribes to the EventStream as "runtime": a runnable action published there
// is executed and its observation published back with `cause` = the action's id.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/client.hpp"
#include "runbox/config.hpp"
#include "runbox/contract.hpp"
#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/event_stream.hpp"
#include "runbox/events.hpp"
#include "runbox/provider.hpp"
#include "runbox/status.hpp"
#include "runbox/sweep.hpp"
#include "runbox/transport/httplib.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

namespace detail {

// What Runtime<A, T> does that depends on neither A nor T is written once here (impl/runtime.ipp):
// every runtime shares one copy, and in compiled mode it is compiled once.

/// A value as a JSON string literal with non-ASCII escaped (\uXXXX), as OpenHands exports env vars.
RUNBOX_DECL std::string json_string_literal(const std::string& value);

/// `text` with a-z upper-cased (env var names).
inline std::string upper_ascii(std::string text) {
    for (char& c : text) {
        if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    return text;
}

/// What Runtime::add_env_vars runs for `env` (reference §7.3): the Jupyter cell, and the bash
/// commands (export; persist in ~/.bashrc) with what each sets, for the error message.
struct EnvVarCommands {
    std::string ipython_code{};  ///< sets os.environ (run when the jupyter plugin is on)
    std::vector<std::pair<std::string, std::string>> commands{};  ///< (command, what it sets); empty for no vars
    std::string keys{};  ///< the upper-cased names, comma-separated
    /// The values, as given and as the commands quote them: an env var may carry a key, and a
    /// failing command's output (the server's text) may echo the command.
    std::vector<std::string> values{};
};

/// The commands that export `env` (names upper-cased) in the sandbox.
RUNBOX_DECL EnvVarCommands env_var_commands(const std::map<std::string, std::string>& env);

/// Throws errc::server_error naming `keys` and `what` unless `obs` is a command that exited 0;
/// the observation's text in the message is cut short and has every one of `secrets` redacted.
RUNBOX_DECL void check_env_result(const Observation& obs, const std::string& keys, const std::string& what,
                                  std::string_view provider, const std::vector<std::string>& secrets);

/// The env vars connect() exports (see Runtime::initial_env_vars).
RUNBOX_DECL std::map<std::string, std::string> initial_env_vars(const Config& config, const RuntimeOptions& options);

/// OpenHands' gates before an action reaches the server (reference §2.3/§7.7): the observation
/// when the gates answer it (not runnable, awaiting confirmation, rejected, MCP); otherwise
/// nullopt, with the default (non-blocking) timeout applied when the action has none. A blocking
/// command with no timeout is errc::config_invalid.
RUNBOX_DECL std::optional<Observation> gate_action(Action& action, const Config& config, std::string_view provider);

/// Publishes the observation that answers `action` on `stream` (cause = the action's id; a
/// NullObservation is not published).
RUNBOX_DECL void publish_observation(EventStream& stream, Observation observation, const Action& action);

/// The hidden command that sets git's user name and email from the config (reference §7.2).
RUNBOX_DECL std::string git_config_command(const Config& config);

}  // namespace detail

/// One sandbox session over any provider: `AuthPolicy` creates, attaches to and releases the sandbox
/// (providers/*.hpp), `TransportPolicy` carries HTTP. Construction does no network I/O; connect() starts the
/// session, close() (or the destructor) ends it. Errors are runbox::error; calls before connect() that need
/// the server throw errc::not_connected. Actions run one at a time. Move-only; a moved-from Runtime may only be
/// destroyed or assigned to.
template <class AuthPolicy, class TransportPolicy = HttplibTransport>
class Runtime {
    // Each clause of the contract has its own static_assert message (contract.hpp).
    static_assert(check_transport_policy<TransportPolicy>::value);
    static_assert(check_auth_policy<AuthPolicy, TransportPolicy>::value);

public:
    using auth_policy = AuthPolicy;  ///< the provider
    using transport_policy = TransportPolicy;  ///< the HTTP transport

    /// The seed's constructor: (config, event_stream, options).
    Runtime(const Config& config, EventStream& event_stream, RuntimeOptions options = {})
        : state_(std::make_unique<State>(config, event_stream, std::move(options))) {
        subscribe();
    }

    /// The positional form of the full seed signature, from `plugins` on (with sid alone, use
    /// `{.sid = "..."}`; a lone string here would make `{.sid = ...}` ambiguous).
    Runtime(const Config& config, EventStream& event_stream, std::string sid, std::vector<PluginRequirement> plugins,
            std::map<std::string, std::string> env_vars = {},
            StatusCallback status_callback = {}, bool attach_to_existing = false, bool headless_mode = true,
            std::optional<std::string> user_id = std::nullopt,
            std::map<std::string, std::string> git_provider_tokens = {})
        : Runtime(config, event_stream,
                  RuntimeOptions{std::move(sid), std::move(plugins), std::move(env_vars), std::move(status_callback),
                                 attach_to_existing, headless_mode, std::move(user_id),
                                 std::move(git_provider_tokens)}) {}

    Runtime(const Runtime&) = delete;
    Runtime& operator=(const Runtime&) = delete;
    Runtime(Runtime&&) noexcept = default;  ///< takes over the session; `other` is left moved-from
    /// Closes this runtime's session, then takes over `other`'s.
    Runtime& operator=(Runtime&& other) noexcept {
        if (this != &other) {
            close();
            state_ = std::move(other.state_);
        }
        return *this;
    }

    /// Closes (never throws here).
    ~Runtime() { close(); }

    /// Creates or attaches to the sandbox, starts the action execution server, waits until it
    /// answers /alive (bounded), then sets up the environment unless the provider re-attached to
    /// a running server (ServerEndpoint::attached). A failure at any
    /// step closes what was created (CloseReason::connect_failed) and rethrows.
    void connect() {
        State& s = state();
        std::lock_guard<std::mutex> lock(s.lifecycle_mutex);
        if (s.client) return;
        if (s.closed) throw error(errc::sandbox_gone, "runtime is closed", std::string(AuthPolicy::name));
        auto ctx = s.context();
        try {
            s.set_status(RuntimeStatus::starting_runtime, "Starting runtime...");
            s.begin_ownership(ctx);
            ServerEndpoint endpoint = s.auth.connect(ctx);
            s.client.emplace(s.transport, std::move(endpoint), std::string(AuthPolicy::name));
            s.set_status(RuntimeStatus::starting_runtime, "Waiting for the action execution server...");
            wait_until_alive(s);
            if (!s.client->endpoint().attached) setup_initial_env();
            s.set_status(RuntimeStatus::ready, "Runtime is ready.");
        } catch (const std::exception& e) {
            s.client.reset();
            clear_pool_of(s.transport);
            s.set_status(RuntimeStatus::error, e.what(), "error");
            s.auth.close(ctx, CloseReason::connect_failed);
            s.end_ownership();
            throw;
        }
    }

    /// Idempotent; stops/deletes the sandbox as the provider's close policy says. Never throws.
    void close() noexcept {
        if (!state_) return;
        State& s = *state_;
        try {
            std::lock_guard<std::mutex> lock(s.lifecycle_mutex);
            if (s.closed) return;
            s.closed = true;
            s.event_stream->unsubscribe("runtime", s.options.sid);
            s.client.reset();
            // Hang up idle keep-alive connections first: a server that is being stopped would
            // otherwise wait for them to time out (5 s in cpp-httplib and uvicorn).
            clear_pool_of(s.transport);
            auto ctx = s.context();
            s.auth.close(ctx, CloseReason::normal);
            s.end_ownership();
            s.set_status(RuntimeStatus::stopped, "Runtime closed.");
        } catch (...) {
            // close() must not throw (it runs from destructors); the provider already logged.
        }
    }

    bool connected() const noexcept { return state_ && state_->client.has_value(); }  ///< connect() succeeded and close() has not run
    /// The sandboxes close() (or a failed connect()) could not release: each was also reported
    /// through the status callback at error level. Empty when everything was released.
    std::vector<UnreleasedSandbox> unreleased() const {
        if (!state_) return {};
        std::lock_guard<std::mutex> lock(state_->unreleased_mutex);
        return state_->unreleased;
    }
    // On a moved-from Runtime these throw errc::not_connected (they are not noexcept: a
    // moved-from object would otherwise end the program in std::terminate).
    const std::string& sid() const { return state().options.sid; }  ///< the session id (RuntimeOptions::sid)
    const Config& config() const { return state().config; }  ///< the configuration it was built with
    const RuntimeOptions& options() const { return state().options; }  ///< the options it was built with
    /// The last status reported; nullopt before the first (and on a moved-from Runtime).
    std::optional<RuntimeStatus> status() const noexcept { return state_ ? state_->status : std::nullopt; }
    AuthPolicy& provider() { return state().auth; }  ///< the provider object (provider-specific queries, e.g. settings())
    TransportPolicy& transport() { return state().transport; }  ///< the transport every request goes through
    EventStream& event_stream() { return *state().event_stream; }  ///< the stream it subscribed to as "runtime"

    /// The action execution server's base URL (after connect()).
    std::string action_execution_server_url() const { return client().url(); }
    /// The key the server requires in X-Session-API-Key, if it requires one (after connect()).
    std::optional<std::string> session_api_key() const { return client().endpoint().headers.get("X-Session-API-Key"); }

    // ---- actions ----------------------------------------------------------------------------

    /// Runs any action with OpenHands' gates (reference §2.3/§7.7): non-runnable -> think/null
    /// observation, awaiting confirmation -> null, rejected -> user_rejected; otherwise the action
    /// (with the default timeout applied when it has none) goes to the server.
    Observation run_action(Action action) { return dispatch(state(), std::move(action)); }

    Observation run(CmdRunAction action) { return run_action(std::move(action)); }  ///< run_action() for a shell command
    /// run("ls -l"): a command with the default (non-blocking) timeout.
    Observation run(std::string command) {
        CmdRunAction action;
        action.command = std::move(command);
        return run_action(std::move(action));
    }
    Observation run_ipython(IPythonRunCellAction action) { return run_action(std::move(action)); }  ///< run_action() for a Jupyter cell (needs the jupyter plugin)
    Observation read(FileReadAction action) { return run_action(std::move(action)); }  ///< run_action() for a file read
    /// Reads the whole file at `path` (a FileReadAction with defaults).
    Observation read(std::string path) {
        FileReadAction action;
        action.path = std::move(path);
        return run_action(std::move(action));
    }
    Observation write(FileWriteAction action) { return run_action(std::move(action)); }  ///< run_action() for a file write
    /// Writes `content` to `path`, replacing the file (a FileWriteAction with defaults).
    Observation write(std::string path, std::string content) {
        FileWriteAction action;
        action.path = std::move(path);
        action.content = std::move(content);
        return run_action(std::move(action));
    }
    Observation edit(FileEditAction action) { return run_action(std::move(action)); }  ///< run_action() for an edit (OpenHands' str_replace_editor commands)
    Observation browse(BrowseURLAction action) { return run_action(std::move(action)); }  ///< run_action() for a page visit (needs a browser in the sandbox)
    Observation browse_interactive(BrowseInteractiveAction action) { return run_action(std::move(action)); }  ///< run_action() for browser actions

    /// Uploads `host_src` into the sandbox directory `sandbox_dest`; a host directory needs `recursive` (see
    /// ActionExecutionClient::copy_to).
    void copy_to(const std::filesystem::path& host_src, const std::string& sandbox_dest, bool recursive = false) {
        client().copy_to(host_src, sandbox_dest, recursive);
    }
    /// Downloads `sandbox_path` as a zip to a new local file and returns its path; the caller owns (and
    /// deletes) the file. At most `max_bytes` (errc::quota_exceeded past it, and no file).
    std::filesystem::path copy_from(const std::string& sandbox_path, std::uintmax_t max_bytes = default_max_copy_from_bytes) {
        return client().copy_from(sandbox_path, max_bytes);
    }
    /// Names in `path` (the server's working directory when nullopt), directories first with a trailing '/'.
    std::vector<std::string> list_files(const std::optional<std::string>& path = std::nullopt) {
        return client().list_files(path);
    }
    nlohmann::json server_info() { return client().server_info(); }  ///< GET /server_info: {"uptime", "idle_time", "resources"}
    bool check_if_alive() noexcept { return state_ && state_->client && state_->client->is_alive(); }  ///< whether the server answers /alive now; false when not connected
    /// The VS Code connection token; "" when the vscode plugin is off or the server has none.
    std::string get_vscode_token() {
        return vscode_enabled() ? client().get_vscode_token() : std::string();
    }
    /// `<server>/?tkn=<token>&folder=<workspace>` when the vscode plugin is on and a token exists.
    std::optional<std::string> vscode_url() {
        const std::string token = get_vscode_token();
        if (token.empty()) return std::nullopt;
        return client().url() + "/?tkn=" + token + "&folder=" + state().config.workspace_mount_path_in_sandbox;
    }

    /// Exports `env` in the sandbox's bash and persists it in ~/.bashrc (reference §7.3).
    void add_env_vars(const std::map<std::string, std::string>& env) {
        const detail::EnvVarCommands plan = detail::env_var_commands(env);
        if (has_plugin("jupyter")) {
            IPythonRunCellAction cell;
            cell.code = plan.ipython_code;
            run_action(std::move(cell));
        }
        std::vector<std::string> secrets = plan.values;
        const auto& endpoint_secrets = client().endpoint().secrets;
        secrets.insert(secrets.end(), endpoint_secrets.begin(), endpoint_secrets.end());
        for (const auto& [command, what] : plan.commands) {
            CmdRunAction action;
            action.command = command;
            action.hidden = true;
            detail::check_env_result(run_action(std::move(action)), plan.keys, what, AuthPolicy::name, secrets);
        }
    }

    /// The env vars connect() exports (reference §7.1 step 5): SANDBOX_ENV_<NAME> from the
    /// environment, ENABLE_AUTO_LINT, the env_vars option, then `<provider>_token` for git tokens.
    std::map<std::string, std::string> initial_env_vars() const {
        const State& s = state();
        return detail::initial_env_vars(s.config, s.options);
    }

private:
    struct State {
        State(const Config& c, EventStream& stream, RuntimeOptions o)
            : config(c), event_stream(&stream), options(std::move(o)), auth(config), transport(config.transport) {
            if (!options.headless_mode && !has("vscode")) options.plugins.push_back({"vscode"});
        }

        bool has(std::string_view plugin) const {
            for (const auto& p : options.plugins) {
                if (p.name == plugin) return true;
            }
            return false;
        }

        ProviderContext<TransportPolicy> context() {
            ProviderContext<TransportPolicy> ctx{
                config, options, transport,
                [this](RuntimeStatus value, std::string_view message) { set_status(value, message); }};
            bind_credentials(ctx, auth);  // the provider's authorize() is applied through the context
            ctx.ownership = ownership ? &*ownership : nullptr;
            ctx.on_created = [this](const std::string& id) {
                if (!lease || !ownership) return;
                try {
                    lease->put(lease_entry(id));
                } catch (const error&) {
                    // The labels still find it; the lease file is a second way.
                }
            };
            ctx.on_unreleased = [this](const std::string& id, const std::string& why) {
                {
                    std::lock_guard<std::mutex> lock(unreleased_mutex);
                    unreleased.push_back({std::string(AuthPolicy::name), id, why});
                }
                set_status(RuntimeStatus::error, "could not release sandbox " + id + ": " + why, "error");
            };
            return ctx;
        }

        LeaseEntry lease_entry(const std::string& id) const {
            return LeaseEntry{std::string(AuthPolicy::name), ownership->token, options.sid, ownership->host,
                              ownership->pid, ownership->created_ms, id};
        }

        // Before a connect: reap what dead processes left in the lease file, then take this
        // connect's ownership (labels, a token held while this runtime lives, a lease entry
        // written before the create is sent).
        void begin_ownership(ProviderContext<TransportPolicy>& ctx) {
            if constexpr (ProviderSweeps<AuthPolicy, TransportPolicy>) {
                if (config.runbox_lease_file) {
                    lease.emplace(*config.runbox_lease_file);
                    try {
                        SweepOptions reap;
                        reap.older_than = std::chrono::milliseconds::max();
                        reap.dry_run = false;
                        SweepReport report;
                        detail::sweep_with(auth, ctx, reap, report);
                        for (const auto& a : report.actions) {
                            set_status(RuntimeStatus::starting_runtime,
                                       (a.done ? "Released sandbox " : "Could not release sandbox ") + a.sandbox.id +
                                           " left by a process that is gone.");
                        }
                    } catch (const error& e) {
                        set_status(RuntimeStatus::starting_runtime, std::string("Lease file not reaped: ") + e.what());
                    }
                }
            }
            ownership = Ownership::make(config, detail::random_hex(12));
            hold = LiveHold(ownership->token);
            ctx.ownership = &*ownership;
            if (lease) lease->put(lease_entry({}));
        }

        // After close or a failed connect: the lease entry goes unless something was left.
        void end_ownership() noexcept {
            try {
                bool left = false;
                {
                    std::lock_guard<std::mutex> lock(unreleased_mutex);
                    left = !unreleased.empty();
                }
                if (lease && ownership && !left) lease->remove(ownership->token);
            } catch (...) {
            }
            hold.reset();
        }

        void set_status(RuntimeStatus value, std::string_view message, std::string_view level = "info") {
            status = value;
            if (options.status_callback) {
                try {
                    options.status_callback(level, value, message);
                } catch (...) {
                    // A throwing user callback must not break the runtime's own bookkeeping.
                }
            }
        }

        Config config;
        EventStream* event_stream;
        RuntimeOptions options;
        AuthPolicy auth;
        TransportPolicy transport;
        std::optional<ActionExecutionClient<TransportPolicy>> client;
        std::optional<RuntimeStatus> status;
        std::mutex lifecycle_mutex;
        bool closed = false;
        std::optional<Ownership> ownership;
        LiveHold hold;
        std::optional<LeaseFile> lease;
        mutable std::mutex unreleased_mutex;
        std::vector<UnreleasedSandbox> unreleased;
    };

    State& state() {
        if (!state_) throw error(errc::not_connected, "use of a moved-from Runtime");
        return *state_;
    }
    const State& state() const {
        if (!state_) throw error(errc::not_connected, "use of a moved-from Runtime");
        return *state_;
    }

    ActionExecutionClient<TransportPolicy>& client() {
        State& s = state();
        if (!s.client) throw error(errc::not_connected, "runtime is not connected: call connect() first", std::string(AuthPolicy::name));
        return *s.client;
    }
    const ActionExecutionClient<TransportPolicy>& client() const {
        const State& s = state();
        if (!s.client) throw error(errc::not_connected, "runtime is not connected: call connect() first", std::string(AuthPolicy::name));
        return *s.client;
    }

    bool has_plugin(std::string_view name) const { return state().has(name); }
    bool vscode_enabled() const { return has_plugin("vscode"); }

    // One deadline bounds the wait; the endpoint's probe can end it early (client.hpp).
    static void wait_until_alive(State& s) { s.client->wait_until_alive(); }

    // Reference §7.2.
    void setup_initial_env() {
        State& s = state();
        add_env_vars(initial_env_vars());
        if (!s.config.sandbox.runtime_startup_env_vars.empty()) add_env_vars(s.config.sandbox.runtime_startup_env_vars);
        CmdRunAction git;
        git.command = detail::git_config_command(s.config);
        git.hidden = true;
        try {
            run_action(std::move(git));  // OpenHands only logs a failure here
        } catch (const error&) {
        }
    }

    void subscribe() {
        State* s = state_.get();
        s->event_stream->subscribe(
            "runtime", [this_state = s](const Event& event) { on_event(*this_state, event); }, s->options.sid);
    }

    // Reference §7.6: actions from any source are run; the observation is published with
    // cause = the action's id; NullObservations are not published; failures become statuses.
    static void on_event(State& s, const Event& event) {
        const auto* action = std::get_if<Action>(&event);
        if (action == nullptr || !s.client) return;
        try {
            detail::publish_observation(*s.event_stream, dispatch(s, *action), *action);
        } catch (const error& e) {
            const bool disconnected = e.code() == errc::transport || e.code() == errc::sandbox_gone;
            s.set_status(disconnected ? RuntimeStatus::error_runtime_disconnected : RuntimeStatus::error, e.what(),
                         "error");
        } catch (const std::exception& e) {
            s.set_status(RuntimeStatus::error, e.what(), "error");
        }
    }

    // The gates of reference §2.3/§7.7, shared by run_action and the event path.
    static Observation dispatch(State& s, Action action) {
        if (auto answer = detail::gate_action(action, s.config, AuthPolicy::name)) return std::move(*answer);
        if (!s.client) {
            throw error(errc::not_connected, "runtime is not connected: call connect() first", std::string(AuthPolicy::name));
        }
        return s.client->execute_action(action);
    }

    std::unique_ptr<State> state_;
};

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/runtime.ipp"
#endif
