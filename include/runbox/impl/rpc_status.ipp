/// \file
/// Definitions of runbox/rpc_status.hpp (included by the header when header-only; by
/// runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/rpc_status.hpp"

#include <algorithm>
#include <charconv>
#include <system_error>

namespace runbox {

namespace detail {

RUNBOX_DECL std::string percent_decode(std::string_view text) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '%' && i + 2 < text.size() && hex(text[i + 1]) >= 0 && hex(text[i + 2]) >= 0) {
            out.push_back(static_cast<char>(hex(text[i + 1]) * 16 + hex(text[i + 2])));
            i += 2;
        } else {
            out.push_back(text[i]);
        }
    }
    return out;
}

RUNBOX_DECL std::optional<int> parse_grpc_code(std::string_view text) {
    text = trim(text);
    int code = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), code);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return code;
}

}  // namespace detail

RUNBOX_DECL std::optional<int> grpc_status_of(const Response& response) {
    if (auto value = response.trailers.get("grpc-status")) return detail::parse_grpc_code(*value);
    if (auto value = response.headers.get("grpc-status")) return detail::parse_grpc_code(*value);
    return std::nullopt;
}

RUNBOX_DECL void raise_for_grpc_status(const Response& response, std::string_view provider,
                                       const std::vector<std::string>& secrets) {
    const auto code = grpc_status_of(response);
    if (!code) {
        raise_for_status(response, provider, secrets);
        throw error(errc::bad_response, "the gRPC answer has no grpc-status", std::string(provider), response.status);
    }
    if (*code == 0) return;
    const Headers& fields = response.trailers.contains("grpc-status") ? response.trailers : response.headers;
    std::string message = detail::percent_decode(fields.get("grpc-message").value_or(""));
    if (message.empty()) message = "RPC status " + std::string(connect_code_name(*code));
    std::optional<std::chrono::milliseconds> pushback;
    if (auto ms = fields.get("grpc-retry-pushback-ms")) {
        if (auto value = detail::parse_non_negative(*ms)) pushback = detail::to_millis(*value);
    }
    throw error(errc_from_grpc_status(*code), redact(std::move(message), secrets), std::string(provider),
                response.status, pushback, *code);
}

RUNBOX_DECL std::function<std::optional<RetryDecision>(const Response&)> grpc_retry_classifier(
    std::vector<int> retry_codes) {
    return [codes = std::move(retry_codes)](const Response& response) -> std::optional<RetryDecision> {
        const auto code = grpc_status_of(response);
        if (!code) return std::nullopt;
        RetryDecision decision;
        decision.retry = std::find(codes.begin(), codes.end(), *code) != codes.end();
        const Headers& fields = response.trailers.contains("grpc-status") ? response.trailers : response.headers;
        if (auto pushback = fields.get("grpc-retry-pushback-ms")) {
            if (auto ms = detail::parse_non_negative(*pushback)) {
                decision.delay = detail::to_millis(*ms);
            } else {
                decision.retry = false;
            }
        }
        return decision;
    };
}

}  // namespace runbox
