/// \file
/// the local provider: runbox's own action server on this machine.
///
/// The default provider: no credentials, no setup. connect() starts the action execution server
/// on 127.0.0.1 with a random port and a random session API key, in a workspace directory
/// (`workspace_base` when set, else a fresh temporary one that close() removes). The server runs
/// in-process on its own threads by default, or as a child `runbox-server` process with
/// providers.local.mode = "process" (or RUNBOX_LOCAL_MODE=process). close() stops it and reaps
/// every process the shell started.
///
/// Settings (Config::providers["local"] or the environment):
/// ```
/// mode         "thread" (default) | "process"          RUNBOX_LOCAL_MODE
/// server_path  the runbox-server program (process mode) RUNBOX_SERVER_PATH (default: on PATH)
/// ```
/// The sandbox's NO_CHANGE_TIMEOUT_SECONDS comes from sandbox.runtime_startup_env_vars, as with
/// OpenHands' local runtime. In both modes the shell's environment is the allow-listed host
/// variables (runbox/environment.hpp: PATH, HOME, USER, LANG, LC_*, ...) plus those startup
/// variables; never the rest of the host's environment, never SESSION_API_KEY.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runbox/client.hpp"
#include "runbox/config.hpp"
#include "runbox/detail/spawn.hpp"
#include "runbox/environment.hpp"
#include "runbox/error.hpp"
#include "runbox/provider.hpp"
#include "runbox/detail/linkage.hpp"
#include "runbox/runtime.hpp"
#include "runbox/transport/httplib.hpp"

// The in-process server is reached only through impl/local.ipp: in compiled mode a unit that
// uses the local provider does not parse the server's headers.
namespace runbox::server {
class ActionServer;
}  // namespace runbox::server

namespace runbox::local {

/// A `runbox-server` child process, started with a pipe on its stdout to learn its port.
class ServerProcess {
public:
    /// Spawns `program args...` in its own process group with the allow-listed host environment
    /// plus `extra_env`, and waits up to `timeout` for its "listening on URL" line. Throws
    /// runbox::error errc::config_invalid when it cannot be started (naming RUNBOX_SERVER_PATH),
    /// errc::timeout when it does not report its address in time (it is then stopped).
    ServerProcess(const std::string& program, const std::vector<std::string>& args,
                  const std::vector<std::pair<std::string, std::string>>& extra_env, std::chrono::milliseconds timeout) {
        // The server (and so its shells) gets the allow-listed host variables only, like thread
        // mode; `extra_env` (the session key, the startup variables) is added after the builder,
        // which would drop SESSION_API_KEY.
        auto env = detail::sandbox_environment(detail::EnvironmentBase::allow_list);
        for (const auto& [key, value] : extra_env) env[key] = value;
        detail::SpawnOptions spawn_options;
        spawn_options.argv = {program};
        spawn_options.argv.insert(spawn_options.argv.end(), args.begin(), args.end());
        spawn_options.env = detail::environment_strings(env);
        spawn_options.search_path = true;
        spawn_options.stdout_pipe = true;
        spawn_options.new_process_group = true;  // its own group: close() kills it whole
        const auto child = detail::spawn(spawn_options);
        if (child.pipe_failed) throw error(errc::system, "pipe2 failed", "local");
        if (child.pid < 0) {
            throw error(errc::config_invalid,
                        "cannot start " + program + ": " + std::string(std::strerror(child.error)) +
                            " (build the runbox-server target or set RUNBOX_SERVER_PATH)",
                        "local");
        }
        pid_ = child.pid;
        stdout_fd_ = child.stdout_fd;
        read_url(timeout);
    }

    /// stop().
    ~ServerProcess() { stop(); }
    ServerProcess(const ServerProcess&) = delete;
    ServerProcess& operator=(const ServerProcess&) = delete;

    /// The server's base URL ("http://127.0.0.1:PORT").
    const std::string& url() const noexcept { return url_; }

    /// SIGTERM to the whole process group, SIGKILL after 5 s, and reaps it. Idempotent.
    void stop() noexcept {
        if (pid_ > 0) {
            ::kill(-pid_, SIGTERM);
            // Give the server its chance to reap the shell; then make sure.
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
            int status = 0;
            while (::waitpid(pid_, &status, WNOHANG) == 0) {
                if (std::chrono::steady_clock::now() >= deadline) {
                    ::kill(-pid_, SIGKILL);
                    ::waitpid(pid_, &status, 0);
                    break;
                }
                ::poll(nullptr, 0, 5);
            }
            pid_ = -1;
        }
        if (stdout_fd_ >= 0) {
            ::close(stdout_fd_);
            stdout_fd_ = -1;
        }
    }

private:
    // runbox-server prints "listening on http://HOST:PORT" once it accepts connections.
    void read_url(std::chrono::milliseconds timeout) {
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        std::string buffer;
        constexpr std::string_view marker = "listening on ";
        for (;;) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) break;
            pollfd pfd{stdout_fd_, POLLIN, 0};
            if (::poll(&pfd, 1, static_cast<int>(left.count())) <= 0) break;
            char chunk[256];
            const ssize_t n = ::read(stdout_fd_, chunk, sizeof chunk);
            if (n <= 0) break;
            buffer.append(chunk, static_cast<std::size_t>(n));
            const auto at = buffer.find(marker);
            if (at != std::string::npos) {
                const auto end = buffer.find('\n', at);
                if (end != std::string::npos) {
                    url_ = buffer.substr(at + marker.size(), end - at - marker.size());
                    while (!url_.empty() && (url_.back() == '\r' || url_.back() == ' ')) url_.pop_back();
                    return;
                }
            }
        }
        stop();
        throw error(errc::timeout, "runbox-server did not report its address in time", "local");
    }

    pid_t pid_ = -1;
    int stdout_fd_ = -1;
    std::string url_;
};

/// The local provider's policy for Runtime (see the top of this header): no credentials, the
/// server on 127.0.0.1 in this process or as a child process.
class Auth {
public:
    static constexpr std::string_view name = "local";  ///< the provider's name in Config::runtime
    using default_transport = HttplibTransport;          ///< the transport make_runtime uses

    /// Reads the settings (mode, server_path); a bad mode is errc::config_invalid. No I/O.
    explicit Auth(const Config& config);

    /// Movable (a Runtime owns its policy); not copyable.
    ///@{
    Auth(Auth&&) noexcept;
    Auth& operator=(Auth&&) noexcept;
    ///@}
    /// Stops the server and removes a temporary workspace.
    ~Auth();

    /// The local server needs no credentials.
    void authorize(Request&) const {}

    /// Creates the workspace, starts the server with a random session key and returns where it
    /// listens. Throws runbox::error errc::config_invalid for a bad NO_CHANGE_TIMEOUT_SECONDS or
    /// a runbox-server that cannot start, errc::timeout when it does not come up.
    template <class Transport>
    ServerEndpoint connect(ProviderContext<Transport>& ctx) {
        // Nothing here depends on the transport: the work is one non-template function.
        return start(ctx.config, ctx.options, [&ctx](RuntimeStatus value, std::string_view message) {
            ctx.status(value, message);
        });
    }

    /// Stops the server (its shells' processes are reaped) and removes a temporary workspace.
    template <class Transport>
    void close(ProviderContext<Transport>&, CloseReason) noexcept {
        stop();
    }

    /// The workspace directory on this machine (empty before connect()).
    const std::filesystem::path& workspace() const noexcept { return workspace_; }
    /// "thread" or "process".
    const std::string& mode() const noexcept { return mode_; }

private:
    using status_sink = std::function<void(RuntimeStatus, std::string_view)>;
    ServerEndpoint start(const Config& config, const RuntimeOptions& options, const status_sink& status);
    void stop() noexcept;

    std::string mode_;
    std::string server_path_;
    std::filesystem::path workspace_;
    bool owns_workspace_ = false;
    std::string session_key_;
    std::unique_ptr<server::ActionServer> server_;
    std::unique_ptr<ServerProcess> process_;
};

}  // namespace runbox::local

namespace runbox {
/// The default runtime: runbox's action server on this machine.
using LocalRuntime = Runtime<local::Auth, HttplibTransport>;
#if defined(RUNBOX_SEPARATE_COMPILATION)
// Compiled once, in runbox::compiled (runbox/src.hpp); a program's units only declare it.
extern template class Runtime<local::Auth, HttplibTransport>;
#endif
}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/providers/impl/local.ipp"
#endif
