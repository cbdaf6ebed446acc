// expect: runbox: Runtime must be constructible from (const runbox::Config&, runbox::EventStream&, runbox::RuntimeOptions = {})
#include "contract_fixture.hpp"
// A runtime type that forgot the seed signature.
struct HandMadeRuntime {
    explicit HandMadeRuntime(const runbox::Config&) {}
};
static_assert(runbox::check_runtime_constructor<HandMadeRuntime>::value);
