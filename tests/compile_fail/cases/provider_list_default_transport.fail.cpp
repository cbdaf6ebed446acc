// expect: runbox: a provider listed in make_runtime must declare using default_transport = <a TransportPolicy>
#include <boost/mp11/list.hpp>
#include "contract_fixture.hpp"
#include "runbox/factory.hpp"
struct NoDefault {
    static constexpr std::string_view name = "no-default";
    explicit NoDefault(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::AnyRuntime<boost::mp11::mp_list<fixture::GoodAuth, NoDefault>>) > 0);
