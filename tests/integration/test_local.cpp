// The local provider end to end: LocalRuntime -> HTTP -> ActionServer -> bash on a PTY.
// Rows 16-21 (copy_to/copy_from) and 39-41 (environment variables) of the reference's behaviour
// table, the JSON runbox sends and gets back, and that close() leaves no process behind.
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "catch.hpp"
#include "runbox/runbox.hpp"
#include "local_hardening.hpp"
#include "runbox/transport/testing.hpp"

namespace test_local {  // several files share a unit (tests/CMakeLists.txt)

namespace fs = std::filesystem;

namespace {

// Every process below this one (children, grandchildren, ...), from /proc.
std::set<pid_t> descendants() {
    std::map<pid_t, pid_t> parent;
    if (DIR* dir = ::opendir("/proc")) {
        while (const dirent* entry = ::readdir(dir)) {
            const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
            if (pid <= 0) continue;
            std::ifstream stat("/proc/" + std::string(entry->d_name) + "/stat");
            std::string text((std::istreambuf_iterator<char>(stat)), {});
            const auto close_paren = text.rfind(')');
            if (close_paren == std::string::npos) continue;
            std::istringstream rest(text.substr(close_paren + 2));
            char state = 0;
            pid_t ppid = 0;
            rest >> state >> ppid;
            if (state != 'Z') parent[pid] = ppid;
        }
        ::closedir(dir);
    }
    std::set<pid_t> out;
    bool grew = true;
    const pid_t self = ::getpid();
    while (grew) {
        grew = false;
        for (const auto& [pid, ppid] : parent) {
            if ((ppid == self || out.count(ppid) != 0) && out.insert(pid).second) grew = true;
        }
    }
    return out;
}

// Waits (bounded) until no descendant process is left; returns those that stayed.
std::set<pid_t> wait_for_no_descendants(std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    auto left = descendants();
    while (!left.empty() && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
        left = descendants();
    }
    return left;
}

runbox::CmdOutputObservation as_cmd(const runbox::Observation& obs) {
    INFO(runbox::to_wire(obs));
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
    return std::get<runbox::CmdOutputObservation>(obs);
}

std::string cmd_output(runbox::LocalRuntime& rt, const std::string& command) {
    const auto& obs = as_cmd(rt.run(command));
    REQUIRE(obs.metadata.exit_code == 0);
    return obs.content;
}

struct TempDir {
    TempDir() : path(fs::temp_directory_path() / ("runbox-local-test-" + runbox::detail::random_hex(6))) {
        fs::create_directories(path);
    }
    ~TempDir() {
        std::error_code ignored;
        fs::remove_all(path, ignored);
    }
    fs::path path;
};

runbox::Config quiet_config() {
    runbox::Config config;
    config.use_environment({});
    return config;
}

}  // namespace

TEST_CASE("local: connect, run, and state that persists between commands") {
    runbox::EventStream events;
    runbox::LocalRuntime rt(quiet_config(), events, {.sid = "basic"});
    rt.connect();
    const auto& obs = as_cmd(rt.run("echo hi"));
    CHECK(obs.content == "hi");
    CHECK(obs.metadata.exit_code == 0);
    CHECK(obs.metadata.suffix == "\n[The command completed with exit code 0.]");
    const std::string workspace = rt.provider().workspace().string();
    CHECK(obs.metadata.working_dir == workspace);
    cmd_output(rt, "mkdir -p test");
    cmd_output(rt, "cd test");
    CHECK(cmd_output(rt, "pwd") == workspace + "/test");
    // The git identity of the initial setup (reference §7.2).
    CHECK(cmd_output(rt, "git config --global user.name") == "openhands");
}

TEST_CASE("local: rows 16-21, copy_to and copy_from") {
    TempDir host;
    std::ofstream(host.path / "test_file.txt") << "Hello, World!";
    fs::create_directories(host.path / "test_dir");
    std::ofstream(host.path / "test_dir" / "file1.txt") << "one";
    std::ofstream(host.path / "test_dir" / "file2.txt") << "two";

    runbox::EventStream events;
    runbox::LocalRuntime rt(quiet_config(), events, {.sid = "copy"});
    rt.connect();
    const std::string ws = rt.provider().workspace().string();

    SECTION("row 16: a single file") {
        rt.copy_to(host.path / "test_file.txt", ws);
        CHECK(cmd_output(rt, "cat " + ws + "/test_file.txt") == "Hello, World!");
    }
    SECTION("row 17: a directory, recursively, keeps its name") {
        rt.copy_to(host.path / "test_dir", ws, true);
        CHECK(cmd_output(rt, "cat " + ws + "/test_dir/file1.txt " + ws + "/test_dir/file2.txt") == "onetwo");
        CHECK(as_cmd(rt.run("test -e " + ws + "/file1.txt")).metadata.exit_code == 1);
    }
    SECTION("row 18: into a directory that does not exist yet") {
        rt.copy_to(host.path / "test_file.txt", ws + "/new_dir");
        CHECK(cmd_output(rt, "cat " + ws + "/new_dir/test_file.txt") == "Hello, World!");
    }
    SECTION("row 19: over an existing file") {
        cmd_output(rt, "touch " + ws + "/test_file.txt");
        rt.copy_to(host.path / "test_file.txt", ws);
        CHECK(cmd_output(rt, "cat " + ws + "/test_file.txt") == "Hello, World!");
    }
    SECTION("row 20: a missing host file is an error and creates nothing") {
        REQUIRE_THROWS_AS(rt.copy_to(host.path / "missing.txt", ws), runbox::error);
        CHECK(rt.list_files().empty());
    }
    SECTION("row 21: copy_from a directory returns a local zip") {
        rt.copy_to(host.path / "test_dir", ws, true);
        const fs::path zip = rt.copy_from(ws + "/test_dir");
        REQUIRE(fs::exists(zip));
        auto names = runbox::zip_entry_names(zip);
        std::sort(names.begin(), names.end());
        CHECK(names == std::vector<std::string>{"file1.txt", "file2.txt"});
        fs::remove(zip);
        REQUIRE_THROWS_AS(rt.copy_from(ws + "/no_such_dir"), runbox::error);
    }
    SECTION("list_files: directories first, then files, case-insensitively") {
        cmd_output(rt, "mkdir src .git && touch b.txt A.py");
        CHECK(rt.list_files() == std::vector<std::string>{".git/", "src/", "A.py", "b.txt"});
        CHECK(rt.list_files("src").empty());
        CHECK(rt.list_files("/definitely/missing").empty());
    }
}

TEST_CASE("local: rows 39-41, environment variables") {
    runbox::EventStream events;
    SECTION("row 39: SANDBOX_ENV_<NAME> from the host becomes <NAME>") {
        runbox::Config config;
        config.use_environment({{"SANDBOX_ENV_FOOBAR", "BAZ"}});
        runbox::LocalRuntime rt(config, events, {.sid = "env39"});
        rt.connect();
        CHECK(cmd_output(rt, "echo $FOOBAR") == "BAZ");
    }
    SECTION("row 40: add_env_vars, with quotes, several, none, overwrite") {
        runbox::LocalRuntime rt(quiet_config(), events, {.sid = "env40"});
        rt.connect();
        rt.add_env_vars({{"QUUX", "abc\"def"}});
        CHECK(cmd_output(rt, "echo $QUUX") == "abc\"def");
        rt.add_env_vars({{"FOOBAR", "xyz"}});
        CHECK(cmd_output(rt, "echo $QUUX $FOOBAR") == "abc\"def xyz");
        const std::string before = cmd_output(rt, "env | sort");
        rt.add_env_vars({});
        CHECK(cmd_output(rt, "env | sort") == before);
        rt.add_env_vars({{"QUUX", "new"}});
        CHECK(cmd_output(rt, "echo $QUUX") == "new");
        CHECK(cmd_output(rt, "grep -c '^export QUUX=' ~/.bashrc") == "1");
    }
    SECTION("row 41: runtime_startup_env_vars, and env_vars of the options") {
        auto config = quiet_config();
        config.sandbox.runtime_startup_env_vars = {{"ADDED_ENV_VAR", "added_value"}};
        runbox::LocalRuntime rt(config, events, {.sid = "env41", .env_vars = {{"from_options", "1"}}});
        rt.connect();
        CHECK(cmd_output(rt, "echo $ADDED_ENV_VAR $FROM_OPTIONS") == "added_value 1");
    }
}

TEST_CASE("local: NO_CHANGE_TIMEOUT_SECONDS must be a number of seconds, at most a year") {
    for (const std::string value : {"soon", "-5", "inf", "nan", "1e300"}) {
        INFO(value);
        auto config = quiet_config();
        config.sandbox.runtime_startup_env_vars = {{"NO_CHANGE_TIMEOUT_SECONDS", value}};
        runbox::EventStream events;
        runbox::LocalRuntime rt(config, events, {.sid = "no-change-" + std::to_string(value.size())});
        try {
            rt.connect();
            FAIL("connect accepted NO_CHANGE_TIMEOUT_SECONDS=" << value);
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::config_invalid);
        }
    }
}

TEST_CASE("local: NO_CHANGE_TIMEOUT_SECONDS from runtime_startup_env_vars reaches the shell (row 25)") {
    auto config = quiet_config();
    config.sandbox.runtime_startup_env_vars = {{"NO_CHANGE_TIMEOUT_SECONDS", "1"}};
    runbox::EventStream events;
    runbox::LocalRuntime rt(config, events, {.sid = "row25"});
    rt.connect();
    const auto& prompt = as_cmd(rt.run("read -p 'Enter name: ' name && echo \"Hello $name\""));
    CHECK(prompt.content == "Enter name:");
    CHECK(prompt.metadata.exit_code == -1);
    CHECK(prompt.metadata.suffix.find("[The command has no new output after 1 seconds.") != std::string::npos);
    runbox::CmdRunAction input;
    input.command = "John";
    input.is_input = true;
    const auto& done = as_cmd(rt.run(input));
    CHECK(done.content == "Hello John");
    CHECK(done.metadata.suffix == "\n[The command completed with exit code 0.]");
}

TEST_CASE("local: client and server exchange OpenHands' JSON, key for key") {
    TempDir dir;
    auto config = quiet_config();
    config.transport.cassette_path = (dir.path / "cassette.jsonl").string();
    runbox::EventStream events;
    using Recorded = runbox::Runtime<runbox::local::Auth, runbox::RecordingTransport<runbox::HttplibTransport>>;
    std::string session_key;
    {
        Recorded rt(config, events, {.sid = "wire"});
        rt.connect();
        session_key = rt.session_api_key().value_or("");
        runbox::CmdRunAction action;
        action.command = "ls -l";
        rt.run(action);
    }
    REQUIRE(session_key.size() >= 32);
    std::ifstream in(dir.path / "cassette.jsonl");
    const std::string cassette((std::istreambuf_iterator<char>(in)), {});
    CHECK(cassette.find(session_key) == std::string::npos);  // recorded traffic holds no secret

    // The last exchange is the ls -l: its request and response, key by key in OpenHands' order.
    std::vector<nlohmann::ordered_json> exchanges;
    std::istringstream lines(cassette);
    for (std::string line; std::getline(lines, line);) {
        if (!line.empty()) exchanges.push_back(nlohmann::ordered_json::parse(line));
    }
    REQUIRE_FALSE(exchanges.empty());
    const auto& last = exchanges.back();
    const auto request = nlohmann::ordered_json::parse(last.at("request").at("body").get<std::string>());
    const auto& action = request.at("action");
    std::vector<std::string> keys;
    for (const auto& item : action.items()) keys.push_back(item.key());
    CHECK(keys == std::vector<std::string>{"message", "action", "args", "timeout"});
    std::vector<std::string> args;
    for (const auto& item : action.at("args").items()) args.push_back(item.key());
    CHECK(args == std::vector<std::string>{"command", "is_input", "thought", "blocking", "is_static", "cwd", "hidden",
                                           "confirmation_state", "security_risk"});
    CHECK(action.at("message") == "Running command: ls -l");
    CHECK(action.at("timeout") == 120.0);

    const auto response = nlohmann::ordered_json::parse(last.at("response").at("body").get<std::string>());
    std::vector<std::string> rkeys;
    for (const auto& item : response.items()) rkeys.push_back(item.key());
    CHECK(rkeys == std::vector<std::string>{"message", "observation", "content", "extras", "success"});
    std::vector<std::string> metadata;
    for (const auto& item : response.at("extras").at("metadata").items()) metadata.push_back(item.key());
    CHECK(metadata == std::vector<std::string>{"exit_code", "pid", "username", "hostname", "working_dir",
                                               "py_interpreter_path", "prefix", "suffix"});
    CHECK(response.at("message") == "Command `ls -l` executed with exit code 0.");
    CHECK(response.at("content") == "total 0");
}

TEST_CASE("local: close() and destruction leave no process behind, after timeouts and background jobs") {
    REQUIRE(wait_for_no_descendants().empty());
    runbox::EventStream events;
    fs::path workspace;
    SECTION("close()") {
        runbox::LocalRuntime rt(quiet_config(), events, {.sid = "reap"});
        rt.connect();
        workspace = rt.provider().workspace();
        CHECK(as_cmd(rt.run("sleep 1000 &")).metadata.exit_code == 0);
        runbox::CmdRunAction slow;
        slow.command = "sleep 1000";
        slow.set_hard_timeout(0.3);
        CHECK(as_cmd(rt.run(slow)).metadata.exit_code == -1);
        CHECK_FALSE(descendants().empty());
        rt.close();
        CHECK(wait_for_no_descendants().empty());
        CHECK_FALSE(fs::exists(workspace));  // the temporary workspace goes too
    }
    SECTION("the destructor") {
        {
            runbox::LocalRuntime rt(quiet_config(), events, {.sid = "reap-dtor"});
            rt.connect();
            CHECK(as_cmd(rt.run("nohup sleep 1000 >/dev/null 2>&1 &")).metadata.exit_code == 0);
            workspace = rt.provider().workspace();
        }
        CHECK(wait_for_no_descendants().empty());
        CHECK_FALSE(fs::exists(workspace));
    }
}

TEST_CASE("local: a workspace_base given by the user is used and kept") {
    TempDir dir;
    auto config = quiet_config();
    config.workspace_base = dir.path.string();
    std::ofstream(dir.path / "existing.txt") << "mine";
    runbox::EventStream events;
    {
        runbox::LocalRuntime rt(config, events, {.sid = "ws"});
        rt.connect();
        CHECK(rt.list_files() == std::vector<std::string>{"existing.txt"});
        CHECK(cmd_output(rt, "cat existing.txt") == "mine");
    }
    CHECK(fs::exists(dir.path / "existing.txt"));
}

TEST_CASE("local: actions published on the stream are answered on it") {
    runbox::EventStream events;
    runbox::LocalRuntime rt(quiet_config(), events, {.sid = "stream"});
    rt.connect();
    runbox::CmdRunAction action;
    action.command = "echo via-stream";
    const auto id = events.add_event(runbox::Action(action), runbox::EventSource::user);
    REQUIRE(events.wait_until_delivered(id, std::chrono::seconds(30)));
    // The runtime's callback published the observation before returning.
    const auto latest = events.get_latest_event();
    REQUIRE(latest);
    REQUIRE(std::holds_alternative<runbox::Observation>(*latest));
    const auto& obs = std::get<runbox::Observation>(*latest);
    CHECK(runbox::meta(obs).cause == id);
    CHECK(runbox::meta(obs).source == runbox::EventSource::user);
    CHECK(as_cmd(obs).content == "via-stream");
}

TEST_CASE("local: the settings are checked at construction") {
    auto config = quiet_config();
    config.providers["local"]["mode"] = "container";
    runbox::EventStream events;
    try {
        runbox::LocalRuntime rt(config, events);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(e.detail().find("RUNBOX_LOCAL_MODE") != std::string::npos);
    }
}

TEST_CASE("local: issue 10 row 10, thread mode: nothing the shell or the REPL starts outlives close()") {
    REQUIRE(wait_for_no_descendants().empty());
    runbox_test::check_containment(quiet_config(), "contain-thread");
}

TEST_CASE("local: issue 10 row 11, thread mode: the host's environment does not leak into the sandbox") {
    runbox_test::check_environment(quiet_config(), "env-thread");
}

}  // namespace test_local
