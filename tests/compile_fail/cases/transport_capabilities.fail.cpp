// expect: runbox: TransportPolicy must declare static constexpr bool supports_http2 and supports_streaming
#include "contract_fixture.hpp"
struct NoTraits {
    explicit NoTraits(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, NoTraits>) > 0);
