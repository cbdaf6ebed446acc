#include "contract_fixture.hpp"
struct StreamingTransport : fixture::GoodTransport {
    static constexpr bool supports_streaming = true;
    using fixture::GoodTransport::GoodTransport;
};
struct NeedsStreaming {
    static constexpr std::string_view name = "needs-streaming";
    static constexpr bool requires_streaming = true;
    explicit NeedsStreaming(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<NeedsStreaming, StreamingTransport>) > 0);
static_assert(runbox::is_auth_policy_for_v<NeedsStreaming, StreamingTransport>);
static_assert(!runbox::is_auth_policy_for_v<NeedsStreaming, fixture::GoodTransport>);
