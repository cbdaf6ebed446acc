// Issue 10 rows 10 and 11 against a LocalRuntime, shared by the thread-mode (test_local) and
// process-mode (test_local_process) programs: containment of everything the shell and the Python
// REPL start, and the environment they get.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>
#include <variant>
#include <vector>

#include "catch.hpp"
#include "process_census.hpp"
#include "runbox/runbox.hpp"

namespace runbox_test {

inline std::string random_token() {
    unsigned char raw[8];
    std::ifstream("/dev/urandom").read(reinterpret_cast<char*>(raw), sizeof raw);
    std::string out;
    for (const unsigned char b : raw) out += "0123456789abcdef"[b & 15];
    return out;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

/// Output of a run_ipython cell, or nullopt when the machine has no usable python3.
inline std::optional<std::string> ipython(runbox::LocalRuntime& rt, const std::string& code) {
    runbox::IPythonRunCellAction cell;
    cell.code = code;
    const auto obs = rt.run_ipython(cell);
    if (const auto* out = std::get_if<runbox::IPythonRunCellObservation>(&obs)) return out->content;
    REQUIRE(std::holds_alternative<runbox::ErrorObservation>(obs));  // no python3: the server says so
    return std::nullopt;
}

/// Row 10: `setsid sleep &`, `setsid -f`, a double-forked daemon, 200 `(setsid sleep &)`, and
/// the same from the Python REPL: each runs (counted from /proc after each pattern), and after
/// close() none is left, neither as a descendant nor anywhere else.
inline void check_containment(runbox::Config config, const std::string& sid) {
    const std::string value = random_token();
    const std::string token = "RUNBOX_CONTAIN_TOKEN=" + value;
    config.sandbox.runtime_startup_env_vars["RUNBOX_CONTAIN_TOKEN"] = value;
    runbox::EventStream events;
    runbox::LocalRuntime rt(config, events, {.sid = sid, .plugins = {{"jupyter"}}});
    rt.connect();
    struct Pattern {
        std::string command;
        std::size_t sleeps;
    };
    const std::vector<Pattern> patterns{
        {"setsid sleep 1000 &", 1},
        {"setsid -f sleep 1000", 1},
        {"sh -c 'setsid sh -c \"sleep 1000 </dev/null >/dev/null 2>&1 &\" </dev/null >/dev/null 2>&1'", 1},
        {"for i in $(seq 200); do (setsid sleep 1000 &); done", 200},
    };
    std::size_t expected = 0;
    for (const auto& p : patterns) {
        INFO(p.command);
        runbox::CmdRunAction a;
        a.command = p.command;
        a.set_hard_timeout(30);
        const auto obs = rt.run(a);
        REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
        CHECK(std::get<runbox::CmdOutputObservation>(obs).metadata.exit_code == 0);
        expected += p.sleeps;
        CHECK(eventually([&] { return tagged(token) == expected; }));
    }
    const auto py = ipython(rt,
                            "import os, subprocess\n"
                            "subprocess.Popen(['setsid', '-f', 'sleep', '1000'])\n"
                            "child = os.fork()\n"
                            "if child == 0:\n"
                            "    os.setsid()\n"
                            "    if os.fork() == 0:\n"
                            "        os.execvp('sleep', ['sleep', '1000'])\n"
                            "    os._exit(0)\n"
                            "os.waitpid(child, 0)\n"
                            "print('spawned')\n");
    if (py) {
        CHECK(contains(*py, "spawned"));
        expected += 2;
        CHECK(eventually([&] { return tagged(token) == expected; }));
    }
    INFO("sleeps running before close(): " << tagged(token));
    rt.close();
    CHECK(eventually([&] { return tagged(token) == 0; }));
    CHECK(tagged(token) == 0);
    CHECK(eventually([] { return descendants().empty(); }));
}

/// Row 11: a host secret and a SESSION_API_KEY in this program's environment reach neither the
/// shell, nor a static command, nor the Python REPL; the allow-listed and the given variables do.
inline void check_environment(runbox::Config config, const std::string& sid) {
    const std::string secret = "host-secret-" + random_token();
    REQUIRE(::setenv("RUNBOX_TEST_HOST_SECRET", secret.c_str(), 1) == 0);  // the host environment under test
    REQUIRE(::setenv("SESSION_API_KEY", "host-session-key", 1) == 0);
    config.sandbox.runtime_startup_env_vars["GIVEN_VAR"] = "given";
    {
        runbox::EventStream events;
        runbox::LocalRuntime rt(config, events, {.sid = sid, .plugins = {{"jupyter"}}});
        rt.connect();
        const auto shell = rt.run("env");
        REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(shell));
        const std::string env = "\n" + std::get<runbox::CmdOutputObservation>(shell).content;
        CHECK_FALSE(contains(env, "RUNBOX_TEST_HOST_SECRET"));
        CHECK_FALSE(contains(env, secret));
        CHECK_FALSE(contains(env, "SESSION_API_KEY"));
        CHECK_FALSE(contains(env, "host-session-key"));
        CHECK(contains(env, "\nPATH="));
        CHECK(contains(env, "\nGIVEN_VAR=given"));

        runbox::CmdRunAction fixed;
        fixed.command = "env";
        fixed.is_static = true;
        const auto st = rt.run(fixed);
        REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(st));
        const std::string static_env = std::get<runbox::CmdOutputObservation>(st).content;
        CHECK_FALSE(contains(static_env, secret));
        CHECK_FALSE(contains(static_env, "SESSION_API_KEY"));
        CHECK(contains(static_env, "GIVEN_VAR=given"));

        if (const auto py = ipython(rt, "import os\nprint(sorted(os.environ))")) {
            CHECK_FALSE(contains(*py, "RUNBOX_TEST_HOST_SECRET"));
            CHECK_FALSE(contains(*py, "SESSION_API_KEY"));
            CHECK(contains(*py, "'GIVEN_VAR'"));
        }
        rt.close();
    }
    ::unsetenv("RUNBOX_TEST_HOST_SECRET");
    ::unsetenv("SESSION_API_KEY");
}

}  // namespace runbox_test
