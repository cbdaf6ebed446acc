// libFuzzer harness: the Python literal reader behind the legacy `translated_ipython_code`
// argument (`print(file_editor(**{...}))`). Each input is the literal text; it is read directly
// and also through the action decoder, the way an /execute_action body reaches it.
#include "runbox/detail/python.hpp"
#include "runbox/events.hpp"

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        if (const auto value = runbox::detail::python_literal_reader(text).read()) {
            (void)runbox::detail::python_repr(*value);
        }
    } catch (const runbox::error&) {
        // a typed refusal (a literal nesting too deep) is an answer, not a finding
    }
    // The decoder only looks at a one-line literal inside `print(file_editor(**` ... `))`.
    if (text.find('\n') == std::string_view::npos && text.find("))") == std::string_view::npos) {
        nlohmann::ordered_json event = {
            {"action", "edit"},
            {"args", {{"path", "/tmp/x"}, {"translated_ipython_code", "print(file_editor(**" + std::string(text) + "))"}}}};
        try {
            (void)runbox::to_wire(runbox::action_from_json(event));
        } catch (const runbox::error&) {
        } catch (const nlohmann::json::exception&) {
        }
    }
    return 0;
}
