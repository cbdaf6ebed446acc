// Shared pieces of the contract compile-fail cases: a complete provider and transport that
// each case copies with exactly one clause broken (its twin keeps the clause).
#pragma once

#include "runbox/runtime.hpp"

namespace fixture {

struct GoodTransport {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit GoodTransport(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
};

// The body of a valid provider, minus `name`, the constructor and default_transport.
#define FIXTURE_PROVIDER_BODY                                                                              \
    void authorize(runbox::Request&) const {}                                                              \
    template <class T>                                                                                     \
    runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) {                                          \
        return {};                                                                                         \
    }                                                                                                      \
    template <class T>                                                                                     \
    void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}

struct GoodAuth {
    static constexpr std::string_view name = "good";
    using default_transport = GoodTransport;
    explicit GoodAuth(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};

}  // namespace fixture
