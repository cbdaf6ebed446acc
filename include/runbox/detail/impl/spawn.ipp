#pragma once

#include "runbox/detail/spawn.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

extern char** environ;

namespace runbox::detail {

RUNBOX_DECL SpawnedChild spawn(const SpawnOptions& options) {
    SpawnedChild child;
    if (options.argv.empty()) {
        child.error = EINVAL;
        return child;
    }
    int fds[2] = {-1, -1};
    if (options.stdout_pipe && ::pipe2(fds, O_CLOEXEC) != 0) {
        child.error = errno;
        child.pipe_failed = true;
        return child;
    }
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    if (options.stdout_pipe) posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);  // dup2 clears CLOEXEC
    // Only 0-2 cross: the host program's other descriptors (a download's stream, a socket opened
    // by another thread without O_CLOEXEC) stay out of a child that may live as long as it does.
    posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    if (options.new_process_group) {
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
        posix_spawnattr_setpgroup(&attr, 0);
    }
    std::vector<std::string> argv_strings = options.argv;
    std::vector<char*> argv;
    for (auto& s : argv_strings) argv.push_back(s.data());
    argv.push_back(nullptr);
    std::vector<std::string> env_strings;
    std::vector<char*> envp;
    if (options.env) {
        env_strings = *options.env;
        for (auto& s : env_strings) envp.push_back(s.data());
        envp.push_back(nullptr);
    }
    char* const* env = options.env ? envp.data() : environ;
    const int rc = options.search_path
                       ? ::posix_spawnp(&child.pid, argv[0], &actions, &attr, argv.data(), env)
                       : ::posix_spawn(&child.pid, argv[0], &actions, &attr, argv.data(), env);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (options.stdout_pipe) ::close(fds[1]);
    if (rc != 0) {
        if (options.stdout_pipe) ::close(fds[0]);
        child.pid = -1;
        child.error = rc;
        return child;
    }
    child.stdout_fd = options.stdout_pipe ? fds[0] : -1;
    return child;
}

RUNBOX_DECL std::optional<int> wait_child(pid_t pid) {
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) return std::nullopt;
    }
    return status;
}

}  // namespace runbox::detail
