// Runs the official Daytona TypeScript SDK (@daytonaio/sdk, pinned in tests/conformance/daytona)
// against `runbox-fake daytona --port 0` started as a child process: create, list by label, get,
// process/execute, session exec, preview link, files, stop, start, delete, unknown id, wrong key.
// Reports itself skipped (exit 77, never passed) without the pinned Node.js (tools/node), without the installed
// node_modules (`npm ci` in tests/conformance/daytona) or without the runbox-fake program.
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "child_process.hpp"
#include "node.hpp"


namespace {

std::filesystem::path conformance_dir() {
    if (const char* dir = std::getenv("RUNBOX_DAYTONA_CONFORMANCE_DIR")) return dir;
    return std::filesystem::path(RUNBOX_SOURCE_DIR) / "tests" / "conformance" / "daytona";
}

std::filesystem::path fake_program() {
    if (const char* path = std::getenv("RUNBOX_FAKE")) return path;
    const char* bin = std::getenv("RUNBOX_BINARY_DIR");
    return std::filesystem::path(bin != nullptr ? bin : RUNBOX_BINARY_DIR) / "examples" / "runbox-fake";
}

std::string quote(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
}

nlohmann::json read_json(const std::filesystem::path& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in, nullptr, false);
}

}  // namespace

TEST_CASE("daytona conformance: the official @daytonaio/sdk passes against runbox-fake daytona") {
    const auto dir = conformance_dir();
    const auto node = runbox_test::pinned_node();
    if (!node) runbox_test::conformance_unavailable(runbox_test::pinned_node_missing_reason());
    const auto installed = dir / "node_modules" / "@daytonaio" / "sdk" / "package.json";
    if (!std::filesystem::exists(installed))
        runbox_test::conformance_unavailable("@daytonaio/sdk is not installed: run `npm ci` in " + dir.string());
    const auto program = fake_program();
    if (!std::filesystem::exists(program))
        runbox_test::conformance_unavailable("runbox-fake is not built (" + program.string() + "); build the runbox-fake target");

    // The installed SDK is the pinned one.
    const auto pinned = read_json(dir / "package.json");
    const auto sdk = read_json(installed);
    REQUIRE(pinned.is_object());
    REQUIRE(sdk.is_object());
    REQUIRE(sdk["version"] == pinned["dependencies"]["@daytonaio/sdk"]);

    runbox_test::ChildProcess fake({program.string(), "daytona", "--port", "0"});
    const std::string line = fake.next_line();
    const std::string prefix = "listening on http://127.0.0.1:";
    INFO("runbox-fake printed: " << line);
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string url = line.substr(std::string("listening on ").size());

    const std::string command = "cd " + quote(dir.string()) + " && RUNBOX_FAKE_URL=" + quote(url) +
                                " RUNBOX_FAKE_API_KEY=dtn_test timeout 300 " + quote(*node) + " conformance.mjs 2>&1";
    std::string output;
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) output += buffer.data();
    const int status = ::pclose(pipe);
    INFO(output);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(output.find("conformance: all checks passed") != std::string::npos);

    // runbox-fake stops cleanly on SIGTERM.
    const int fake_status = fake.stop();
    CHECK(WIFEXITED(fake_status));
    CHECK(WEXITSTATUS(fake_status) == 0);
}
