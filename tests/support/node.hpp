// The Node.js that the SDK conformance tests run on: the one pinned in tools/node/package.json and
// installed by scripts/setup.sh, never whatever `node` is on PATH, so that CI and a fresh Debian 12
// machine run the SDKs on the same version (Debian 12's own nodejs is 18; the SDKs need 20).
#pragma once

#include <filesystem>
#include <optional>
#include <string>

namespace runbox_test {

inline std::optional<std::string> pinned_node() {
    const std::filesystem::path node =
        std::filesystem::path(RUNBOX_SOURCE_DIR) / "tools" / "node" / "node_modules" / ".bin" / "node";
    std::error_code ec;
    if (!std::filesystem::exists(node, ec)) return std::nullopt;
    return node.string();
}

inline std::string pinned_node_missing_reason() {
    return "the pinned Node.js is not installed (tools/node/node_modules): run scripts/setup.sh";
}

}  // namespace runbox_test
