// runbox/testing/detail/fake_shell.hpp - the shell commands a fake runs for its exec / toolbox APIs.
//
// A command is `/bin/sh -c TEXT` under runbox's process supervisor (server/process.hpp): its own
// process group, and nothing it starts (background jobs, setsid) outlives it. Its output is read on
// a thread of its own, so a caller can wait with a bound, poll, or kill it from another request.
// No HTTP library here: every fake, whatever server it uses, runs commands this way.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "runbox/environment.hpp"
#include "runbox/error.hpp"
#include "runbox/server/process.hpp"

namespace runbox::testing {

/// What a shell command printed and how it ended.
struct ShellResult {
    int exit_code = -1;      ///< the exit status; 128 + N when killed by signal N
    std::string out;         ///< stdout (stdout and stderr interleaved when merged)
    std::string err;         ///< stderr (empty when merged)
    bool timed_out = false;  ///< ShellRunner::run killed it at its timeout
};

/// One `sh -c` command of a fake, running or finished. Destroying it kills it and waits for it.
class ShellCommand {
public:
    /// Receives output as it is read (stderr_side = false for stdout), on the reader thread.
    using OutputHandler = std::function<void(bool stderr_side, std::string_view bytes)>;

    /// Starts `command` in `cwd` with this process's environment plus `env` (SESSION_API_KEY never
    /// passes). `merge_stderr` sends stderr into the stdout pipe. `on_exit` runs on the reader
    /// thread once the result is final (keep it short; it must not wait for this command).
    /// With `on_output`, output goes there as it comes (a stream) instead of into result().
    ShellCommand(const std::string& command, const std::filesystem::path& cwd,
                 const std::map<std::string, std::string>& env, bool merge_stderr,
                 std::function<void()> on_exit = {}, OutputHandler on_output = {})
        : on_exit_(std::move(on_exit)), on_output_(std::move(on_output)) {
        int out_pipe[2];
        int err_pipe[2] = {-1, -1};
        if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw error(errc::server_error, "pipe failed", "fake");
        if (!merge_stderr && ::pipe2(err_pipe, O_CLOEXEC) != 0) {
            ::close(out_pipe[0]);
            ::close(out_pipe[1]);
            throw error(errc::server_error, "pipe failed", "fake");
        }
        server::detail::SpawnPlan plan;
        plan.argv_storage = {"/bin/sh", "-c", command};
        plan.env_storage = runbox::detail::environment_strings(
            runbox::detail::sandbox_environment(runbox::detail::EnvironmentBase::inherit, env));
        plan.cwd = cwd.string();
        plan.finish();
        try {
            proc_.start(plan, server::detail::ChildStdio{-1, out_pipe[1], merge_stderr ? out_pipe[1] : err_pipe[1], false},
                        true);
        } catch (...) {
            for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]})
                if (fd >= 0) ::close(fd);
            throw;
        }
        ::close(out_pipe[1]);
        if (err_pipe[1] >= 0) ::close(err_pipe[1]);
        pid_ = proc_.pid();
        reader_ = std::thread([this, out = out_pipe[0], err = err_pipe[0]] { collect(out, err); });
    }
    ShellCommand(const ShellCommand&) = delete;
    ShellCommand& operator=(const ShellCommand&) = delete;
    ~ShellCommand() {
        kill();
        if (reader_.joinable()) reader_.join();
    }

    /// True once the command exited and its output is complete.
    bool done() const noexcept { return done_.load(); }

    /// Waits up to `bound` for the command to finish; true when it did.
    bool wait(std::chrono::milliseconds bound) {
        std::unique_lock lock(mutex_);
        return cv_.wait_for(lock, bound, [&] { return done_.load(); });
    }

    /// Kills the command and everything it started (no effect once it ended).
    void kill() noexcept {
        std::lock_guard lock(mutex_);
        // Right after start the program may not have made its own group yet: then kill it alone
        // (the supervisor ends whatever it started when it exits).
        if (!done_ && pid_ > 0 && ::kill(-pid_, SIGKILL) != 0) ::kill(pid_, SIGKILL);
    }

    /// Sends `sig` to the command's process group while it runs (SIGTERM, SIGSTOP, SIGCONT...).
    void signal(int sig) noexcept {
        std::lock_guard lock(mutex_);
        if (!done_) proc_.signal_group(sig);
    }

    /// The result so far (final once done()).
    ShellResult result() const {
        std::lock_guard lock(mutex_);
        return result_;
    }

private:
    void collect(int out_fd, int err_fd) {
        pollfd fds[2] = {{out_fd, POLLIN, 0}, {err_fd, POLLIN, 0}};
        char buf[8192];
        while (fds[0].fd >= 0 || fds[1].fd >= 0) {
            if (::poll(fds, 2, -1) < 0) {
                if (errno == EINTR) continue;
                break;
            }
            for (int i = 0; i < 2; ++i) {
                if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                const auto n = ::read(fds[i].fd, buf, sizeof buf);
                if (n > 0 && on_output_) {
                    on_output_(i == 1, std::string_view(buf, static_cast<std::size_t>(n)));
                } else if (n > 0) {
                    std::lock_guard lock(mutex_);
                    (i == 0 ? result_.out : result_.err).append(buf, static_cast<std::size_t>(n));
                } else if (n == 0 || errno != EINTR) {
                    ::close(fds[i].fd);
                    fds[i].fd = -1;
                }
            }
        }
        for (const auto& f : fds)
            if (f.fd >= 0) ::close(f.fd);
        // Output closed: the program ended, or closed its stdio and runs on until it ends or is
        // killed (kill(), the runner's kill_all(), the destructor); each wait is bounded.
        std::optional<int> status;
        while (!(status = proc_.wait_exit(std::chrono::seconds(1))) && !proc_.exited()) {
        }
        proc_.kill_all();  // what it left behind dies; the supervisor is reaped
        {
            std::lock_guard lock(mutex_);
            result_.exit_code = status ? server::detail::exit_code_from_status(*status) : 128 + SIGKILL;
            done_ = true;
        }
        cv_.notify_all();
        if (on_exit_) on_exit_();
    }

    std::function<void()> on_exit_;
    OutputHandler on_output_;
    server::detail::Contained proc_;
    pid_t pid_ = -1;
    mutable std::mutex mutex_;
    std::condition_variable cv_;
    std::atomic<bool> done_{false};
    ShellResult result_;
    std::thread reader_;
};

/// Every command a fake started, so that stopping the fake ends them all.
class ShellRunner {
public:
    /// Starts a command (see ShellCommand); after kill_all() it is killed at once.
    std::shared_ptr<ShellCommand> start(const std::string& command, const std::filesystem::path& cwd,
                                        const std::map<std::string, std::string>& env, bool merge_stderr,
                                        std::function<void()> on_exit = {},
                                        ShellCommand::OutputHandler on_output = {}) {
        auto cmd = std::make_shared<ShellCommand>(command, cwd, env, merge_stderr, std::move(on_exit),
                                                  std::move(on_output));
        std::lock_guard lock(mutex_);
        std::erase_if(commands_, [](const auto& w) { return w.expired(); });
        commands_.push_back(cmd);
        if (killed_) cmd->kill();
        return cmd;
    }

    /// Runs a command to its end, killing it after `timeout` (then `timed_out` is set).
    ShellResult run(const std::string& command, const std::filesystem::path& cwd,
                    const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout,
                    bool merge_stderr) {
        auto cmd = start(command, cwd, env, merge_stderr);
        const bool finished = cmd->wait(timeout);
        if (!finished) {
            cmd->kill();
            cmd->wait(std::chrono::seconds(10));
        }
        auto result = cmd->result();
        result.timed_out = !finished;
        return result;
    }

    /// Kills every running command and every later one.
    void kill_all() {
        std::lock_guard lock(mutex_);
        killed_ = true;
        for (const auto& w : commands_)
            if (auto cmd = w.lock()) cmd->kill();
    }

private:
    std::mutex mutex_;
    std::vector<std::weak_ptr<ShellCommand>> commands_;
    bool killed_ = false;
};

}  // namespace runbox::testing
