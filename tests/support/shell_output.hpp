// A real /bin/sh for tests of command lines runbox builds: what a command printed, line by line.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

#include "runbox/detail/spawn.hpp"

namespace runbox_test {

/// Runs `command` with /bin/sh -c and returns what it printed on stdout.
inline std::string shell_output(const std::string& command) {
    std::string out;
    runbox::detail::SpawnOptions options;
    options.argv = {"/bin/sh", "-c", command};
    options.stdout_pipe = true;
    const auto child = runbox::detail::spawn(options);
    if (child.pid < 0) return out;
    char buffer[4096];
    for (;;) {
        const auto n = ::read(child.stdout_fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(child.stdout_fd);
    runbox::detail::wait_child(child.pid);
    return out;
}

/// `text` split at '\n' (a last line without one is dropped: printf '%s\n' ends every line).
inline std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::size_t pos = 0;
    for (auto nl = text.find('\n'); nl != std::string::npos; pos = nl + 1, nl = text.find('\n', pos))
        out.push_back(text.substr(pos, nl - pos));
    return out;
}

}  // namespace runbox_test
