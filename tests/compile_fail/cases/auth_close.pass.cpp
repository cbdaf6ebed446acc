#include "contract_fixture.hpp"
struct QuietClose {
    static constexpr std::string_view name = "quiet-close";
    explicit QuietClose(const runbox::Config&) {}
    void authorize(runbox::Request&) const {}
    template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) { return {}; }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}
};
static_assert(sizeof(runbox::Runtime<QuietClose, fixture::GoodTransport>) > 0);
