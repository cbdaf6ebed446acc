// The twin: Modal over CurlTransport (HTTP/2) compiles.
#include "runbox/providers/modal.hpp"
static_assert(sizeof(runbox::Runtime<runbox::modal::Auth, runbox::CurlTransport>) > 0);
static_assert(runbox::is_auth_policy_v<runbox::modal::Auth>);
