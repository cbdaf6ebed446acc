#include "runbox/error.hpp"

#include <system_error>

#include "catch.hpp"

namespace test_error {  // several files share a unit (tests/CMakeLists.txt)

TEST_CASE("error: what() carries provider, code, status and detail") {
    const runbox::error e(runbox::errc::rate_limited, "slow down", "daytona", 429, std::chrono::milliseconds(1500));
    REQUIRE(std::string(e.what()) == "runbox [daytona] rate_limited (HTTP 429): slow down");
    REQUIRE(e.code() == runbox::errc::rate_limited);
    REQUIRE(e.provider() == "daytona");
    REQUIRE(e.http_status() == 429);
    REQUIRE(e.retry_after() == std::chrono::milliseconds(1500));
    REQUIRE(e.detail() == "slow down");
}

TEST_CASE("error: without provider or status the prefix stays short") {
    const runbox::error e(runbox::errc::config_invalid, "DAYTONA_API_KEY is not set");
    REQUIRE(std::string(e.what()) == "runbox config_invalid: DAYTONA_API_KEY is not set");
}

TEST_CASE("error: codes compose with std::error_code") {
    const std::error_code code = runbox::errc::timeout;
    REQUIRE(code.category().name() == std::string("runbox"));
    REQUIRE(code.message() == "timeout");
    REQUIRE(code == runbox::make_error_code(runbox::errc::timeout));
}

TEST_CASE("error: HTTP statuses map to codes") {
    using runbox::errc;
    CHECK(runbox::errc_from_http_status(400) == errc::config_invalid);
    CHECK(runbox::errc_from_http_status(401) == errc::auth_failed);
    CHECK(runbox::errc_from_http_status(403) == errc::auth_failed);
    CHECK(runbox::errc_from_http_status(402) == errc::quota_exceeded);
    CHECK(runbox::errc_from_http_status(404) == errc::not_found);
    CHECK(runbox::errc_from_http_status(408) == errc::timeout);
    CHECK(runbox::errc_from_http_status(409) == errc::conflict);
    CHECK(runbox::errc_from_http_status(429) == errc::rate_limited);
    CHECK(runbox::errc_from_http_status(500) == errc::server_error);
    CHECK(runbox::errc_from_http_status(502) == errc::server_error);
    CHECK(runbox::errc_from_http_status(504) == errc::timeout);
    CHECK(runbox::errc_from_http_status(418) == errc::bad_response);
}

TEST_CASE("redact: every occurrence of every secret is replaced") {
    const std::string text = "key=sk-123 again sk-123 and tok-9";
    REQUIRE(runbox::redact(text, {"sk-123", "tok-9", ""}) == "key=*** again *** and ***");
    REQUIRE(runbox::redact("nothing here", {"sk-123"}) == "nothing here");
}

}  // namespace test_error
