/// \file
/// Python's text of values, as OpenHands' messages show them, and a reader of Python literals
/// (written once: the float and str reprs, the repr of a JSON value, the literal reader).
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "runbox/detail/json.hpp"
#include "runbox/detail/linkage.hpp"

namespace runbox::detail {

/// Python's repr()/str() of a float: the shortest digits that round-trip, fixed notation with
/// at least one decimal ("1.0", "0.1", "120.0") when the decimal exponent is in [-4, 16),
/// else scientific with a signed two-digit-or-more exponent ("1e+16", "1e-05", "1.5e+300");
/// "nan", "inf", "-inf", "-0.0".
RUNBOX_DECL std::string python_float(double value);

/// Appends Python's repr() of a str: 'text' (or "text" when it holds ' but no "), with \\ \n
/// \r \t and \xNN escapes for the other control characters; other bytes as they are.
RUNBOX_DECL void append_python_str_repr(std::string& out, std::string_view s);

/// Python's repr() of a str (see append_python_str_repr).
RUNBOX_DECL std::string python_str_repr(std::string_view s);

/// Appends Python's repr() of a JSON value read as the Python value json.loads gives (None,
/// True/False, str reprs, [..], {..}); numbers as nlohmann dumps them. The MCP action's message
/// shows its arguments so. Recurses once per level: for values within max_nesting_depth.
RUNBOX_DECL void python_repr(std::string& out, const nlohmann::ordered_json& v);
/// Python's repr() of a JSON value (see the appending overload).
RUNBOX_DECL std::string python_repr(const nlohmann::ordered_json& v);

/// Reads one Python literal (dict, list, tuple, str, int, float, True/False/None), as the
/// legacy `print(file_editor(**{...}))` form of an edit carries its arguments.
class python_literal_reader {
public:
    /// Reads `src` (not copied: it must outlive the reader), nesting at most `max_depth` levels.
    explicit python_literal_reader(std::string_view src, std::size_t max_depth = max_nesting_depth)
        : s_(src), max_depth_(max_depth) {}
    /// The literal as JSON, or nullopt when the text is not one complete literal. A literal
    /// nesting deeper than `max_depth` throws runbox::error (errc::bad_response): the reader
    /// recurses once per level, so the input must not choose the depth.
    std::optional<nlohmann::ordered_json> read();

private:
    struct failure {};
    std::string_view s_;
    std::size_t max_depth_;
    std::size_t i_ = 0;
    std::size_t depth_ = 0;

    /// Counts one level of nesting for the lifetime of a dict()/list() call.
    struct nesting {
        python_literal_reader& r;
        explicit nesting(python_literal_reader& reader);
        ~nesting() { --r.depth_; }
        nesting(const nesting&) = delete;
        nesting& operator=(const nesting&) = delete;
    };

    void skip_ws();
    bool eat(char c);
    nlohmann::ordered_json value();
    nlohmann::ordered_json dict();
    nlohmann::ordered_json list(char close);
    nlohmann::ordered_json number();
    static void append_utf8(std::string& out, unsigned long cp);
    unsigned long hex_digits(std::size_t n);
    std::string string();
};

}  // namespace runbox::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/detail/impl/python.ipp"
#endif
