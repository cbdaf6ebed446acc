// The local provider's process mode: runbox-server as a child process, found through
// RUNBOX_SERVER_PATH (ctest builds it first).
#include <sys/wait.h>

#include <filesystem>

#include "catch.hpp"
#include "runbox/runbox.hpp"

namespace {
std::string server_path() {
    const char* dir = std::getenv("RUNBOX_BINARY_DIR");
    const std::filesystem::path path =
        std::filesystem::path(dir != nullptr ? dir : RUNBOX_BINARY_DIR) / "examples" / "runbox-server";
    if (!std::filesystem::exists(path)) RUNBOX_SKIP_TEST("runbox-server is not built at " + path.string());
    return path.string();
}
}  // namespace

TEST_CASE("local process mode: runbox-server as a child, reaped on close") {
    runbox::Config config;
    config.use_environment({});
    config.providers["local"] = {{"mode", "process"}, {"server_path", server_path()}};
    runbox::EventStream events;
    runbox::LocalRuntime rt(config, events, {.sid = "process", .plugins = {{"jupyter"}}});
    REQUIRE(rt.provider().mode() == "process");
    rt.connect();
    const auto obs = rt.run("echo from-child && echo $SESSION_API_KEY | wc -c");
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
    const auto& out = std::get<runbox::CmdOutputObservation>(obs);
    CHECK(out.metadata.exit_code == 0);
    CHECK(out.content.rfind("from-child", 0) == 0);
    // The server's session key (given to it as SESSION_API_KEY) never reaches its shell.
    const auto key = rt.run("echo k=${SESSION_API_KEY:-none}");
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(key));
    CHECK(std::get<runbox::CmdOutputObservation>(key).content == "k=none");

    runbox::IPythonRunCellAction cell;
    cell.code = "print(6 * 7)";
    const auto py = rt.run_ipython(cell);
    if (std::holds_alternative<runbox::IPythonRunCellObservation>(py)) {
        CHECK(std::get<runbox::IPythonRunCellObservation>(py).content.rfind("42\n[Jupyter current working directory:", 0) == 0);
    } else {
        // No usable python3 on this machine: the server says so instead of failing the call.
        REQUIRE(std::holds_alternative<runbox::ErrorObservation>(py));
    }

    rt.close();
    // The child and everything it started are gone: waitpid finds no child left.
    CHECK(::waitpid(-1, nullptr, WNOHANG) == -1);
    CHECK(errno == ECHILD);
}

TEST_CASE("local process mode: a missing program is a clear error") {
    runbox::Config config;
    config.use_environment({});
    config.providers["local"] = {{"mode", "process"}, {"server_path", "/nonexistent/runbox-server"}};
    runbox::EventStream events;
    runbox::LocalRuntime rt(config, events);
    try {
        rt.connect();
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(e.detail().find("/nonexistent/runbox-server") != std::string::npos);
    }
}
