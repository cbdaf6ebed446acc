/// \file
/// the library version (kept equal to project(VERSION) in CMakeLists.txt).
#pragma once

#include <string_view>

/// The library's major version, for the preprocessor (`#if RUNBOX_VERSION_MAJOR > 0`).
#define RUNBOX_VERSION_MAJOR 0
/// The library's minor version.
#define RUNBOX_VERSION_MINOR 1
/// The library's patch version.
#define RUNBOX_VERSION_PATCH 0

namespace runbox {
/// RUNBOX_VERSION_MAJOR as a constant.
inline constexpr int version_major = RUNBOX_VERSION_MAJOR;
/// RUNBOX_VERSION_MINOR as a constant.
inline constexpr int version_minor = RUNBOX_VERSION_MINOR;
/// RUNBOX_VERSION_PATCH as a constant.
inline constexpr int version_patch = RUNBOX_VERSION_PATCH;
/// `"MAJOR.MINOR.PATCH"` (what `runbox --version` prints).
inline constexpr std::string_view version_string = "0.1.0";
}  // namespace runbox
