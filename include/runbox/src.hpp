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
#include "runbox/server/impl/run_as.ipp"
#include "runbox/server/impl/process.ipp"
#include "runbox/server/impl/system_stats.ipp"
#include "runbox/server/impl/connection_guard.ipp"
#include "runbox/server/impl/file_worker.ipp"
#include "runbox/server/impl/terminal_render.ipp"
#include "runbox/server/impl/bash_parse.ipp"
#include "runbox/server/impl/file_editor.ipp"
#include "runbox/server/impl/bash_session.ipp"
#include "runbox/server/impl/ipython_driver.ipp"
#include "runbox/server/impl/action_server.ipp"
