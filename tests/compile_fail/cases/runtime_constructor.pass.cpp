#include "contract_fixture.hpp"
static_assert(runbox::check_runtime_constructor<runbox::Runtime<fixture::GoodAuth, fixture::GoodTransport>>::value);
