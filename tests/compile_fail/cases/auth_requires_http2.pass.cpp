#include "contract_fixture.hpp"
struct Http2Transport : fixture::GoodTransport {
    static constexpr bool supports_http2 = true;
    using fixture::GoodTransport::GoodTransport;
};
struct NeedsHttp2 {
    static constexpr std::string_view name = "needs-http2";
    static constexpr bool requires_http2 = true;
    explicit NeedsHttp2(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<NeedsHttp2, Http2Transport>) > 0);
