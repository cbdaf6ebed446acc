#include "contract_fixture.hpp"
struct TakesConfig {
    static constexpr std::string_view name = "takes-config";
    explicit TakesConfig(const runbox::Config&) {}
    FIXTURE_PROVIDER_BODY
};
static_assert(sizeof(runbox::Runtime<TakesConfig, fixture::GoodTransport>) > 0);
