// The client side compiles against an include tree without server/ and testing/
// (tests/graph/CMakeLists.txt): a unit that uses runtime.hpp, the cloud providers and
// make_runtime over them includes nothing of the sandbox server.
#include <runbox/any_runtime.hpp>
#include <runbox/providers/daytona.hpp>
#include <runbox/providers/runloop.hpp>
#include <runbox/runtime.hpp>

#include <boost/mp11/list.hpp>

#include "catch.hpp"

namespace {

using cloud_only = boost::mp11::mp_list<runbox::daytona::Auth, runbox::runloop::Auth>;

}  // namespace

TEST_CASE("make_runtime over cloud providers alone names only those", "[graph]") {
    runbox::Config config;
    runbox::EventStream events;
    try {
        (void)runbox::make_runtime<cloud_only>("local", config, events);
        FAIL("make_runtime accepted a provider that is not in its list");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        const std::string what = e.what();
        CHECK(what.find("daytona, runloop") != std::string::npos);
    }
}

TEST_CASE("a cloud runtime is built without the server's headers", "[graph]") {
    runbox::Config config;
    config.providers["daytona"] = {{"api_key", "graph-test-key"}};
    runbox::EventStream events;
    auto rt = runbox::make_runtime<cloud_only>("daytona", config, events, {.sid = "graph"});
    CHECK(rt.variant().index() == 0);
}
