// What every SDK conformance test does around its own checks: find the SDK's directory, insist on
// the pinned Node.js and the pinned SDK (skip, or fail under RUNBOX_REQUIRE_CONFORMANCE=1), and run
// the SDK's conformance.mjs against a fake with the given environment.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "node.hpp"
#include "shell_output.hpp"
#include "runbox/detail/shell.hpp"

namespace runbox_test {

/// An SDK installed for a conformance test: its directory and the pinned Node that runs it.
struct PinnedSdk {
    std::filesystem::path dir;  ///< tests/conformance/<provider> (or RUNBOX_<PROVIDER>_CONFORMANCE_DIR)
    std::string node;           ///< tools/node/bin/node
};

inline nlohmann::json read_json_file(const std::filesystem::path& path) {
    std::ifstream in(path);
    return nlohmann::json::parse(in, nullptr, false);
}

/// The SDK `package` (npm name) for `provider`, installed at the version tests/conformance/<provider>/package.json
/// pins; skips (or fails, see conformance_unavailable) when Node or the SDK is missing.
inline PinnedSdk require_pinned_sdk(const std::string& provider, const std::string& package) {
    std::string variable = "RUNBOX_" + provider + "_CONFORMANCE_DIR";
    for (char& c : variable) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    const char* override_dir = std::getenv(variable.c_str());
    PinnedSdk sdk;
    sdk.dir = override_dir != nullptr ? std::filesystem::path(override_dir)
                                      : std::filesystem::path(RUNBOX_SOURCE_DIR) / "tests" / "conformance" / provider;
    const auto node = pinned_node();
    if (!node) conformance_unavailable(pinned_node_missing_reason());
    sdk.node = *node;
    const auto installed = sdk.dir / "node_modules" / package / "package.json";
    if (!std::filesystem::exists(installed))
        conformance_unavailable(package + " is not installed: run `npm ci` in " + sdk.dir.string());
    const auto pinned = read_json_file(sdk.dir / "package.json");
    const auto found = read_json_file(installed);
    REQUIRE(pinned.is_object());
    REQUIRE(found.is_object());
    CHECK(found["version"] == pinned["dependencies"][package]);  // the installed SDK is the pinned one
    return sdk;
}

/// Runs `node conformance.mjs` in the SDK's directory with `environment` set (at most 300 s).
inline ShellRun run_conformance_script(const PinnedSdk& sdk, const std::vector<std::pair<std::string, std::string>>& environment) {
    using runbox::detail::shell_quote;
    std::string command = "cd " + shell_quote(sdk.dir.string()) + " &&";
    for (const auto& [name, value] : environment) command += " " + name + "=" + shell_quote(value);
    command += " timeout 300 " + shell_quote(sdk.node) + " conformance.mjs 2>&1";
    return shell_run(command);
}

}  // namespace runbox_test
