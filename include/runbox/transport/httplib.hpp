// runbox/transport/httplib.hpp - HttplibTransport: HTTP/1.1 and HTTPS through cpp-httplib.
//
// Connections are kept alive and pooled per scheme+host+port. One
// httplib client never serves two requests at once, so each send() leases a
// client from the pool (or opens one) and gives it back afterwards; send() is
// thread-safe. TLS certificates are verified unless TransportOptions says
// verify_tls = false. Compile with the flags of `pkg-config --cflags cpp-httplib`.
#pragma once

#include <cstddef>
#include <memory>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

/// A TransportPolicy over cpp-httplib: HTTP/1.1 and HTTPS, streamed bodies, pooled keep-alive connections;
/// send() is thread-safe. No HTTP/2, no trailers, no Request::connect_to (those need CurlTransport).
class HttplibTransport {
public:
    static constexpr bool supports_http2 = false;  ///< HTTP/1.1 only
    static constexpr bool supports_streaming = true;  ///< bodies go to Request::on_body as they arrive

    /// A transport with the default TransportOptions; no connection is made yet.
    HttplibTransport();
    /// A transport with `options` (TLS, timeouts, pool, response size limit); no connection is made yet.
    explicit HttplibTransport(const TransportOptions& options);
    /// Closes the pooled connections.
    ~HttplibTransport();
    /// Movable (the pool moves with it), not copyable.
    ///@{
    HttplibTransport(HttplibTransport&&) noexcept;
    HttplibTransport& operator=(HttplibTransport&&) noexcept;
    ///@}

    /// One attempt. Returns every HTTP status; throws runbox::error with
    /// errc::timeout (a read/write timed out, or Request::deadline passed),
    /// errc::cancelled (Request::stop), errc::transport (connect, reset, TLS),
    /// errc::bad_response (on_body answered fail, or the body is over
    /// max_response_bytes), errc::unsupported (HTTP/2 or connect_to demanded)
    /// or what a stream handler threw. on_body answering done returns the
    /// Response early. Messages name the method, host and httplib error, never
    /// a header value or the URL's query. Trailers are not reported (httplib
    /// drops them), so Response::trailers stays empty.
    Response send(const Request& request);

    /// Pooled idle connections (all hosts); for tests and diagnostics.
    std::size_t idle_connections() const;

    /// Closes every pooled connection.
    void clear_pool();

    const TransportOptions& options() const noexcept;  ///< the options it was built with

private:
    struct State;  // the pool of httplib clients (impl/httplib.ipp): httplib.h is not needed here
    std::unique_ptr<State> state_;
};

static_assert(is_transport_policy_v<HttplibTransport>);

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/transport/impl/httplib.ipp"
#endif
