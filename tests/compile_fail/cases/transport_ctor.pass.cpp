#include "contract_fixture.hpp"
struct WithOptions {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit WithOptions(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, WithOptions>) > 0);
