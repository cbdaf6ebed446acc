/// \file
/// the one exception type runbox throws, with a typed code.
///
/// Errors are classified from HTTP status codes (never by matching message
/// text) and never carry a credential: every message built by runbox goes
/// through redact() with the secrets the throwing component knows.
#pragma once

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "runbox/detail/linkage.hpp"

namespace runbox {

/// What went wrong, independent of the provider.
enum class errc {
    config_invalid = 1,  ///< a configuration value or credential is missing or malformed
    auth_failed,         ///< 401/403: the credential was refused
    not_found,           ///< 404: the sandbox, file or route does not exist
    conflict,            ///< 409: the resource is in a state that forbids the request
    rate_limited,        ///< 429: slow down; see retry_after()
    quota_exceeded,      ///< 402/413-style limits: the account cannot have more
    timeout,             ///< a bounded wait ran out
    sandbox_gone,        ///< the sandbox stopped, failed or was deleted under us
    server_error,        ///< 5xx from a provider or the action server
    transport,           ///< connection refused/reset, TLS failure, DNS...
    bad_response,        ///< the peer answered something runbox cannot parse
    unsupported,         ///< the provider or transport cannot do this (HTTP/2 on HTTP/1.1, an old envd...)
    cancelled,           ///< the caller ended the operation (a stop token, close() on another thread)
    not_connected,       ///< a call that needs a session before connect(), after close(), or on a moved-from Runtime
    system,              ///< a call into this machine's OS or libraries failed (pipe, a local file, random bytes, a digest)
};

/// The stable, lower-case name of a code ("rate_limited"), used in messages.
constexpr std::string_view to_string(errc code) noexcept {
    switch (code) {
        case errc::config_invalid: return "config_invalid";
        case errc::auth_failed: return "auth_failed";
        case errc::not_found: return "not_found";
        case errc::conflict: return "conflict";
        case errc::rate_limited: return "rate_limited";
        case errc::quota_exceeded: return "quota_exceeded";
        case errc::timeout: return "timeout";
        case errc::sandbox_gone: return "sandbox_gone";
        case errc::server_error: return "server_error";
        case errc::transport: return "transport";
        case errc::bad_response: return "bad_response";
        case errc::unsupported: return "unsupported";
        case errc::cancelled: return "cancelled";
        case errc::not_connected: return "not_connected";
        case errc::system: return "system";
    }
    return "unknown";
}

/// The std::error_category of runbox::errc, so codes compose with std::error_code.
RUNBOX_DECL const std::error_category& runbox_category() noexcept;

/// `code` as a std::error_code in runbox_category() (found by ADL: `std::error_code ec = errc::timeout;`).
inline std::error_code make_error_code(errc code) noexcept { return {static_cast<int>(code), runbox_category()}; }

/// Classifies an HTTP status. 2xx/3xx have no error code; callers check first.
constexpr errc errc_from_http_status(int status) noexcept {
    switch (status) {
        case 400: case 422: return errc::config_invalid;  // the request we built from user input was refused
        case 401: case 403: return errc::auth_failed;
        case 402: case 413: return errc::quota_exceeded;
        case 404: case 410: return errc::not_found;
        case 408: return errc::timeout;
        case 409: return errc::conflict;
        case 429: return errc::rate_limited;
        case 504: return errc::timeout;
        default: break;
    }
    if (status >= 500) return errc::server_error;
    return errc::bad_response;
}

/// Replaces every occurrence of each non-empty secret in `text` with "***".
RUNBOX_DECL std::string redact(std::string text, const std::vector<std::string>& secrets);

/// The exception runbox throws. `what()` reads
/// "runbox [<provider>] <code> (HTTP <status>): <message>", or with an RPC
/// status "runbox [<provider>] <code> (HTTP <status>, RPC <code>): <message>".
class error : public std::runtime_error {
public:
    /// `message` must not hold a secret (pass it through redact() first); `provider` names the
    /// component ("daytona", ...), `http_status` the status that caused it (0: none), `retry_after`
    /// the wait the server asked for.
    error(errc code, std::string message, std::string provider = {}, int http_status = 0,
          std::optional<std::chrono::milliseconds> retry_after = std::nullopt,
          std::optional<int> rpc_code = std::nullopt);

    /// What went wrong; branch on this, never on the message text.
    errc code() const noexcept { return code_; }
    /// code() as a std::error_code.
    std::error_code error_code() const noexcept { return make_error_code(code_); }
    /// The message without the prefix.
    const std::string& detail() const noexcept { return detail_; }
    /// "daytona", "runloop", "local", "transport", ... or empty.
    const std::string& provider() const noexcept { return provider_; }
    /// The HTTP status that caused this error, or 0.
    int http_status() const noexcept { return http_status_; }
    /// How long the server asked us to wait before retrying, when it said.
    std::optional<std::chrono::milliseconds> retry_after() const noexcept { return retry_after_; }
    /// The gRPC status code (0-16) that caused this error, when an RPC said; Connect's
    /// code names map to the same numbers (runbox/rpc_status.hpp).
    std::optional<int> rpc_code() const noexcept { return rpc_code_; }

private:
    static std::string format(errc code, const std::string& message, const std::string& provider, int status,
                              std::optional<int> rpc);

    errc code_;
    std::string detail_;
    std::string provider_;
    int http_status_;
    std::optional<std::chrono::milliseconds> retry_after_;
    std::optional<int> rpc_code_;
};

}  // namespace runbox

namespace std {
template <>
struct is_error_code_enum<runbox::errc> : true_type {};
}  // namespace std

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/error.ipp"
#endif
