// runbox/transport/curl.hpp - CurlTransport: HTTP/1.1 and HTTP/2 through libcurl.
//
// Opt-in: only a program that includes this header needs libcurl (link the
// CMake target runbox::curl, which also defines RUNBOX_WITH_CURL=1). Nothing
// in runbox.hpp includes it.
//
// HTTP/2 comes from ALPN on https and from prior knowledge (h2c) on http when
// Request::version is http2; a server that does not speak it fails the
// exchange with errc::unsupported instead of silently falling back to
// HTTP/1.1. Trailers (HTTP/2, chunked HTTP/1.1) land in Response::trailers.
//
// Each send() leases a "lane" (a curl multi handle with one easy handle) from
// a pool; the multi handle keeps its connection cache between sends, so
// connections are reused, and no lane serves two sends at once: send() is
// thread-safe. The multi handle lets a stop token wake the transfer at once
// (curl_multi_wakeup) and bounds the whole exchange by Request::deadline.
#pragma once

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <stop_token>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <curl/curl.h>

#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

namespace detail {
/// curl_global_init, once per process, before the first handle.
inline void curl_global_init_once() {
    static const CURLcode code = curl_global_init(CURL_GLOBAL_DEFAULT);
    if (code != CURLE_OK) throw error(errc::transport, std::string("libcurl init failed: ") + curl_easy_strerror(code), "transport");
}

/// One multi handle + one easy handle; the multi handle owns the connection cache.
struct CurlLane {
    CURLM* multi = nullptr;
    CURL* easy = nullptr;
    std::chrono::steady_clock::time_point idle_since{};

    CurlLane() = default;
    CurlLane(const CurlLane&) = delete;
    CurlLane& operator=(const CurlLane&) = delete;
    ~CurlLane() {
        if (easy) curl_easy_cleanup(easy);
        if (multi) curl_multi_cleanup(multi);
    }
};

struct CurlSlist {
    curl_slist* list = nullptr;
    CurlSlist() = default;
    CurlSlist(const CurlSlist&) = delete;
    CurlSlist& operator=(const CurlSlist&) = delete;
    ~CurlSlist() { curl_slist_free_all(list); }
    void add(const std::string& line) {
        curl_slist* grown = curl_slist_append(list, line.c_str());
        if (!grown) throw error(errc::transport, "out of memory building a header list", "transport");
        list = grown;
    }
};
}  // namespace detail

/// A TransportPolicy over libcurl: HTTP/1.1, HTTP/2 (ALPN on https, prior-knowledge h2c on
/// http), trailers, streamed bodies, connection reuse, TLS verification on by default,
/// Request::connect_to (dial another address, keep the URL's host for Host and SNI).
class CurlTransport {
public:
    static constexpr bool supports_http2 = true;  ///< ALPN h2 on https, prior knowledge on http
    static constexpr bool supports_streaming = true;  ///< bodies go to Request::on_body as they arrive

    CurlTransport() : CurlTransport(TransportOptions{}) {}
    /// A transport with `options` (TLS, timeouts, pool, response size limit); no connection is made yet.
    explicit CurlTransport(const TransportOptions& options) : state_(std::make_shared<State>(options)) {
        detail::curl_global_init_once();
    }

    /// One attempt. Returns every HTTP status; throws runbox::error with
    /// errc::timeout (connect, a read idle for Request::timeout, or
    /// Request::deadline passed), errc::cancelled (Request::stop),
    /// errc::transport (refused, reset, TLS, DNS), errc::bad_response (an
    /// unparsable answer, on_body answered fail, a body over
    /// max_response_bytes), errc::unsupported (HTTP/2 required and not
    /// negotiated), errc::config_invalid (a header with CR/LF, a bad
    /// connect_to) or what a stream handler threw. Messages name the method,
    /// scheme, host and libcurl's error text, never a header value or the
    /// URL's query.
    Response send(const Request& request) {
        detail::check_header_fields(request.headers);
        const Url url = parse_url(request.url);
        const std::string where = request.method + " " + url.scheme + "://" + url.authority();
        detail::ExchangeControl control(request);
        if (!control.live()) control.raise_if_stopped(where);

        Exchange exchange{request, control, state_->options.max_response_bytes};
        std::unique_ptr<detail::CurlLane> lane = acquire();
        detail::CurlSlist headers;
        detail::CurlSlist connect_to;
        configure(lane->easy, request, url, exchange, headers, connect_to);

        if (curl_multi_add_handle(lane->multi, lane->easy) != CURLM_OK) {
            throw error(errc::transport, where + " failed: cannot start the transfer", "transport");
        }
        CURLcode result = CURLE_OK;
        bool finished = false;
        bool idle_timeout = false;
        {
            // A stop request wakes the poll below at once; the loop then sees it.
            std::stop_callback wake(request.stop, [multi = lane->multi] { curl_multi_wakeup(multi); });
            for (;;) {
                int running = 0;
                if (curl_multi_perform(lane->multi, &running) != CURLM_OK) break;
                int left = 0;
                while (CURLMsg* message = curl_multi_info_read(lane->multi, &left)) {
                    if (message->msg == CURLMSG_DONE) {
                        result = message->data.result;
                        finished = true;
                    }
                }
                if (finished || !control.live() || exchange.aborted()) break;
                const auto now = clock::now();
                auto wait = std::chrono::milliseconds(1000);
                if (exchange.connected) {
                    const auto idle = now - exchange.last_activity;
                    if (idle >= request.timeout) {
                        idle_timeout = true;
                        break;
                    }
                    wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(request.timeout - idle));
                }
                if (request.deadline) {
                    wait = std::min(wait, std::chrono::ceil<std::chrono::milliseconds>(*request.deadline - now));
                }
                wait = std::max(wait, std::chrono::milliseconds(1));
                curl_multi_poll(lane->multi, nullptr, 0, static_cast<int>(wait.count()), nullptr);
            }
        }
        long connects = 0;
        curl_easy_getinfo(lane->easy, CURLINFO_NUM_CONNECTS, &connects);
        state_->connections_opened += static_cast<std::size_t>(std::max(0L, connects));
        curl_multi_remove_handle(lane->multi, lane->easy);

        Response response = std::move(exchange.response);
        if (finished && result == CURLE_OK && !exchange.aborted()) {
            response.body = std::move(exchange.body);
            release(std::move(lane));
            return response;
        }
        // Cut short: the lane's connection state is unknown, so the lane is dropped, not pooled.
        if (exchange.http2_missing) {
            throw error(errc::unsupported, where + ": HTTP/2 was required and the server answered " + exchange.version,
                        "transport");
        }
        if (control.done()) {
            response.trailers.clear();  // the exchange ended before the trailers
            return response;
        }
        control.raise_if_stopped(where);
        if (exchange.over_limit) {
            throw error(errc::bad_response,
                        where + ": the body is over max_response_bytes (" +
                            std::to_string(state_->options.max_response_bytes) + ")",
                        "transport");
        }
        if (idle_timeout) {
            throw error(errc::timeout, where + " timed out after " + std::to_string(request.timeout.count()) + " ms",
                        "transport");
        }
        if (!finished) throw error(errc::transport, where + " failed: the transfer could not proceed", "transport");
        if (request.version == HttpVersion::http2 && url.scheme == "http" && exchange.connected &&
            exchange.version.empty() &&
            (result == CURLE_HTTP2 || result == CURLE_GOT_NOTHING || result == CURLE_WEIRD_SERVER_REPLY)) {
            // Prior knowledge met a server that never answered in HTTP/2 (an HTTP/1.1 server closes
            // or answers garbage to the preface; a reset stream, CURLE_HTTP2_STREAM, is HTTP/2).
            throw error(errc::unsupported,
                        where + ": HTTP/2 (prior knowledge) was required and the server did not speak it (" +
                            curl_easy_strerror(result) + ")",
                        "transport");
        }
        throw map_error(result, where);
    }

    /// Whether this libcurl reuses prior-knowledge h2c connections (8.0 and later); older ones
    /// get a fresh connection per h2c exchange (see configure()). https/ALPN reuse is unaffected.
    static bool reuses_h2c_connections() noexcept {
        return curl_version_info(CURLVERSION_NOW)->version_num >= 0x080000;
    }

    /// Idle lanes in the pool (each keeps its connections alive); for tests and diagnostics.
    std::size_t idle_connections() const {
        std::lock_guard lock(state_->mutex);
        return state_->idle.size();
    }

    /// Connections libcurl opened so far (a reused connection does not count).
    std::size_t connections_opened() const noexcept { return state_->connections_opened.load(); }

    /// Closes every pooled connection.
    void clear_pool() {
        std::vector<std::unique_ptr<detail::CurlLane>> doomed;
        std::lock_guard lock(state_->mutex);
        doomed.swap(state_->idle);
    }

    const TransportOptions& options() const noexcept { return state_->options; }  ///< the options it was built with

private:
    using clock = std::chrono::steady_clock;

    struct State {
        explicit State(const TransportOptions& o) : options(o) {}
        TransportOptions options;
        mutable std::mutex mutex;
        std::vector<std::unique_ptr<detail::CurlLane>> idle;  // most recently used last
        std::atomic<std::size_t> connections_opened{0};
    };

    /// What the callbacks of one transfer share with send(); touched only by the sending thread.
    struct Exchange {
        const Request& request;
        detail::ExchangeControl& control;
        std::size_t max_body;
        Response response{};
        std::string body{};
        std::string version{};  // "HTTP/2", "HTTP/1.1"
        bool head_done = false;
        bool http2_missing = false;
        bool over_limit = false;
        bool connected = false;
        clock::time_point last_activity = clock::now();
        curl_off_t last_dl = 0;
        curl_off_t last_ul = 0;

        bool aborted() const noexcept { return http2_missing || over_limit; }
    };

    std::unique_ptr<detail::CurlLane> acquire() {
        {
            std::lock_guard lock(state_->mutex);
            if (!state_->idle.empty()) {
                auto lane = std::move(state_->idle.back());
                state_->idle.pop_back();
                return lane;
            }
        }
        auto lane = std::make_unique<detail::CurlLane>();
        lane->multi = curl_multi_init();
        lane->easy = curl_easy_init();
        if (!lane->multi || !lane->easy) throw error(errc::transport, "cannot create a libcurl handle", "transport");
        curl_multi_setopt(lane->multi, CURLMOPT_MAXCONNECTS,
                          static_cast<long>(std::max<std::size_t>(1, state_->options.max_idle_connections_per_host)));
        return lane;
    }

    void release(std::unique_ptr<detail::CurlLane> lane) {
        std::lock_guard lock(state_->mutex);
        if (state_->idle.size() < std::max<std::size_t>(1, state_->options.max_idle_connections_per_host)) {
            lane->idle_since = clock::now();
            state_->idle.push_back(std::move(lane));
        }
    }

    void configure(CURL* easy, const Request& request, const Url& url, Exchange& exchange, detail::CurlSlist& headers,
                   detail::CurlSlist& connect_to) const {
        const auto& options = state_->options;
        curl_easy_reset(easy);
        const std::string target = url.scheme + "://" + url.authority() + url.target;  // no fragment
        curl_easy_setopt(easy, CURLOPT_URL, target.c_str());  // copied by libcurl
        curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
        curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L);
        curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(options.connect_timeout.count()));
        curl_easy_setopt(easy, CURLOPT_MAXAGE_CONN,
                         static_cast<long>(std::max<std::int64_t>(
                             1, std::chrono::ceil<std::chrono::seconds>(options.idle_connection_timeout).count())));
        if (request.deadline) {
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(*request.deadline - clock::now());
            curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<std::int64_t>(1, left.count())));
        }

        // TLS: verified unless the options say otherwise.
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, options.verify_tls ? 1L : 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, options.verify_tls ? 2L : 0L);
        if (!options.ca_cert_path.empty()) curl_easy_setopt(easy, CURLOPT_CAINFO, options.ca_cert_path.c_str());

        long version = CURL_HTTP_VERSION_1_1;
        if (url.scheme == "https" && request.version != HttpVersion::http1_1) version = CURL_HTTP_VERSION_2TLS;
        if (url.scheme == "http" && request.version == HttpVersion::http2) version = CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE;
        curl_easy_setopt(easy, CURLOPT_HTTP_VERSION, version);
        if (version == CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE && !reuses_h2c_connections()) {
            // libcurl before 8.0 breaks a reused prior-knowledge connection ("Error in the HTTP2
            // framing layer", curl/curl#10634): one fresh connection per h2c exchange there.
            curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L);
            curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L);
        }

        if (!request.connect_to.empty()) {
            // Validates "host:port" (brackets for IPv6) with the URL parser; the message never repeats it.
            Url dial;
            try {
                dial = parse_url("http://" + request.connect_to);
            } catch (const error&) {
                throw error(errc::config_invalid, "connect_to must be host:port", "transport");
            }
            if (dial.target != "/" || request.connect_to.find(':') == std::string::npos) {
                throw error(errc::config_invalid, "connect_to must be host:port", "transport");
            }
            connect_to.add(url.authority() + ":" + dial.authority());
            curl_easy_setopt(easy, CURLOPT_CONNECT_TO, connect_to.list);
        }

        // Method and body.
        if (detail::iequals(request.method, "HEAD")) {
            curl_easy_setopt(easy, CURLOPT_NOBODY, 1L);
        } else if (detail::iequals(request.method, "GET") && request.body.empty()) {
            curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
        } else if (request.body.empty() && !detail::iequals(request.method, "POST") &&
                   !detail::iequals(request.method, "PUT") && !detail::iequals(request.method, "PATCH")) {
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());  // DELETE, OPTIONS: no body
        } else {
            curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
            curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request.body.data());  // not copied: lives through send()
            curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request.method.c_str());
        }

        for (const auto& [name, value] : request.headers) {
            headers.add(value.empty() ? name + ";" : name + ": " + value);  // "Name;" sends an empty value
        }
        // libcurl's own defaults would change the request: no 100-continue round trip, no invented type.
        if (!request.headers.contains("Expect")) headers.add("Expect:");
        if (!request.headers.contains("Content-Type")) headers.add("Content-Type:");
        curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers.list);

        curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &CurlTransport::on_header);
        curl_easy_setopt(easy, CURLOPT_HEADERDATA, &exchange);
        curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CurlTransport::on_write);
        curl_easy_setopt(easy, CURLOPT_WRITEDATA, &exchange);
        curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, &CurlTransport::on_prereq);
        curl_easy_setopt(easy, CURLOPT_PREREQDATA, &exchange);
        curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, &CurlTransport::on_progress);
        curl_easy_setopt(easy, CURLOPT_XFERINFODATA, &exchange);
    }

    // The callbacks never throw (libcurl is C): failures are recorded and the transfer stopped.

    static int on_prereq(void* data, char*, char*, int, int) {
        auto& exchange = *static_cast<Exchange*>(data);
        exchange.connected = true;  // the idle bound starts once connected (connect_timeout covers the dial)
        exchange.last_activity = clock::now();
        return CURL_PREREQFUNC_OK;
    }

    static int on_progress(void* data, curl_off_t, curl_off_t dlnow, curl_off_t, curl_off_t ulnow) {
        auto& exchange = *static_cast<Exchange*>(data);
        if (dlnow != exchange.last_dl || ulnow != exchange.last_ul) {
            exchange.last_dl = dlnow;
            exchange.last_ul = ulnow;
            exchange.last_activity = clock::now();
        }
        return 0;
    }

    static std::size_t on_header(char* data, std::size_t size, std::size_t count, void* user) noexcept {
        auto& exchange = *static_cast<Exchange*>(user);
        const std::size_t length = size * count;
        std::string_view line(data, length);
        exchange.last_activity = clock::now();
        while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
        try {
            if (line.starts_with("HTTP/")) {  // a status line: a new (maybe interim) response
                const auto space = line.find(' ');
                exchange.version = std::string(line.substr(0, space));
                exchange.response = Response{};
                exchange.head_done = false;
                if (space != std::string_view::npos) {
                    const auto code = line.substr(space + 1, 3);
                    int status = 0;
                    std::from_chars(code.data(), code.data() + code.size(), status);
                    exchange.response.status = status;
                }
                return length;
            }
            if (line.empty()) {  // end of a header block
                if (exchange.head_done || exchange.response.status < 200) return length;  // trailers' end, or 1xx
                exchange.head_done = true;
                if (exchange.request.version == HttpVersion::http2 && exchange.version != "HTTP/2") {
                    exchange.http2_missing = true;
                    return 0;
                }
                return exchange.control.head(exchange.response) ? length : 0;
            }
            const auto colon = line.find(':');
            if (colon == std::string_view::npos || colon == 0) return length;  // not a field: ignored
            auto& fields = exchange.head_done ? exchange.response.trailers : exchange.response.headers;
            fields.add(std::string(line.substr(0, colon)), std::string(detail::trim(line.substr(colon + 1))));
            return length;
        } catch (...) {
            return 0;  // out of memory: stop
        }
    }

    static std::size_t on_write(char* data, std::size_t size, std::size_t count, void* user) noexcept {
        auto& exchange = *static_cast<Exchange*>(user);
        const std::size_t length = size * count;
        exchange.last_activity = clock::now();
        const std::string_view chunk(data, length);
        try {
            if (exchange.control.streaming()) return exchange.control.chunk(chunk) ? length : 0;
            if (!exchange.control.live()) return 0;
            if (exchange.request.on_body) {
                constexpr std::size_t limit = 1 << 20;  // an error body is for a message, not a download
                if (exchange.body.size() < limit) exchange.body.append(chunk.substr(0, limit - exchange.body.size()));
                return length;
            }
            if (length > exchange.max_body - std::min(exchange.body.size(), exchange.max_body)) {
                exchange.over_limit = true;
                return 0;
            }
            exchange.body.append(chunk);
            return length;
        } catch (...) {
            return 0;
        }
    }

    static error map_error(CURLcode code, const std::string& where) {
        const std::string text = curl_easy_strerror(code);  // generic text: no URL, no header
        switch (code) {
            case CURLE_OPERATION_TIMEDOUT:
                return error(errc::timeout, where + " timed out (" + text + ")", "transport");
            case CURLE_WEIRD_SERVER_REPLY:
            case CURLE_BAD_CONTENT_ENCODING:
            case CURLE_TOO_MANY_REDIRECTS:
                return error(errc::bad_response, where + ": " + text, "transport");
            case CURLE_URL_MALFORMAT:
                return error(errc::config_invalid, where + ": " + text, "transport");
            case CURLE_PEER_FAILED_VERIFICATION:
                return error(errc::transport, where + " failed: TLS certificate verification failed (" + text + ")",
                             "transport");
            default:
                return error(errc::transport, where + " failed: " + text, "transport");
        }
    }

    std::shared_ptr<State> state_;
};

static_assert(is_transport_policy_v<CurlTransport>);

}  // namespace runbox
