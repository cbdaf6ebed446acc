// The Node.js that the SDK conformance tests run on: the one pinned in tools/node/package.json and
// installed by scripts/setup.sh (linked as tools/node/bin/node), never whatever `node` is on PATH,
// so that CI and a fresh Debian 12 machine run the SDKs on the same version (Debian 12's own
// nodejs is 18; the SDKs need 20).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace runbox_test {

inline std::optional<std::string> pinned_node() {
    const std::filesystem::path node = std::filesystem::path(RUNBOX_SOURCE_DIR) / "tools" / "node" / "bin" / "node";
    std::error_code ec;
    if (!std::filesystem::exists(node, ec)) return std::nullopt;
    return node.string();
}

inline std::string pinned_node_missing_reason() {
    return "the pinned Node.js is not installed (tools/node/bin/node): run scripts/setup.sh";
}

/// A conformance test that cannot run here is skipped (exit 77), except where
/// RUNBOX_REQUIRE_CONFORMANCE=1 (scripts/test.sh sets it): there a missing SDK or Node is a
/// failure, so that a broken install step cannot pass as a skip.
[[noreturn]] inline void conformance_unavailable(const std::string& reason) {
    const char* required = std::getenv("RUNBOX_REQUIRE_CONFORMANCE");
    if (required != nullptr && std::string(required) == "1") {
        std::fprintf(stderr, "FAILED: conformance required (RUNBOX_REQUIRE_CONFORMANCE=1) but: %s\n", reason.c_str());
        std::fflush(stderr);
        std::_Exit(1);
    }
    RUNBOX_SKIP_TEST(reason);
}

}  // namespace runbox_test
