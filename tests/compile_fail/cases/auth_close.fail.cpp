// expect: runbox: AuthPolicy must have void close(runbox::ProviderContext<Transport>&, runbox::CloseReason) noexcept
#include "contract_fixture.hpp"
struct ThrowingClose {
    static constexpr std::string_view name = "throwing-close";
    explicit ThrowingClose(const runbox::Config&) {}
    void authorize(runbox::Request&) const {}
    template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) { return {}; }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) {}  // may throw
};
static_assert(sizeof(runbox::Runtime<ThrowingClose, fixture::GoodTransport>) > 0);
