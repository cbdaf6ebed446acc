// The `runbox` command line, driven as a real program: exit codes, output, --json, errors.
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "child_process.hpp"

namespace test_cli {  // several files share a unit (tests/CMakeLists.txt)

namespace {

namespace fs = std::filesystem;

struct Result {
    int exit_code = -1;
    std::string out;
    std::string err;
};

std::string quote(const std::string& s) {
    std::string q = "'";
    for (const char c : s) q += (c == '\'') ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

std::string slurp(const fs::path& path) {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

fs::path cli_program() { return fs::path(RUNBOX_BINARY_DIR) / "examples" / "runbox"; }

/// Runs `runbox ARGS` with a clean provider environment and returns its exit code and output.
Result runbox_cli(const std::string& args, const std::string& env = "") {
    static std::mt19937_64 rng{std::random_device{}()};
    const fs::path dir = fs::temp_directory_path() / ("runbox-cli-test-" + std::to_string(rng()));
    fs::create_directories(dir);
    const std::string command = "env -u RUNTIME -u DAYTONA_API_KEY -u RUNLOOP_API_KEY " + env + " " +
                                quote(cli_program().string()) + " " + args + " >" + quote((dir / "out").string()) +
                                " 2>" + quote((dir / "err").string()) + " </dev/null";
    const int status = std::system(command.c_str());
    Result result;
    result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    result.out = slurp(dir / "out");
    result.err = slurp(dir / "err");
    fs::remove_all(dir);
    return result;
}

}  // namespace

TEST_CASE("runbox run: prints the command's output and exits with its exit code (local provider)") {
    REQUIRE(fs::exists(cli_program()));
    const auto hi = runbox_cli("run -- echo hi");
    INFO(hi.err);
    CHECK(hi.exit_code == 0);
    CHECK(hi.out == "hi\n");

    const auto failing = runbox_cli("run -- sh -c 'echo partial; exit 7'");
    CHECK(failing.exit_code == 7);
    CHECK(failing.out == "partial\n");

    // Arguments reach the shell as the words that were typed.
    const auto words = runbox_cli("--quiet run -- printf '%s|' 'a b' \"it's\"");
    CHECK(words.exit_code == 0);
    CHECK(words.out == "a b|it's|\n");
    CHECK(words.err.empty());
}

TEST_CASE("runbox run: progress goes to stderr as plain lines when stderr is not a terminal") {
    const auto r = runbox_cli("run -- true");
    CHECK(r.exit_code == 0);
    CHECK(r.out.empty());
    CHECK_THAT(r.err, runbox_test::contains("runbox: Runtime is ready."));
    CHECK(r.err.find('\r') == std::string::npos);
}

TEST_CASE("runbox --json run: one JSON object that parses back") {
    const auto r = runbox_cli("--json run --env GREETING=bonjour -- sh -c 'echo $GREETING; exit 4'");
    CHECK(r.exit_code == 4);
    const auto j = nlohmann::json::parse(r.out, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["provider"] == "local");
    CHECK(j["exit_code"] == 4);
    CHECK(j["output"] == "bonjour");
    CHECK(j["timed_out"] == false);
    CHECK(j["sid"].get<std::string>().rfind("runbox-cli-", 0) == 0);
}

TEST_CASE("runbox run --timeout interrupts the command and exits 124") {
    const auto r = runbox_cli("--quiet run --timeout 1 -- sleep 30");
    CHECK(r.exit_code == 124);
}

TEST_CASE("runbox: errors are one line naming what failed, with documented exit codes") {
    const auto unknown = runbox_cli("--provider nope run -- true");
    CHECK(unknown.exit_code == 125);
    CHECK_THAT(unknown.err, runbox_test::contains("known are: local, daytona"));

    const auto missing_key = runbox_cli("--provider daytona run -- true");
    CHECK(missing_key.exit_code == 125);
    CHECK_THAT(missing_key.err, runbox_test::contains("DAYTONA_API_KEY"));

    const auto keep_local = runbox_cli("run --keep -- true");
    CHECK(keep_local.exit_code == 125);
    CHECK_THAT(keep_local.err, runbox_test::contains("cloud provider"));

    const auto usage = runbox_cli("");
    CHECK(usage.exit_code == 2);
    const auto bad_env = runbox_cli("run --env NOEQUALS -- true");
    CHECK(bad_env.exit_code == 2);
    CHECK_THAT(bad_env.err, runbox_test::contains("KEY=VALUE"));

    const auto help = runbox_cli("--help");
    CHECK(help.exit_code == 0);
    CHECK_THAT(help.out, runbox_test::contains("run"));
    const auto version = runbox_cli("--version");
    CHECK(version.exit_code == 0);
    CHECK_THAT(version.out, runbox_test::contains("runbox 0."));
}

TEST_CASE("runbox run: a long command's output is printed as it arrives, not at the end") {
    // The command prints "first", then waits for a flag file that the test creates only after it
    // has read "first" from the CLI's stdout; without streaming it would give up after 20 s.
    const fs::path flag = fs::temp_directory_path() / ("runbox-cli-flag-" + std::to_string(std::random_device{}()));
    const std::string script = "echo first; for i in $(seq 200); do [ -e " + flag.string() +
                               " ] && break; sleep 0.1; done; [ -e " + flag.string() + " ] && echo second || echo gave up";
    const std::string command = "env -u RUNTIME SANDBOX_RUNTIME_STARTUP_ENV_VARS='{\"NO_CHANGE_TIMEOUT_SECONDS\":\"1\"}' " +
                                quote(cli_program().string()) + " --quiet run -- sh -c " + quote(script) + " </dev/null";
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 256> line{};
    REQUIRE(std::fgets(line.data(), static_cast<int>(line.size()), pipe) != nullptr);
    CHECK(std::string(line.data()) == "first\n");
    std::ofstream(flag).put('x');
    std::string rest;
    while (std::fgets(line.data(), static_cast<int>(line.size()), pipe) != nullptr) rest += line.data();
    const int status = ::pclose(pipe);
    fs::remove(flag);
    CHECK(rest == "second\n");
    CHECK(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("runbox against `runbox fake daytona` with only DAYTONA_API_KEY and DAYTONA_API_URL") {
    runbox_test::ChildProcess fake({cli_program().string(), "fake", "daytona", "--port", "0"});
    const std::string line = fake.next_line();
    const std::string prefix = "listening on ";
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string env = "DAYTONA_API_KEY=dtn_test DAYTONA_API_URL=" + quote(line.substr(prefix.size()) + "/api");

    const auto uname = runbox_cli("--provider daytona --quiet run -- uname -s", env);
    INFO(uname.err);
    CHECK(uname.exit_code == 0);
    CHECK(uname.out == "Linux\n");

    // --keep leaves the sandbox running; exec, cp and ls attach to it by sid.
    const auto kept = runbox_cli("--provider daytona --json run --keep -- sh -c 'echo made > made.txt'", env);
    INFO(kept.err);
    REQUIRE(kept.exit_code == 0);
    const auto j = nlohmann::json::parse(kept.out, nullptr, false);
    REQUIRE(j.is_object());
    const std::string sid = j["sid"];
    CHECK(j["kept"] == true);

    // A sid that no sandbox has is an error, not a new sandbox left running.
    const auto before = nlohmann::json::parse(runbox_cli("--provider daytona --json list", env).out, nullptr, false);
    const auto typo = runbox_cli("--provider daytona --quiet exec --sid no-such-sid -- true", env);
    CHECK(typo.exit_code == 125);
    CHECK_THAT(typo.err, runbox_test::contains("no daytona sandbox has the sid no-such-sid"));
    const auto after_typo = nlohmann::json::parse(runbox_cli("--provider daytona --json list", env).out, nullptr, false);
    REQUIRE(before.is_array());
    REQUIRE(after_typo.is_array());
    CHECK(after_typo.size() == before.size());

    const auto exec = runbox_cli("--provider daytona --quiet exec --sid " + sid + " -- cat made.txt", env);
    INFO(exec.err);
    CHECK(exec.exit_code == 0);
    CHECK(exec.out == "made\n");

    const fs::path dir = fs::temp_directory_path() / ("runbox-cli-cp-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir / "down");
    std::ofstream(dir / "up.txt") << "uploaded";
    const std::string workdir = j["working_dir"];
    const auto up = runbox_cli("--provider daytona --quiet cp " + quote((dir / "up.txt").string()) + " " + sid + ":" +
                                   workdir, env);
    INFO(up.err);
    CHECK(up.exit_code == 0);
    const auto ls = runbox_cli("--provider daytona --quiet --json ls --sid " + sid + " " + workdir, env);
    INFO(ls.err);
    CHECK(ls.exit_code == 0);
    const auto names = nlohmann::json::parse(ls.out, nullptr, false);
    REQUIRE(names.is_array());
    CHECK(std::find(names.begin(), names.end(), "up.txt") != names.end());
    CHECK(std::find(names.begin(), names.end(), "made.txt") != names.end());
    const auto down = runbox_cli("--provider daytona --quiet cp " + sid + ":" + workdir + "/made.txt " +
                                     quote((dir / "down").string()), env);
    INFO(down.err);
    CHECK(down.exit_code == 0);
    CHECK(slurp(dir / "down" / "made.txt") == "made\n");
    fs::remove_all(dir);

    // list finds the kept sandbox by its session label; sweep releases it (its runbox is gone).
    const auto listed = runbox_cli("--provider daytona --json list", env);
    INFO(listed.err);
    REQUIRE(listed.exit_code == 0);
    const auto records = nlohmann::json::parse(listed.out, nullptr, false);
    REQUIRE(records.is_array());
    const auto has_sid = [](const nlohmann::json& list, const std::string& wanted) {
        return std::any_of(list.begin(), list.end(), [&](const nlohmann::json& r) { return r.value("sid", "") == wanted; });
    };
    CHECK(has_sid(records, sid));

    const auto dry = runbox_cli("--provider daytona --json sweep --older-than 0 --dry-run", env);
    INFO(dry.err);
    REQUIRE(dry.exit_code == 0);
    const auto plan = nlohmann::json::parse(dry.out, nullptr, false);
    REQUIRE(plan.is_object());
    CHECK(plan["dry_run"] == true);
    CHECK(has_sid(plan["actions"], sid));
    CHECK(has_sid(nlohmann::json::parse(runbox_cli("--provider daytona --json list", env).out, nullptr, false), sid));

    const auto swept = runbox_cli("--provider daytona --json sweep --older-than 0", env);
    INFO(swept.err);
    CHECK(swept.exit_code == 0);
    const auto after = nlohmann::json::parse(runbox_cli("--provider daytona --json list", env).out, nullptr, false);
    REQUIRE(after.is_array());
    CHECK_FALSE(has_sid(after, sid));

    CHECK(fake.stop() == 0);
}

TEST_CASE("runbox list and sweep find what a killed `runbox run` left behind") {
    runbox_test::ChildProcess fake({cli_program().string(), "fake", "daytona", "--port", "0"});
    const std::string line = fake.next_line();
    const std::string prefix = "listening on ";
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string url = line.substr(prefix.size()) + "/api";
    const std::string env = "DAYTONA_API_KEY=dtn_test DAYTONA_API_URL=" + quote(url);
    const std::string sid = "killed-" + std::to_string(std::random_device{}());

    // The client prints the command's first output once the sandbox runs it, then waits.
    runbox_test::ChildProcess client({"/usr/bin/env", "-u", "RUNTIME", "DAYTONA_API_KEY=dtn_test", "DAYTONA_API_URL=" + url,
                                      cli_program().string(), "--provider", "daytona", "--quiet", "run", "--sid", sid, "--",
                                      "sh", "-c", "echo started; sleep 60"});
    REQUIRE(client.next_line() == "started");
    ::kill(client.pid(), SIGKILL);
    client.stop();

    const auto listed = nlohmann::json::parse(runbox_cli("--provider daytona --json list", env).out, nullptr, false);
    REQUIRE(listed.is_array());
    const auto has_sid = [&](const nlohmann::json& list) {
        return std::any_of(list.begin(), list.end(), [&](const nlohmann::json& r) { return r.value("sid", "") == sid; });
    };
    CHECK(has_sid(listed));
    const auto swept = runbox_cli("--provider daytona sweep --older-than 0", env);
    INFO(swept.out << swept.err);
    CHECK(swept.exit_code == 0);
    CHECK_THAT(swept.out, runbox_test::contains("delete daytona"));
    const auto after = nlohmann::json::parse(runbox_cli("--provider daytona --json list", env).out, nullptr, false);
    REQUIRE(after.is_array());
    CHECK_FALSE(has_sid(after));
    CHECK(fake.stop() == 0);
}

TEST_CASE("runbox against `runbox fake runloop`: run, exit codes, --keep and exec, cp both ways, list, sweep") {
    runbox_test::ChildProcess fake({cli_program().string(), "fake", "runloop", "--port", "0"});
    const std::string line = fake.next_line();
    const std::string prefix = "listening on ";
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string url = line.substr(prefix.size());
    // The fake serves devbox tunnels under its own URL (Runloop's are subdomains of tunnel.runloop.ai).
    std::string env = "RUNLOOP_API_KEY=rl_fake_key RUNLOOP_BASE_URL=" + quote(url) + " RUNLOOP_TUNNEL_URL=" +
                      quote(url + "/tunnel/{port}-{tunnel_key}") + " RUNLOOP_POLL_INTERVAL_MS=20";

    const auto uname = runbox_cli("--provider runloop --quiet run -- uname -s", env);
    INFO(uname.err);
    CHECK(uname.exit_code == 0);
    CHECK(uname.out == "Linux\n");
    const auto failing = runbox_cli("--provider runloop --quiet run -- sh -c 'echo partial; exit 7'", env);
    CHECK(failing.exit_code == 7);
    CHECK(failing.out == "partial\n");

    const auto wrong_key = runbox_cli("--provider runloop --quiet run -- true",
                                      "RUNLOOP_API_KEY=not-the-key RUNLOOP_BASE_URL=" + quote(url));
    CHECK(wrong_key.exit_code == 125);
    CHECK_THAT(wrong_key.err, runbox_test::contains("auth_failed"));
    CHECK(wrong_key.err.find("not-the-key") == std::string::npos);

    // A later process attaches to a kept devbox with nothing but the API key: the session key
    // follows from the devbox's create token (no RUNLOOP_SESSION_API_KEY needed).
    const auto kept = runbox_cli("--provider runloop --json run --keep -- sh -c 'echo made > made.txt'", env);
    INFO(kept.err);
    REQUIRE(kept.exit_code == 0);
    const auto j = nlohmann::json::parse(kept.out, nullptr, false);
    REQUIRE(j.is_object());
    CHECK(j["provider"] == "runloop");
    CHECK(j["kept"] == true);
    const std::string sid = j["sid"];
    const std::string workdir = j["working_dir"];

    const auto exec = runbox_cli("--provider runloop --quiet exec --sid " + sid + " -- cat made.txt", env);
    INFO(exec.err);
    CHECK(exec.exit_code == 0);
    CHECK(exec.out == "made\n");

    const fs::path dir = fs::temp_directory_path() / ("runbox-cli-runloop-" + std::to_string(std::random_device{}()));
    fs::create_directories(dir / "down");
    std::ofstream(dir / "up.txt") << "uploaded";
    const auto up = runbox_cli("--provider runloop --quiet cp " + quote((dir / "up.txt").string()) + " " + sid + ":" +
                                   workdir, env);
    INFO(up.err);
    CHECK(up.exit_code == 0);
    const auto ls = runbox_cli("--provider runloop --quiet --json ls --sid " + sid + " " + workdir, env);
    INFO(ls.err);
    CHECK(ls.exit_code == 0);
    const auto names = nlohmann::json::parse(ls.out, nullptr, false);
    REQUIRE(names.is_array());
    CHECK(std::find(names.begin(), names.end(), "up.txt") != names.end());
    const auto down = runbox_cli("--provider runloop --quiet cp " + sid + ":" + workdir + "/made.txt " +
                                     quote((dir / "down").string()), env);
    INFO(down.err);
    CHECK(down.exit_code == 0);
    CHECK(slurp(dir / "down" / "made.txt") == "made\n");
    fs::remove_all(dir);

    const auto has_sid = [](const nlohmann::json& list, const std::string& wanted) {
        return std::any_of(list.begin(), list.end(), [&](const nlohmann::json& r) { return r.value("sid", "") == wanted; });
    };
    const auto listed = runbox_cli("--provider runloop --json list", env);
    INFO(listed.err);
    REQUIRE(listed.exit_code == 0);
    CHECK(has_sid(nlohmann::json::parse(listed.out, nullptr, false), sid));
    const auto swept = runbox_cli("--provider runloop --json sweep --older-than 0", env);
    INFO(swept.err);
    CHECK(swept.exit_code == 0);
    const auto after = nlohmann::json::parse(runbox_cli("--provider runloop --json list", env).out, nullptr, false);
    REQUIRE(after.is_array());
    CHECK_FALSE(has_sid(after, sid));

    CHECK(fake.stop() == 0);
}

TEST_CASE("runbox against `runbox fake e2b`: run, exit codes, --keep and exec, a wrong key") {
    runbox_test::ChildProcess fake({cli_program().string(), "fake", "e2b", "--port", "0"});
    const std::string line = fake.next_line();
    const std::string prefix = "listening on ";
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string url = line.substr(prefix.size());
    // API and envd on the fake's one port; {port}-{id}.e2b.app does not resolve here, so the
    // server's URL is the fake's port proxy. The fake's sandboxes run runbox-server from "/".
    const std::string env = "E2B_API_KEY=e2b_test E2B_API_URL=" + quote(url) + " E2B_SANDBOX_URL=" + quote(url) +
                            " E2B_SERVER_URL=" + quote(url + "/ports/{port}-{id}") +
                            " E2B_SERVER_COMMAND=runbox-server E2B_SERVER_CWD=/";

    const auto uname = runbox_cli("--provider e2b --quiet run -- uname -s", env);
    INFO(uname.err);
    CHECK(uname.exit_code == 0);
    CHECK(uname.out == "Linux\n");
    const auto failing = runbox_cli("--provider e2b --quiet run -- sh -c 'echo partial; exit 7'", env);
    CHECK(failing.exit_code == 7);
    CHECK(failing.out == "partial\n");

    const auto wrong_key = runbox_cli("--provider e2b --quiet run -- true",
                                      "E2B_API_KEY=e2b_wrong_key E2B_API_URL=" + quote(url));
    CHECK(wrong_key.exit_code == 125);
    CHECK_THAT(wrong_key.err, runbox_test::contains("auth_failed"));
    CHECK(wrong_key.err.find("e2b_wrong_key") == std::string::npos);

    const auto kept = runbox_cli("--provider e2b --json run --keep -- sh -c 'echo made > made.txt'", env);
    INFO(kept.err);
    REQUIRE(kept.exit_code == 0);
    const auto j = nlohmann::json::parse(kept.out);
    const std::string sid = j.at("sid").get<std::string>();
    const auto exec = runbox_cli("--provider e2b --quiet exec --sid " + sid + " -- cat made.txt", env);
    INFO(exec.err);
    CHECK(exec.exit_code == 0);
    CHECK(exec.out == "made\n");
    const auto swept = runbox_cli("--provider e2b --json sweep --older-than 0", env);
    INFO(swept.err);
    CHECK(swept.exit_code == 0);
    const auto after = nlohmann::json::parse(runbox_cli("--provider e2b --json list", env).out, nullptr, false);
    REQUIRE(after.is_array());
    CHECK(after.empty());
}

}  // namespace test_cli
