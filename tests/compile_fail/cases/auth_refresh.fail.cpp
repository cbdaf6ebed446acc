// expect: runbox: AuthPolicy::refresh, when declared, must be void refresh(runbox::ProviderContext<Transport>&)
#include "contract_fixture.hpp"
struct RefreshWithoutContext {
    static constexpr std::string_view name = "refresh-without-context";
    explicit RefreshWithoutContext(const runbox::Config&) {}
    void refresh() {}  // cannot reach the transport: not the clause's shape
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<RefreshWithoutContext, fixture::GoodTransport>) > 0);
