// expect: runbox: AuthPolicy must declare static constexpr std::string_view name
#include "contract_fixture.hpp"
struct NoName {
    explicit NoName(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<NoName, fixture::GoodTransport>) > 0);
