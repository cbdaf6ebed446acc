// expect: runbox: AuthPolicy requires_streaming, but the TransportPolicy does not support streaming
#include "contract_fixture.hpp"
struct NeedsStreaming {
    static constexpr std::string_view name = "needs-streaming";
    static constexpr bool requires_streaming = true;
    explicit NeedsStreaming(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<NeedsStreaming, fixture::GoodTransport>) > 0);
