// runbox/detail/json.hpp - parsing JSON that came from somewhere runbox does not trust.
//
// Every JSON text from the network (request bodies in the action server, answers of the action
// server and of provider APIs, a shell's prompt block) goes through parse_untrusted_json: the
// text is size-checked first and the parser (nlohmann's, which parses without recursion) aborts
// at the first container deeper than the limit. A value that passed is safe to copy, compare,
// dump and walk recursively: all of those recurse once per level.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <string>
#include <string_view>

namespace runbox::detail {

/// How deep any untrusted JSON value or Python literal may nest (containers inside containers).
/// OpenHands' events nest fewer than 10 levels; 200 keeps every recursive walk far from the
/// stack's end (a level costs well under 1 KB of stack in nlohmann's recursive members).
inline constexpr std::size_t max_nesting_depth = 200;

struct JsonLimits {
    std::size_t max_depth = max_nesting_depth;
    std::size_t max_bytes = std::size_t{256} << 20;  ///< the text's size, checked before parsing
    /// Values (scalars and containers) in the whole text. The tree is far larger than its text:
    /// `[{},{},...]` costs about 80 bytes per 3-byte `{},`, so 256 MiB of it would be 7 GB.
    /// Two million values stay near 160 MB; runbox's own answers hold thousands.
    std::size_t max_values = 2'000'000;
};

enum class json_failure { none, syntax, too_deep, too_large, too_many_values };

/// A short English reason for a failure ("nests deeper than 200 levels").
inline std::string json_failure_text(json_failure failure, const JsonLimits& limits = {}) {
    switch (failure) {
        case json_failure::none: return "valid";
        case json_failure::syntax: return "is not valid JSON";
        case json_failure::too_deep: return "nests deeper than " + std::to_string(limits.max_depth) + " levels";
        case json_failure::too_large: return "is larger than " + std::to_string(limits.max_bytes) + " bytes";
        case json_failure::too_many_values: return "holds more than " + std::to_string(limits.max_values) + " values";
    }
    return "is not valid JSON";
}

/// Parses `text` within `limits`. On failure returns a discarded value and sets `*failure`
/// (when given); never throws for bad input.
template <class BasicJson = nlohmann::json>
BasicJson parse_untrusted_json(std::string_view text, const JsonLimits& limits = {}, json_failure* failure = nullptr) {
    const auto fail = [&](json_failure why) {
        if (failure != nullptr) *failure = why;
        return BasicJson(BasicJson::value_t::discarded);
    };
    if (failure != nullptr) *failure = json_failure::none;
    if (text.size() > limits.max_bytes) return fail(json_failure::too_large);
    struct too_deep {};
    struct too_many_values {};
    const std::size_t max_depth = limits.max_depth;
    const std::size_t max_values = limits.max_values;
    std::size_t values = 0;
    // `depth` counts the containers around the one that starts; throwing aborts the parse at
    // once (the parser is iterative, and 3.11 destroys partial values without recursion).
    typename BasicJson::parser_callback_t check = [max_depth, max_values, &values](
                                                      int depth, typename BasicJson::parse_event_t event, BasicJson&) {
        const bool opens = event == BasicJson::parse_event_t::object_start || event == BasicJson::parse_event_t::array_start;
        if (opens && static_cast<std::size_t>(depth) >= max_depth) throw too_deep{};
        if ((opens || event == BasicJson::parse_event_t::value) && ++values > max_values) throw too_many_values{};
        return true;
    };
    try {
        BasicJson value = BasicJson::parse(text.begin(), text.end(), check, /*allow_exceptions=*/false);
        if (value.is_discarded()) return fail(json_failure::syntax);
        return value;
    } catch (const too_deep&) {
        return fail(json_failure::too_deep);
    } catch (const too_many_values&) {
        return fail(json_failure::too_many_values);
    }
}

}  // namespace runbox::detail
