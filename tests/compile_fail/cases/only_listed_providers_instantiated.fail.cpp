// expect: runbox-test: the poisoned provider was instantiated
// A provider whose connect() cannot be instantiated. Listing it in make_runtime instantiates it
// (this case); the twin names a list without it and compiles, which shows that a program that
// picks its providers at compile time does not instantiate the others.
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
void use(const runbox::Config& config, runbox::EventStream& events) {
    auto rt = runbox::make_runtime<boost::mp11::mp_list<runbox::local::Auth, Poisoned>>(config, events);
    rt.connect();
}
