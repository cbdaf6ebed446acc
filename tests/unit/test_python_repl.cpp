// PythonRepl: run_ipython's persistent interpreter under its supervisor (server/ipython_driver.hpp).
// The action server's tests cover the cells' behaviour; this file covers the driver's own
// bookkeeping of a dead interpreter.
#include <sys/types.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <csignal>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "catch.hpp"
#include "process_census.hpp"
#include "runbox/server/ipython_driver.hpp"
#include "runbox/server/run_as.hpp"

namespace test_python_repl {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::server::detail::PythonRepl;
using runbox_test::wait_state;

namespace {

std::optional<std::string> python3() {
    const char* path = std::getenv("PATH");
    return runbox::server::detail::find_executable("python3", path ? path : "");
}

/// Resumes a stopped process on every way out of the test.
struct ContinueOnExit {
    pid_t pid;
    ~ContinueOnExit() { ::kill(pid, SIGCONT); }
};

}  // namespace

TEST_CASE("an interpreter gone before its supervisor reports it is replaced at the next cell", "[python_repl]") {
    const auto python = python3();
    if (!python) {
        WARN("python3 not on PATH: PythonRepl not tested");
        return;
    }
    PythonRepl repl(*python, "/tmp", {"PATH=/usr/bin:/bin"}, std::nullopt);
    auto first = repl.run_cell("import os\nmarker = 1\nprint(os.getpid(), os.getppid())", std::nullopt, 30.0);
    REQUIRE_FALSE(first.died);
    REQUIRE_FALSE(first.timed_out);
    pid_t interpreter = 0, supervisor = 0;
    REQUIRE(std::sscanf(first.output.c_str(), "%d %d", &interpreter, &supervisor) == 2);
    const auto generation = repl.generation();

    // The supervisor reaps the interpreter and then reports: held stopped, it cannot report,
    // so the window between the death and the report is as wide as the test needs.
    REQUIRE(::kill(supervisor, SIGSTOP) == 0);
    ContinueOnExit resume{supervisor};
    REQUIRE(wait_state(supervisor, 'T'));
    REQUIRE(::kill(interpreter, SIGKILL) == 0);
    REQUIRE(wait_state(interpreter, 'Z'));  // dead, and nobody has reaped it

    std::atomic<pid_t> worker{0};
    PythonRepl::Result result;
    std::thread t([&] {
        worker = static_cast<pid_t>(::gettid());
        result = repl.run_cell("print('marker' in globals())", std::nullopt, 30.0);
    });
    while (worker.load() == 0) std::this_thread::yield();
    // run_cell now waits for the stopped supervisor (or, on the old code, has already failed).
    const bool waiting = wait_state(worker.load(), 'S');
    ::kill(supervisor, SIGCONT);
    t.join();
    CHECK(waiting);
    CHECK_FALSE(result.died);
    CHECK(result.output == "False\n");  // a fresh interpreter: the old namespace is gone
    CHECK(repl.generation() == generation + 1);
}

}  // namespace test_python_repl
