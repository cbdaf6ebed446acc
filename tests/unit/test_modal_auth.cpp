// Where Modal's credentials come from (environment, Config, ~/.modal.toml profiles) and reading
// a JWT's expiry; plus the shared base64 codec those rest on (detail/base64.hpp).
#include <chrono>
#include <map>
#include <string>

#include "catch.hpp"
#include "runbox/detail/base64.hpp"
#include "runbox/providers/detail/modal_auth.hpp"
#include "temp_files.hpp"

namespace test_modal_auth {  // several files share a unit (tests/CMakeLists.txt)

using runbox::Config;
using runbox::errc;
using runbox::detail::modal::jwt_expiry;
using runbox::detail::modal::resolve_credentials;

namespace {

Config config_with_env(std::map<std::string, std::string> vars) {
    Config config;
    config.env = [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
    return config;
}

errc code_of(const Config& config) {
    try {
        (void)resolve_credentials(config);
    } catch (const runbox::error& e) {
        return e.code();
    }
    FAIL("resolve_credentials succeeded");
    return errc::config_invalid;
}

std::string message_of(const Config& config) {
    try {
        (void)resolve_credentials(config);
    } catch (const runbox::error& e) {
        return e.what();
    }
    return {};
}

constexpr const char* two_profiles = R"(
[default]
token_id = "ak-default"
token_secret = "as-default"

[work]
token_id = "ak-work"
token_secret = "as-work"
server_url = "http://127.0.0.1:9999"
environment = "staging"
active = true
)";

}  // namespace

TEST_CASE("Modal credentials: the environment first, then the active profile", "[modal][auth]") {
    runbox_test::TempDir dir;
    runbox_test::write_file(dir.path / ".modal.toml", two_profiles);
    const std::string home = dir.path.string();

    SECTION("token variables win over the file; server and environment still come from the profile") {
        auto c = resolve_credentials(config_with_env({{"HOME", home}, {"MODAL_TOKEN_ID", "ak-env"}, {"MODAL_TOKEN_SECRET", "as-env"}}));
        CHECK(c.token_id == "ak-env");
        CHECK(c.token_secret == "as-env");
        CHECK(c.server_url == "http://127.0.0.1:9999");
        CHECK(c.environment == "staging");
    }
    SECTION("the profile marked active, not the first one") {
        auto c = resolve_credentials(config_with_env({{"HOME", home}}));
        CHECK(c.profile == "work");
        CHECK(c.token_id == "ak-work");
        CHECK(c.token_secret == "as-work");
    }
    SECTION("MODAL_PROFILE picks one; MODAL_SERVER_URL and MODAL_ENVIRONMENT override it") {
        auto c = resolve_credentials(config_with_env({{"HOME", home},
                                                      {"MODAL_PROFILE", "default"},
                                                      {"MODAL_SERVER_URL", "http://[::1]:1"},
                                                      {"MODAL_ENVIRONMENT", "dev"}}));
        CHECK(c.token_id == "ak-default");
        CHECK(c.server_url == "http://[::1]:1");
        CHECK(c.environment == "dev");
    }
    SECTION("MODAL_CONFIG_PATH replaces ~/.modal.toml; Config's settings come first") {
        runbox_test::write_file(dir.path / "other.toml", "[default]\ntoken_id = \"ak-o\"\ntoken_secret = \"as-o\"\n");
        auto config = config_with_env({{"HOME", home}, {"MODAL_CONFIG_PATH", (dir.path / "other.toml").string()}});
        auto c = resolve_credentials(config);
        CHECK(c.token_id == "ak-o");
        CHECK(c.server_url == "https://api.modal.com:443");
        config.providers["modal"] = {{"token_id", "ak-cfg"}, {"token_secret", "as-cfg"}};
        CHECK(resolve_credentials(config).token_id == "ak-cfg");
    }
}

TEST_CASE("Modal credentials: missing or malformed, config_invalid naming what to set, no secret", "[modal][auth]") {
    runbox_test::TempDir dir;
    const std::string home = dir.path.string();
    CHECK(code_of(config_with_env({{"HOME", home}})) == errc::config_invalid);
    CHECK(message_of(config_with_env({{"HOME", home}})).find("MODAL_TOKEN_ID") != std::string::npos);

    const auto half = config_with_env({{"HOME", home}, {"MODAL_TOKEN_ID", "ak-only"}});
    CHECK(code_of(half) == errc::config_invalid);
    CHECK(message_of(half).find("MODAL_TOKEN_SECRET") != std::string::npos);

    runbox_test::write_file(dir.path / ".modal.toml", "[default]\ntoken_id = \"ak\"\ntoken_secret = \"as-very-secret\"\n[broken\n");
    const auto broken = config_with_env({{"HOME", home}});
    CHECK(code_of(broken) == errc::config_invalid);
    CHECK(message_of(broken).find("not valid TOML") != std::string::npos);
    CHECK(message_of(broken).find("as-very-secret") == std::string::npos);

    runbox_test::write_file(dir.path / ".modal.toml", std::string(std::size_t{2} << 20, '#'));
    CHECK(message_of(config_with_env({{"HOME", home}})).find("larger than") != std::string::npos);

    runbox_test::write_file(dir.path / ".modal.toml", two_profiles);
    CHECK(code_of(config_with_env({{"HOME", home}, {"MODAL_PROFILE", "nope"}})) == errc::config_invalid);

    // Deeply nested TOML is refused by the parser's own nesting limit, not a stack overflow.
    std::string deep = "x = ";
    for (int i = 0; i < 100000; ++i) deep += '[';
    runbox_test::write_file(dir.path / ".modal.toml", deep);
    CHECK(code_of(config_with_env({{"HOME", home}})) == errc::config_invalid);
}

TEST_CASE("jwt_expiry reads exp from the payload and nothing else", "[modal][auth]") {
    using namespace std::chrono;
    // {"alg":"none"} . {"exp":1795668843} . sig  (base64url without padding)
    const auto exp = jwt_expiry("eyJhbGciOiJub25lIn0.eyJleHAiOjE3OTU2Njg4NDN9.sig");
    REQUIRE(exp.has_value());
    CHECK(duration_cast<seconds>(exp->time_since_epoch()).count() == 1795668843);
    // {"exp":1795668843,"sub":"ta-1?>"} has '-' / '_' in base64url.
    const std::string payload = runbox::detail::base64_encode(R"({"exp":1795668843,"sub":"ta-1?>?"})");
    std::string url = payload;
    for (char& c : url) c = c == '+' ? '-' : c == '/' ? '_' : c;
    while (!url.empty() && url.back() == '=') url.pop_back();
    CHECK(jwt_expiry("e30." + url + ".s").has_value());

    CHECK_FALSE(jwt_expiry("").has_value());
    CHECK_FALSE(jwt_expiry("a.b").has_value());
    CHECK_FALSE(jwt_expiry("a.b.c.d").has_value());
    CHECK_FALSE(jwt_expiry("e30.!!!.sig").has_value());
    CHECK_FALSE(jwt_expiry("e30.e30.sig").has_value());                    // {} has no exp
    CHECK_FALSE(jwt_expiry("e30.eyJleHAiOiJzb29uIn0.sig").has_value());    // "exp":"soon"
    CHECK_FALSE(jwt_expiry("e30.W1tbW1tbW1tbW11dXV1dXV1dXV0.s").has_value());  // an array, not an object
    // Past system_clock's end (2262) the conversion would overflow: not an expiry at all.
    const auto jwt_with_exp = [](const std::string& exp_value) {
        std::string p = runbox::detail::base64_encode("{\"exp\":" + exp_value + "}");
        for (char& c : p) c = c == '+' ? '-' : c == '/' ? '_' : c;
        while (!p.empty() && p.back() == '=') p.pop_back();
        return "e30." + p + ".s";
    };
    CHECK_FALSE(jwt_expiry(jwt_with_exp("10000000000")).has_value());  // year 2286
    CHECK_FALSE(jwt_expiry(jwt_with_exp("1e300")).has_value());
    CHECK(jwt_expiry(jwt_with_exp("3999999999")).has_value());  // 2096
}

TEST_CASE("base64: OpenSSL's codec with the lengths, padding and URL alphabet right", "[base64]") {
    using runbox::detail::base64_decode;
    using runbox::detail::base64_encode;
    using runbox::detail::base64url_decode;
    for (const std::string& bytes : {std::string(), std::string("f"), std::string("fo"), std::string("foo"),
                                    std::string("\0\xff\x10", 3), std::string(1000, '\x80')}) {
        const auto text = base64_encode(bytes);
        CHECK(text.size() % 4 == 0);
        CHECK(base64_decode(text) == bytes);
        std::string unpadded = text;
        while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
        CHECK(base64_decode(unpadded) == bytes);
    }
    CHECK(base64_encode("hello\n") == "aGVsbG8K");
    CHECK(base64url_decode("-_8") == "\xfb\xff");
    for (const char* bad : {"a", "ab=c", "a===", "@@@@", "aGVsbG8K!"}) {
        try {
            (void)base64_decode(bad);
            FAIL(std::string("decoded ") + bad);
        } catch (const runbox::error& e) {
            CHECK(e.code() == errc::bad_response);
        }
    }
    CHECK_THROWS_AS(base64url_decode("a+b/"), runbox::error);
}

}  // namespace test_modal_auth
