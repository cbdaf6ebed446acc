// expect: runbox: AuthPolicy must have runbox::ServerEndpoint connect(runbox::ProviderContext<Transport>&)
#include "contract_fixture.hpp"
struct ConnectsToString {
    static constexpr std::string_view name = "string-connect";
    explicit ConnectsToString(const runbox::Config&) {}
    void authorize(runbox::Request&) const {}
    template <class T> std::string connect(runbox::ProviderContext<T>&) { return "http://x"; }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}
};
static_assert(sizeof(runbox::Runtime<ConnectsToString, fixture::GoodTransport>) > 0);
