#include "contract_fixture.hpp"
struct ClearPoolPlain {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = false;
    explicit ClearPoolPlain(const runbox::TransportOptions&) {}
    runbox::Response send(const runbox::Request&) { return {}; }
    void clear_pool() {}
};
static_assert(runbox::TransportClearsPool<ClearPoolPlain>);
static_assert(sizeof(runbox::Runtime<fixture::GoodAuth, ClearPoolPlain>) > 0);
