/// \file
/// the processes a session starts, and how they all end.
///
/// Spawning: a SpawnPlan holds everything a child needs (argv, environment, identity, directory),
/// prepared before fork(), so the child makes only async-signal-safe calls.
///
/// Containment: every program (the shell, the Python REPL, a static command) runs under its own
/// small supervisor process, forked from the server, that is a child subreaper
/// (prctl PR_SET_CHILD_SUBREAPER). Whatever the program starts, `setsid`, `setsid -f` and double
/// forks included, is re-parented to the supervisor when its parent exits instead of escaping to
/// init, so every process of the program stays a descendant of the supervisor. At kill_all() (or
/// when the server goes away: its end of the control socket closes) the supervisor stops all its
/// descendants with SIGSTOP, re-scanning /proc until no new one appears and all are stopped,
/// SIGKILLs them, reaps them and exits. The server itself never becomes a subreaper (in the local
/// provider's thread mode it is the user's program). docs/design.md says why not a cgroup.
///
/// The supervisor is a fork of a multi-threaded program that never execs, so it uses only
/// async-signal-safe system calls and memory allocated before the fork.
#pragma once

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "runbox/environment.hpp"
#include "runbox/error.hpp"

namespace runbox::server::detail {

// ---- /proc ------------------------------------------------------------------------------------

struct ProcStat {
    pid_t pid = 0, ppid = 0, pgid = 0, sid = 0;
    char state = '?';
};

inline std::optional<ProcStat> read_proc_stat(pid_t pid) {
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

inline std::vector<ProcStat> list_processes() {
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

/// True while `pid` exists and is not a zombie.
inline bool process_alive(pid_t pid) {
    auto st = read_proc_stat(pid);
    return st && st->state != 'Z' && st->state != 'X';
}

/// Kills every process in the sessions `sids` and every descendant of `roots`: first everything
/// found is stopped (so nothing can fork any more), re-scanning until no new process appears,
/// then all of them get SIGKILL. The fallback when a supervisor is gone (see Contained).
inline void kill_process_tree(const std::vector<pid_t>& roots, const std::vector<pid_t>& sids) {
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

inline int pidfd_open(pid_t pid) noexcept {
#ifdef SYS_pidfd_open
    return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
#else
    (void)pid;
    return -1;
#endif
}

/// Waits (bounded) for a child to exit and returns its wait status, or nullopt.
inline std::optional<int> reap_child(pid_t pid, int pidfd, std::chrono::milliseconds bound) {
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

inline int exit_code_from_status(int status) {
    if (WIFEXITED(status)) return WEXITSTATUS(status);
    if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
    return -1;
}

// ---- spawn plan ---------------------------------------------------------------------------------

/// Everything a child needs, prepared before fork() (only async-signal-safe calls after it).
struct SpawnPlan {
    std::vector<std::string> argv_storage, env_storage;
    std::vector<char*> argv, envp;
    std::string cwd;
    bool cwd_fallback_root = false;  ///< chdir("/") when cwd cannot be entered instead of failing
    bool switch_user = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::vector<gid_t> groups;

    void finish() {
        argv.clear();
        envp.clear();
        for (auto& a : argv_storage) argv.push_back(a.data());
        argv.push_back(nullptr);
        for (auto& e : env_storage) envp.push_back(e.data());
        envp.push_back(nullptr);
    }
};

inline std::string current_username() {
    std::vector<char> buf(16384);
    passwd pw{};
    passwd* result = nullptr;
    if (::getpwuid_r(::geteuid(), &pw, buf.data(), buf.size(), &result) == 0 && result) return pw.pw_name;
    return {};
}

/// Environment and identity for a shell: `base` (runbox/environment.hpp), terminal settings that
/// keep programs from paging or colouring, the target user's identity, the caller's variables.
inline void plan_identity(SpawnPlan& plan, const std::string& username, std::map<std::string, std::string> extra,
                          runbox::detail::EnvironmentBase base = runbox::detail::EnvironmentBase::inherit) {
    std::map<std::string, std::string> env{{"TERM", "dumb"}, {"PAGER", "cat"}, {"GIT_PAGER", "cat"},
                                           {"COLUMNS", "1000"}, {"LINES", "1000"}};
    if (!username.empty() && username != current_username()) {
        if (::geteuid() != 0)
            throw runbox::error(errc::config_invalid, "cannot run the shell as user '" + username + "': not running as root");
        std::vector<char> buf(16384);
        passwd pw{};
        passwd* result = nullptr;
        if (::getpwnam_r(username.c_str(), &pw, buf.data(), buf.size(), &result) != 0 || !result)
            throw runbox::error(errc::config_invalid, "user '" + username + "' does not exist");
        plan.switch_user = true;
        plan.uid = pw.pw_uid;
        plan.gid = pw.pw_gid;
        int count = 64;
        plan.groups.resize(static_cast<std::size_t>(count));
        if (::getgrouplist(pw.pw_name, pw.pw_gid, plan.groups.data(), &count) < 0) {
            plan.groups.resize(static_cast<std::size_t>(count));
            ::getgrouplist(pw.pw_name, pw.pw_gid, plan.groups.data(), &count);
        }
        plan.groups.resize(static_cast<std::size_t>(std::max(count, 0)));
        env["HOME"] = pw.pw_dir;
        env["USER"] = pw.pw_name;
        env["LOGNAME"] = pw.pw_name;
        env["SHELL"] = "/bin/bash";
    }
    for (auto& [k, v] : extra) env[k] = std::move(v);
    auto full = runbox::detail::sandbox_environment(base, env);
    for (const char* k : {"PROMPT_COMMAND", "PS1", "PS2", "PS4", "BASH_ENV", "ENV"}) {
        if (!extra.count(k)) full.erase(k);  // the session's prompt machinery owns these
    }
    plan.env_storage = runbox::detail::environment_strings(full);
}

/// In the child after fork(): default signal handling, identity, directory, no inherited fds.
[[noreturn]] inline void exec_child(const SpawnPlan& plan) {
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

// ---- the supervisor -----------------------------------------------------------------------------

/// How the contained program is attached. Each fd is the program's 0/1/2 (-1: /dev/null).
struct ChildStdio {
    int in = -1, out = -1, err = -1;
    bool controlling_tty = false;  ///< `in` is a PTY slave that becomes the controlling terminal
};

namespace supervisor {

// Only async-signal-safe code below this line runs in the supervisor.

inline bool write_all(int fd, const void* data, std::size_t n) noexcept {
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

inline std::int64_t now_ms() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

/// Reads /proc/<pid>/stat: state and parent. False when the process is gone.
inline bool stat_of(long pid, char& state, long& ppid) noexcept {
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

struct Bitmap {
    unsigned char* bits;
    std::size_t bytes;
    bool test(long pid) const noexcept {
        const auto i = static_cast<std::size_t>(pid);
        return pid >= 0 && i / 8 < bytes && (bits[i / 8] >> (i % 8)) & 1U;
    }
    void set(long pid) noexcept {
        const auto i = static_cast<std::size_t>(pid);
        if (pid >= 0 && i / 8 < bytes) bits[i / 8] = static_cast<unsigned char>(bits[i / 8] | (1U << (i % 8)));
    }
};

/// Calls f(pid) for every process in /proc.
template <class F>
inline void for_each_pid(F&& f) noexcept {
    const int dir = ::open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return;
    alignas(8) char buf[16384];
    while (true) {
        const long n = ::syscall(SYS_getdents64, dir, buf, sizeof buf);
        if (n <= 0) break;
        for (long off = 0; off < n;) {
            // struct linux_dirent64 { u64 ino; s64 off; u16 reclen; u8 type; char name[]; }
            unsigned short reclen = 0;
            std::memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char* name = buf + off + 19;
            long pid = 0;
            bool numeric = *name != '\0';
            for (const char* p = name; *p; ++p) {
                if (*p < '0' || *p > '9') {
                    numeric = false;
                    break;
                }
                pid = pid * 10 + (*p - '0');
            }
            if (numeric && pid > 0) f(pid);
            if (reclen == 0) break;
            off += reclen;
        }
    }
    ::close(dir);
}

/// Stops every descendant of this process (re-scanning until no new one appears and all are
/// stopped, bounded in time), then SIGKILLs them all.
inline void kill_descendants(Bitmap tree) noexcept {
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

/// The supervisor's whole life. `sock` talks to the server: it sends the program's pid, then its
/// wait status when it exits; a byte from the server, or its end closing, means kill everything.
[[noreturn]] inline void run(const SpawnPlan& plan, ChildStdio io, int sock, bool kill_when_child_exits,
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

}  // namespace supervisor

/// A program running under its supervisor. kill_all() (also the destructor) ends it and
/// everything it started, and reaps the supervisor.
class Contained {
public:
    Contained() = default;
    Contained(const Contained&) = delete;
    Contained& operator=(const Contained&) = delete;
    ~Contained() { kill_all(); }

    /// The program's pid (-1 before start).
    pid_t pid() const noexcept { return pid_; }
    /// Readable once the program exited (or the supervisor is gone): then call wait_exit().
    int event_fd() const noexcept { return sock_; }
    bool exited() const noexcept { return status_.has_value() || lost_; }

    /// The program's wait status, waiting up to `bound`; nullopt if it still runs (or the
    /// supervisor disappeared without saying).
    std::optional<int> wait_exit(std::chrono::milliseconds bound) {
        if (status_ || lost_ || sock_ < 0) return status_;
        std::int32_t st = 0;
        if (read_message(st, bound)) status_ = st;
        return status_;
    }

    /// Sends `sig` to the program's process group while the program runs.
    void signal_group(int sig) const noexcept {
        if (pid_ > 0 && !exited()) ::kill(-pid_, sig);
    }

    /// Kills the program and all its descendants and reaps the supervisor (bounded). Idempotent.
    void kill_all(std::chrono::milliseconds bound = std::chrono::seconds(5)) noexcept {
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

    /// Forks the supervisor, which forks and execs `plan` with `io`. With
    /// `kill_when_child_exits`, whatever the program left behind dies when it exits.
    void start(const SpawnPlan& plan, const ChildStdio& io, bool kill_when_child_exits) {
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

private:
    static std::size_t pid_bitmap_bytes() {
        long pid_max = 4194304;  // the kernel's upper limit, when /proc does not say
        std::ifstream in("/proc/sys/kernel/pid_max");
        long value = 0;
        if (in >> value && value > 0) pid_max = value;
        return static_cast<std::size_t>(pid_max) / 8 + 1;
    }

    bool read_message(std::int32_t& out, std::chrono::milliseconds bound) {
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

    pid_t supervisor_ = -1;
    pid_t pid_ = -1;
    int sock_ = -1;
    int pidfd_ = -1;
    std::optional<int> status_;
    bool lost_ = false;
};

}  // namespace runbox::server::detail
