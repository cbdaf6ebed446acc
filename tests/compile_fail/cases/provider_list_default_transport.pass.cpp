#include <boost/mp11/list.hpp>
#include "contract_fixture.hpp"
#include "runbox/factory.hpp"
struct WithDefault {
    static constexpr std::string_view name = "with-default";
    using default_transport = fixture::GoodTransport;
    explicit WithDefault(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::AnyRuntime<boost::mp11::mp_list<fixture::GoodAuth, WithDefault>>) > 0);
