// Runs the official Daytona TypeScript SDK (@daytonaio/sdk, pinned in tests/conformance/daytona)
// against `runbox-fake daytona --port 0` started as a child process: create, list by label, get,
// process/execute, session exec, preview link, files, stop, start, delete, unknown id, wrong key.
// Reports itself skipped (exit 77, never passed) without the pinned Node.js (tools/node), without the installed
// node_modules (`npm ci` in tests/conformance/daytona) or without the runbox-fake program.
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "catch.hpp"
#include "child_process.hpp"
#include "conformance.hpp"

namespace test_daytona_conformance {  // several files share a unit (tests/CMakeLists.txt)

namespace {

std::filesystem::path fake_program() {
    if (const char* path = std::getenv("RUNBOX_FAKE")) return path;
    const char* bin = std::getenv("RUNBOX_BINARY_DIR");
    return std::filesystem::path(bin != nullptr ? bin : RUNBOX_BINARY_DIR) / "examples" / "runbox-fake";
}

}  // namespace

TEST_CASE("daytona conformance: the official @daytonaio/sdk passes against runbox-fake daytona") {
    const auto sdk = runbox_test::require_pinned_sdk("daytona", "@daytonaio/sdk");
    const auto program = fake_program();
    if (!std::filesystem::exists(program))
        runbox_test::conformance_unavailable("runbox-fake is not built (" + program.string() + "); build the runbox-fake target");

    runbox_test::ChildProcess fake({program.string(), "daytona", "--port", "0"});
    const std::string line = fake.next_line();
    const std::string prefix = "listening on http://127.0.0.1:";
    INFO("runbox-fake printed: " << line);
    REQUIRE(line.rfind(prefix, 0) == 0);
    const std::string url = line.substr(std::string("listening on ").size());

    const auto run = runbox_test::run_conformance_script(sdk, {{"RUNBOX_FAKE_URL", url}, {"RUNBOX_FAKE_API_KEY", "dtn_test"}});
    const std::string& output = run.output;
    INFO(output);
    CHECK(run.exit_code == 0);
    CHECK(output.find("conformance: all checks passed") != std::string::npos);

    // runbox-fake stops cleanly on SIGTERM.
    const int fake_status = fake.stop();
    CHECK(WIFEXITED(fake_status));
    CHECK(WEXITSTATUS(fake_status) == 0);
}

}  // namespace test_daytona_conformance
