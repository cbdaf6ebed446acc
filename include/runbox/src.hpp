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
// Modal (providers/modal.hpp) and CurlTransport stay header-only: they are opt-in (runbox::curl,
// libcurl), and runbox::compiled does not link them.
#include "runbox/impl/runtime.ipp"
#include "runbox/providers/detail/impl/cloud_api.ipp"
#include "runbox/providers/impl/daytona.ipp"
#include "runbox/providers/impl/e2b.ipp"
#include "runbox/providers/impl/local.ipp"
#include "runbox/providers/impl/runloop.ipp"
#include "runbox/factory.hpp"

template class runbox::Runtime<runbox::local::Auth, runbox::HttplibTransport>;
template class runbox::Runtime<runbox::daytona::Auth, runbox::HttplibTransport>;
template class runbox::Runtime<runbox::runloop::Auth, runbox::HttplibTransport>;
template class runbox::Runtime<runbox::e2b::Auth, runbox::HttplibTransport>;
template class runbox::AnyRuntime<runbox::detail::bundled_providers>;
template runbox::AnyRuntime<runbox::detail::bundled_providers> runbox::make_runtime<runbox::detail::bundled_providers>(
    std::string_view, const runbox::Config&, runbox::EventStream&, runbox::RuntimeOptions);
template runbox::AnyRuntime<runbox::detail::bundled_providers> runbox::make_runtime<runbox::detail::bundled_providers>(
    const runbox::Config&, runbox::EventStream&, runbox::RuntimeOptions);

// The sandbox side: the action server and its parts.
