#include "contract_fixture.hpp"
struct Named {
    static constexpr std::string_view name = "named";
    explicit Named(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<Named, fixture::GoodTransport>) > 0);
