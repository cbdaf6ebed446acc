#include "contract_fixture.hpp"
struct ConnectsToEndpoint {
    static constexpr std::string_view name = "endpoint-connect";
    explicit ConnectsToEndpoint(const runbox::Config&) {}
    void authorize(runbox::Request&) const {}
    template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) { return {}; }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}
};
static_assert(sizeof(runbox::Runtime<ConnectsToEndpoint, fixture::GoodTransport>) > 0);
