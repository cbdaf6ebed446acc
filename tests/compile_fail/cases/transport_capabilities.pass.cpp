#include "contract_fixture.hpp"
struct WithTraits {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = true;
    explicit WithTraits(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, WithTraits>) > 0);
