// expect: runbox: AuthPolicy requires_http2, but the TransportPolicy does not support HTTP/2
// Modal's gRPC over the HTTP/1.1-only HttplibTransport is refused at compile time, by name.
#include "runbox/providers/modal.hpp"
static_assert(sizeof(runbox::Runtime<runbox::modal::Auth, runbox::HttplibTransport>) > 0);
