// expect: runbox: TransportPolicy must have runbox::Response send(const runbox::Request&)
#include "contract_fixture.hpp"
struct SendsInt {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit SendsInt(const runbox::TransportOptions&) {}
    int send(const runbox::Request&) { return 200; }
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, SendsInt>) > 0);
