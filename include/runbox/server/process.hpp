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
///
/// Why fork and not runbox/detail/spawn.hpp (posix_spawn, which every other child of runbox
/// uses): the supervisor must become a subreaper and run code after the fork, and the program
/// must switch user (setgroups/setgid/setuid), enter its directory with a fallback and take a
/// PTY as its controlling terminal; posix_spawn offers none of these.
#pragma once

#include "runbox/detail/linkage.hpp"

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
#include "runbox/server/run_as.hpp"

namespace runbox::server::detail {

// ---- /proc ------------------------------------------------------------------------------------

struct ProcStat {
    pid_t pid = 0, ppid = 0, pgid = 0, sid = 0;
    char state = '?';
};

RUNBOX_DECL std::optional<ProcStat> read_proc_stat(pid_t pid);

RUNBOX_DECL std::vector<ProcStat> list_processes();

/// True while `pid` exists and is not a zombie.
inline bool process_alive(pid_t pid) {
    auto st = read_proc_stat(pid);
    return st && st->state != 'Z' && st->state != 'X';
}

/// Kills every process in the sessions `sids` and every descendant of `roots`: first everything
/// found is stopped (so nothing can fork any more), re-scanning until no new process appears,
/// then all of them get SIGKILL. The fallback when a supervisor is gone (see Contained).
RUNBOX_DECL void kill_process_tree(const std::vector<pid_t>& roots, const std::vector<pid_t>& sids);

RUNBOX_DECL int pidfd_open(pid_t pid) noexcept;

/// Waits (bounded) for a child to exit and returns its wait status, or nullopt.
RUNBOX_DECL std::optional<int> reap_child(pid_t pid, int pidfd, std::chrono::milliseconds bound);

RUNBOX_DECL int exit_code_from_status(int status);

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

RUNBOX_DECL std::string current_username();

/// Environment and identity for a shell: `base` (runbox/environment.hpp), terminal settings that
/// keep programs from paging or colouring, the target user's identity, the caller's variables.
RUNBOX_DECL void plan_identity(SpawnPlan& plan, const std::string& username, std::map<std::string, std::string> extra,
                               runbox::detail::EnvironmentBase base = runbox::detail::EnvironmentBase::inherit);

/// In the child after fork(): default signal handling, identity, directory, no inherited fds.
[[noreturn]] RUNBOX_DECL void exec_child(const SpawnPlan& plan);

// ---- the supervisor -----------------------------------------------------------------------------

/// How the contained program is attached. Each fd is the program's 0/1/2 (-1: /dev/null).
struct ChildStdio {
    int in = -1, out = -1, err = -1;
    bool controlling_tty = false;  ///< `in` is a PTY slave that becomes the controlling terminal
};

namespace supervisor {

// Only async-signal-safe code below this line runs in the supervisor.

RUNBOX_DECL bool write_all(int fd, const void* data, std::size_t n) noexcept;

RUNBOX_DECL std::int64_t now_ms() noexcept;

/// Reads /proc/<pid>/stat: state and parent. False when the process is gone.
RUNBOX_DECL bool stat_of(long pid, char& state, long& ppid) noexcept;

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
RUNBOX_DECL void kill_descendants(Bitmap tree) noexcept;

/// The supervisor's whole life. `sock` talks to the server: it sends the program's pid, then its
/// wait status when it exits; a byte from the server, or its end closing, means kill everything.
[[noreturn]] RUNBOX_DECL void run(const SpawnPlan& plan, ChildStdio io, int sock, bool kill_when_child_exits,
                                  Bitmap tree) noexcept;

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
    std::optional<int> wait_exit(std::chrono::milliseconds bound);

    /// Sends `sig` to the program's process group while the program runs.
    void signal_group(int sig) const noexcept {
        if (pid_ > 0 && !exited()) ::kill(-pid_, sig);
    }

    /// Kills the program and all its descendants and reaps the supervisor (bounded). Idempotent.
    void kill_all(std::chrono::milliseconds bound = std::chrono::seconds(5)) noexcept;

    /// Forks the supervisor, which forks and execs `plan` with `io`. With
    /// `kill_when_child_exits`, whatever the program left behind dies when it exits.
    void start(const SpawnPlan& plan, const ChildStdio& io, bool kill_when_child_exits);

private:
    static std::size_t pid_bitmap_bytes();

    bool read_message(std::int32_t& out, std::chrono::milliseconds bound);

    pid_t supervisor_ = -1;
    pid_t pid_ = -1;
    int sock_ = -1;
    int pidfd_ = -1;
    std::optional<int> status_;
    bool lost_ = false;
};

}  // namespace runbox::server::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/process.ipp"
#endif
