// expect: runbox: TransportPolicy must be constructible from const runbox::TransportOptions&
#include "contract_fixture.hpp"
struct NoOptions {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit NoOptions(int) {}
    runbox::Response send(const runbox::Request&) { return {}; }
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, NoOptions>) > 0);
