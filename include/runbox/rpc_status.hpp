// runbox/rpc_status.hpp - gRPC / Connect status codes and runbox::errc, in one table.
//
// gRPC answers HTTP 200 and puts its status in the `grpc-status` trailer (or
// header, for a trailers-only answer); Connect uses the same codes under
// lower-case names ("not_found"). The table below is the only place either is
// mapped to runbox::errc; runbox::error::rpc_code() keeps the number.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

/// One row: the gRPC number, the Connect name, and what runbox makes of it.
struct RpcStatusRow {
    int code;  ///< gRPC status number, 0-16
    std::string_view connect_name;  ///< Connect's name for it, e.g. "deadline_exceeded"
    errc mapped;  ///< for code 0 (ok) unused: callers check for success first
};

/// gRPC status codes 0-16 (grpc/doc/statuscodes.md), in order.
inline constexpr std::array<RpcStatusRow, 17> rpc_status_table{{
    {0, "ok", errc::bad_response},
    {1, "canceled", errc::cancelled},
    {2, "unknown", errc::server_error},
    {3, "invalid_argument", errc::config_invalid},
    {4, "deadline_exceeded", errc::timeout},
    {5, "not_found", errc::not_found},
    {6, "already_exists", errc::conflict},
    {7, "permission_denied", errc::auth_failed},
    {8, "resource_exhausted", errc::rate_limited},  // quotas and rate limits: both say "slow down"
    {9, "failed_precondition", errc::conflict},
    {10, "aborted", errc::conflict},
    {11, "out_of_range", errc::config_invalid},
    {12, "unimplemented", errc::unsupported},
    {13, "internal", errc::server_error},
    {14, "unavailable", errc::server_error},
    {15, "data_loss", errc::server_error},
    {16, "unauthenticated", errc::auth_failed},
}};

/// gRPC's UNKNOWN (2), what an out-of-range code means.
inline constexpr int grpc_unknown = 2;

/// The errc of a gRPC status code; codes outside 0-16 count as UNKNOWN (server_error).
/// 0 is success: callers check first (it maps to bad_response).
constexpr errc errc_from_grpc_status(int code) noexcept {
    for (const auto& row : rpc_status_table) {
        if (row.code == code) return row.mapped;
    }
    return rpc_status_table[grpc_unknown].mapped;
}

/// The gRPC number of a Connect code name ("not_found" -> 5); nullopt when unknown.
/// Connect spells 1 "canceled"; "cancelled" is accepted too.
constexpr std::optional<int> grpc_code_from_connect(std::string_view name) noexcept {
    if (name == "cancelled") return 1;
    for (const auto& row : rpc_status_table) {
        if (row.connect_name == name) return row.code;
    }
    return std::nullopt;
}

/// The errc of a Connect code name; unknown names count as "unknown" (server_error).
constexpr errc errc_from_connect_code(std::string_view name) noexcept {
    return errc_from_grpc_status(grpc_code_from_connect(name).value_or(grpc_unknown));
}

/// The Connect name of a gRPC number ("unknown" outside 0-16).
constexpr std::string_view connect_code_name(int code) noexcept {
    for (const auto& row : rpc_status_table) {
        if (row.code == code) return row.connect_name;
    }
    return "unknown";
}

namespace detail {
/// grpc-message is percent-encoded (gRPC over HTTP/2 spec); malformed escapes stay as they are.
RUNBOX_DECL std::string percent_decode(std::string_view text);

/// A grpc-status value as a number (surrounding blanks allowed); nullopt when it is not one.
RUNBOX_DECL std::optional<int> parse_grpc_code(std::string_view text);
}  // namespace detail

/// The grpc-status of a response: from its trailers, else its headers (a trailers-only
/// answer). nullopt when neither has one that parses.
RUNBOX_DECL std::optional<int> grpc_status_of(const Response& response);

/// Throws the runbox::error of a gRPC answer that is not OK: the errc from the table, the
/// RPC code in rpc_code(), the HTTP status, the decoded grpc-message (secrets redacted) and
/// grpc-retry-pushback-ms as retry_after(). A non-2xx HTTP status without a grpc-status
/// goes through raise_for_status; a 2xx without one is errc::bad_response.
RUNBOX_DECL void raise_for_grpc_status(const Response& response, std::string_view provider,
                                  const std::vector<std::string>& secrets = {});

/// A RetryPolicy::classify hook for gRPC: a grpc-status in `retry_codes` (default:
/// UNAVAILABLE 14 and RESOURCE_EXHAUSTED 8) is retried after grpc-retry-pushback-ms
/// (a negative or malformed pushback means "do not retry", per gRPC's retry design),
/// any other grpc-status is not; a response without one keeps the HTTP status rules.
RUNBOX_DECL std::function<std::optional<RetryDecision>(const Response&)> grpc_retry_classifier(
    std::vector<int> retry_codes = {14, 8});

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/rpc_status.ipp"
#endif
