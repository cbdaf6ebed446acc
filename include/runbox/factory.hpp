/// \file
/// choosing a provider by name at run time.
///
/// ```
/// auto rt = runbox::make_runtime("daytona", config, events, {.sid = "s1"});  // AnyRuntime
/// rt.connect();
/// auto obs = rt.run("ls");                  // no std::visit needed
/// ```
///
/// A provider list is a boost::mp11::mp_list; AnyRuntime<List> is a std::variant of
/// Runtime<P, P::default_transport> over it. A program that wants only some providers passes its
/// own list, and only those are instantiated:
/// ```
/// using mine = boost::mp11::mp_list<runbox::local::Auth, runbox::daytona::Auth>;
/// auto rt = runbox::make_runtime<mine>(config, events);
/// ```
#pragma once

#include <boost/mp11/list.hpp>

#include "runbox/any_runtime.hpp"
#include "runbox/runtime.hpp"
#include "runbox/providers/daytona.hpp"
#include "runbox/providers/e2b.hpp"
#include "runbox/providers/local.hpp"
#include "runbox/providers/runloop.hpp"
#if defined(RUNBOX_WITH_CURL)  // Modal's gRPC needs CurlTransport (the runbox::curl CMake target)
#include "runbox/providers/modal.hpp"
#endif

namespace runbox {

/// The providers make_runtime knows unless told otherwise. Adding a provider is one header
/// and one entry here. Modal is listed where libcurl is (RUNBOX_WITH_CURL, set by linking the
/// runbox::curl CMake target); elsewhere make_runtime("modal") says how to enable it.
#if defined(RUNBOX_WITH_CURL)
using default_providers = boost::mp11::mp_list<local::Auth, daytona::Auth, runloop::Auth, e2b::Auth, modal::Auth>;
#else
using default_providers = boost::mp11::mp_list<local::Auth, daytona::Auth, runloop::Auth, e2b::Auth>;
#endif

// The default list is added to the templates of any_runtime.hpp here, so that a unit without
// this header (a cloud-only client) does not compile the local provider and its server.
template <class Providers = default_providers>
class AnyRuntime;

template <class Providers = default_providers>
AnyRuntime<Providers> make_runtime(std::string_view name, const Config& config, EventStream& event_stream,
                                   RuntimeOptions options);

template <class Providers = default_providers>
AnyRuntime<Providers> make_runtime(const Config& config, EventStream& event_stream, RuntimeOptions options);

namespace detail {
/// The providers runbox::compiled builds: the default list without the opt-in ones (Modal needs
/// runbox::curl, which runbox::compiled does not link).
using bundled_providers = boost::mp11::mp_list<local::Auth, daytona::Auth, runloop::Auth, e2b::Auth>;
}  // namespace detail

#if defined(RUNBOX_SEPARATE_COMPILATION)
// Compiled once, in runbox::compiled (runbox/src.hpp): make_runtime over the bundled list (the
// default list where runbox::curl is not linked) and its AnyRuntime.
extern template class AnyRuntime<detail::bundled_providers>;
extern template AnyRuntime<detail::bundled_providers> make_runtime<detail::bundled_providers>(
    std::string_view, const Config&, EventStream&, RuntimeOptions);
extern template AnyRuntime<detail::bundled_providers> make_runtime<detail::bundled_providers>(const Config&,
                                                                                            EventStream&,
                                                                                            RuntimeOptions);
#endif

}  // namespace runbox
