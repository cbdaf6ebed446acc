// libFuzzer harness: the event decoder. Each input is the body of a POST /execute_action, decoded
// the way ActionServer::handle_execute_action does (JSON parse, then action_from_json on "action"),
// and also the body of a server response decoded the way the client does (observation_from_json).
// A decoded action must encode and decode again to the same wire text.
#include "runbox/events.hpp"

#include <nlohmann/json.hpp>

// The bounded parser the server and client use for untrusted JSON, once it exists (issue 10's
// hardening adds it); before that they used nlohmann's parser directly, as the fallback does.
#if __has_include("runbox/detail/json.hpp")
#include "runbox/detail/json.hpp"
#define RUNBOX_FUZZ_HAVE_UNTRUSTED_JSON 1
#endif

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

namespace {

using json = nlohmann::json;

// Parse failures and typed decode errors are the expected answers to bad input; anything else
// (another exception, a crash, a sanitizer report) is a finding.
template <class F>
void expect_typed_errors(F&& f) {
    try {
        f();
    } catch (const runbox::error&) {
    } catch (const json::exception&) {
    }
}

json parse_body(std::string_view body) {
#ifdef RUNBOX_FUZZ_HAVE_UNTRUSTED_JSON
    return runbox::detail::parse_untrusted_json(body);
#else
    return json::parse(body, nullptr, /*allow_exceptions=*/false);
#endif
}

void decode_request_body(std::string_view body) {
    const json parsed = parse_body(body);  // discarded: the server's 422
    if (parsed.is_discarded()) return;
    if (parsed.is_object()) {
        if (const auto it = parsed.find("action"); it != parsed.end() && it->is_object()) {
            expect_typed_errors([&] {
                const runbox::Action action = runbox::action_from_json(*it);
                const std::string wire = runbox::to_wire(action);
                const std::string again = runbox::to_wire(runbox::action_from_json(json::parse(wire)));
                if (again != wire) {
                    std::fprintf(stderr, "action round trip differs:\n%s\n%s\n", wire.c_str(), again.c_str());
                    std::abort();
                }
            });
        }
    }
    // The client side: a response body (an observation) and the event stream's generic decoder.
    expect_typed_errors([&] { (void)runbox::to_wire(runbox::observation_from_json(parsed)); });
    expect_typed_errors([&] { (void)runbox::to_wire(runbox::event_from_json(parsed)); });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    decode_request_body(std::string_view(reinterpret_cast<const char*>(data), size));
    return 0;
}
