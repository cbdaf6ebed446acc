// The `runbox` command line, driven as a real program: exit codes, output, --json, errors.
#include <sys/wait.h>

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

fs::path cli_program() { return fs::path(RUNBOX_BINARY_DIR) / "cli" / "runbox"; }

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
