// expect: runbox: TransportPolicy::clear_pool, when declared, must be void clear_pool()
#include "contract_fixture.hpp"
struct ClearPoolWithArgument {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit ClearPoolWithArgument(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
    void clear_pool(bool) {}  // the runtime calls clear_pool(): not the clause's shape
};
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, ClearPoolWithArgument>) > 0);
