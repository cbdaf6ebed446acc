// A real /bin/sh for tests of command lines runbox builds: what a command printed, line by line.
#pragma once

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "runbox/detail/spawn.hpp"

namespace runbox_test {

/// What a shell command printed on stdout and how it ended.
struct ShellRun {
    int exit_code = -1;  ///< its exit status; -1 when it could not start or did not exit normally
    std::string output;  ///< everything it wrote on stdout
};

/// Runs `command` with /bin/sh -c until it ends; what it printed and its exit code.
inline ShellRun shell_run(const std::string& command) {
    ShellRun run;
    runbox::detail::SpawnOptions options;
    options.argv = {"/bin/sh", "-c", command};
    options.stdout_pipe = true;
    const auto child = runbox::detail::spawn(options);
    if (child.pid < 0) return run;
    char buffer[4096];
    for (;;) {
        const auto n = ::read(child.stdout_fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        run.output.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(child.stdout_fd);
    const auto status = runbox::detail::wait_child(child.pid);
    if (status && WIFEXITED(*status)) run.exit_code = WEXITSTATUS(*status);
    return run;
}

/// Runs `command` with /bin/sh -c and returns what it printed on stdout.
inline std::string shell_output(const std::string& command) { return shell_run(command).output; }

/// `text` split at '\n' (a last line without one is dropped: printf '%s\n' ends every line).
inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    for (auto nl = text.find('\n'); nl != std::string::npos; pos = nl + 1, nl = text.find('\n', pos))
        out.push_back(text.substr(pos, nl - pos));
    return out;
}

}  // namespace runbox_test
