/// \file
/// starting a program without a shell: the one posix_spawn routine of runbox.
///
/// The local provider's runbox-server child, the runbox-server program's useradd, and the test
/// suite's child processes all start here. The action server's own processes do not: a shell or
/// an interpreter runs as the configured user under a subreaper supervisor (server/process.hpp),
/// and posix_spawn can neither switch user (setgroups/setgid/setuid) nor make its child a
/// subreaper or give it a controlling terminal, so those keep their fork + execve.
///
/// Why not Boost.Process (Debian's Boost 1.74): a one-line unit using boost::process::child
/// costs 3.5 CPU s and 460 MB to compile against 0.2 s and 70 MB for posix_spawn (g++ 12, -O0),
/// and its v1 pulls in Boost.Filesystem, a compiled library runbox does not link today.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "runbox/detail/linkage.hpp"

namespace runbox::detail {

/// What spawn() starts and how.
/// (The child gets fds 0-2 only: every other descriptor is closed in it, close-on-exec or not.)
struct SpawnOptions {
    std::vector<std::string> argv;                    ///< argv[0] is the program
    std::optional<std::vector<std::string>> env;      ///< "K=V" strings; nullopt: this process's environment
    bool search_path = false;                         ///< look argv[0] up on PATH (posix_spawnp)
    bool stdout_pipe = false;                         ///< the child's stdout goes to a pipe the caller reads
    bool new_process_group = false;                   ///< its own process group: kill(-pid, sig) reaches all of it
};

/// A started child: its pid, and the read end of its stdout pipe (-1 without stdout_pipe;
/// close-on-exec, the caller closes it). `error` is the errno when it could not start (pid -1).
struct SpawnedChild {
    pid_t pid = -1;     ///< the child's pid, -1 when it did not start
    int stdout_fd = -1; ///< read end of the child's stdout (with SpawnOptions::stdout_pipe)
    int error = 0;      ///< why it did not start (an errno value), 0 when it did
    bool pipe_failed = false;  ///< the stdout pipe could not be made (nothing was started)
};

/// Starts `options.argv` with posix_spawn(p). Never throws for a program that cannot start
/// (the result says why); throws std::bad_alloc only.
RUNBOX_DECL SpawnedChild spawn(const SpawnOptions& options);

/// Waits for the child `pid` to end (retrying on EINTR); its wait status, or nullopt when
/// waitpid fails (not our child).
RUNBOX_DECL std::optional<int> wait_child(pid_t pid);

}  // namespace runbox::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/detail/impl/spawn.ipp"
#endif
