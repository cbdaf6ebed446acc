#include <boost/mp11/list.hpp>
#include "runbox/runbox.hpp"
template <class> inline constexpr bool poisoned = false;
struct Poisoned {
    static constexpr std::string_view name = "poisoned";
    using default_transport = runbox::HttplibTransport;
    explicit Poisoned(const runbox::Config&) {}
    void authorize(runbox::Request&) const {}
    template <class T> runbox::ServerEndpoint connect(runbox::ProviderContext<T>&) {
        static_assert(poisoned<T>, "runbox-test: the poisoned provider was instantiated");
        return {};
    }
    template <class T> void close(runbox::ProviderContext<T>&, runbox::CloseReason) noexcept {}
};
// The poisoned provider is declared and visible, but only local is named: it compiles.
void use(const runbox::Config& config, runbox::EventStream& events) {
    auto rt = runbox::make_runtime<boost::mp11::mp_list<runbox::local::Auth>>(config, events);
    rt.connect();
    runbox::LocalRuntime direct(config, events);
    direct.connect();
}
