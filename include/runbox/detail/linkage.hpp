#pragma once
/// @file
/// How runbox's non-template definitions are compiled (issue 13; the shape of Boost.Beast's
/// BOOST_BEAST_SEPARATE_COMPILATION).
///
/// - Header-only, the default: every definition is inline. A header declares, and its
///   definitions follow in `runbox/impl/<name>.ipp`, which the header includes at its end.
/// - `RUNBOX_SEPARATE_COMPILATION` defined for every unit of the program: the headers only
///   declare, and the explicit instantiations of the bundled runtimes are `extern`. Exactly one
///   unit includes `<runbox/src.hpp>` to define everything once; the CMake target
///   `runbox::compiled` is that unit, built as a static library, with the macro set for its users.

#if defined(RUNBOX_SEPARATE_COMPILATION)
/// Prefixes a non-template function declared in a header and defined in an impl/ file.
#define RUNBOX_DECL
#else
/// Set when the library is header-only: each header includes its impl/ definitions.
#define RUNBOX_HEADER_ONLY 1
/// Prefixes a non-template function declared in a header and defined in an impl/ file.
#define RUNBOX_DECL inline
#endif
