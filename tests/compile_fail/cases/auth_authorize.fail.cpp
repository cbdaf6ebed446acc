// expect: runbox: AuthPolicy must have void authorize(runbox::Request&) const
#include "contract_fixture.hpp"
struct NoAuthorize {
    static constexpr std::string_view name = "no-authorize";
    explicit NoAuthorize(const runbox::Config&) {}
    void authorize(runbox::Request&) {}  // not const
    template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) { return {}; }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}
};
static_assert(sizeof(runbox::Runtime<NoAuthorize, fixture::GoodTransport>) > 0);
