// runbox/transport/httplib.hpp - HttplibTransport: HTTP/1.1 and HTTPS through cpp-httplib.
//
// Connections are kept alive and pooled per scheme+host+port. One
// httplib client never serves two requests at once, so each send() leases a
// client from the pool (or opens one) and gives it back afterwards; send() is
// thread-safe. TLS certificates are verified unless TransportOptions says
// verify_tls = false. Compile with the flags of `pkg-config --cflags cpp-httplib`.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <httplib.h>

#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

/// Percent-encodes one query-string key or value (cpp-httplib's encoder:
/// letters, digits and -_.!~*'() stay, everything else becomes %XX).
inline std::string url_encode(std::string_view value) {
    return httplib::detail::encode_query_param(std::string(value));
}

/// "k1=v1&k2=v2" with every key and value percent-encoded, in the given order.
inline std::string query_string(std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
    std::string out;
    for (const auto& [key, value] : params) {
        if (!out.empty()) out += '&';
        out += url_encode(key);
        out += '=';
        out += url_encode(value);
    }
    return out;
}

class HttplibTransport {
public:
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = true;

    HttplibTransport() : HttplibTransport(TransportOptions{}) {}
    explicit HttplibTransport(const TransportOptions& options) : state_(std::make_unique<State>(options)) {}

    /// One attempt. Returns every HTTP status; throws runbox::error with
    /// errc::timeout (read/write timed out), errc::transport (connect, reset,
    /// TLS), errc::bad_response (on_body stopped the transfer) or
    /// errc::unsupported (HTTP/2 demanded). Messages name the method, host
    /// and httplib error, never a header value or the URL's query.
    Response send(const Request& request) {
        if (request.version == HttpVersion::http2) {
            throw error(errc::unsupported, "HttplibTransport speaks HTTP/1.1 only; HTTP/2 needs CurlTransport",
                        "transport");
        }
        const Url url = parse_url(request.url);
        auto client = acquire(url);
        client->set_read_timeout(request.timeout);
        client->set_write_timeout(request.timeout);

        httplib::Request out;
        out.method = request.method;
        out.path = url.target;
        for (const auto& [name, value] : request.headers) {
            // A CR/LF would smuggle extra header lines: refuse, naming the field but never its value.
            if (name.empty() || name.find_first_of("\r\n: ") != std::string::npos) {
                throw error(errc::config_invalid, "malformed header name", "transport");
            }
            if (value.find_first_of("\r\n") != std::string::npos) {
                throw error(errc::config_invalid, "the value of header " + name + " contains a line break", "transport");
            }
            out.headers.emplace(name, value);
        }
        out.body = request.body;
        // httplib writes "host:port", which is wrong for an IPv6 literal.
        if (url.is_ipv6() && !request.headers.contains("Host")) out.headers.emplace("Host", url.authority());

        // The body always comes through the receiver, so the time of the last
        // byte is known (httplib 0.11 reports a read timeout as a plain Read
        // error). A 2xx body goes to on_body when set; other bodies are kept
        // for raise_for_status.
        int status = 0;
        std::string body;
        auto last_activity = std::chrono::steady_clock::now();
        out.response_handler = [&](const httplib::Response& head) {
            status = head.status;
            last_activity = std::chrono::steady_clock::now();
            return true;
        };
        out.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
            last_activity = std::chrono::steady_clock::now();
            if (request.on_body && status >= 200 && status < 300) return request.on_body(std::string_view(data, size));
            if (request.on_body) {
                constexpr std::size_t limit = 1 << 20;  // an error body is for a message, not a download
                if (body.size() < limit) body.append(data, std::min(size, limit - body.size()));
                return true;
            }
            if (size > state_->options.max_response_bytes - std::min(body.size(), state_->options.max_response_bytes)) {
                return false;  // over the bound: Canceled, reported as bad_response
            }
            body.append(data, size);
            return true;
        };

        auto result = client->send(out);
        if (!result) {
            // The client's connection state is unknown: drop it rather than pool it.
            throw map_error(result.error(), request, url, std::chrono::steady_clock::now() - last_activity);
        }

        Response response;
        response.status = result->status;
        for (const auto& [name, value] : result->headers) response.headers.add(name, value);
        response.body = std::move(body);
        release(url, std::move(client));
        return response;
    }

    /// Pooled idle connections (all hosts); for tests and diagnostics.
    std::size_t idle_connections() const {
        std::lock_guard lock(state_->mutex);
        std::size_t count = 0;
        for (const auto& [origin, pooled] : state_->idle) count += pooled.size();
        return count;
    }

    /// Closes every pooled connection.
    void clear_pool() {
        std::map<std::string, std::vector<Pooled>> doomed;
        {
            std::lock_guard lock(state_->mutex);
            doomed.swap(state_->idle);
        }
    }

    const TransportOptions& options() const noexcept { return state_->options; }

private:
    using clock = std::chrono::steady_clock;
    struct Pooled {
        std::unique_ptr<httplib::ClientImpl> client;
        clock::time_point idle_since;
    };
    struct State {
        explicit State(const TransportOptions& o) : options(o) {}
        TransportOptions options;
        mutable std::mutex mutex;
        std::map<std::string, std::vector<Pooled>> idle;  // origin -> most recently used last
    };

    std::unique_ptr<httplib::ClientImpl> acquire(const Url& url) {
        std::vector<Pooled> stale;  // closed outside the lock
        {
            std::lock_guard lock(state_->mutex);
            auto it = state_->idle.find(url.origin());
            if (it != state_->idle.end()) {
                auto& pooled = it->second;
                const auto now = clock::now();
                while (!pooled.empty()) {
                    Pooled candidate = std::move(pooled.back());
                    pooled.pop_back();
                    if (now - candidate.idle_since <= state_->options.idle_connection_timeout) {
                        return std::move(candidate.client);
                    }
                    stale.push_back(std::move(candidate));
                }
            }
        }
        return open(url);
    }

    void release(const Url& url, std::unique_ptr<httplib::ClientImpl> client) {
        std::lock_guard lock(state_->mutex);
        auto& pooled = state_->idle[url.origin()];
        if (pooled.size() < state_->options.max_idle_connections_per_host) {
            pooled.push_back(Pooled{std::move(client), clock::now()});
        }
    }

    std::unique_ptr<httplib::ClientImpl> open(const Url& url) const {
        const auto& options = state_->options;
#ifndef CPPHTTPLIB_OPENSSL_SUPPORT
        if (url.scheme == "https") {
            throw error(errc::unsupported, "cpp-httplib was built without OpenSSL; https is unavailable", "transport");
        }
#endif
        // ClientImpl / SSLClient take the host as is, so IPv6 literals with hex digits work
        // (httplib::Client's "scheme://host:port" parser accepts only [digits and colons]).
        std::unique_ptr<httplib::ClientImpl> client;
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
        if (url.scheme == "https") client = std::make_unique<httplib::SSLClient>(url.host, url.port);
#endif
        if (!client) client = std::make_unique<httplib::ClientImpl>(url.host, url.port);
        if (!client->is_valid()) {
            throw error(errc::transport, "cannot create an HTTP client for " + url.authority(), "transport");
        }
        client->set_keep_alive(true);
        client->set_url_encode(false);  // targets arrive encoded (see url_encode); don't re-encode '+' or ';'
        client->set_follow_location(false);
        client->set_tcp_nodelay(true);
        client->set_connection_timeout(options.connect_timeout);
#ifdef CPPHTTPLIB_OPENSSL_SUPPORT
        if (url.scheme == "https") {
            client->enable_server_certificate_verification(options.verify_tls);
            if (!options.ca_cert_path.empty()) client->set_ca_cert_path(options.ca_cert_path);
            // else: OpenSSL's default verify paths (the system store)
        }
#endif
        return client;
    }

    static error map_error(httplib::Error code, const Request& request, const Url& url,
                           clock::duration idle) {
        const std::string where = request.method + " " + url.scheme + "://" + url.authority();
        const std::string name = httplib::to_string(code);
        switch (code) {
            case httplib::Error::Read:
            case httplib::Error::Write:
                // httplib 0.11 has no Error::Timeout: a read/write failing after a
                // whole timeout without a byte is one.
                if (idle + std::chrono::milliseconds(10) >= request.timeout) {
                    return error(errc::timeout,
                                 where + " timed out after " + std::to_string(request.timeout.count()) + " ms (" +
                                     name + ")",
                                 "transport");
                }
                return error(errc::transport, where + " failed: connection dropped (" + name + ")", "transport");
            case httplib::Error::Canceled:
                return error(errc::bad_response, where + ": the body receiver stopped the transfer", "transport");
            case httplib::Error::SSLServerVerification:
                return error(errc::transport, where + " failed: TLS certificate verification failed (" + name + ")",
                             "transport");
            case httplib::Error::SSLLoadingCerts:
                return error(errc::transport, where + " failed: cannot load the CA certificates (" + name + ")",
                             "transport");
            default:
                return error(errc::transport, where + " failed: " + name, "transport");
        }
    }

    std::unique_ptr<State> state_;
};

static_assert(is_transport_policy_v<HttplibTransport>);

}  // namespace runbox
