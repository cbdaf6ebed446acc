// Runs the official Runloop SDK (@runloop/api-client, pinned in tests/conformance/runloop) against
// FakeRunloop: create, retrieve, list with pagination, wait for running (with 408 re-polls),
// tunnel, execute, files, errors, shutdown. Skipped (exit 77, never passed) without the pinned Node.js (tools/node) or the
// installed node_modules (`npm ci` in tests/conformance/runloop).
#include <stdio.h>
#include <sys/wait.h>

#include <array>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "catch.hpp"
#include "node.hpp"

#include "runbox/testing/fake_runloop.hpp"

namespace {

std::filesystem::path conformance_dir() {
    if (const char* dir = std::getenv("RUNBOX_RUNLOOP_CONFORMANCE_DIR")) return dir;
#ifdef RUNBOX_SOURCE_DIR
    return std::filesystem::path(RUNBOX_SOURCE_DIR) / "tests" / "conformance" / "runloop";
#else
    return std::filesystem::path(__FILE__).parent_path().parent_path() / "conformance" / "runloop";
#endif
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

TEST_CASE("runloop conformance: the official @runloop/api-client passes against FakeRunloop") {
    const auto dir = conformance_dir();
    const auto node = runbox_test::pinned_node();
    if (!node) runbox_test::conformance_unavailable(runbox_test::pinned_node_missing_reason());
    const auto installed = dir / "node_modules" / "@runloop" / "api-client" / "package.json";
    if (!std::filesystem::exists(installed))
        runbox_test::conformance_unavailable("@runloop/api-client is not installed: run `npm ci` in " + dir.string());

    // The installed SDK is the pinned one.
    const auto pinned = read_json(dir / "package.json");
    const auto sdk = read_json(installed);
    REQUIRE(pinned.is_object());
    REQUIRE(sdk.is_object());
    CHECK(sdk["version"] == pinned["dependencies"]["@runloop/api-client"]);

    runbox::testing::FakeRunloopOptions options;
    options.provisioning_delay = std::chrono::milliseconds(600);  // long enough for the long-poll to time out
    options.initializing_delay = std::chrono::milliseconds(50);
    options.long_poll_timeout = std::chrono::milliseconds(200);
    runbox::testing::FakeRunloop fake(options);
    fake.start();

    const std::string command = "cd " + quote(dir.string()) + " && RUNLOOP_BASE_URL=" + quote(fake.url()) +
                                " RUNLOOP_API_KEY=" + quote(fake.api_key()) + " RUNLOOP_TUNNEL_URL=" +
                                quote(fake.tunnel_url_template()) + " timeout 300 " + quote(*node) + " conformance.mjs 2>&1";
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

    // The SDK really went through the long-poll protocol: at least one 408, then re-polled.
    int timeouts = 0;
    int waits = 0;
    for (const auto& r : fake.requests()) {
        if (r.path.find("/wait_for_status") == std::string::npos) continue;
        ++waits;
        if (r.status == 408) ++timeouts;
    }
    CHECK(timeouts >= 1);
    CHECK(waits > timeouts);
    // It shut down everything it created.
    CHECK(fake.live_sandboxes() == 0);
}
