/// \file
/// Definitions of runbox/events.hpp: the codecs, the per-type wire tables and the helpers over
/// the variants (included by the header when header-only; by runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/events.hpp"

#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <tuple>

#include "runbox/detail/python.hpp"

namespace runbox {

RUNBOX_DECL std::string_view action_type(const Action& a) noexcept {
    return std::visit([](const auto& x) -> std::string_view { return std::decay_t<decltype(x)>::type; }, a);
}
RUNBOX_DECL std::string_view observation_type(const Observation& o) noexcept {
    return std::visit([](const auto& x) -> std::string_view { return std::decay_t<decltype(x)>::type; }, o);
}
RUNBOX_DECL bool is_runnable(const Action& a) noexcept {
    return std::visit([](const auto& x) { return std::decay_t<decltype(x)>::runnable; }, a);
}

RUNBOX_DECL EventMeta& meta(Action& a) noexcept {
    return std::visit([](auto& x) -> EventMeta& { return x.meta; }, a);
}
RUNBOX_DECL const EventMeta& meta(const Action& a) noexcept {
    return std::visit([](const auto& x) -> const EventMeta& { return x.meta; }, a);
}
RUNBOX_DECL EventMeta& meta(Observation& o) noexcept {
    return std::visit([](auto& x) -> EventMeta& { return x.meta; }, o);
}
RUNBOX_DECL const EventMeta& meta(const Observation& o) noexcept {
    return std::visit([](const auto& x) -> const EventMeta& { return x.meta; }, o);
}
RUNBOX_DECL EventMeta& meta(Event& e) noexcept {
    return std::visit([](auto& x) -> EventMeta& { return meta(x); }, e);
}
RUNBOX_DECL const EventMeta& meta(const Event& e) noexcept {
    return std::visit([](const auto& x) -> const EventMeta& { return meta(x); }, e);
}

RUNBOX_DECL std::optional<double> timeout_of(const Action& a) noexcept {
    return std::visit([](const auto& x) { return x.timeout; }, a);
}
RUNBOX_DECL void set_hard_timeout(Action& a, std::optional<double> seconds, bool blocking) {
    std::visit(
        [&](auto& x) {
            x.timeout = seconds;
            if constexpr (std::is_same_v<std::decay_t<decltype(x)>, CmdRunAction>) x.blocking = blocking;
        },
        a);
}

namespace detail {
/// Byte offset of code point number `index` (or s.size() past the end).
inline std::size_t utf8_offset(std::string_view s, std::size_t index) noexcept {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
            if (seen == index) return i;
            ++seen;
        }
    }
    return s.size();
}
}  // namespace detail

RUNBOX_DECL std::string truncate_observation_content(std::string content, std::size_t max_chars) {
    const std::size_t length = utf8_length(content);
    if (length <= max_chars) return content;
    const std::size_t half = max_chars / 2;
    const std::size_t head_end = detail::utf8_offset(content, half);
    const std::size_t tail_begin = detail::utf8_offset(content, length - half);
    std::string out;
    out.reserve(head_end + truncation_notice.size() + (content.size() - tail_begin));
    out.append(content, 0, head_end);
    out.append(truncation_notice);
    out.append(content, tail_begin, std::string::npos);
    return out;
}

RUNBOX_DECL CmdOutputObservation make_cmd_output(std::string content, std::string command, CmdOutputMetadata metadata,
                                                 bool hidden) {
    CmdOutputObservation obs;
    obs.content = hidden ? std::move(content) : truncate_observation_content(std::move(content));
    obs.command = std::move(command);
    obs.metadata = std::move(metadata);
    obs.hidden = hidden;
    return obs;
}

RUNBOX_DECL std::string to_agent_text(const CmdOutputObservation& obs) {
    std::string out = obs.metadata.prefix + obs.content + obs.metadata.suffix;
    if (obs.metadata.working_dir && !obs.metadata.working_dir->empty())
        out += "\n[Current working directory: " + *obs.metadata.working_dir + "]";
    if (obs.metadata.py_interpreter_path && !obs.metadata.py_interpreter_path->empty())
        out += "\n[Python interpreter: " + *obs.metadata.py_interpreter_path + "]";
    if (obs.metadata.exit_code != -1)
        out += "\n[Command finished with exit code " + std::to_string(obs.metadata.exit_code) + "]";
    return out;
}


namespace detail {

[[noreturn]] inline void bad_event(std::string message) { throw error(errc::bad_response, std::move(message)); }

/// Internal: a field had the wrong JSON type; wrapped with the event type by the caller.
struct field_error {
    std::string message;
};
[[noreturn]] inline void wrong_type(const char* name, const char* what) {
    throw field_error{std::string(name) + " must be " + what};
}

template <class T, class M>
struct field_t {
    const char* name;
    M T::*ptr;
    bool required;
};
template <class T, class M>
constexpr field_t<T, M> field(const char* name, M T::*ptr, bool required = false) {
    return {name, ptr, required};
}

// --- encoding -------------------------------------------------------------
inline ordered_json encode(const std::string& v) { return v; }
inline ordered_json encode(bool v) { return v; }
inline ordered_json encode(int v) { return v; }
inline ordered_json encode(double v) { return v; }
inline ordered_json encode(const ordered_json& v) { return v; }
inline ordered_json encode(ConfirmationState v) { return std::string(to_string(v)); }
inline ordered_json encode(SecurityRisk v) { return static_cast<int>(v); }
inline ordered_json encode(FileReadSource v) { return std::string(to_string(v)); }
inline ordered_json encode(FileEditSource v) { return std::string(to_string(v)); }
inline ordered_json encode(const CmdOutputMetadata& m) { return to_json(m); }
template <class T>
ordered_json encode(const std::vector<T>& v) {
    ordered_json out = ordered_json::array();
    for (const auto& x : v) out.push_back(encode(x));
    return out;
}
template <class T>
ordered_json encode(const std::optional<T>& v) {
    return v ? encode(*v) : ordered_json(nullptr);
}

// --- decoding (strict types; the reference accepts what its dataclasses accept) ---
/// An integer from an integer, an integral float, or a string holding an integer.
inline std::optional<long long> as_integer(const ordered_json& j) {
    if (j.is_number_unsigned()) {
        auto v = j.get<std::uint64_t>();
        if (v > static_cast<std::uint64_t>(INT64_MAX)) return std::nullopt;
        return static_cast<long long>(v);
    }
    if (j.is_number_integer()) return j.get<long long>();
    if (j.is_number_float()) {
        double d = j.get<double>();
        if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.0e18) return static_cast<long long>(d);
        return std::nullopt;
    }
    if (j.is_string()) {
        const auto& s = j.get_ref<const std::string&>();
        if (s.empty()) return std::nullopt;
        char* end = nullptr;
        errno = 0;
        long long v = std::strtoll(s.c_str(), &end, 10);
        if (errno != 0 || end != s.c_str() + s.size()) return std::nullopt;
        return v;
    }
    return std::nullopt;
}

inline void decode(const ordered_json& j, std::string& out, const char* name) {
    if (!j.is_string()) wrong_type(name, "a string");
    out = j.get<std::string>();
}
inline void decode(const ordered_json& j, bool& out, const char* name) {
    if (!j.is_boolean()) wrong_type(name, "a boolean");
    out = j.get<bool>();
}
inline void decode(const ordered_json& j, int& out, const char* name) {
    auto v = as_integer(j);
    if (!v || *v < INT32_MIN || *v > INT32_MAX) wrong_type(name, "an integer");
    out = static_cast<int>(*v);
}
inline void decode(const ordered_json& j, double& out, const char* name) {
    if (!j.is_number()) wrong_type(name, "a number");
    out = j.get<double>();
}
inline void decode(const ordered_json& j, ordered_json& out, const char*) { out = j; }
inline void decode(const ordered_json& j, ConfirmationState& out, const char* name) {
    auto v = j.is_string() ? confirmation_state_from_string(j.get_ref<const std::string&>()) : std::nullopt;
    if (!v) wrong_type(name, "one of confirmed, rejected, awaiting_confirmation");
    out = *v;
}
/// Legacy rule: an invalid security_risk is dropped (the default stays), never an error.
inline void decode(const ordered_json& j, SecurityRisk& out, const char*) {
    auto v = (j.is_number_integer() || j.is_number_unsigned()) ? as_integer(j) : std::nullopt;
    if (v && *v >= -1 && *v <= 2) out = static_cast<SecurityRisk>(*v);
}
inline void decode(const ordered_json& j, FileReadSource& out, const char* name) {
    if (j == "default") out = FileReadSource::default_;
    else if (j == "oh_aci") out = FileReadSource::oh_aci;
    else wrong_type(name, "\"default\" or \"oh_aci\"");
}
inline void decode(const ordered_json& j, FileEditSource& out, const char* name) {
    if (j == "llm_based_edit") out = FileEditSource::llm_based_edit;
    else if (j == "oh_aci") out = FileEditSource::oh_aci;
    else wrong_type(name, "\"llm_based_edit\" or \"oh_aci\"");
}
inline void decode(const ordered_json& j, CmdOutputMetadata& out, const char* name) {
    if (j.is_null()) {
        out = CmdOutputMetadata{};
        return;
    }
    if (!j.is_object()) wrong_type(name, "an object");
    out = cmd_output_metadata_from_json(j);
}
template <class T>
void decode(const ordered_json& j, std::vector<T>& out, const char* name) {
    if (!j.is_array()) wrong_type(name, "a list");
    std::vector<T> v;
    v.reserve(j.size());
    for (const auto& x : j) {
        T item{};
        decode(x, item, name);
        v.push_back(std::move(item));
    }
    out = std::move(v);
}
template <class T>
void decode(const ordered_json& j, std::optional<T>& out, const char* name) {
    if (j.is_null()) {
        out.reset();
        return;
    }
    T v{};
    decode(j, v, name);
    out = std::move(v);
}


// --- per-type wire descriptions -----------------------------------------------
template <class T>
struct wire;

template <>
struct wire<NullAction> {
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const NullAction&) { return "No action"; }
};
template <>
struct wire<CmdRunAction> {
    using T = CmdRunAction;
    static auto fields() {
        return std::make_tuple(field("command", &T::command, true), field("is_input", &T::is_input),
                               field("thought", &T::thought), field("blocking", &T::blocking),
                               field("is_static", &T::is_static), field("cwd", &T::cwd), field("hidden", &T::hidden),
                               field("confirmation_state", &T::confirmation_state),
                               field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) { return "Running command: " + a.command; }
};
template <>
struct wire<IPythonRunCellAction> {
    using T = IPythonRunCellAction;
    static auto fields() {
        return std::make_tuple(field("code", &T::code, true), field("thought", &T::thought),
                               field("include_extra", &T::include_extra),
                               field("confirmation_state", &T::confirmation_state),
                               field("security_risk", &T::security_risk),
                               field("kernel_init_code", &T::kernel_init_code));
    }
    static std::string message(const T& a) { return "Running Python code interactively: " + a.code; }
};
template <>
struct wire<FileReadAction> {
    using T = FileReadAction;
    static auto fields() {
        return std::make_tuple(field("path", &T::path, true), field("start", &T::start), field("end", &T::end),
                               field("thought", &T::thought), field("security_risk", &T::security_risk),
                               field("impl_source", &T::impl_source), field("view_range", &T::view_range));
    }
    static std::string message(const T& a) { return "Reading file: " + a.path; }
};
template <>
struct wire<FileWriteAction> {
    using T = FileWriteAction;
    static auto fields() {
        return std::make_tuple(field("path", &T::path, true), field("content", &T::content, true),
                               field("start", &T::start), field("end", &T::end), field("thought", &T::thought),
                               field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) { return "Writing file: " + a.path; }
};
template <>
struct wire<FileEditAction> {
    using T = FileEditAction;
    static auto fields() {
        return std::make_tuple(field("path", &T::path, true), field("command", &T::command),
                               field("file_text", &T::file_text), field("old_str", &T::old_str),
                               field("new_str", &T::new_str), field("insert_line", &T::insert_line),
                               field("content", &T::content), field("start", &T::start), field("end", &T::end),
                               field("thought", &T::thought), field("security_risk", &T::security_risk),
                               field("impl_source", &T::impl_source));
    }
    static std::string message(const T&) { return ""; }
};
template <>
struct wire<BrowseURLAction> {
    using T = BrowseURLAction;
    static auto fields() {
        return std::make_tuple(field("url", &T::url, true), field("thought", &T::thought),
                               field("security_risk", &T::security_risk), field("return_axtree", &T::return_axtree));
    }
    static std::string message(const T& a) { return "I am browsing the URL: " + a.url; }
};
template <>
struct wire<BrowseInteractiveAction> {
    using T = BrowseInteractiveAction;
    static auto fields() {
        return std::make_tuple(field("browser_actions", &T::browser_actions, true), field("thought", &T::thought),
                               field("browsergym_send_msg_to_user", &T::browsergym_send_msg_to_user),
                               field("security_risk", &T::security_risk), field("return_axtree", &T::return_axtree));
    }
    static std::string message(const T& a) {
        return "I am interacting with the browser:\n```\n" + a.browser_actions + "\n```";
    }
};
template <>
struct wire<MCPAction> {
    using T = MCPAction;
    static auto fields() {
        return std::make_tuple(field("name", &T::name), field("arguments", &T::arguments),
                               field("thought", &T::thought), field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) {
        return "I am interacting with the MCP server with name:\n```\n" + a.name + "\n```\nand arguments:\n```\n" +
               python_repr(a.arguments) + "\n```";
    }
};
template <>
struct wire<MessageAction> {
    using T = MessageAction;
    static auto fields() {
        return std::make_tuple(field("content", &T::content, true), field("file_urls", &T::file_urls),
                               field("image_urls", &T::image_urls), field("wait_for_response", &T::wait_for_response),
                               field("security_risk", &T::security_risk));
    }
    static std::string message(const T& a) { return a.content; }
};
template <>
struct wire<AgentThinkAction> {
    using T = AgentThinkAction;
    static auto fields() { return std::make_tuple(field("thought", &T::thought)); }
    static std::string message(const T& a) { return "I am thinking...: " + a.thought; }
};
template <>
struct wire<AgentFinishAction> {
    using T = AgentFinishAction;
    static auto fields() {
        return std::make_tuple(field("final_thought", &T::final_thought), field("outputs", &T::outputs),
                               field("thought", &T::thought));
    }
    static std::string message(const T& a) {
        return a.thought.empty() ? std::string("All done! What's next on the agenda?") : a.thought;
    }
};
template <>
struct wire<AgentRejectAction> {
    using T = AgentRejectAction;
    static auto fields() { return std::make_tuple(field("outputs", &T::outputs), field("thought", &T::thought)); }
    static std::string message(const T& a) {
        std::string out = "Task is rejected by the agent.";
        if (a.outputs.is_object()) {
            auto it = a.outputs.find("reason");
            if (it != a.outputs.end() && it->is_string() && !it->get_ref<const std::string&>().empty())
                out += " Reason: " + it->get<std::string>();
        }
        return out;
    }
};

template <>
struct wire<CmdOutputObservation> {
    using T = CmdOutputObservation;
    static constexpr bool has_success = true;
    static auto fields() {
        return std::make_tuple(field("command", &T::command, true), field("metadata", &T::metadata),
                               field("hidden", &T::hidden));
    }
    static std::string message(const T& o) {
        return "Command `" + o.command + "` executed with exit code " + std::to_string(o.metadata.exit_code) + ".";
    }
    static bool success(const T& o) { return o.metadata.exit_code == 0; }
};
template <>
struct wire<IPythonRunCellObservation> {
    using T = IPythonRunCellObservation;
    static constexpr bool has_success = true;
    static auto fields() { return std::make_tuple(field("code", &T::code, true), field("image_urls", &T::image_urls)); }
    static std::string message(const T&) { return "Code executed in IPython cell."; }
    static bool success(const T&) { return true; }
};
template <>
struct wire<FileReadObservation> {
    using T = FileReadObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("path", &T::path, true), field("impl_source", &T::impl_source)); }
    static std::string message(const T& o) { return "I read the file " + o.path + "."; }
};
template <>
struct wire<FileWriteObservation> {
    using T = FileWriteObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("path", &T::path, true)); }
    static std::string message(const T& o) { return "I wrote to the file " + o.path + "."; }
};
template <>
struct wire<FileEditObservation> {
    using T = FileEditObservation;
    static constexpr bool has_success = false;
    static auto fields() {
        return std::make_tuple(field("path", &T::path), field("prev_exist", &T::prev_exist),
                               field("old_content", &T::old_content), field("new_content", &T::new_content),
                               field("impl_source", &T::impl_source), field("diff", &T::diff));
    }
    static std::string message(const T& o) { return "I edited the file " + o.path + "."; }
};
template <>
struct wire<ErrorObservation> {
    using T = ErrorObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("error_id", &T::error_id)); }
    static std::string message(const T& o) { return o.content; }
};
template <>
struct wire<NullObservation> {
    static constexpr bool has_success = false;
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const NullObservation&) { return "No observation"; }
};
template <>
struct wire<UserRejectObservation> {
    static constexpr bool has_success = false;
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const UserRejectObservation& o) { return o.content; }
};
template <>
struct wire<AgentThinkObservation> {
    static constexpr bool has_success = false;
    static auto fields() { return std::tuple<>{}; }
    static std::string message(const AgentThinkObservation& o) { return o.content; }
};
template <>
struct wire<FileDownloadObservation> {
    using T = FileDownloadObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("file_path", &T::file_path, true)); }
    static std::string message(const T& o) { return "Downloaded the file at location: " + o.file_path; }
};
template <>
struct wire<BrowserOutputObservation> {
    using T = BrowserOutputObservation;
    static constexpr bool has_success = false;
    static auto fields() {
        return std::make_tuple(
            field("url", &T::url, true), field("trigger_by_action", &T::trigger_by_action, true),
            field("screenshot", &T::screenshot), field("screenshot_path", &T::screenshot_path),
            field("set_of_marks", &T::set_of_marks), field("error", &T::error),
            field("goal_image_urls", &T::goal_image_urls), field("open_pages_urls", &T::open_pages_urls),
            field("active_page_index", &T::active_page_index), field("dom_object", &T::dom_object),
            field("axtree_object", &T::axtree_object), field("extra_element_properties", &T::extra_element_properties),
            field("last_browser_action", &T::last_browser_action),
            field("last_browser_action_error", &T::last_browser_action_error),
            field("focused_element_bid", &T::focused_element_bid),
            field("filter_visible_only", &T::filter_visible_only));
    }
    static std::string message(const T& o) { return "Visited " + o.url; }
};
template <>
struct wire<MCPObservation> {
    using T = MCPObservation;
    static constexpr bool has_success = false;
    static auto fields() { return std::make_tuple(field("name", &T::name), field("arguments", &T::arguments)); }
    static std::string message(const T& o) { return o.content; }
};

// --- generic writers ----------------------------------------------------------
inline void write_head(ordered_json& j, const EventMeta& m, std::string message) {
    if (m.id && *m.id != -1) j["id"] = *m.id;
    if (m.timestamp) j["timestamp"] = *m.timestamp;
    if (m.source) j["source"] = std::string(to_string(*m.source));
    j["message"] = std::move(message);
    if (m.cause) j["cause"] = *m.cause;
}
inline void write_llm(ordered_json& j, const EventMeta& m) {
    if (m.tool_call_metadata && !m.tool_call_metadata->is_null()) j["tool_call_metadata"] = *m.tool_call_metadata;
    if (m.llm_metrics && !m.llm_metrics->is_null()) j["llm_metrics"] = *m.llm_metrics;
}
template <class T>
ordered_json fields_to_json(const T& x) {
    ordered_json out = ordered_json::object();
    std::apply([&](const auto&... f) { ((out[f.name] = encode(x.*(f.ptr))), ...); }, wire<T>::fields());
    return out;
}
template <class A>
ordered_json action_to_json(const A& a) {
    ordered_json j = ordered_json::object();
    write_head(j, a.meta, wire<A>::message(a));
    j["action"] = std::string(A::type);
    write_llm(j, a.meta);
    j["args"] = fields_to_json(a);
    if (a.timeout) j["timeout"] = *a.timeout;
    return j;
}
template <class O>
ordered_json observation_to_json(const O& o) {
    ordered_json j = ordered_json::object();
    write_head(j, o.meta, wire<O>::message(o));
    j["observation"] = std::string(O::type);
    write_llm(j, o.meta);
    j["content"] = o.content;
    ordered_json extras = fields_to_json(o);
    if constexpr (std::is_same_v<O, FileEditObservation>) extras["_diff_cache"] = nullptr;
    j["extras"] = std::move(extras);
    if constexpr (wire<O>::has_success) j["success"] = wire<O>::success(o);
    return j;
}

// --- generic readers ------------------------------------------------------------
inline std::string quoted_list(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) {
        if (!out.empty()) out += ", ";
        out += "'" + n + "'";
    }
    return out;
}

/// Reads the described fields of T from `obj`. `what` is e.g. "action=run has the wrong arguments".
template <class T>
void read_fields(T& out, const ordered_json& obj, const std::string& what, bool tolerate_unknown) {
    const auto fields = wire<T>::fields();
    if (!tolerate_unknown) {
        std::vector<std::string> unknown;
        for (auto it = obj.begin(); it != obj.end(); ++it) {
            const bool known = std::apply([&](const auto&... f) { return ((it.key() == f.name) || ... || false); },
                                          fields);
            if (!known) unknown.push_back(it.key());
        }
        if (!unknown.empty()) bad_event(what + ": unexpected keyword argument(s) " + quoted_list(unknown));
    }
    std::vector<std::string> missing;
    try {
        std::apply(
            [&](const auto&... f) {
                (
                    [&] {
                        auto it = obj.find(f.name);
                        if (it != obj.end()) decode(*it, out.*(f.ptr), f.name);
                        else if (f.required) missing.emplace_back(f.name);
                    }(),
                    ...);
            },
            fields);
    } catch (const field_error& e) {
        bad_event(what + ": " + e.message);
    }
    if (!missing.empty()) bad_event(what + ": missing required argument(s) " + quoted_list(missing));
}

inline void read_meta(const ordered_json& j, EventMeta& m) {
    if (auto it = j.find("id"); it != j.end() && !it->is_null()) {
        auto v = (it->is_number_integer() || it->is_number_unsigned()) ? as_integer(*it) : std::nullopt;
        if (!v) bad_event("event id must be an integer");
        m.id = *v == -1 ? std::nullopt : std::optional<std::int64_t>(*v);
    }
    if (auto it = j.find("timestamp"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) bad_event("event timestamp must be a string");
        m.timestamp = it->get<std::string>();
    }
    if (auto it = j.find("source"); it != j.end() && !it->is_null()) {
        auto v = it->is_string() ? event_source_from_string(it->get_ref<const std::string&>()) : std::nullopt;
        if (!v) bad_event("event source must be agent, user or environment");
        m.source = v;
    }
    if (auto it = j.find("cause"); it != j.end() && !it->is_null()) {
        auto v = (it->is_number_integer() || it->is_number_unsigned()) ? as_integer(*it) : std::nullopt;
        if (!v) bad_event("event cause must be an integer");
        m.cause = *v;
    }
    if (auto it = j.find("tool_call_metadata"); it != j.end() && !it->is_null()) m.tool_call_metadata = *it;
    if (auto it = j.find("llm_metrics"); it != j.end() && !it->is_null()) m.llm_metrics = *it;
}

/// Calls f(std::type_identity<Alt>{}) for the alternative of V whose `type` equals `type`.
template <class V, class F, std::size_t... I>
bool dispatch_type(std::string_view type, F&& f, std::index_sequence<I...>) {
    return ((std::variant_alternative_t<I, V>::type == type
                 ? (f(std::type_identity<std::variant_alternative_t<I, V>>{}), true)
                 : false) ||
            ...);
}
template <class V, class F>
bool dispatch_type(std::string_view type, F&& f) {
    return dispatch_type<V>(type, std::forward<F>(f), std::make_index_sequence<std::variant_size_v<V>>{});
}

/// Legacy `translated_ipython_code` = `print(file_editor(**{...}))`: its dict becomes args.
inline void expand_translated_ipython_code(ordered_json& args) {
    auto it = args.find("translated_ipython_code");
    if (it == args.end()) return;
    const ordered_json code = *it;
    args.erase(it);
    if (!code.is_string()) return;
    constexpr std::string_view head = "print(file_editor(**";
    std::string_view text = code.get_ref<const std::string&>();
    if (text.substr(0, head.size()) != head) return;
    const auto close = text.find("))", head.size());  // the reference's non-greedy `(.*?)\)\)`
    if (close == std::string_view::npos) return;
    const std::string_view inner = text.substr(head.size(), close - head.size());
    if (inner.find('\n') != std::string_view::npos) return;  // `.` does not match a newline
    auto parsed = python_literal_reader(inner).read();
    if (!parsed || !parsed->is_object()) return;
    for (auto kv = parsed->begin(); kv != parsed->end(); ++kv) args[kv.key()] = kv.value();
}

}  // namespace detail

RUNBOX_DECL ordered_json to_json(const CmdOutputMetadata& m) {
    ordered_json j = ordered_json::object();
    j["exit_code"] = m.exit_code;
    j["pid"] = m.pid;
    j["username"] = detail::encode(m.username);
    j["hostname"] = detail::encode(m.hostname);
    j["working_dir"] = detail::encode(m.working_dir);
    j["py_interpreter_path"] = detail::encode(m.py_interpreter_path);
    j["prefix"] = m.prefix;
    j["suffix"] = m.suffix;
    return j;
}

namespace detail {
/// Prompt numbers arrive as strings: parsed float -> int, anything unparsable -> -1.
inline int lenient_int(const ordered_json& v) {
    double d = 0;
    if (v.is_number_integer() || v.is_number_unsigned()) {
        auto i = as_integer(v);
        if (!i || *i < INT32_MIN || *i > INT32_MAX) return -1;
        return static_cast<int>(*i);
    }
    if (v.is_number_float()) {
        d = v.get<double>();
    } else if (v.is_string()) {
        std::string s = v.get<std::string>();
        const auto first = s.find_first_not_of(" \t\n\r\f\v");
        if (first == std::string::npos) return -1;
        s = s.substr(first, s.find_last_not_of(" \t\n\r\f\v") - first + 1);
        if (s.find_first_of("xX") != std::string::npos) return -1;  // strtod reads hex floats, Python's float() does not
        char* end = nullptr;
        d = std::strtod(s.c_str(), &end);
        if (end != s.c_str() + s.size()) return -1;
    } else {
        return -1;
    }
    if (!std::isfinite(d) || d <= static_cast<double>(INT32_MIN) - 1.0 || d >= static_cast<double>(INT32_MAX) + 1.0)
        return -1;
    return static_cast<int>(std::trunc(d));
}
inline std::optional<std::string> optional_string(const ordered_json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || !it->is_string()) return std::nullopt;
    return it->get<std::string>();
}
}  // namespace detail

RUNBOX_DECL CmdOutputMetadata cmd_output_metadata_from_json(const ordered_json& j) {
    CmdOutputMetadata m;
    if (!j.is_object()) return m;
    if (auto it = j.find("exit_code"); it != j.end()) m.exit_code = detail::lenient_int(*it);
    if (auto it = j.find("pid"); it != j.end()) m.pid = detail::lenient_int(*it);
    m.username = detail::optional_string(j, "username");
    m.hostname = detail::optional_string(j, "hostname");
    m.working_dir = detail::optional_string(j, "working_dir");
    m.py_interpreter_path = detail::optional_string(j, "py_interpreter_path");
    m.prefix = detail::optional_string(j, "prefix").value_or("");
    m.suffix = detail::optional_string(j, "suffix").value_or("");
    return m;
}
RUNBOX_DECL CmdOutputMetadata cmd_output_metadata_from_json(const nlohmann::json& j) {
    return cmd_output_metadata_from_json(ordered_json(j));
}

RUNBOX_DECL ordered_json to_json(const Action& a) {
    return std::visit([](const auto& x) { return detail::action_to_json(x); }, a);
}
RUNBOX_DECL ordered_json to_json(const Observation& o) {
    return std::visit([](const auto& x) { return detail::observation_to_json(x); }, o);
}
RUNBOX_DECL ordered_json to_json(const Event& e) {
    return std::visit([](const auto& x) { return to_json(x); }, e);
}
RUNBOX_DECL std::string to_wire(const Action& a) {
    return to_json(a).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
RUNBOX_DECL std::string to_wire(const Observation& o) {
    return to_json(o).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
RUNBOX_DECL std::string to_wire(const Event& e) {
    return to_json(e).dump(-1, ' ', false, ordered_json::error_handler_t::replace);
}
RUNBOX_DECL std::string message_of(const Action& a) {
    return std::visit([](const auto& x) { return detail::wire<std::decay_t<decltype(x)>>::message(x); }, a);
}
RUNBOX_DECL std::string message_of(const Observation& o) {
    return std::visit([](const auto& x) { return detail::wire<std::decay_t<decltype(x)>>::message(x); }, o);
}

RUNBOX_DECL Action action_from_json(const ordered_json& j) {
    if (!j.is_object()) detail::bad_event("an action must be a JSON object");
    auto type_it = j.find("action");
    if (type_it == j.end()) detail::bad_event("'action' key is not found in the event");
    if (!type_it->is_string()) detail::bad_event("'action' must be a string");
    const std::string type = type_it->get<std::string>();

    ordered_json args = ordered_json::object();
    if (auto it = j.find("args"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) detail::bad_event("action=" + type + " has args that are not an object");
        args = *it;
    }
    // Legacy and deprecated argument names (reference §3.6).
    std::optional<std::string> args_timestamp;
    if (auto it = args.find("timestamp"); it != args.end()) {
        if (it->is_string()) args_timestamp = it->get<std::string>();
        args.erase(it);
    }
    if (auto it = args.find("is_confirmed"); it != args.end()) {
        ordered_json v = *it;
        args.erase(it);
        if (!args.contains("confirmation_state")) args["confirmation_state"] = std::move(v);
    }
    if (auto it = args.find("images_urls"); it != args.end()) {
        ordered_json v = *it;
        args.erase(it);
        if (!args.contains("image_urls")) args["image_urls"] = std::move(v);
    }
    if (auto it = args.find("security_risk"); it != args.end()) {
        auto v = (it->is_number_integer() || it->is_number_unsigned()) ? detail::as_integer(*it) : std::nullopt;
        if (!v || *v < -1 || *v > 2) args.erase(it);
    }
    args.erase("keep_prompt");
    args.erase("task_completed");
    detail::expand_translated_ipython_code(args);

    std::optional<Action> out;
    const std::string what = "action=" + type + " has the wrong arguments";
    detail::dispatch_type<Action>(type, [&](auto tag) {
        using A = typename decltype(tag)::type;
        A a{};
        detail::read_fields(a, args, what, false);
        out = std::move(a);
    });
    if (!out) detail::bad_event("'action=" + type + "' is not defined");

    if (auto it = j.find("timeout"); it != j.end()) {
        if (!it->is_null() && !it->is_number()) detail::bad_event(what + ": timeout must be a number");
        bool blocking = false;
        if (auto b = args.find("blocking"); b != args.end() && b->is_boolean()) blocking = b->get<bool>();
        set_hard_timeout(*out, it->is_null() ? std::nullopt : std::optional<double>(it->get<double>()), blocking);
    }
    EventMeta& m = meta(*out);
    if (args_timestamp) m.timestamp = args_timestamp;
    detail::read_meta(j, m);
    return std::move(*out);
}
RUNBOX_DECL Action action_from_json(const nlohmann::json& j) { return action_from_json(ordered_json(j)); }

RUNBOX_DECL Observation observation_from_json(const ordered_json& j) {
    if (!j.is_object()) detail::bad_event("an observation must be a JSON object");
    auto type_it = j.find("observation");
    if (type_it == j.end()) detail::bad_event("'observation' key is not found in the event");
    if (!type_it->is_string()) detail::bad_event("'observation' must be a string");
    const std::string type = type_it->get<std::string>();
    const std::string what = "observation=" + type + " has the wrong extras";

    std::string content;
    if (auto it = j.find("content"); it != j.end() && !it->is_null()) {
        if (!it->is_string()) detail::bad_event(what + ": content must be a string");
        content = it->get<std::string>();
    }
    ordered_json extras = ordered_json::object();
    if (auto it = j.find("extras"); it != j.end() && !it->is_null()) {
        if (!it->is_object()) detail::bad_event(what + ": extras must be an object");
        extras = *it;
    }
    extras.erase("formatted_output_and_error");
    const bool is_run = type == CmdOutputObservation::type;
    if (is_run) {
        // Legacy flat fields move into metadata; a missing metadata is the default one.
        CmdOutputMetadata md;
        if (auto it = extras.find("metadata"); it != extras.end() && it->is_object())
            md = cmd_output_metadata_from_json(*it);
        else if (it != extras.end() && !it->is_null())
            detail::bad_event(what + ": metadata must be an object");
        if (auto it = extras.find("exit_code"); it != extras.end()) {
            md.exit_code = detail::lenient_int(*it);
            extras.erase(it);
        }
        if (auto it = extras.find("command_id"); it != extras.end()) {
            md.pid = detail::lenient_int(*it);
            extras.erase(it);
        }
        extras["metadata"] = to_json(md);
    }
    if (type == FileEditObservation::type) extras.erase("_diff_cache");

    std::optional<Observation> out;
    detail::dispatch_type<Observation>(type, [&](auto tag) {
        using O = typename decltype(tag)::type;
        O o{};
        detail::read_fields(o, extras, what, is_run);
        o.content = std::move(content);
        if constexpr (std::is_same_v<O, CmdOutputObservation>) {
            if (!o.hidden) o.content = truncate_observation_content(std::move(o.content));
        }
        out = std::move(o);
    });
    if (!out) detail::bad_event("'observation=" + type + "' is not defined");
    detail::read_meta(j, meta(*out));
    return std::move(*out);
}
RUNBOX_DECL Observation observation_from_json(const nlohmann::json& j) { return observation_from_json(ordered_json(j)); }

RUNBOX_DECL Event event_from_json(const ordered_json& j) {
    if (j.is_object() && j.contains("action")) return Event(action_from_json(j));
    if (j.is_object() && j.contains("observation")) return Event(observation_from_json(j));
    detail::bad_event("Unknown event type");
}
RUNBOX_DECL Event event_from_json(const nlohmann::json& j) { return event_from_json(ordered_json(j)); }

namespace detail {
template <class T>
ordered_json event_codec<T>::to_json(const T& x) {
    if constexpr (ActionType<T>) return action_to_json(x);
    else return observation_to_json(x);
}
template <class T>
std::string event_codec<T>::message(const T& x) {
    return wire<T>::message(x);
}
}  // namespace detail

}  // namespace runbox
