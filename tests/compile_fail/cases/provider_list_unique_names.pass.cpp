#include <boost/mp11/list.hpp>
#include "contract_fixture.hpp"
#include "runbox/factory.hpp"
struct Distinct {
    static constexpr std::string_view name = "distinct";
    using default_transport = fixture::GoodTransport;
    explicit Distinct(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::AnyRuntime<boost::mp11::mp_list<fixture::GoodAuth, Distinct>>) > 0);
