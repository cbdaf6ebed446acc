#pragma once

#include "runbox/server/ipython_driver.hpp"

#include "runbox/detail/json.hpp"
#include "runbox/error.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <nlohmann/json.hpp>

namespace runbox::server::detail {

RUNBOX_DECL PythonRepl::Result PythonRepl::run_cell(const std::string& code, const std::optional<std::string>& cwd,
                                                    std::optional<double> timeout_s) {
    using json = nlohmann::json;
    if (!running()) start();
    json request{{"code", code}};
    if (cwd) request["cwd"] = *cwd;
    if (!send_line(request.dump(-1, ' ', false, json::error_handler_t::replace))) return died();
    std::optional<std::chrono::steady_clock::time_point> deadline;
    if (timeout_s && *timeout_s > 0) {
        deadline = std::chrono::steady_clock::now() +
                   std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(*timeout_s));
    }
    auto line = read_line(deadline);
    if (!line && !eof_) {
        // Timed out: interrupt the cell like a Jupyter kernel interrupt, wait for its reply.
        signal_group(SIGINT);
        line = read_line(std::chrono::steady_clock::now() + std::chrono::seconds(5));
        if (!line) reap();
        return Result{{}, true, false};
    }
    if (!line) return died();
    try {
        const auto reply = runbox::detail::parse_untrusted_json(*line);  // a cell can write to the protocol fd
        if (!reply.is_object()) return died();
        return Result{reply.value("output", std::string()), false, false};
    } catch (const json::exception&) {
        return died();
    }
}

RUNBOX_DECL void PythonRepl::reap() noexcept {
    kill_all();
    std::lock_guard lock(mutex_);
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
    proc_.reset();
}

RUNBOX_DECL bool PythonRepl::running() {
    std::lock_guard lock(mutex_);
    // The supervisor reaps the interpreter and then reports: between the two, exited() is still
    // false, and a cell sent then would go to a dead interpreter and come back as "died". The
    // kernel knows at once (BashSession::execute_locked checks the same way).
    return proc_ && !proc_->exited() && fd_ >= 0 && !eof_ && process_alive(proc_->pid());
}

RUNBOX_DECL void PythonRepl::kill_all() noexcept {
    std::lock_guard lock(mutex_);
    if (proc_) proc_->kill_all();
}

RUNBOX_DECL void PythonRepl::start() {
    using json = nlohmann::json;
    reap();
    if (closed_) throw runbox::error(errc::sandbox_gone, "the action server is stopping");
    int fds[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
        throw std::system_error(errno, std::generic_category(), "socketpair");
    }
    // The driver arrives as the first line on stdin (keeps `ps` output short).
    SpawnPlan plan;
    plan.argv_storage = {python_, "-u", "-c", "import json, sys; exec(json.loads(sys.stdin.readline()))  # runbox"};
    plan.env_storage = envp_;
    plan.cwd = working_dir_;
    plan.cwd_fallback_root = true;
    if (user_) {
        plan.switch_user = true;
        plan.uid = user_->uid;
        plan.gid = user_->gid;
        plan.groups = user_->groups;
    }
    plan.finish();
    auto proc = std::make_unique<Contained>();
    try {
        proc->start(plan, ChildStdio{fds[1], fds[1], STDERR_FILENO, false}, false);
    } catch (...) {
        ::close(fds[0]);
        ::close(fds[1]);
        throw;
    }
    ::close(fds[1]);
    {
        std::lock_guard lock(mutex_);
        proc_ = std::move(proc);
        fd_ = fds[0];
        eof_ = false;
        buffer_.clear();
        if (closed_) proc_->kill_all();  // stop() ran while we were spawning
    }
    std::optional<std::string> hello;
    if (send_line(json(std::string(python_driver_source)).dump())) {
        hello = read_line(std::chrono::steady_clock::now() + std::chrono::seconds(30));
    }
    if (!hello) {
        reap();
        throw runbox::error(errc::server_error, "the Python interpreter " + python_ + " did not start");
    }
    executable_ = json::parse(*hello).value("executable", python_);
    ++generation_;
}

RUNBOX_DECL void PythonRepl::signal_group(int sig) noexcept {
    std::lock_guard lock(mutex_);
    if (proc_) proc_->signal_group(sig);
}

RUNBOX_DECL bool PythonRepl::send_line(const std::string& line) {
    std::string data = line + "\n";
    std::size_t sent = 0;
    while (sent < data.size()) {
        const auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

RUNBOX_DECL std::optional<std::string> PythonRepl::read_line(std::optional<std::chrono::steady_clock::time_point> deadline) {
    for (;;) {
        if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
            std::string line = buffer_.substr(0, nl);
            buffer_.erase(0, nl + 1);
            return line;
        }
        if (eof_) return std::nullopt;
        int wait_ms = 1000;
        if (deadline) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return std::nullopt;
            wait_ms = static_cast<int>(std::min<long long>(left.count(), 1000));
        }
        pollfd pfd{fd_, POLLIN, 0};
        const int ready = ::poll(&pfd, 1, wait_ms);
        if (ready < 0 && errno != EINTR) {
            eof_ = true;
            continue;
        }
        if (ready <= 0) continue;
        char chunk[65536];
        const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            eof_ = true;
            continue;
        }
        buffer_.append(chunk, static_cast<std::size_t>(n));
    }
}

}  // namespace runbox::server::detail
