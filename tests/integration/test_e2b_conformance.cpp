// Runs the official E2B SDK (npm `e2b`, pinned in tests/conformance/e2b) against FakeE2B: create
// with metadata and envs, commands.run (stdout, stderr, exit code, a background command, a
// non-zero exit), files write/read/list/exists, setTimeout, getInfo, list by metadata,
// pause/connect, kill, an unknown id, wrong credentials. Skipped (exit 77, never passed) without
// the pinned Node.js (tools/node) or the installed node_modules (`npm ci` in tests/conformance/e2b).
#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "catch.hpp"
#include "node.hpp"

#include "runbox/testing/fake_e2b.hpp"

namespace {

std::filesystem::path conformance_dir() {
    if (const char* dir = std::getenv("RUNBOX_E2B_CONFORMANCE_DIR")) return dir;
    return std::filesystem::path(RUNBOX_SOURCE_DIR) / "tests" / "conformance" / "e2b";
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

TEST_CASE("e2b conformance: the official e2b SDK passes against FakeE2B") {
    const auto dir = conformance_dir();
    const auto node = runbox_test::pinned_node();
    if (!node) runbox_test::conformance_unavailable(runbox_test::pinned_node_missing_reason());
    const auto installed = dir / "node_modules" / "e2b" / "package.json";
    if (!std::filesystem::exists(installed))
        runbox_test::conformance_unavailable("e2b is not installed: run `npm ci` in " + dir.string());

    // The installed SDK is the pinned one.
    const auto pinned = read_json(dir / "package.json");
    const auto sdk = read_json(installed);
    REQUIRE(pinned.is_object());
    REQUIRE(sdk.is_object());
    CHECK(sdk["version"] == pinned["dependencies"]["e2b"]);

    runbox::testing::FakeE2B fake;
    fake.start();

    const std::string command = "cd " + quote(dir.string()) + " && RUNBOX_FAKE_URL=" + quote(fake.url()) +
                                " RUNBOX_FAKE_API_KEY=" + quote(fake.api_key()) + " timeout 300 " + quote(*node) +
                                " conformance.mjs 2>&1";
    std::string output;
    FILE* pipe = ::popen(command.c_str(), "r");
    REQUIRE(pipe != nullptr);
    std::array<char, 4096> buffer{};
    while (std::fgets(buffer.data(), static_cast<int>(buffer.size()), pipe) != nullptr) output += buffer.data();
    const int status = ::pclose(pipe);
    INFO(output);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    CHECK(output.find("conformance: OK") != std::string::npos);

    const auto requests = fake.requests();
    // The SDK went through both sides of the one port: the API and envd (routed by E2b-Sandbox-Id).
    std::set<std::string> envd_paths;
    bool streamed = false;
    for (const auto& r : requests) {
        if (!runbox::testing::FakeE2B::is_envd(r)) continue;
        envd_paths.insert(r.path);
        if (r.path == "/process.Process/Start") {
            streamed = true;
            CHECK(r.headers.at("content-type") == "application/connect+json");
            CHECK(r.headers.at("x-access-token") == "***");  // logged redacted
            CHECK(runbox::testing::FakeE2B::stream_json(r)["process"]["cmd"] == "/bin/bash");
        }
    }
    CHECK(streamed);
    for (const char* p : {"/process.Process/Start", "/process.Process/Connect", "/process.Process/List",
                          "/process.Process/SendSignal", "/files", "/filesystem.Filesystem/ListDir",
                          "/filesystem.Filesystem/Stat", "/filesystem.Filesystem/MakeDir",
                          "/filesystem.Filesystem/Move", "/filesystem.Filesystem/Remove", "/health"})
        CHECK(envd_paths.count(p) == 1);
    // No secret reached the log.
    for (const auto& r : requests) {
        CHECK(r.body.find(fake.api_key()) == std::string::npos);
        for (const auto& [name, value] : r.headers) CHECK(value.find(fake.api_key()) == std::string::npos);
    }
    // It killed everything it created, and no process is left running.
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.running_processes() == 0);
}
