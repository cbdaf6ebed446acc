// runbox/providers/detail/grpc_call.hpp - one gRPC control-plane call (unary or server stream).
//
// gRPC over HTTP/2 is a POST to /<package>.<Service>/<Method> with content-type application/grpc
// and te: trailers, a body of 5-byte envelopes (transport/envelope.hpp) and the status in the
// grpc-status / grpc-message trailers (or headers, for a trailers-only answer). GrpcChannel sends
// one such call through the provider's context (credentials via ProviderContext::authorize), with
// the retry rules a gRPC client follows:
//   - idempotent calls are retried on the gRPC codes given (UNAVAILABLE, DEADLINE_EXCEEDED, ...)
//     and on dropped connections; non-idempotent ones only when the server refused them with a
//     throttle (RESOURCE_EXHAUSTED carrying a retry delay: the call was not performed);
//   - a throttled call waits the server's delay (the provider decodes it: Modal puts it in
//     grpc-status-details-bin) and is not counted as a failure attempt;
//   - every attempt of one logical call carries the same idempotency key and its attempt numbers.
// Errors come from the status code only (rpc_status.hpp), secrets redacted. Payloads are bytes:
// the provider's codec (e.g. modal_proto.hpp) encodes and decodes them.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runbox/client.hpp"  // detail::random_hex
#include "runbox/error.hpp"
#include "runbox/provider.hpp"
#include "runbox/providers/detail/cloud_api.hpp"
#include "runbox/rpc_status.hpp"
#include "runbox/transport/envelope.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox::cloud {

/// A random RFC 4122 version-4 UUID ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx"), as gRPC clients
/// send for idempotency keys.
inline std::string uuid4() {
    std::string hex = runbox::detail::random_hex(16);
    hex[12] = '4';
    static constexpr char variant[] = "89ab";
    hex[16] = variant[static_cast<unsigned char>(hex[16]) % 4];
    return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" + hex.substr(16, 4) + "-" +
           hex.substr(20);
}

/// The metadata names of a channel's retry bookkeeping (empty = not sent).
struct GrpcRetryHeaders {
    std::string idempotency_key = "x-idempotency-key";
    std::string attempt = "x-retry-attempt";                  ///< failed attempts before this one
    std::string throttle_attempt = "x-throttle-retry-attempt";  ///< throttled attempts before this one
};

/// Options of one call.
struct GrpcCallOptions {
    /// Retried on retry_codes and dropped connections (else only after a throttle).
    bool idempotent = true;
    std::chrono::milliseconds timeout{0};  ///< per attempt; 0 = ApiSettings::request_timeout
    const Deadline* within = nullptr;      ///< caps the retry budget (and a stream's whole exchange)
};

/// One provider's gRPC control plane during one connect/close.
template <class T>
class GrpcChannel {
public:
    /// The throttle delay a non-OK answer carries, if any (provider-specific encoding).
    using ThrottleDecoder = std::function<std::optional<std::chrono::milliseconds>(const Response&)>;

    /// `base_url` is scheme://host[:port]; `retry_codes` the gRPC codes an idempotent call is retried on.
    GrpcChannel(ProviderContext<T>& ctx, std::string provider, std::string base_url, const ApiSettings& settings,
                std::vector<std::string> secrets, ThrottleDecoder throttle, std::vector<int> retry_codes,
                GrpcRetryHeaders headers = {})
        : ctx_(ctx), provider_(std::move(provider)), base_url_(trim_slashes(std::move(base_url))), settings_(settings),
          secrets_(std::move(secrets)), throttle_(std::move(throttle)), retry_codes_(std::move(retry_codes)),
          headers_(std::move(headers)) {
        base_ = settings_.start_retry(base_);
        base_.max_backoff = std::chrono::milliseconds(1000);
        base_.retry_statuses = {502, 503, 504};  // a proxy in front of the gRPC server
    }

    /// The same channel for close() and sweep (ApiSettings::closing_retry).
    GrpcChannel closing() const {
        GrpcChannel copy = *this;
        copy.base_ = settings_.closing_retry(copy.base_);
        return copy;
    }

    ProviderContext<T>& context() noexcept { return ctx_; }
    const std::vector<std::string>& secrets() const noexcept { return secrets_; }
    /// A secret learned from an answer: redacted from later errors.
    void add_secret(std::string secret) {
        if (!secret.empty()) secrets_.push_back(std::move(secret));
    }

    /// A unary call: `method` is "/pkg.Service/Method", `message` the encoded request; returns
    /// the encoded answer. Throws the runbox::error of a non-OK status.
    std::string unary(std::string_view method, std::string message, const GrpcCallOptions& options = {}) {
        Request request = make(method, std::move(message), options);
        Response response = ctx_.send(request, policy(options));
        raise(response);
        FrameReader reader(max_message_bytes);
        try {
            reader.feed(response.body);
        } catch (const error&) {
            throw error(errc::bad_response, "the " + std::string(method) + " answer is over the message limit", provider_);
        }
        auto frame = reader.next();
        if (!frame || reader.next() || !reader.idle())
            throw error(errc::bad_response, "the " + std::string(method) + " answer is not exactly one gRPC message",
                        provider_);
        if (frame->compressed())
            throw error(errc::bad_response, "the " + std::string(method) + " answer is compressed (none was offered)",
                        provider_);
        return std::move(frame->payload);
    }

    /// A server-streaming call: `on_message` gets each encoded message and answers next / done /
    /// fail. Retried like a unary call until the first message arrives, never after.
    void server_stream(std::string_view method, std::string message, std::function<StreamAction(std::string_view)> on_message,
                       const GrpcCallOptions& options = {}) {
        Request request = make(method, std::move(message), options);
        if (options.within) request.deadline = std::chrono::steady_clock::now() + options.within->remaining();
        const std::string name(method);
        FrameHandler frames(
            [&, name](Frame& frame) {
                if (frame.compressed())
                    throw error(errc::bad_response, "a " + name + " message is compressed (none was offered)", provider_);
                return on_message(frame.payload);
            },
            max_message_bytes);
        request.on_body = frames.chunk_handler();
        Response response = ctx_.send(request, policy(options));
        if (grpc_status_of(response) || !response.ok()) raise(response);  // a stream ended early by the handler may have none
        if (response.ok() && frames.truncated())
            throw error(errc::bad_response, "the " + name + " stream ended inside a message", provider_);
    }

    /// The largest message accepted (gRPC's default receive limit).
    static constexpr std::size_t max_message_bytes = std::size_t{4} << 20;

private:
    struct CallState {
        int throttled = 0;  // attempts refused with a throttle so far
        bool last_throttled = false;
    };

    Request make(std::string_view method, std::string message, const GrpcCallOptions& options) {
        Request request;
        request.method = "POST";
        request.url = base_url_ + std::string(method);
        request.version = HttpVersion::http2;
        request.headers.set("content-type", "application/grpc");
        request.headers.set("te", "trailers");
        request.body = encode_frame(message);
        request.timeout = options.timeout.count() > 0 ? options.timeout : settings_.request_timeout;
        request.idempotent = true;  // the classifier decides what a non-idempotent call may repeat
        ctx_.authorize(request);
        return request;
    }

    RetryPolicy policy(const GrpcCallOptions& options) const {
        RetryPolicy p = base_;
        if (options.within) p.max_elapsed = std::min(p.max_elapsed, options.within->remaining());
        if (!options.idempotent) {
            p.retry_statuses.clear();
            p.retry_dropped_connections = false;  // the call may have been performed
            p.honor_should_retry = false;
        }
        auto state = std::make_shared<CallState>();
        p.classify = [state, throttle = throttle_, codes = options.idempotent ? retry_codes_ : std::vector<int>{}](
                         const Response& response) -> std::optional<RetryDecision> {
            const auto code = grpc_status_of(response);
            state->last_throttled = false;
            if (!code) return std::nullopt;  // no gRPC answer: the HTTP status rules
            if (*code == 8) {                // RESOURCE_EXHAUSTED: retried only when told how long to wait
                const auto delay = throttle ? throttle(response) : std::nullopt;
                state->last_throttled = delay.has_value();
                return RetryDecision{delay.has_value(), delay};
            }
            return RetryDecision{std::find(codes.begin(), codes.end(), *code) != codes.end(), std::nullopt};
        };
        p.on_attempt = [state, h = headers_](Request& request, int attempt) {
            if (attempt == 1 && !h.idempotency_key.empty()) request.headers.set(h.idempotency_key, uuid4());
            if (attempt > 1 && state->last_throttled) ++state->throttled;
            if (!h.attempt.empty()) request.headers.set(h.attempt, std::to_string(attempt - 1 - state->throttled));
            if (!h.throttle_attempt.empty()) request.headers.set(h.throttle_attempt, std::to_string(state->throttled));
        };
        return p;
    }

    // The status of an answer: OK returns; anything else throws, with the throttle delay as retry_after().
    void raise(const Response& response) const {
        try {
            raise_for_grpc_status(response, provider_, secrets_);
        } catch (const error& e) {
            if (e.rpc_code() == 8 && !e.retry_after() && throttle_) {
                if (auto delay = throttle_(response))
                    throw error(e.code(), redact(grpc_message(response), secrets_), provider_, e.http_status(), delay,
                                e.rpc_code());
            }
            throw;
        }
    }

    static std::string grpc_message(const Response& response) {
        const Headers& fields = response.trailers.contains("grpc-status") ? response.trailers : response.headers;
        std::string message = runbox::detail::percent_decode(fields.get("grpc-message").value_or(""));
        return message.empty() ? std::string("RPC status resource_exhausted") : message;
    }

    ProviderContext<T>& ctx_;
    std::string provider_;
    std::string base_url_;
    const ApiSettings& settings_;
    std::vector<std::string> secrets_;
    ThrottleDecoder throttle_;
    std::vector<int> retry_codes_;
    GrpcRetryHeaders headers_;
    RetryPolicy base_;
};

}  // namespace runbox::cloud
