// expect: runbox: AuthPolicy requires_http2, but the TransportPolicy does not support HTTP/2
#include "contract_fixture.hpp"
struct NeedsHttp2 {
    static constexpr std::string_view name = "needs-http2";
    static constexpr bool requires_http2 = true;
    explicit NeedsHttp2(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<NeedsHttp2, fixture::GoodTransport>) > 0);
