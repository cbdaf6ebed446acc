// Unit tests for runbox/detail/utf8.hpp: the one UTF-8 codec (the editor's validator, the
// terminal renderer's decoder and the Python literal reader's encoder stand on it). The expected
// positions and reasons are what CPython's bytes.decode('utf-8') reports for the same bytes.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "runbox/detail/utf8.hpp"

namespace test_utf8 {  // several files share a unit (tests/CMakeLists.txt)

using runbox::detail::utf8_error;

TEST_CASE("utf8_error names the first fault as Python's utf-8 codec does", "[utf8]") {
    const std::vector<std::pair<std::string, std::pair<std::size_t, std::string>>> cases = {
        {"\xe2\x28\xa1", {0, "invalid continuation byte"}},
        {"ok\xe2\x82", {2, "unexpected end of data"}},
        {"\x80", {0, "invalid start byte"}},
        {"\xed\xa0\x80", {0, "invalid continuation byte"}},  // a surrogate
        {"\xc0\xaf", {0, "invalid start byte"}},             // overlong '/'
        {"\xf4\x90\x80\x80", {0, "invalid continuation byte"}},  // above U+10FFFF
        {"\xe0\x80\x80", {0, "invalid continuation byte"}},  // overlong NUL
    };
    for (const auto& [bytes, expected] : cases) {
        INFO(bytes);
        const auto fault = utf8_error(bytes);
        REQUIRE(fault);
        CHECK(fault->position == expected.first);
        CHECK(fault->reason == expected.second);
        CHECK(fault->byte == static_cast<unsigned char>(bytes[expected.first]));
    }
    CHECK_FALSE(utf8_error("plain ascii, caf\xc3\xa9, \xf0\x9f\x98\x80"));
    CHECK_FALSE(utf8_error("ok\xe2\x82", /*allow_truncated_tail=*/true));
    CHECK(utf8_error("\xe2\x28", true));  // a bad continuation is bad even at the end
}

TEST_CASE("decode_utf8 replaces each ill-formed byte with U+FFFD and moves on by one", "[utf8]") {
    const std::string_view text = "a\xff\xc3\xa9\xe2\x82";
    std::vector<char32_t> out;
    for (std::size_t i = 0; i < text.size();) out.push_back(runbox::detail::decode_utf8(text, i));
    CHECK(out == std::vector<char32_t>{U'a', 0xFFFD, 0xE9, 0xFFFD, 0xFFFD});
}

TEST_CASE("append_utf8 encodes every code point up to U+10FFFF and refuses above", "[utf8]") {
    std::string out;
    CHECK(runbox::detail::append_utf8(out, 0x24));
    CHECK(runbox::detail::append_utf8(out, 0xE9));
    CHECK(runbox::detail::append_utf8(out, 0x20AC));
    CHECK(runbox::detail::append_utf8(out, 0x1F600));
    CHECK(out == "$\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    CHECK_FALSE(runbox::detail::append_utf8(out, 0x110000));
    CHECK(out.size() == 10);
    std::string round;
    for (std::size_t i = 0; i < out.size();) CHECK(runbox::detail::append_utf8(round, runbox::detail::decode_utf8(out, i)));
    CHECK(round == out);
}

}  // namespace test_utf8
