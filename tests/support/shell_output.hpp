// A real /bin/sh for tests of command lines runbox builds: what a command printed, line by line.
#pragma once

#include <cstdio>
#include <string>
#include <vector>

namespace runbox_test {

/// Runs `command` with /bin/sh (popen) and returns what it printed on stdout.
inline std::string shell_output(const std::string& command) {
    std::string out;
    if (FILE* pipe = ::popen(command.c_str(), "r")) {
        char buffer[4096];
        for (std::size_t n; (n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
        ::pclose(pipe);
    }
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
