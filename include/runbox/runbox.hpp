/// \file
/// the umbrella header: the whole library.
///
/// Optional transports that need extra libraries (transport/curl.hpp) and the test fakes
/// (runbox/testing/...) are not included here.
#pragma once

#include "runbox/version.hpp"
#include "runbox/error.hpp"
#include "runbox/status.hpp"
#include "runbox/config.hpp"
#include "runbox/events.hpp"
#include "runbox/event_stream.hpp"
#include "runbox/transport/transport.hpp"
#include "runbox/transport/httplib.hpp"
#include "runbox/rpc_status.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/provider.hpp"
#include "runbox/contract.hpp"
#include "runbox/client.hpp"
#include "runbox/zip.hpp"
#include "runbox/sweep.hpp"
#include "runbox/runtime.hpp"
#include "runbox/providers/local.hpp"
#include "runbox/providers/daytona.hpp"
#include "runbox/providers/runloop.hpp"
#include "runbox/factory.hpp"
