// Runs the official E2B SDK (npm `e2b`, pinned in tests/conformance/e2b) against FakeE2B: create
// with metadata and envs, commands.run (stdout, stderr, exit code, a background command, a
// non-zero exit), files write/read/list/exists, setTimeout, getInfo, list by metadata,
// pause/connect, kill, an unknown id, wrong credentials. Skipped (exit 77, never passed) without
// the pinned Node.js (tools/node) or the installed node_modules (`npm ci` in tests/conformance/e2b).
#include <set>
#include <string>

#include "catch.hpp"
#include "conformance.hpp"

#include "runbox/testing/fake_e2b.hpp"

namespace test_e2b_conformance {  // several files share a unit (tests/CMakeLists.txt)

TEST_CASE("e2b conformance: the official e2b SDK passes against FakeE2B") {
    const auto sdk = runbox_test::require_pinned_sdk("e2b", "e2b");

    runbox::testing::FakeE2B fake;
    fake.start();

    const auto run = runbox_test::run_conformance_script(sdk, {{"RUNBOX_FAKE_URL", fake.url()}, {"RUNBOX_FAKE_API_KEY", fake.api_key()}});
    const std::string& output = run.output;
    INFO(output);
    CHECK(run.exit_code == 0);
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

}  // namespace test_e2b_conformance
