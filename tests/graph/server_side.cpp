// The server side compiles against an include tree holding only server/, detail/ and the core
// it shares (error, events, environment, zip; tests/graph/CMakeLists.txt): the action server
// depends on the events and nothing of the client, runtime, transports or providers.
#include <runbox/server/action_server.hpp>

#include <httplib.h>

#include "catch.hpp"

TEST_CASE("the action server built from its own side answers /alive", "[graph]") {
    runbox::server::ActionServerOptions options;
    options.session_api_key = "graph-key";
    runbox::server::ActionServer server(std::move(options));
    server.start();
    httplib::Client client("127.0.0.1", server.port());
    client.set_read_timeout(10, 0);
    const auto response = client.Get("/alive", {{"X-Session-API-Key", "graph-key"}});
    REQUIRE(response);
    CHECK(response->status == 200);
    server.stop();
}
