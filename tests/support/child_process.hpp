// A program the test starts as a child, with its stdout on a pipe: read its first line (a fake's
// "listening on URL"), stop it with SIGTERM. The destructor stops it, so no child outlives a test.
#pragma once

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <string>
#include <vector>

extern char** environ;

namespace runbox_test {

class ChildProcess {
public:
    explicit ChildProcess(std::vector<std::string> argv) {
        int fds[2];
        if (::pipe(fds) != 0) return;
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        posix_spawn_file_actions_addclose(&actions, fds[0]);
        std::vector<char*> args;
        for (auto& a : argv) args.push_back(a.data());
        args.push_back(nullptr);
        if (::posix_spawn(&pid_, argv.front().c_str(), &actions, nullptr, args.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        out_ = ::fdopen(fds[0], "r");
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
        int status = 0;
        while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
        }
        pid_ = -1;
        return status;
    }

private:
    pid_t pid_ = -1;
    FILE* out_ = nullptr;
};

}  // namespace runbox_test
