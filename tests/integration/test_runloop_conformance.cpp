// Runs the official Runloop SDK (@runloop/api-client, pinned in tests/conformance/runloop) against
// FakeRunloop: create, retrieve, list with pagination, wait for running (with 408 re-polls),
// tunnel, execute, files, errors, shutdown. Skipped (exit 77, never passed) without the pinned Node.js (tools/node) or the
// installed node_modules (`npm ci` in tests/conformance/runloop).
#include <chrono>
#include <string>

#include "catch.hpp"
#include "conformance.hpp"

#include "runbox/testing/fake_runloop.hpp"

namespace test_runloop_conformance {  // several files share a unit (tests/CMakeLists.txt)

TEST_CASE("runloop conformance: the official @runloop/api-client passes against FakeRunloop") {
    const auto sdk = runbox_test::require_pinned_sdk("runloop", "@runloop/api-client");

    runbox::testing::FakeRunloopOptions options;
    options.provisioning_delay = std::chrono::milliseconds(600);  // long enough for the long-poll to time out
    options.initializing_delay = std::chrono::milliseconds(50);
    options.long_poll_timeout = std::chrono::milliseconds(200);
    runbox::testing::FakeRunloop fake(options);
    fake.start();

    const auto run = runbox_test::run_conformance_script(
        sdk, {{"RUNLOOP_BASE_URL", fake.url()}, {"RUNLOOP_API_KEY", fake.api_key()}, {"RUNLOOP_TUNNEL_URL", fake.tunnel_url_template()}});
    const std::string& output = run.output;
    INFO(output);
    CHECK(run.exit_code == 0);
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

}  // namespace test_runloop_conformance
