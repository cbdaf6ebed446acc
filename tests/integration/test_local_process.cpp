// The local provider's process mode: runbox-server as a child process, found through
// RUNBOX_SERVER_PATH (ctest builds it first).
#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>

#include <filesystem>

#include "catch.hpp"
#include "local_hardening.hpp"
#include "runbox/runbox.hpp"

namespace test_local_process {  // several files share a unit (tests/CMakeLists.txt)

namespace {
std::string server_path() {
    const char* dir = std::getenv("RUNBOX_BINARY_DIR");
    const std::filesystem::path path =
        std::filesystem::path(dir != nullptr ? dir : RUNBOX_BINARY_DIR) / "examples" / "runbox-server";
    if (!std::filesystem::exists(path)) RUNBOX_SKIP_TEST("runbox-server is not built at " + path.string());
    return path.string();
}
}  // namespace

TEST_CASE("local process mode: runbox-server as a child, reaped on close") {
    runbox::Config config;
    config.use_environment({});
    config.providers["local"] = {{"mode", "process"}, {"server_path", server_path()}};
    runbox::EventStream events;
    runbox::LocalRuntime rt(config, events, {.sid = "process", .plugins = {{"jupyter"}}});
    REQUIRE(rt.provider().mode() == "process");
    rt.connect();
    const auto obs = rt.run("echo from-child && echo $SESSION_API_KEY | wc -c");
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
    const auto& out = std::get<runbox::CmdOutputObservation>(obs);
    CHECK(out.metadata.exit_code == 0);
    CHECK(out.content.rfind("from-child", 0) == 0);
    // The server's session key (given to it as SESSION_API_KEY) never reaches its shell.
    const auto key = rt.run("echo k=${SESSION_API_KEY:-none}");
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(key));
    CHECK(std::get<runbox::CmdOutputObservation>(key).content == "k=none");

    runbox::IPythonRunCellAction cell;
    cell.code = "print(6 * 7)";
    const auto py = rt.run_ipython(cell);
    if (std::holds_alternative<runbox::IPythonRunCellObservation>(py)) {
        CHECK(std::get<runbox::IPythonRunCellObservation>(py).content.rfind("42\n[Jupyter current working directory:", 0) == 0);
    } else {
        // No usable python3 on this machine: the server says so instead of failing the call.
        REQUIRE(std::holds_alternative<runbox::ErrorObservation>(py));
    }

    rt.close();
    // The child and everything it started are gone: waitpid finds no child left.
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
}

TEST_CASE("local process mode: a missing program is a clear error") {
    runbox::Config config;
    config.use_environment({});
    config.providers["local"] = {{"mode", "process"}, {"server_path", "/nonexistent/runbox-server"}};
    runbox::EventStream events;
    runbox::LocalRuntime rt(config, events);
    try {
        rt.connect();
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(e.detail().find("/nonexistent/runbox-server") != std::string::npos);
    }
}

namespace {
runbox::Config process_config() {
    runbox::Config config;
    config.use_environment({});
    config.providers["local"] = {{"mode", "process"}, {"server_path", server_path()}};
    return config;
}
}  // namespace

TEST_CASE("local process mode: issue 10 row 10, nothing the shell or the REPL starts outlives close()") {
    runbox_test::check_containment(process_config(), "contain-process");
}

TEST_CASE("local process mode: issue 10 row 11, the host's environment does not leak into the sandbox") {
    runbox_test::check_environment(process_config(), "env-process");
}

TEST_CASE("plain runbox-server: issue 10 rows 10 and 11, no SESSION_API_KEY in the shell, nothing outlives SIGTERM") {
    const std::string program = server_path();
    const std::string value = runbox_test::random_token();
    const std::string token = "RUNBOX_CONTAIN_TOKEN=" + value;
    int fds[2];
    REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    std::vector<std::string> argv_storage{program, "0", "--working-dir", "/tmp", "--host", "127.0.0.1", "--no-enable-browser"};
    std::vector<std::string> env_storage{"SESSION_API_KEY=plain-server-key", token};
    for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
    std::vector<char*> argv, envp;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);
    for (auto& e : env_storage) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = -1;
    REQUIRE(::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data()) == 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    std::string out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
        pollfd p{fds[0], POLLIN, 0};
        if (::poll(&p, 1, 1000) <= 0) continue;
        char buf[512];
        const auto n = ::read(fds[0], buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fds[0]);
    const auto at = out.find("listening on ");
    REQUIRE(at != std::string::npos);
    httplib::Client client(out.substr(at + 13, out.find('\n', at) - at - 13));
    client.set_read_timeout(std::chrono::seconds(40));
    const httplib::Headers key{{"X-Session-API-Key", "plain-server-key"}};
    const auto run = [&](const std::string& command) {
        nlohmann::json action{{"action", "run"}, {"args", {{"command", command}, {"blocking", true}}}, {"timeout", 30}};
        auto res = client.Post("/execute_action", key, nlohmann::json{{"action", action}}.dump(), "application/json");
        REQUIRE(res);
        REQUIRE(res->status == 200);
        return nlohmann::json::parse(res->body);
    };
    const std::string env = run("env")["content"];
    CHECK(env.find(token) != std::string::npos);  // the sandbox's own variables are the shell's
    CHECK(env.find("SESSION_API_KEY") == std::string::npos);
    CHECK(env.find("plain-server-key") == std::string::npos);
    CHECK(run("setsid -f sleep 1000; setsid sleep 1000 &")["extras"]["metadata"]["exit_code"] == 0);
    CHECK(runbox_test::eventually([&] { return runbox_test::tagged(token) == 2; }));
    ::kill(pid, SIGTERM);
    int status = 0;
    CHECK(runbox_test::eventually([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, std::chrono::seconds(20)));
    CHECK(runbox_test::eventually([&] { return runbox_test::tagged(token) == 0; }));
}

}  // namespace test_local_process
