// runbox/runbox.hpp - the umbrella header: the whole library.
//
// Optional transports that need extra libraries (transport/curl.hpp) are not included here.
#pragma once

#include "runbox/version.hpp"
#include "runbox/error.hpp"
