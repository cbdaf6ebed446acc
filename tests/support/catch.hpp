// Catch2 v2/v3 shim: tests include "catch.hpp" and work with either major version.
// RUNBOX_CATCH3 is defined by tests/CMakeLists.txt when Catch2 3 was found.
#pragma once

#if defined(RUNBOX_CATCH3)
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>
namespace runbox_test {
inline auto contains(const std::string& needle) { return Catch::Matchers::ContainsSubstring(needle); }
}  // namespace runbox_test
#else
#include <catch2/catch.hpp>
namespace runbox_test {
inline auto contains(const std::string& needle) { return Catch::Matchers::Contains(needle); }
}  // namespace runbox_test
#endif

// A test that cannot run here says so and stops; ctest maps exit code 77 to "skipped"
// (SKIP_RETURN_CODE), so a skip is never counted as a pass.
#include <cstdio>
#include <cstdlib>
#define RUNBOX_SKIP_TEST(reason)                                   \
    do {                                                           \
        std::fprintf(stderr, "SKIPPED: %s\n", std::string(reason).c_str()); \
        std::fflush(stderr);                                        \
        std::_Exit(77);                                             \
    } while (false)
