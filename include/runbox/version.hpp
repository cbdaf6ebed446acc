// runbox/version.hpp - the library version (kept equal to project(VERSION) in CMakeLists.txt).
#pragma once

#include <string_view>

#define RUNBOX_VERSION_MAJOR 0
#define RUNBOX_VERSION_MINOR 1
#define RUNBOX_VERSION_PATCH 0

namespace runbox {
inline constexpr int version_major = RUNBOX_VERSION_MAJOR;
inline constexpr int version_minor = RUNBOX_VERSION_MINOR;
inline constexpr int version_patch = RUNBOX_VERSION_PATCH;
inline constexpr std::string_view version_string = "0.1.0";
}  // namespace runbox
