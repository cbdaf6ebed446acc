#include <runbox/runbox.hpp>

#include <string>

std::string odr_b() { return std::string(runbox::to_string(runbox::errc::rate_limited)); }
