/// \file
/// Definitions of runbox/error.hpp (included by the header when header-only; by runbox/src.hpp in
/// compiled mode).
#pragma once

#include "runbox/error.hpp"

#include <utility>

namespace runbox {

namespace detail {
class runbox_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "runbox"; }
    std::string message(int value) const override { return std::string(to_string(static_cast<errc>(value))); }
};
}  // namespace detail

RUNBOX_DECL const std::error_category& runbox_category() noexcept {
    static const detail::runbox_category_impl category;
    return category;
}

RUNBOX_DECL std::string redact(std::string text, const std::vector<std::string>& secrets) {
    for (const auto& secret : secrets) {
        if (secret.empty()) continue;
        for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + 3)) {
            text.replace(pos, secret.size(), "***");
        }
    }
    return text;
}

RUNBOX_DECL error::error(errc code, std::string message, std::string provider, int http_status,
                         std::optional<std::chrono::milliseconds> retry_after, std::optional<int> rpc_code)
    : std::runtime_error(format(code, message, provider, http_status, rpc_code)),
      code_(code),
      detail_(std::move(message)),
      provider_(std::move(provider)),
      http_status_(http_status),
      retry_after_(retry_after),
      rpc_code_(rpc_code) {}

RUNBOX_DECL std::string error::format(errc code, const std::string& message, const std::string& provider,
                                      int status, std::optional<int> rpc) {
    std::string out = "runbox";
    if (!provider.empty()) out += " [" + provider + "]";
    out += ' ';
    out += to_string(code);
    if (status != 0 && rpc) {
        out += " (HTTP " + std::to_string(status) + ", RPC " + std::to_string(*rpc) + ")";
    } else if (rpc) {
        out += " (RPC " + std::to_string(*rpc) + ")";
    } else if (status != 0) {
        out += " (HTTP " + std::to_string(status) + ")";
    }
    out += ": ";
    out += message;
    return out;
}

}  // namespace runbox
