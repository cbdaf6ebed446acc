#pragma once

#include "runbox/server/process.hpp"

namespace runbox::server::detail {

RUNBOX_DECL std::optional<ProcStat> read_proc_stat(pid_t pid) {
    char path[64];
    std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
    std::ifstream in(path);
    if (!in) return std::nullopt;
    std::string line;
    std::getline(in, line);
    const auto close = line.rfind(')');
    if (close == std::string::npos) return std::nullopt;
    std::istringstream rest(line.substr(close + 1));
    ProcStat st;
    st.pid = pid;
    long ppid = 0, pgid = 0, sid = 0;
    if (!(rest >> st.state >> ppid >> pgid >> sid)) return std::nullopt;
    st.ppid = static_cast<pid_t>(ppid);
    st.pgid = static_cast<pid_t>(pgid);
    st.sid = static_cast<pid_t>(sid);
    return st;
}

RUNBOX_DECL std::vector<ProcStat> list_processes() {
    std::vector<ProcStat> out;
    DIR* dir = ::opendir("/proc");
    if (!dir) return out;
    while (const dirent* e = ::readdir(dir)) {
        char* end = nullptr;
        const long pid = std::strtol(e->d_name, &end, 10);
        if (pid <= 0 || *end != '\0') continue;
        if (auto st = read_proc_stat(static_cast<pid_t>(pid))) out.push_back(*st);
    }
    ::closedir(dir);
    return out;
}

RUNBOX_DECL void kill_process_tree(const std::vector<pid_t>& roots, const std::vector<pid_t>& sids) {
    const pid_t self = ::getpid();
    std::set<pid_t> seen;
    for (int round = 0; round < 50; ++round) {
        const auto procs = list_processes();
        std::set<pid_t> tree(roots.begin(), roots.end());
        tree.insert(seen.begin(), seen.end());
        for (const auto& p : procs) {
            if (std::find(sids.begin(), sids.end(), p.sid) != sids.end()) tree.insert(p.pid);
        }
        bool grew = true;  // descendants: iterate to a fixpoint over the parent links
        while (grew) {
            grew = false;
            for (const auto& p : procs) {
                if (!tree.count(p.pid) && tree.count(p.ppid)) {
                    tree.insert(p.pid);
                    grew = true;
                }
            }
        }
        bool fresh = false;
        for (const pid_t pid : tree) {
            if (pid <= 1 || pid == self || seen.count(pid)) continue;
            seen.insert(pid);
            ::kill(pid, SIGSTOP);
            fresh = true;
        }
        if (!fresh) break;
    }
    for (const pid_t pid : seen) ::kill(pid, SIGKILL);
    for (const pid_t pid : seen) {
        if (std::find(roots.begin(), roots.end(), pid) != roots.end()) continue;  // the caller reaps its own child
        int status = 0;
        ::waitpid(pid, &status, WNOHANG);
    }
}

RUNBOX_DECL int pidfd_open(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    return -1;
#endif
}

RUNBOX_DECL std::optional<int> reap_child(pid_t pid, int pidfd, std::chrono::milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (true) {
        int status = 0;
        const pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) return status;
        if (r < 0 && errno != EINTR) return std::nullopt;
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) return std::nullopt;
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
        if (pidfd >= 0) {
            pollfd p{pidfd, POLLIN, 0};
            ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 100)));
        } else {
            pollfd none{};
            ::poll(&none, 0, 5);  // no pidfd (old kernel): short bounded wait between checks
        }
    }
}

RUNBOX_DECL int exit_code_from_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

RUNBOX_DECL std::string current_username() {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* result = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &result) == 0 && result) return pw.pw_name;
    return {};
}

RUNBOX_DECL void plan_identity(SpawnPlan& plan, const std::string& username, std::map<std::string, std::string> extra,
                               runbox::detail::EnvironmentBase base) {
    std::map<std::string, std::string> env{{"TERM", "dumb"}, {"PAGER", "cat"}, {"GIT_PAGER", "cat"},
                                           {"COLUMNS", "1000"}, {"LINES", "1000"}};
    if (!username.empty() && username != current_username()) {
        if (::geteuid() != 0)
            throw runbox::error(errc::config_invalid, "cannot run the shell as user '" + username + "': not running as root");
        const auto user = lookup_user(username);
        if (!user) throw runbox::error(errc::config_invalid, "user '" + username + "' does not exist");
        plan.switch_user = true;
        plan.uid = user->uid;
        plan.gid = user->gid;
        plan.groups = user->groups;
        env["HOME"] = user->home;
        env["USER"] = username;
        env["LOGNAME"] = username;
        env["SHELL"] = "/bin/bash";
    }
    for (auto& [k, v] : extra) env[k] = std::move(v);
    auto full = runbox::detail::sandbox_environment(base, env);
    for (const char* k : {"PROMPT_COMMAND", "PS1", "PS2", "PS4", "BASH_ENV", "ENV"}) {
        if (!extra.count(k)) full.erase(k);  // the session's prompt machinery owns these
    }
    plan.env_storage = runbox::detail::environment_strings(full);
}

[[noreturn]] RUNBOX_DECL void exec_child(const SpawnPlan& plan) {
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    ::sigemptyset(&dfl.sa_mask);
    for (int sig = 1; sig < NSIG; ++sig) {
        if (sig != SIGKILL && sig != SIGSTOP) ::sigaction(sig, &dfl, nullptr);
    }
    sigset_t none;
    ::sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::syscall(SYS_close_range, 3U, ~0U, 0U);
    if (plan.switch_user) {
        if (::setgroups(plan.groups.size(), plan.groups.data()) != 0 || ::setgid(plan.gid) != 0 ||
            ::setuid(plan.uid) != 0) {
            static const char msg[] = "runbox: cannot switch user\n";
            (void)!::write(2, msg, sizeof msg - 1);
            ::_exit(126);
        }
    }
    if (!plan.cwd.empty() && ::chdir(plan.cwd.c_str()) != 0 && !(plan.cwd_fallback_root && ::chdir("/") == 0)) {
        static const char msg[] = "runbox: cannot enter the working directory\n";
        (void)!::write(2, msg, sizeof msg - 1);
        ::_exit(126);
    }
    ::execve(plan.argv[0], plan.argv.data(), plan.envp.data());
    ::_exit(127);
}

}  // namespace runbox::server::detail

namespace runbox::server::detail::supervisor {

RUNBOX_DECL bool write_all(int fd, const void* data, std::size_t n) noexcept {
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
        const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return false;
        p += w;
        n -= static_cast<std::size_t>(w);
    }
    return true;
}

RUNBOX_DECL std::int64_t now_ms() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

RUNBOX_DECL bool stat_of(long pid, char& state, long& ppid) noexcept {
    char path[40] = "/proc/";
    char digits[24];
    int n = 0;
    for (long v = pid; v > 0 && n < 22; v /= 10) digits[n++] = static_cast<char>('0' + v % 10);
    int at = 6;
    while (n > 0) path[at++] = digits[--n];
    for (const char* s = "/stat"; *s;) path[at++] = *s++;
    path[at] = '\0';
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    char buf[1024];
    ssize_t len = 0;
    while (true) {
        len = ::read(fd, buf, sizeof buf - 1);
        if (len >= 0 || errno != EINTR) break;
    }
    ::close(fd);
    if (len <= 0) return false;
    const char* close = nullptr;  // the name may contain ')': the last one ends it
    for (ssize_t i = 0; i < len; ++i) {
        if (buf[i] == ')') close = buf + i;
    }
    if (close == nullptr || close + 4 >= buf + len) return false;
    state = close[2];
    long value = 0;
    for (const char* p = close + 4; p < buf + len && *p >= '0' && *p <= '9'; ++p) value = value * 10 + (*p - '0');
    ppid = value;
    return true;
}

RUNBOX_DECL void kill_descendants(Bitmap tree) noexcept {
    std::memset(tree.bits, 0, tree.bytes);
    const long self = ::getpid();
    tree.set(self);
    const std::int64_t give_up = now_ms() + 3000;  // a process in uninterruptible sleep may never stop
    while (true) {
        bool fresh = false, unsettled = false;
        for_each_pid([&](long pid) {
            char state = '?';
            long ppid = 0;
            if (pid == self || !stat_of(pid, state, ppid) || state == 'Z' || state == 'X') return;
            if (tree.test(pid)) {
                if (state != 'T' && state != 't') unsettled = true;
                return;
            }
            if (!tree.test(ppid)) return;
            tree.set(pid);
            ::kill(static_cast<pid_t>(pid), SIGSTOP);
            fresh = unsettled = true;
        });
        if ((!fresh && !unsettled) || now_ms() >= give_up) break;
        if (!fresh) ::sched_yield();
    }
    for_each_pid([&](long pid) {
        if (pid != self && tree.test(pid)) ::kill(static_cast<pid_t>(pid), SIGKILL);
    });
}

[[noreturn]] RUNBOX_DECL void run(const SpawnPlan& plan, ChildStdio io, int sock, bool kill_when_child_exits,
                                  Bitmap tree) noexcept {
    ::setsid();  // out of the server's process group: a signal to that group does not reach us
    ::prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);  // a same-user program cannot read this copy of the server's memory
    struct sigaction dfl {};  // the server may ignore SIGCHLD; we need the exit statuses
    dfl.sa_handler = SIG_DFL;
    ::sigemptyset(&dfl.sa_mask);
    ::sigaction(SIGCHLD, &dfl, nullptr);
    sigset_t all;
    ::sigfillset(&all);
    ::sigprocmask(SIG_SETMASK, &all, nullptr);  // only SIGKILL ends the supervisor; SIGCHLD via signalfd

    // Keep only the fds we need, none of them below 3 (0-2 become /dev/null later).
    int* mine[] = {&sock, &io.in, &io.out, &io.err};
    for (int* fd : mine) {
        if (*fd >= 0 && *fd < 3) {
            const int original = *fd;
            const int moved = ::fcntl(original, F_DUPFD, 3);
            for (int* other : mine) {
                if (*other == original) *other = moved;
            }
        }
    }
    int keep[4];
    int kept = 0;
    for (int* fd : mine) {
        if (*fd < 0) continue;
        bool dup = false;
        for (int k = 0; k < kept; ++k) dup = dup || keep[k] == *fd;
        if (!dup) keep[kept++] = *fd;
    }
    for (int i = 1; i < kept; ++i) {
        for (int j = i; j > 0 && keep[j - 1] > keep[j]; --j) std::swap(keep[j - 1], keep[j]);
    }
    unsigned int from = 3;
    for (int k = 0; k < kept; ++k) {
        if (static_cast<unsigned int>(keep[k]) > from) ::syscall(SYS_close_range, from, static_cast<unsigned int>(keep[k]) - 1, 0U);
        from = static_cast<unsigned int>(keep[k]) + 1;
    }
    ::syscall(SYS_close_range, from, ~0U, 0U);

    sigset_t chld;
    ::sigemptyset(&chld);
    ::sigaddset(&chld, SIGCHLD);
    const int sfd = ::signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

    const pid_t child = ::fork();
    if (child == 0) {
        if (io.controlling_tty) {
            ::setsid();
            ::ioctl(io.in, TIOCSCTTY, 0);
        } else {
            ::setsid();  // its own group: the server interrupts it with kill(-pid, SIGINT)
        }
        const int null_fd = ::open("/dev/null", O_RDWR);
        const int targets[3] = {io.in, io.out, io.err};
        for (int t = 0; t < 3; ++t) ::dup2(targets[t] >= 0 ? targets[t] : null_fd, t);
        exec_child(plan);  // closes every fd from 3 up
    }
    std::int32_t hello = child > 0 ? static_cast<std::int32_t>(child) : -1;
    write_all(sock, &hello, sizeof hello);
    if (child < 0) ::_exit(1);
    const int null_fd = ::open("/dev/null", O_RDWR);
    for (int fd : {io.in, io.out, io.err}) {
        if (fd >= 3) ::close(fd);
    }
    for (int t = 0; t < 3; ++t) ::dup2(null_fd, t);
    if (null_fd >= 3) ::close(null_fd);

    bool child_done = false;
    const auto reap = [&]() {  // reaps what has exited; false once no child is left at all
        while (true) {
            int status = 0;
            const pid_t p = ::waitpid(-1, &status, WNOHANG);
            if (p < 0 && errno == EINTR) continue;
            if (p < 0) return false;
            if (p == 0) return true;
            if (p == child && !child_done) {
                child_done = true;
                std::int32_t st = status;
                write_all(sock, &st, sizeof st);
            }
        }
    };
    bool stop = false;
    while (!stop) {
        pollfd fds[2] = {{sock, POLLIN, 0}, {sfd, POLLIN, 0}};
        const int r = ::poll(fds, sfd >= 0 ? 2 : 1, sfd >= 0 ? -1 : 100);
        if (r < 0 && errno != EINTR) break;
        if (sfd >= 0 && (fds[1].revents & POLLIN)) {
            signalfd_siginfo info[8];
            while (::read(sfd, info, sizeof info) > 0) {
            }
        }
        reap();
        if (fds[0].revents) stop = true;  // a byte, or the server's end closed
        if (child_done && kill_when_child_exits) stop = true;
    }
    // Kill until nothing is left to reap (a process that was not stopped in time may have
    // forked again; its children are re-parented to us and found by the next round).
    while (true) {
        kill_descendants(tree);
        if (!reap()) break;
        pollfd p{sfd, POLLIN, 0};
        ::poll(&p, sfd >= 0 ? 1 : 0, 20);
        if (sfd >= 0) {
            signalfd_siginfo info[8];
            while (::read(sfd, info, sizeof info) > 0) {
            }
        }
    }
    ::_exit(0);
}

}  // namespace runbox::server::detail::supervisor

namespace runbox::server::detail {

RUNBOX_DECL std::optional<int> Contained::wait_exit(std::chrono::milliseconds bound) {
    if (status_ || lost_ || sock_ < 0) return status_;
    std::int32_t st = 0;
    if (read_message(st, bound)) status_ = st;
    return status_;
}

RUNBOX_DECL void Contained::kill_all(std::chrono::milliseconds bound) noexcept {
    if (supervisor_ <= 0) return;
    if (sock_ >= 0) {
        const char stop = 'k';
        (void)::send(sock_, &stop, 1, MSG_NOSIGNAL);
    }
    if (!detail::reap_child(supervisor_, pidfd_, bound) && ::waitpid(supervisor_, nullptr, WNOHANG) == 0) {
        // The supervisor is stuck (still our child, so its pid is not reused): do what we still can.
        ::kill(supervisor_, SIGKILL);
        try {
            kill_process_tree({pid_}, {pid_});
        } catch (...) {
        }
        detail::reap_child(supervisor_, pidfd_, bound);
    }
    if (sock_ >= 0) ::close(sock_);
    if (pidfd_ >= 0) ::close(pidfd_);
    sock_ = pidfd_ = -1;
    supervisor_ = -1;
}

RUNBOX_DECL void Contained::start(const SpawnPlan& plan, const ChildStdio& io, bool kill_when_child_exits) {
    std::vector<unsigned char> tree(pid_bitmap_bytes());
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        throw runbox::error(errc::server_error, std::string("socketpair: ") + std::strerror(errno));
    const pid_t sup = ::fork();
    if (sup < 0) {
        const int err = errno;
        ::close(sv[0]);
        ::close(sv[1]);
        throw runbox::error(errc::server_error, std::string("fork: ") + std::strerror(err));
    }
    if (sup == 0) supervisor::run(plan, io, sv[1], kill_when_child_exits, {tree.data(), tree.size()});
    ::close(sv[1]);
    supervisor_ = sup;
    sock_ = sv[0];
    pidfd_ = pidfd_open(sup);
    if (pidfd_ >= 0) ::fcntl(pidfd_, F_SETFD, FD_CLOEXEC);
    std::int32_t pid = -1;
    if (!read_message(pid, std::chrono::seconds(10)) || pid <= 0) {
        kill_all();
        throw runbox::error(errc::server_error, "the process supervisor could not start the program");
    }
    pid_ = static_cast<pid_t>(pid);
}

RUNBOX_DECL std::size_t Contained::pid_bitmap_bytes() {
    long pid_max = 4194304;  // the kernel's upper limit, when /proc does not say
    std::ifstream in("/proc/sys/kernel/pid_max");
    long value = 0;
    if (in >> value && value > 0) pid_max = value;
    return static_cast<std::size_t>(pid_max) / 8 + 1;
}

RUNBOX_DECL bool Contained::read_message(std::int32_t& out, std::chrono::milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    char buf[sizeof(std::int32_t)];
    std::size_t got = 0;
    while (got < sizeof buf) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        pollfd p{sock_, POLLIN, 0};
        const int r = ::poll(&p, 1, static_cast<int>(std::max<long long>(0, left.count())));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return false;  // time is up (a partial message cannot happen: 4 bytes in one send)
        const ssize_t n = ::recv(sock_, buf + got, sizeof buf - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            lost_ = true;  // the supervisor is gone
            return false;
        }
        got += static_cast<std::size_t>(n);
    }
    std::memcpy(&out, buf, sizeof out);
    return true;
}

}  // namespace runbox::server::detail
