// expect: runbox: AuthPolicy must be constructible from const runbox::Config&
#include "contract_fixture.hpp"
struct NeedsInt {
    static constexpr std::string_view name = "needs-int";
    explicit NeedsInt(int) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<NeedsInt, fixture::GoodTransport>) > 0);
