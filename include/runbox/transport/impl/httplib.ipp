/// \file
/// Definitions of runbox/transport/httplib.hpp: everything that touches cpp-httplib (included by
/// the header when header-only; by runbox/src.hpp in compiled mode, so httplib.h stays out of
/// the users' units).
#pragma once

#include "runbox/transport/httplib.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <httplib.h>

namespace runbox {

// The pool and the httplib clients, behind the transport's one pointer.
struct HttplibTransport::State {
    using clock = std::chrono::steady_clock;
    struct Pooled {
        std::unique_ptr<httplib::ClientImpl> client;
        clock::time_point idle_since;
    };
    explicit State(const TransportOptions& o) : options(o) {}
    TransportOptions options;
    mutable std::mutex mutex;
    std::map<std::string, std::vector<Pooled>> idle;  // origin -> most recently used last

    static Response finish(Response response, std::string body) {
        response.body = std::move(body);
        return response;
    }

    std::unique_ptr<httplib::ClientImpl> acquire(const Url& url) {
        std::vector<Pooled> stale;  // closed outside the lock
        {
            std::lock_guard lock(mutex);
            auto it = idle.find(url.origin());
            if (it != idle.end()) {
                auto& pooled = it->second;
                const auto now = clock::now();
                while (!pooled.empty()) {
                    Pooled candidate = std::move(pooled.back());
                    pooled.pop_back();
                    if (now - candidate.idle_since <= options.idle_connection_timeout) {
                        return std::move(candidate.client);
                    }
                    stale.push_back(std::move(candidate));
                }
            }
        }
        return open(url);
    }

    void release(const Url& url, std::unique_ptr<httplib::ClientImpl> client) {
        std::lock_guard lock(mutex);
        auto& pooled = idle[url.origin()];
        if (pooled.size() < options.max_idle_connections_per_host) {
            pooled.push_back(Pooled{std::move(client), clock::now()});
        }
    }

    std::unique_ptr<httplib::ClientImpl> open(const Url& url) const {
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
                           clock::duration quiet) {
        const std::string where = request.method + " " + url.scheme + "://" + url.authority();
        const std::string name = httplib::to_string(code);
        switch (code) {
            case httplib::Error::Read:
            case httplib::Error::Write:
                // httplib 0.11 has no Error::Timeout: a read/write failing after a
                // whole timeout without a byte is one.
                if (quiet + std::chrono::milliseconds(10) >= request.timeout) {
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
};

RUNBOX_DECL HttplibTransport::HttplibTransport() : HttplibTransport(TransportOptions{}) {}
RUNBOX_DECL HttplibTransport::HttplibTransport(const TransportOptions& options)
    : state_(std::make_unique<State>(options)) {}
RUNBOX_DECL HttplibTransport::~HttplibTransport() = default;
RUNBOX_DECL HttplibTransport::HttplibTransport(HttplibTransport&&) noexcept = default;
RUNBOX_DECL HttplibTransport& HttplibTransport::operator=(HttplibTransport&&) noexcept = default;

RUNBOX_DECL Response HttplibTransport::send(const Request& request) {
    if (request.version == HttpVersion::http2) {
        throw error(errc::unsupported, "HttplibTransport speaks HTTP/1.1 only; HTTP/2 needs CurlTransport",
                    "transport");
    }
    if (!request.connect_to.empty()) {
        throw error(errc::unsupported, "HttplibTransport cannot dial another address (connect_to); use CurlTransport",
                    "transport");
    }
    detail::check_header_fields(request.headers);
    const Url url = parse_url(request.url);
    const std::string where = request.method + " " + url.scheme + "://" + url.authority();
    detail::ExchangeControl control(request);
    if (!control.live()) control.raise_if_stopped(where);

    auto client = state_->acquire(url);
    // httplib bounds each read; an overall deadline shortens that bound and the watchdog
    // below cuts a transfer that keeps trickling bytes past it.
    auto per_read = request.timeout;
    if (request.deadline) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(*request.deadline - State::clock::now());
        per_read = std::clamp(left, std::chrono::milliseconds(1), per_read);
    }
    client->set_read_timeout(per_read);
    client->set_write_timeout(per_read);

    httplib::Request out;
    out.method = request.method;
    out.path = url.target;
    for (const auto& [name, value] : request.headers) out.headers.emplace(name, value);
    out.body = request.body;
    // httplib writes "host:port", which is wrong for an IPv6 literal.
    if (url.is_ipv6() && !request.headers.contains("Host")) out.headers.emplace("Host", url.authority());

    // The body always comes through the receiver, so the time of the last
    // byte is known (httplib 0.11 reports a read timeout as a plain Read
    // error). A 2xx body goes to on_body when set; other bodies are kept
    // for raise_for_status.
    Response response;
    std::string body;
    bool over_limit = false;
    auto last_activity = State::clock::now();
    out.response_handler = [&](const httplib::Response& head) {
        last_activity = State::clock::now();
        response.status = head.status;
        for (const auto& [name, value] : head.headers) response.headers.add(name, value);
        return control.head(response);
    };
    out.content_receiver = [&](const char* data, std::size_t size, std::uint64_t, std::uint64_t) {
        last_activity = State::clock::now();
        if (control.streaming()) return control.chunk(std::string_view(data, size));
        if (!control.live()) return false;
        if (request.on_body) {
            constexpr std::size_t limit = 1 << 20;  // an error body is for a message, not a download
            if (body.size() < limit) body.append(data, std::min(size, limit - body.size()));
            return true;
        }
        if (size > state_->options.max_response_bytes - std::min(body.size(), state_->options.max_response_bytes)) {
            over_limit = true;
            return false;  // over the bound: Canceled, reported as bad_response
        }
        body.append(data, size);
        return true;
    };

    std::atomic<bool> aborted{false};
    httplib::Result result{nullptr, httplib::Error::Unknown};
    {
        detail::Watchdog watchdog(request, [&aborted, raw = client.get()] {
            aborted = true;
            raw->stop();  // shuts the socket down: the blocked read returns at once
        });
        result = client->send(out);
    }
    if (!result || aborted) {
        // The client's connection state is unknown: drop it rather than pool it.
        if (control.done()) return response;
        control.raise_if_stopped(where);
        if (over_limit) {
            throw error(errc::bad_response,
                        where + ": the body is over max_response_bytes (" +
                            std::to_string(state_->options.max_response_bytes) + ")",
                        "transport");
        }
        if (result) return State::finish(std::move(response), std::move(body));  // completed as the watchdog fired
        throw State::map_error(result.error(), request, url, State::clock::now() - last_activity);
    }
    if (response.status == 0) {  // no response_handler call (httplib skips it for some answers)
        response.status = result->status;
        for (const auto& [name, value] : result->headers) response.headers.add(name, value);
    }
    response = State::finish(std::move(response), std::move(body));
    state_->release(url, std::move(client));
    return response;
}

RUNBOX_DECL std::size_t HttplibTransport::idle_connections() const {
    std::lock_guard lock(state_->mutex);
    std::size_t count = 0;
    for (const auto& [origin, pooled] : state_->idle) count += pooled.size();
    return count;
}

RUNBOX_DECL void HttplibTransport::clear_pool() {
    std::map<std::string, std::vector<State::Pooled>> doomed;
    {
        std::lock_guard lock(state_->mutex);
        doomed.swap(state_->idle);
    }
}

RUNBOX_DECL const TransportOptions& HttplibTransport::options() const noexcept { return state_->options; }

}  // namespace runbox
