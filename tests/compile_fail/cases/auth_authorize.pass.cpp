#include "contract_fixture.hpp"
struct ConstAuthorize {
    static constexpr std::string_view name = "const-authorize";
    explicit ConstAuthorize(const runbox::Config&) {}
    void authorize(runbox::Request&) const {}
    template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) { return {}; }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}
};
static_assert(sizeof(runbox::Runtime<ConstAuthorize, fixture::GoodTransport>) > 0);
