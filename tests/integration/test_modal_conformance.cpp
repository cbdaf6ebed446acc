// Runs Modal's official JS SDK (npm `modal`, pinned to 0.11.1 in tests/conformance/modal) against
// FakeModal: app from name, image from registry (streamed build), sandbox create with ports, env
// and tags, tunnels to the real action server, exec with stdout/stderr/exit code, tags set/get,
// list by tags, terminate, an unknown sandbox. Skipped (exit 77, never passed) without the pinned
// Node.js (tools/node), the installed node_modules (`npm ci` in tests/conformance/modal), or
// libnghttp2 (the fake's h2c server).
#include <string>
#include <vector>

#include "catch.hpp"
#include "conformance.hpp"

#if defined(RUNBOX_WITH_HTTP2_SERVER)
#include "runbox/testing/fake_modal.hpp"

namespace test_modal_conformance {  // several files share a unit (tests/CMakeLists.txt)

namespace {

std::size_t count_calls(const std::vector<runbox::testing::FakeRequest>& log, const std::string& method, int rpc_status) {
    std::size_t n = 0;
    for (const auto& r : log)
        if (r.path.ends_with("/" + method) && r.rpc_status == rpc_status) ++n;
    return n;
}

}  // namespace

TEST_CASE("modal conformance: the official modal JS SDK passes against FakeModal", "[conformance][modal]") {
    const auto sdk = runbox_test::require_pinned_sdk("modal", "modal");
    CHECK(runbox_test::read_json_file(sdk.dir / "package.json")["dependencies"]["modal"] == "0.11.1");

    runbox::testing::FakeModalOptions options;
    options.token_id = "ak-conformance";
    options.token_secret = "as-conformance-secret";
    options.image_build_entries = 2;  // the SDK has to stream the build (ImageJoinStreaming)
    runbox::testing::FakeModal fake(options);
    fake.start();

    // The SDK reads its profile at import: every variable is set on the command line before node starts.
    const auto run = runbox_test::run_conformance_script(
        sdk, {{"MODAL_SERVER_URL", fake.url()},
              {"MODAL_TOKEN_ID", fake.token_id()},
              {"MODAL_TOKEN_SECRET", fake.token_secret()},
              {"MODAL_CONFIG_PATH", (sdk.dir / "no-such-modal.toml").string()},
              {"HOME", sdk.dir.string()}});
    const std::string& output = run.output;
    INFO(output);
    CHECK(run.exit_code == 0);
    CHECK(output.find("conformance: OK") != std::string::npos);
    CHECK(output.find(options.token_secret) == std::string::npos);

    // The SDK took the paths under test: one JWT, a streamed image build, two V2 creates,
    // execs on the router, a paged list, NOT_FOUND for the unknown sandbox and name.
    const auto log = fake.requests();
    CHECK(count_calls(log, "AuthTokenGet", 0) >= 1);
    CHECK(count_calls(log, "ImageGetOrCreate", 0) >= 1);
    CHECK(count_calls(log, "ImageJoinStreaming", 0) >= 1);
    CHECK(count_calls(log, "SandboxCreateV2", 0) == 2);
    CHECK(count_calls(log, "TaskExecStart", 0) == 3);
    CHECK(count_calls(log, "TaskExecWait", 0) == 3);
    CHECK(count_calls(log, "SandboxListV2", 0) >= 4);
    CHECK(count_calls(log, "SandboxTagsGetV2", 5) == 1);
    CHECK(count_calls(log, "SandboxGetFromNameV2", 5) == 1);
    CHECK(count_calls(log, "SandboxGetFromName", 5) == 1);
    for (const auto& r : log) {
        CHECK(r.body.find("sk-conformance") == std::string::npos);
        CHECK(r.body.find(options.token_secret) == std::string::npos);
        for (const auto& [name, value] : r.headers) CHECK(value.find(options.token_secret) == std::string::npos);
    }
    // It terminated everything it created.
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.sandboxes().size() == 2);
}

}  // namespace test_modal_conformance
#else
TEST_CASE("modal conformance needs libnghttp2 (the fake's h2c server)", "[conformance][modal]") {
    runbox_test::conformance_unavailable("built without runbox::http2_server (libnghttp2)");
}
#endif
