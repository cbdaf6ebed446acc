// runbox/transport/transport.hpp - the vocabulary every transport speaks.
//
// Request / Response / Headers, the TransportPolicy concept, URL parsing,
// query strings, the stream seams (StreamAction, on_head, deadline, stop
// token, FrameHandler / send_framed), Retry-After parsing, raise_for_status
// and the retry loop. No HTTP library is included here: HttplibTransport
// (transport/httplib.hpp), CurlTransport (transport/curl.hpp) and the test
// transports (transport/testing.hpp) implement the concept.
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <initializer_list>
#include <memory>
#include <mutex>
#include <optional>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/transport/envelope.hpp"

namespace runbox {

namespace detail {
inline char ascii_lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

inline bool istarts_with(std::string_view text, std::string_view prefix) noexcept {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

inline std::string_view trim(std::string_view s) noexcept {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}
}  // namespace detail

/// HTTP header fields: an ordered list of name/value pairs, names compared
/// case-insensitively. Repeated names are kept (add) or collapsed (set).
class Headers {
public:
    using value_type = std::pair<std::string, std::string>;  ///< one field: name, value
    using container = std::vector<value_type>;  ///< the storage, in order
    using const_iterator = container::const_iterator;  ///< iterates fields in order

    Headers() = default;  ///< no fields
    /// The fields in the order given (repeats kept).
    Headers(std::initializer_list<value_type> fields) : fields_(fields) {}

    /// The first value of `name`, if present.
    std::optional<std::string> get(std::string_view name) const;

    /// Every value of `name`, in order.
    std::vector<std::string> get_all(std::string_view name) const;

    /// Replaces every field called `name` by one (at the first one's position).
    Headers& set(std::string name, std::string value);

    /// Appends a field, keeping existing ones of the same name.
    Headers& add(std::string name, std::string value) {
        fields_.emplace_back(std::move(name), std::move(value));
        return *this;
    }

    /// Removes every field called `name`; returns how many were removed.
    std::size_t erase(std::string_view name);

    bool contains(std::string_view name) const { return get(name).has_value(); }  ///< whether any field is called `name`

    /// Sets every field of `overrides` (per-request headers win over session headers).
    Headers& merge(const Headers& overrides);

    const_iterator begin() const noexcept { return fields_.begin(); }  ///< first field
    const_iterator end() const noexcept { return fields_.end(); }  ///< past the last field
    std::size_t size() const noexcept { return fields_.size(); }  ///< number of fields, repeats counted
    bool empty() const noexcept { return fields_.empty(); }  ///< no fields at all
    void clear() noexcept { fields_.clear(); }  ///< removes every field

    friend bool operator==(const Headers&, const Headers&) = default;  ///< same fields in the same order (names compared exactly)

private:
    container fields_;
};

/// The HTTP version a Request demands (Request::version).
enum class HttpVersion {
    any,      ///< the transport chooses (CurlTransport: HTTP/2 over TLS when offered, else HTTP/1.1)
    http1_1,  ///< HTTP/1.1 only
    http2     ///< HTTP/2 or fail with errc::unsupported (prior knowledge on http://)
};

/// One HTTP response. For a streamed 2xx answer `body` stays empty (the bytes went to
/// Request::on_body); `trailers` are the fields sent after the body (HTTP/2, chunked HTTP/1.1).
struct Response {
    int status = 0;  ///< HTTP status code (0 before a response arrived)
    Headers headers{};  ///< response header fields
    std::string body{};  ///< response body (empty when streamed to Request::on_body)
    Headers trailers{};  ///< fields sent after the body; empty when none (or the transport cannot see them)

    bool ok() const noexcept { return status >= 200 && status < 300; }  ///< status is 2xx
};

/// What a stream handler answers after each chunk (Request::on_body) or frame (send_framed).
enum class StreamAction {
    next,  ///< keep reading
    done,  ///< stop here: the exchange ends cleanly and send() returns the Response (no error)
    fail,  ///< stop here: send() throws errc::bad_response
};

/// One HTTP request. `url` is absolute: http[s]://host[:port]/path?query.
struct Request {
    std::string method = "GET";  ///< HTTP method, e.g. "POST"
    std::string url{};  ///< absolute URL
    Headers headers{};  ///< header fields sent with this request
    std::string body{};  ///< request body; empty = none
    /// Per attempt, the longest wait for the peer to accept or deliver bytes
    /// (the connect has TransportOptions::connect_timeout).
    std::chrono::milliseconds timeout{60000};
    std::optional<bool> idempotent{};          ///< overrides the method's default
    HttpVersion version = HttpVersion::any;  ///< version demanded; see HttpVersion
    /// When set, a 2xx body is streamed here chunk by chunk (any chunking) and Response::body
    /// stays empty; non-2xx bodies still land in Response::body. The answer decides what comes
    /// next (StreamAction); an exception thrown here ends the exchange and comes out of send().
    std::function<StreamAction(std::string_view)> on_body{};
    /// Called once with the status and headers (body empty) of the final response, before any
    /// body byte reaches on_body; an exception thrown here ends the exchange.
    std::function<void(const Response&)> on_head{};
    /// The whole exchange (connect, request, every read of a streamed body) ends by this time
    /// with errc::timeout; `timeout` still bounds each read. nullopt = no overall bound.
    std::optional<std::chrono::steady_clock::time_point> deadline{};
    /// A stop request (Runtime::close on another thread, say) ends the exchange at once with
    /// errc::cancelled.
    std::stop_token stop{};
    /// "host:port" to dial instead of the URL's host and port (IPv6 in brackets); the URL's
    /// host stays in the Host header and in TLS SNI/certificate checks. Empty = the URL's.
    std::string connect_to{};
    /// Names of JSON fields, in this request's body or its response's, whose string values are
    /// secrets (a token first seen in a response, e.g. {"auth_token", "envdAccessToken"}; a
    /// session key inside a create's environment). Transports ignore it; a RecordingTransport
    /// learns those values and redacts them before it writes anything.
    std::vector<std::string> secret_fields{};

    /// `idempotent` if set, else true for GET/HEAD/PUT/DELETE/OPTIONS.
    bool is_idempotent() const;
};

/// How a transport is built. Every field has a safe default.
struct TransportOptions {
    bool verify_tls = true;             ///< false is an explicit, visible opt-out
    std::string ca_cert_path{};         ///< PEM bundle; empty = the system store
    std::chrono::milliseconds connect_timeout{10000};  ///< longest wait for TCP (and TLS) connect, per attempt
    std::size_t max_idle_connections_per_host = 8;  ///< kept-alive connections pooled per scheme+host+port
    /// A pooled connection idle longer than this is closed, not reused: servers
    /// drop idle keep-alive connections (uvicorn after 5 s), and a POST sent on
    /// a connection the server just closed cannot be retried safely.
    std::chrono::milliseconds idle_connection_timeout{4000};
    std::string cassette_path{};        ///< RecordingTransport / ReplayTransport only
    /// A body kept in memory (every answer not streamed to on_body) larger than this stops the
    /// transfer with errc::bad_response: a peer must not choose how much memory runbox uses.
    std::size_t max_response_bytes = std::size_t{256} << 20;
};

// ---------------------------------------------------------------------------
// TransportPolicy

/// Each clause of the TransportPolicy contract is a concept of its own, so a
/// static_assert can name the clause that failed.
template <class T>
concept TransportConstructible = std::constructible_from<T, const TransportOptions&>;

template <class T>
concept TransportSends = requires(T& transport, const Request& request) {
    { transport.send(request) } -> std::same_as<Response>;
};

template <class T>
concept TransportHasCapabilities = requires {
    { std::bool_constant<T::supports_http2>{} } -> std::same_as<std::bool_constant<T::supports_http2>>;
    { std::bool_constant<T::supports_streaming>{} } -> std::same_as<std::bool_constant<T::supports_streaming>>;
};

/// A transport: built from TransportOptions, `Response send(const Request&)`
/// (throws runbox::error errc::transport / errc::timeout, returns every HTTP
/// status), and `static constexpr bool supports_http2, supports_streaming`.
template <class T>
concept TransportPolicy = TransportConstructible<T> && TransportSends<T> && TransportHasCapabilities<T>;

/// True when T models TransportPolicy (for static_assert and `if constexpr`).
template <class T>
inline constexpr bool is_transport_policy_v = TransportPolicy<T>;

// ---------------------------------------------------------------------------
// URLs

/// An absolute URL split for a transport. `host` has no IPv6 brackets.
struct Url {
    std::string scheme{};  ///< lower case: "http" or "https"
    std::string host{};  ///< host name or address, IPv6 without brackets
    int port = 0;        ///< explicit, or 80 / 443 from the scheme
    std::string target{};  ///< path + query, at least "/"; never the fragment

    bool is_ipv6() const { return host.find(':') != std::string::npos; }  ///< host is an IPv6 literal (contains ':')
    /// host[:port] as written in a URL (brackets for IPv6), port always present.
    std::string authority() const {
        return (is_ipv6() ? "[" + host + "]" : host) + ":" + std::to_string(port);
    }
    /// scheme://host:port - the connection-pool key.
    std::string origin() const { return scheme + "://" + authority(); }
    /// The target without its query.
    std::string path() const { return target.substr(0, target.find('?')); }
};

/// Parses http[s]://host[:port][/target]. Throws errc::config_invalid; the
/// message never repeats the URL (it may carry a token in its query).
RUNBOX_DECL Url parse_url(std::string_view text);

// ---------------------------------------------------------------------------
// Query strings (RFC 3986)

/// Percent-encodes one query-string key or value: the RFC 3986 unreserved
/// characters (letters, digits, - . _ ~) and ! * ' ( ) stay, every other byte
/// becomes %XX (upper-case hex).
RUNBOX_DECL std::string url_encode(std::string_view value);

/// "k1=v1&k2=v2" with every key and value percent-encoded, in the given order.
RUNBOX_DECL std::string query_string(std::initializer_list<std::pair<std::string_view, std::string_view>> params);

// ---------------------------------------------------------------------------
// What every transport does for one exchange

namespace detail {
/// Refuses header fields that would smuggle extra header lines (CR/LF) or are
/// malformed, naming the field but never its value (errc::config_invalid).
RUNBOX_DECL void check_header_fields(const Headers& headers);

/// The stream bookkeeping of one exchange, shared by every transport: delivers
/// the head once and 2xx chunks to the request's handlers, remembers why the
/// transfer stopped (done, fail, a handler's exception, the stop token, the
/// deadline) and turns that into the result after the transfer.
class ExchangeControl {
public:
    explicit ExchangeControl(const Request& request) : request_(request) {}

    bool stop_requested() const noexcept { return request_.stop.stop_requested(); }
    bool expired(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) const noexcept {
        return request_.deadline && now >= *request_.deadline;
    }
    /// False once the exchange must stop (stopped, expired, or a handler ended it).
    bool live() const noexcept { return action_ == StreamAction::next && !failure_ && !stop_requested() && !expired(); }

    /// Hands the final response's head to on_head; false when the transfer must stop.
    bool head(const Response& head);

    /// True when a 2xx body goes to on_body rather than into Response::body.
    bool streaming() const noexcept { return streaming_; }

    /// Hands one chunk of a streamed body to on_body; false when the transfer must stop.
    bool chunk(std::string_view data);

    /// on_body answered done: the transfer was cut short on purpose.
    bool done() const noexcept { return action_ == StreamAction::done && !failure_; }
    /// Some body bytes reached on_body (a retry could not replay them).
    bool delivered() const noexcept { return delivered_; }

    /// After a transfer that stopped early: throws what stopped it, in order of
    /// precedence (a handler's exception, fail, the stop token, the deadline).
    /// Returns when none of them did (the transport reports its own error).
    void raise_if_stopped(std::string_view where) const;

private:
    const Request& request_;
    StreamAction action_ = StreamAction::next;
    std::exception_ptr failure_{};
    bool head_seen_ = false;
    bool streaming_ = false;
    bool delivered_ = false;
};

/// Calls `abort` from a helper thread when the request's stop token fires or
/// its deadline passes, whichever comes first, unless the exchange ended
/// before (destruction). No thread when the request has neither.
class Watchdog {
public:
    Watchdog(const Request& request, std::function<void()> abort);
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    ~Watchdog();

private:
    std::mutex mutex_;
    std::condition_variable_any wakeup_;
    std::jthread thread_;  // last: joined before the members it uses go
};
}  // namespace detail

/// Adapts a frame handler (one call per whole gRPC/Connect message) to the
/// chunk handler Request::on_body takes, through a FrameReader, so transports
/// only ever deliver chunks. Copies share one reader.
class FrameHandler {
public:
    using Handler = std::function<StreamAction(Frame&)>;  ///< called once per whole frame, in order

    /// `max_payload` bounds one message (FrameReader); a larger one fails the exchange with errc::bad_response.
    explicit FrameHandler(Handler on_frame, std::size_t max_payload = std::size_t{16} << 20)
        : state_(std::make_shared<State>(std::move(on_frame), max_payload)) {}

    /// The chunk handler to put in Request::on_body.
    std::function<StreamAction(std::string_view)> chunk_handler() const;

    /// Whole frames handed to the handler so far.
    std::size_t frames() const noexcept { return state_->frames; }
    /// The body ended inside a frame (and the handler had not ended the stream itself).
    bool truncated() const noexcept { return !state_->ended && !state_->reader.idle(); }

private:
    struct State {
        State(Handler h, std::size_t max) : on_frame(std::move(h)), reader(max) {}
        Handler on_frame;
        FrameReader reader;
        std::size_t frames = 0;
        bool ended = false;
    };
    std::shared_ptr<State> state_;
};

/// Sends `request` with its 2xx body read frame by frame (the 5-byte envelope):
/// `on_frame` answers next / done / fail per message. Returns the Response
/// (body empty when 2xx); throws errc::bad_response when the body ends inside
/// a frame or a frame is over `max_payload`, and whatever the transport throws.
template <class T>
Response send_framed(T& transport, Request request, FrameHandler::Handler on_frame,
                     std::size_t max_payload = std::size_t{16} << 20) {
    FrameHandler frames(std::move(on_frame), max_payload);
    request.on_body = frames.chunk_handler();
    Response response = transport.send(request);
    if (response.ok() && frames.truncated()) {
        throw error(errc::bad_response, "the framed body ended inside a message (truncated stream)", "transport");
    }
    return response;
}

// ---------------------------------------------------------------------------
// Retry-After

namespace detail {
/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime), always GMT. In seconds: any year a
/// peer can write (up to 9999) fits, where system_clock's nanoseconds end in 2262.
RUNBOX_DECL std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text);

/// A non-negative decimal number ("2", "1.5"); nullopt otherwise.
RUNBOX_DECL std::optional<double> parse_non_negative(std::string_view text);

RUNBOX_DECL std::chrono::milliseconds to_millis(double ms);
}  // namespace detail

/// How long the server asks us to wait: the largest of `retry-after-ms`
/// (milliseconds), `Retry-After` and `Retry-After-<throttler>` (seconds or an
/// HTTP-date, relative to `now`). nullopt when no such header parses.
RUNBOX_DECL std::optional<std::chrono::milliseconds> parse_retry_after(
    const Headers& headers, std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

// ---------------------------------------------------------------------------
// raise_for_status

/// Throws the runbox::error mapped from a non-2xx/3xx status (see
/// errc_from_http_status). The message is the body's JSON `detail` or
/// `message` field (else a short prefix of the body), with every secret
/// redacted; retry_after() carries the parsed Retry-After.
RUNBOX_DECL void raise_for_status(const Response& response, std::string_view provider,
                                  const std::vector<std::string>& secrets = {});

// ---------------------------------------------------------------------------
// Retries

/// What RetryPolicy::classify says about one response.
struct RetryDecision {
    bool retry = false;  ///< try again (still only for idempotent requests, within the budget)
    /// How long to wait first (a throttle the response carried); nullopt = the backoff.
    std::optional<std::chrono::milliseconds> delay{};
};

/// When and how often send_with_retry tries again. Only idempotent requests
/// are ever retried; a command is never silently re-run.
struct RetryPolicy {
    int max_attempts = 4;                       ///< total attempts, including the first
    std::chrono::milliseconds initial_backoff{500};  ///< wait before the second attempt (doubling after, before jitter)
    std::chrono::milliseconds max_backoff{8000};  ///< cap on any one backoff
    double jitter = 0.2;                        ///< each backoff shrinks by up to this fraction
    std::chrono::milliseconds max_elapsed{60000};  ///< no wait may end past this budget
    std::vector<int> retry_statuses{429, 502, 503, 504};  ///< HTTP statuses retried (idempotent requests only)
    bool retry_dropped_connections = true;      ///< errc::transport errors
    /// `x-should-retry: true` (Stainless SDKs' header) retries a status not in retry_statuses. Off
    /// where only a refusal may be repeated (a create): a gateway's 502 with the header may come
    /// after the API performed it. `x-should-retry: false` is always honoured.
    bool honor_should_retry = true;
    /// Waits between attempts; tests inject a recorder.
    std::function<void(std::chrono::milliseconds)> sleep = [](std::chrono::milliseconds d) {
        std::this_thread::sleep_for(d);
    };
    /// Classifies a response (e.g. a grpc-status in trailers on an HTTP 200, see
    /// grpc_retry_classifier in runbox/rpc_status.hpp). A decision replaces the status
    /// rules above for that response; nullopt (or no hook) keeps them.
    std::function<std::optional<RetryDecision>(const Response&)> classify{};
    /// Called before every attempt (1-based) with the request about to be sent; it may edit
    /// it. Edits persist across the attempts of one call (see attempt_headers).
    std::function<void(Request&, int attempt)> on_attempt{};

    /// One attempt, no retries.
    static RetryPolicy none();

    /// Whether `status` is in retry_statuses.
    bool retries_status(int status) const;

    /// The backoff before attempt `attempt + 1` (attempt is 1-based):
    /// initial * 2^(attempt-1), capped at max_backoff, then reduced by
    /// `unit_random * jitter` (unit_random in [0, 1)).
    std::chrono::milliseconds backoff(int attempt, double unit_random) const;
};

namespace detail {
RUNBOX_DECL double unit_random();
}  // namespace detail

/// Sends `request`, retrying per `policy`:
///  - only if request.is_idempotent();
///  - on a status in retry_statuses (or any status with `x-should-retry: true`),
///    never when the response says `x-should-retry: false`;
///  - on errc::transport errors if retry_dropped_connections, unless part of
///    a streamed body already reached request.on_body;
///  - or as policy.classify decides, when it decides (gRPC statuses in trailers);
///  - never once part of a streamed body reached request.on_body;
///  - waiting Retry-After (or the classifier's delay) when there is one, else the
///    backoff; a wait that would end past max_elapsed ends the loop instead.
/// policy.on_attempt edits the request before each attempt.
/// When it stops, it returns the last Response (the caller raises) or
/// rethrows the last error. max_elapsed bounds the waits, not one attempt
/// (request.timeout does that).
template <class T>
Response send_with_retry(T& transport, const Request& request, const RetryPolicy& policy) {
    const auto start = std::chrono::steady_clock::now();
    const bool idempotent = request.is_idempotent();
    const int attempts = std::max(1, policy.max_attempts);

    // A streamed body cannot be replayed into the receiver: note when bytes arrive.
    bool body_delivered = false;
    Request streamed;
    Request* working = nullptr;  // the copy attempts are sent from, when one is needed
    if (request.on_body || policy.on_attempt) {
        streamed = request;
        working = &streamed;
    }
    if (request.on_body) {
        streamed.on_body = [&body_delivered, &request](std::string_view chunk) {
            body_delivered = true;
            return request.on_body(chunk);
        };
    }
    const Request* to_send = working ? working : &request;

    // Elapsed = wall time, or the waits asked for if more (an injected sleep may not block).
    std::chrono::milliseconds waited{0};
    // Subtracts instead of adding: a delay a peer chose cannot wrap the sum around.
    auto fits_budget = [&](std::chrono::milliseconds delay) {
        const auto elapsed =
            std::max(std::chrono::ceil<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start), waited);
        return elapsed <= policy.max_elapsed && delay <= policy.max_elapsed - elapsed;
    };
    auto wait = [&](std::chrono::milliseconds delay) {
        waited += delay;
        if (delay > std::chrono::milliseconds::zero()) policy.sleep(delay);
    };

    for (int attempt = 1;; ++attempt) {
        if (policy.on_attempt) policy.on_attempt(*working, attempt);
        Response response;
        try {
            response = transport.send(*to_send);
        } catch (const error& e) {
            const bool retryable = e.code() == errc::transport && policy.retry_dropped_connections && idempotent &&
                                   !body_delivered && attempt < attempts;
            if (!retryable) throw;
            const auto delay = policy.backoff(attempt, detail::unit_random());
            if (!fits_budget(delay)) throw;
            wait(delay);
            continue;
        }
        if (!idempotent || attempt >= attempts) return response;
        std::optional<RetryDecision> decision;
        if (policy.classify) decision = policy.classify(response);
        if (!decision) {
            const auto should_retry = response.headers.get("x-should-retry");
            bool retry = policy.retries_status(response.status);
            if (should_retry && detail::iequals(detail::trim(*should_retry), "false")) retry = false;
            if (policy.honor_should_retry && should_retry && detail::iequals(detail::trim(*should_retry), "true") &&
                !response.ok())
                retry = true;
            decision = RetryDecision{retry, parse_retry_after(response.headers)};
        }
        if (!decision->retry || body_delivered) return response;
        const auto delay = decision->delay.value_or(policy.backoff(attempt, detail::unit_random()));
        if (!fits_budget(delay)) return response;
        wait(delay);
    }
}

/// An on_attempt hook for RetryPolicy: sets `counter_header` (if not empty) to the attempt
/// number ("1", "2", ...) and, on the first attempt, `key_header` (if not empty and not
/// already set) to a fresh random key - the same key then goes with every retry of that
/// call, so the server can tell a retry from a new call.
RUNBOX_DECL std::function<void(Request&, int)> attempt_headers(std::string counter_header, std::string key_header = {});

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/transport/impl/transport.ipp"
#endif
