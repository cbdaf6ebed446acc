// A program the test starts as a child, with its stdout on a pipe: read its first line (a fake's
// "listening on URL"), stop it with SIGTERM. The destructor stops it, so no child outlives a test.
#pragma once

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

#include "runbox/detail/spawn.hpp"

namespace runbox_test {

class ChildProcess {
public:
    explicit ChildProcess(std::vector<std::string> argv) {
        runbox::detail::SpawnOptions options;
        options.argv = std::move(argv);
        options.stdout_pipe = true;
        const auto child = runbox::detail::spawn(options);
        pid_ = child.pid;
        if (child.stdout_fd >= 0) out_ = ::fdopen(child.stdout_fd, "r");
    }
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess() {
        stop();
        if (out_ != nullptr) std::fclose(out_);
    }

    pid_t pid() const noexcept { return pid_; }

    /// The next line of its stdout without the newline (blocks until it prints one or exits).
    std::string next_line() {
        if (out_ == nullptr) return {};
        std::array<char, 1024> line{};
        if (std::fgets(line.data(), static_cast<int>(line.size()), out_) == nullptr) return {};
        std::string text = line.data();
        while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
        return text;
    }

    /// SIGTERM and wait; the exit status, or -1 when it was not running.
    int stop() {
        if (pid_ <= 0) return -1;
        ::kill(pid_, SIGTERM);
        const auto status = runbox::detail::wait_child(pid_);
        pid_ = -1;
        return status.value_or(0);
    }

private:
    pid_t pid_ = -1;
    FILE* out_ = nullptr;
};

}  // namespace runbox_test
