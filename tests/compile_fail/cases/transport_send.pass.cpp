#include "contract_fixture.hpp"
struct SendsResponse {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit SendsResponse(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, SendsResponse>) > 0);
