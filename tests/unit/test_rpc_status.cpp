// Unit tests of runbox/rpc_status.hpp: the gRPC/Connect status table, runbox::error's RPC
// code, raise_for_grpc_status and the gRPC retry classifier.
#include "runbox/rpc_status.hpp"

#include <set>
#include <string>

#include "catch.hpp"

namespace test_rpc_status {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::errc;
using runbox::Headers;
using runbox::Response;

TEST_CASE("The RPC status table: one row per gRPC code, in order, unique Connect names", "[rpc]") {
    std::set<std::string_view> names;
    for (std::size_t i = 0; i < runbox::rpc_status_table.size(); ++i) {
        const auto& row = runbox::rpc_status_table[i];
        CHECK(row.code == static_cast<int>(i));
        CHECK(names.insert(row.connect_name).second);
        CHECK(runbox::grpc_code_from_connect(row.connect_name) == row.code);
        CHECK(runbox::connect_code_name(row.code) == row.connect_name);
        CHECK(runbox::errc_from_connect_code(row.connect_name) == runbox::errc_from_grpc_status(row.code));
    }
    CHECK(names.size() == 17);
}

TEST_CASE("gRPC and Connect codes map to runbox::errc", "[rpc]") {
    CHECK(runbox::errc_from_grpc_status(1) == errc::cancelled);
    CHECK(runbox::errc_from_grpc_status(3) == errc::config_invalid);
    CHECK(runbox::errc_from_grpc_status(4) == errc::timeout);
    CHECK(runbox::errc_from_grpc_status(5) == errc::not_found);
    CHECK(runbox::errc_from_grpc_status(6) == errc::conflict);
    CHECK(runbox::errc_from_grpc_status(7) == errc::auth_failed);
    CHECK(runbox::errc_from_grpc_status(8) == errc::rate_limited);
    CHECK(runbox::errc_from_grpc_status(9) == errc::conflict);
    CHECK(runbox::errc_from_grpc_status(12) == errc::unsupported);
    CHECK(runbox::errc_from_grpc_status(14) == errc::server_error);
    CHECK(runbox::errc_from_grpc_status(16) == errc::auth_failed);
    // Out of range counts as UNKNOWN.
    CHECK(runbox::errc_from_grpc_status(-1) == errc::server_error);
    CHECK(runbox::errc_from_grpc_status(99) == errc::server_error);

    CHECK(runbox::errc_from_connect_code("not_found") == errc::not_found);
    CHECK(runbox::errc_from_connect_code("unauthenticated") == errc::auth_failed);
    CHECK(runbox::errc_from_connect_code("deadline_exceeded") == errc::timeout);
    CHECK(runbox::grpc_code_from_connect("cancelled") == 1);  // the British spelling too
    CHECK(runbox::grpc_code_from_connect("NOT_FOUND") == std::nullopt);  // names are lower case
    CHECK(runbox::errc_from_connect_code("no_such_code") == errc::server_error);
    static_assert(runbox::errc_from_grpc_status(5) == errc::not_found);  // usable at compile time
}

TEST_CASE("runbox::error carries the RPC code beside the HTTP status", "[rpc][error]") {
    const runbox::error plain(errc::not_found, "gone", "modal", 404);
    CHECK_FALSE(plain.rpc_code());
    CHECK(std::string(plain.what()) == "runbox [modal] not_found (HTTP 404): gone");
    const runbox::error rpc(errc::not_found, "gone", "modal", 200, std::nullopt, 5);
    CHECK(rpc.rpc_code() == 5);
    CHECK(rpc.http_status() == 200);
    CHECK(std::string(rpc.what()) == "runbox [modal] not_found (HTTP 200, RPC 5): gone");
}

TEST_CASE("raise_for_grpc_status reads trailers, then headers (trailers-only)", "[rpc]") {
    Response ok;
    ok.status = 200;
    ok.trailers.set("grpc-status", "0");
    CHECK_NOTHROW(runbox::raise_for_grpc_status(ok, "modal"));

    Response in_trailers;
    in_trailers.status = 200;
    in_trailers.trailers = Headers{{"grpc-status", "5"}, {"grpc-message", "sandbox%20sb-1%20not%20found%2"},
                                   {"grpc-retry-pushback-ms", "250"}};
    try {
        runbox::raise_for_grpc_status(in_trailers, "modal");
        FAIL("not raised");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::not_found);
        CHECK(e.rpc_code() == 5);
        CHECK(e.http_status() == 200);
        CHECK(e.detail() == "sandbox sb-1 not found%2");  // a malformed escape stays as it is
        CHECK(e.retry_after() == 250ms);
    }

    Response trailers_only;
    trailers_only.status = 200;
    trailers_only.headers = Headers{{"grpc-status", "16"}, {"grpc-message", "token tok-secret-123 expired"}};
    try {
        runbox::raise_for_grpc_status(trailers_only, "modal", {"tok-secret-123"});
        FAIL("not raised");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::auth_failed);
        CHECK(e.rpc_code() == 16);
        CHECK(std::string(e.what()).find("tok-secret-123") == std::string::npos);
    }

    Response no_status;
    no_status.status = 503;
    try {
        runbox::raise_for_grpc_status(no_status, "modal");
        FAIL("not raised");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::server_error);
        CHECK_FALSE(e.rpc_code());
    }
    no_status.status = 200;
    try {
        runbox::raise_for_grpc_status(no_status, "modal");
        FAIL("not raised");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::bad_response);
    }
}

TEST_CASE("grpc_retry_classifier retries UNAVAILABLE after the pushback, not NOT_FOUND", "[rpc][retry]") {
    const auto classify = runbox::grpc_retry_classifier();
    Response r;
    r.status = 200;
    CHECK_FALSE(classify(r));  // no grpc-status: the HTTP rules apply
    r.trailers = Headers{{"grpc-status", "14"}, {"grpc-retry-pushback-ms", "120"}};
    auto d = classify(r);
    REQUIRE(d);
    CHECK(d->retry);
    CHECK(d->delay == 120ms);
    r.trailers = Headers{{"grpc-status", "14"}, {"grpc-retry-pushback-ms", "-1"}};
    CHECK_FALSE(classify(r)->retry);  // the server says: do not retry
    r.trailers = Headers{{"grpc-status", "5"}};
    CHECK_FALSE(classify(r)->retry);
    r.trailers.clear();
    r.headers = Headers{{"grpc-status", "8"}};  // trailers-only
    CHECK(classify(r)->retry);
    CHECK_FALSE(classify(r)->delay);
}

}  // namespace test_rpc_status
