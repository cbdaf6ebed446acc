// expect: runbox: two providers in a provider list have the same name
#include <boost/mp11/list.hpp>
#include "contract_fixture.hpp"
#include "runbox/factory.hpp"
struct AlsoGood {
    static constexpr std::string_view name = "good";  // clashes with fixture::GoodAuth
    using default_transport = fixture::GoodTransport;
    explicit AlsoGood(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::AnyRuntime<boost::mp11::mp_list<fixture::GoodAuth, AlsoGood>>) > 0);
