// One of two translation units that include the whole library: a non-inline definition in a
// header would make the link fail with a multiple-definition error.
#include <runbox/runbox.hpp>

#include <string>

std::string odr_a() { return std::string(runbox::version_string) + "/" + std::string(runbox::to_string(runbox::errc::timeout)); }
