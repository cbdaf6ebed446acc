#pragma once
/// @file
/// Every non-template definition of runbox, and the explicit instantiations of the bundled
/// runtimes, for a program built with `RUNBOX_SEPARATE_COMPILATION` (runbox/detail/linkage.hpp).
/// Include it in exactly one translation unit (the CMake target `runbox::compiled` does).

#if !defined(RUNBOX_SEPARATE_COMPILATION)
#error "runbox: <runbox/src.hpp> is for RUNBOX_SEPARATE_COMPILATION builds; header-only programs need not include it"
#endif

#include "runbox/detail/linkage.hpp"

// The definitions, one impl/ file per header (each includes its header first).

// Core: events, configuration, client, transports, archives.

// Runtimes and providers: the explicit instantiations of the bundled runtimes.

// The sandbox side: the action server and its parts (and the one posix_spawn routine, which the
// local provider uses too).
#include "runbox/detail/impl/spawn.ipp"
