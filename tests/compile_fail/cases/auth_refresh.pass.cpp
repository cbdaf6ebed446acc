#include "contract_fixture.hpp"
struct RefreshWithContext {
    static constexpr std::string_view name = "refresh-with-context";
    explicit RefreshWithContext(const runbox::Config&) {}
    template <class T>
    void refresh(runbox::ProviderContext<T>&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(runbox::AuthPolicyRefreshes<RefreshWithContext, fixture::GoodTransport>);
static_assert(sizeof(runbox::Runtime<RefreshWithContext, fixture::GoodTransport>) > 0);
