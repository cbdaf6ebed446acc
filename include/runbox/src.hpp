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
#include "runbox/impl/error.ipp"
#include "runbox/detail/impl/base64.ipp"
#include "runbox/detail/impl/python.ipp"
#include "runbox/impl/environment.ipp"
#include "runbox/impl/config.ipp"
#include "runbox/impl/events.ipp"
#include "runbox/impl/event_stream.ipp"
#include "runbox/transport/impl/envelope.ipp"
#include "runbox/transport/impl/transport.ipp"
#include "runbox/transport/impl/httplib.ipp"
#include "runbox/impl/rpc_status.ipp"
#include "runbox/impl/lifecycle.ipp"
#include "runbox/impl/zip.ipp"
#include "runbox/impl/client.ipp"

// The client over the bundled transport.
template class runbox::ActionExecutionClient<runbox::HttplibTransport>;

// The codec of every event type (runbox::to_json / message_of of one concrete type).
template struct runbox::detail::event_codec<runbox::NullAction>;
template struct runbox::detail::event_codec<runbox::CmdRunAction>;
template struct runbox::detail::event_codec<runbox::IPythonRunCellAction>;
template struct runbox::detail::event_codec<runbox::FileReadAction>;
template struct runbox::detail::event_codec<runbox::FileWriteAction>;
template struct runbox::detail::event_codec<runbox::FileEditAction>;
template struct runbox::detail::event_codec<runbox::BrowseURLAction>;
template struct runbox::detail::event_codec<runbox::BrowseInteractiveAction>;
template struct runbox::detail::event_codec<runbox::MCPAction>;
template struct runbox::detail::event_codec<runbox::MessageAction>;
template struct runbox::detail::event_codec<runbox::AgentThinkAction>;
template struct runbox::detail::event_codec<runbox::AgentFinishAction>;
template struct runbox::detail::event_codec<runbox::AgentRejectAction>;
template struct runbox::detail::event_codec<runbox::NullObservation>;
template struct runbox::detail::event_codec<runbox::CmdOutputObservation>;
template struct runbox::detail::event_codec<runbox::IPythonRunCellObservation>;
template struct runbox::detail::event_codec<runbox::FileReadObservation>;
template struct runbox::detail::event_codec<runbox::FileWriteObservation>;
template struct runbox::detail::event_codec<runbox::FileEditObservation>;
template struct runbox::detail::event_codec<runbox::ErrorObservation>;
template struct runbox::detail::event_codec<runbox::UserRejectObservation>;
template struct runbox::detail::event_codec<runbox::AgentThinkObservation>;
template struct runbox::detail::event_codec<runbox::FileDownloadObservation>;
template struct runbox::detail::event_codec<runbox::BrowserOutputObservation>;
template struct runbox::detail::event_codec<runbox::MCPObservation>;

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
