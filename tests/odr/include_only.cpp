// Including runbox costs parsing, never code: a header-only unit that includes every header and
// uses nothing must define no runbox symbol (build.include_emits_no_code checks the object with
// nm). A regression this catches: a std::packaged_task built in an inline function made GCC emit
// its vtable, and through it the whole action server, in every unit that included local.hpp.
#include <runbox/runbox.hpp>
#include <runbox/any_runtime.hpp>
#include <runbox/providers/e2b.hpp>
#include <runbox/server/action_server.hpp>
#include <runbox/testing/fake_daytona.hpp>
#include <runbox/testing/fake_e2b.hpp>
#include <runbox/testing/fake_runloop.hpp>
#include <runbox/transport/testing.hpp>
#if defined(RUNBOX_WITH_CURL)
#include <runbox/providers/modal.hpp>
#include <runbox/transport/curl.hpp>
#endif
#if defined(RUNBOX_WITH_HTTP2_SERVER)
#include <runbox/testing/fake_modal.hpp>
#include <runbox/testing/http2_server.hpp>
#endif

int main() { return 0; }
