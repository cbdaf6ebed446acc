// runbox/contract.hpp - the compile-time contract between Runtime, providers and transports.
//
// Every clause is a public concept, so users check their own types:
//     static_assert(runbox::is_auth_policy_v<MyProvider>);
// and every clause has its own static_assert message starting with "runbox:" that names the
// clause; the compiler prints the offending type in the instantiation note beneath it
// (check_auth_policy<MyProvider, ...>). tests/compile_fail/ proves each message appears.
#pragma once

#include <concepts>
#include <string_view>
#include <type_traits>

#include "runbox/config.hpp"
#include "runbox/provider.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

class EventStream;

// ---- AuthPolicy clauses -------------------------------------------------------------------

template <class A>
concept AuthPolicyNamed = requires {
    { A::name } -> std::convertible_to<std::string_view>;
};

template <class A>
concept AuthPolicyConstructible = std::constructible_from<A, const Config&>;

template <class A>
concept AuthPolicyAuthorizes = requires(const A& auth, Request& request) {
    { auth.authorize(request) } -> std::same_as<void>;
};

template <class A, class T>
concept AuthPolicyConnects = requires(A& auth, ProviderContext<T>& context) {
    { auth.connect(context) } -> std::same_as<ServerEndpoint>;
};

template <class A, class T>
concept AuthPolicyCloses = requires(A& auth, ProviderContext<T>& context, CloseReason reason) {
    { auth.close(context, reason) } noexcept -> std::same_as<void>;
};

// ---- Optional clauses: absent is fine; declared, they must have this shape ----------------

/// `template <class T> void refresh(ProviderContext<T>&)`: called before every authorize(), with
/// the transport in hand, so a provider can fetch or renew a short-lived token (Modal's JWT from
/// AuthTokenGet, renewed before its `exp`). A cheap check when the token is still fresh.
template <class A, class T>
concept AuthPolicyRefreshes = requires(A& auth, ProviderContext<T>& context) {
    { auth.refresh(context) } -> std::same_as<void>;
};

/// Whether A declares a member called `refresh` at all (whatever its shape).
template <class A, class T>
constexpr bool auth_declares_refresh() {
    return requires { &A::refresh; } || requires { &A::template refresh<T>; } ||
           requires(A& auth, ProviderContext<T>& context) { auth.refresh(context); };
}

template <class A, class T>
concept AuthPolicyRefreshWellFormed = !auth_declares_refresh<A, T>() || AuthPolicyRefreshes<A, T>;

/// `void clear_pool()`: hangs up idle kept-alive connections; the runtime calls it before it
/// closes the sandbox (a server being stopped would wait for them) and after a failed connect.
template <class T>
concept TransportClearsPool = requires(T& transport) {
    { transport.clear_pool() } -> std::same_as<void>;
};

/// Whether T declares a member called clear_pool (then it must satisfy TransportClearsPool).
template <class T>
constexpr bool transport_declares_clear_pool() {
    return requires { &T::clear_pool; };
}

template <class T>
concept TransportClearPoolWellFormed = !transport_declares_clear_pool<T>() || TransportClearsPool<T>;

/// Makes `ctx` apply `auth`'s credentials: ProviderContext::authorize(request) then calls
/// auth.refresh(ctx) when the provider declares it, and auth.authorize(request). Runtime and
/// sweep bind every context they hand a provider; drive a provider alone only after this.
template <class A, class T>
void bind_credentials(ProviderContext<T>& ctx, A& auth) {
    ctx.credentials = [&auth](ProviderContext<T>& self, Request& request) {
        if constexpr (AuthPolicyRefreshes<A, T>) auth.refresh(self);
        else (void)self;
        auth.authorize(request);
    };
}

/// Hangs up the transport's idle connections when it can.
template <class T>
void clear_pool_of(T& transport) {
    if constexpr (TransportClearsPool<T>) transport.clear_pool();
    else (void)transport;
}

/// A provider that needs HTTP/2 (Modal's gRPC) says `static constexpr bool requires_http2 = true;`.
template <class A>
constexpr bool auth_requires_http2() {
    if constexpr (requires { A::requires_http2; }) return static_cast<bool>(A::requires_http2);
    else return false;
}

template <class A, class T>
concept AuthPolicyTransportCapable = !auth_requires_http2<A>() || static_cast<bool>(T::supports_http2);

/// A provider that reads streamed bodies (E2B's Connect streams, Modal's server-streaming RPCs)
/// says `static constexpr bool requires_streaming = true;`.
template <class A>
constexpr bool auth_requires_streaming() {
    if constexpr (requires { A::requires_streaming; }) return static_cast<bool>(A::requires_streaming);
    else return false;
}

template <class A, class T>
concept AuthPolicyStreamingCapable = !auth_requires_streaming<A>() || static_cast<bool>(T::supports_streaming);

template <class A>
concept AuthPolicyHasDefaultTransport = requires { typename A::default_transport; } &&
                                        TransportPolicy<typename A::default_transport>;

/// The whole AuthPolicy contract for use with transport T.
template <class A, class T>
concept AuthPolicyFor = AuthPolicyNamed<A> && AuthPolicyConstructible<A> && AuthPolicyAuthorizes<A> &&
                        AuthPolicyConnects<A, T> && AuthPolicyCloses<A, T> && AuthPolicyTransportCapable<A, T> &&
                        AuthPolicyRefreshWellFormed<A, T> && AuthPolicyStreamingCapable<A, T>;

/// A provider usable by make_runtime: the contract with its own default transport.
template <class A>
concept AuthPolicy = AuthPolicyHasDefaultTransport<A> && AuthPolicyFor<A, typename A::default_transport>;

/// True when A models AuthPolicy (usable by make_runtime).
template <class A>
inline constexpr bool is_auth_policy_v = AuthPolicy<A>;

/// True when A models AuthPolicyFor with transport T.
template <class A, class T>
inline constexpr bool is_auth_policy_for_v = AuthPolicyFor<A, T>;

// ---- The runtime's constructor contract ---------------------------------------------------

/// The seed's signature, shared by every runtime: (const Config&, EventStream&, RuntimeOptions).
template <class R>
concept RuntimeConstructible = std::constructible_from<R, const Config&, EventStream&, RuntimeOptions> &&
                               std::constructible_from<R, const Config&, EventStream&>;

/// True when R models RuntimeConstructible.
template <class R>
inline constexpr bool is_runtime_constructible_v = RuntimeConstructible<R>;

// ---- One static_assert per clause ---------------------------------------------------------

/// Instantiated by Runtime<A, T>; each failing clause prints its own "runbox:" message.
template <class T>
struct check_transport_policy {
    static_assert(TransportConstructible<T>,
                  "runbox: TransportPolicy must be constructible from const runbox::TransportOptions&");
    static_assert(TransportSends<T>,
                  "runbox: TransportPolicy must have runbox::Response send(const runbox::Request&)");
    static_assert(TransportHasCapabilities<T>,
                  "runbox: TransportPolicy must declare static constexpr bool supports_http2 and supports_streaming");
    static_assert(TransportClearPoolWellFormed<T>,
                  "runbox: TransportPolicy::clear_pool, when declared, must be void clear_pool()");
    static constexpr bool value = TransportPolicy<T> && TransportClearPoolWellFormed<T>;  ///< true when every clause holds
};

/// Instantiated by Runtime<A, T>: one static_assert per clause of the AuthPolicy contract.
template <class A, class T>
struct check_auth_policy {
    static_assert(AuthPolicyNamed<A>,
                  "runbox: AuthPolicy must declare static constexpr std::string_view name (e.g. \"daytona\")");
    static_assert(AuthPolicyConstructible<A>, "runbox: AuthPolicy must be constructible from const runbox::Config&");
    static_assert(AuthPolicyAuthorizes<A>, "runbox: AuthPolicy must have void authorize(runbox::Request&) const");
    static_assert(AuthPolicyConnects<A, T>,
                  "runbox: AuthPolicy must have runbox::ServerEndpoint connect(runbox::ProviderContext<Transport>&)");
    static_assert(AuthPolicyCloses<A, T>,
                  "runbox: AuthPolicy must have void close(runbox::ProviderContext<Transport>&, runbox::CloseReason) "
                  "noexcept");
    static_assert(AuthPolicyTransportCapable<A, T>,
                  "runbox: AuthPolicy requires_http2, but the TransportPolicy does not support HTTP/2 "
                  "(use runbox::CurlTransport)");
    static_assert(AuthPolicyRefreshWellFormed<A, T>,
                  "runbox: AuthPolicy::refresh, when declared, must be void refresh(runbox::ProviderContext<Transport>&)");
    static_assert(AuthPolicyStreamingCapable<A, T>,
                  "runbox: AuthPolicy requires_streaming, but the TransportPolicy does not support streaming "
                  "(supports_streaming = false)");
    static constexpr bool value = AuthPolicyFor<A, T>;  ///< true when every clause holds
};

/// Instantiated for each provider listed in make_runtime.
template <class A>
struct check_listed_provider {
    static_assert(AuthPolicyHasDefaultTransport<A>,
                  "runbox: a provider listed in make_runtime must declare using default_transport = <a TransportPolicy>");
    static constexpr bool value = AuthPolicyHasDefaultTransport<A>;  ///< true when A names a default transport
};

/// Instantiated by make_runtime for each runtime type: a static_assert naming the seed's signature.
template <class R>
struct check_runtime_constructor {
    static_assert(RuntimeConstructible<R>,
                  "runbox: Runtime must be constructible from (const runbox::Config&, runbox::EventStream&, "
                  "runbox::RuntimeOptions = {})");
    static constexpr bool value = RuntimeConstructible<R>;  ///< true when R has the seed's constructor
};

}  // namespace runbox
