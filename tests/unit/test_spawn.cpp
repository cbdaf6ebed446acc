// runbox::detail::spawn, the one posix_spawn routine: real programs, real pipes, real process groups.
#include "catch.hpp"

#include "runbox/detail/spawn.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace test_spawn {  // several files share a unit (tests/CMakeLists.txt)

namespace {

/// Everything the child wrote on its stdout pipe, then closes it.
std::string read_all(int fd) {
    std::string out;
    char buffer[4096];
    for (;;) {
        const auto n = ::read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        out.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return out;
}

}  // namespace

TEST_CASE("spawn: the child's stdout arrives on the pipe and its exit status is reaped", "[spawn]") {
    runbox::detail::SpawnOptions options;
    options.argv = {"/bin/sh", "-c", "printf 'hello\\n'; exit 3"};
    options.stdout_pipe = true;
    const auto child = runbox::detail::spawn(options);
    REQUIRE(child.pid > 0);
    REQUIRE(child.stdout_fd >= 0);
    CHECK(child.error == 0);
    CHECK((::fcntl(child.stdout_fd, F_GETFD) & FD_CLOEXEC) != 0);  // no other child inherits it
    CHECK(read_all(child.stdout_fd) == "hello\n");
    const auto status = runbox::detail::wait_child(child.pid);
    REQUIRE(status);
    REQUIRE(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) == 3);
    CHECK_FALSE(runbox::detail::wait_child(child.pid));  // reaped: no longer our child
}

TEST_CASE("spawn: a program that does not exist is an errno, not a child", "[spawn]") {
    runbox::detail::SpawnOptions options;
    options.argv = {"runbox-no-such-program-7f3a"};
    options.stdout_pipe = true;
    for (const bool search : {false, true}) {
        options.search_path = search;
        const auto child = runbox::detail::spawn(options);
        CHECK(child.pid == -1);
        CHECK(child.stdout_fd == -1);
        CHECK(child.error == ENOENT);
        CHECK_FALSE(child.pipe_failed);
    }
    options.argv.clear();
    CHECK(runbox::detail::spawn(options).error == EINVAL);
}

TEST_CASE("spawn: search_path finds a program on PATH; env replaces the environment", "[spawn]") {
    runbox::detail::SpawnOptions options;
    options.argv = {"env"};
    options.search_path = true;
    options.stdout_pipe = true;
    options.env = std::vector<std::string>{"RUNBOX_SPAWN_TEST=1", "PATH=/usr/bin:/bin"};
    const auto child = runbox::detail::spawn(options);
    REQUIRE(child.pid > 0);
    CHECK(read_all(child.stdout_fd) == "RUNBOX_SPAWN_TEST=1\nPATH=/usr/bin:/bin\n");
    REQUIRE(runbox::detail::wait_child(child.pid) == 0);
}

TEST_CASE("spawn: the child gets fds 0-2 only, not the descriptors the host left inheritable", "[spawn]") {
    const int inheritable = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC, as a std::ofstream's
    REQUIRE(inheritable >= 0);
    REQUIRE(::dup2(inheritable, 100) == 100);
    ::close(inheritable);
    REQUIRE((::fcntl(100, F_GETFD) & FD_CLOEXEC) == 0);
    runbox::detail::SpawnOptions options;
    options.argv = {"/bin/sh", "-c", "if [ -e /proc/self/fd/100 ]; then echo inherited; else echo closed; fi; "
                                     "[ -e /proc/self/fd/2 ] && echo stderr-kept"};
    options.stdout_pipe = true;
    const auto child = runbox::detail::spawn(options);
    ::close(100);
    REQUIRE(child.pid > 0);
    CHECK(read_all(child.stdout_fd) == "closed\nstderr-kept\n");
    REQUIRE(runbox::detail::wait_child(child.pid) == 0);
}

TEST_CASE("spawn: new_process_group puts the child in a group of its own", "[spawn]") {
    for (const bool own_group : {false, true}) {
        runbox::detail::SpawnOptions options;
        options.argv = {"/bin/sleep", "30"};
        options.new_process_group = own_group;
        const auto child = runbox::detail::spawn(options);
        REQUIRE(child.pid > 0);
        CHECK(child.stdout_fd == -1);
        CHECK((::getpgid(child.pid) == child.pid) == own_group);
        CHECK((::getpgid(child.pid) == ::getpgrp()) == !own_group);
        ::kill(child.pid, SIGKILL);
        const auto status = runbox::detail::wait_child(child.pid);
        REQUIRE(status);
        CHECK(WIFSIGNALED(*status));
    }
}

}  // namespace test_spawn
