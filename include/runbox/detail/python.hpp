/// \file
/// Python's text of a float and of a str, as OpenHands' messages show them (written once).
#pragma once

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <string>
#include <string_view>
#include <system_error>

namespace runbox::detail {

/// Python's repr()/str() of a float: the shortest digits that round-trip, fixed notation with
/// at least one decimal ("1.0", "0.1", "120.0") when the decimal exponent is in [-4, 16),
/// else scientific with a signed two-digit-or-more exponent ("1e+16", "1e-05", "1.5e+300");
/// "nan", "inf", "-inf", "-0.0".
inline std::string python_float(double value) {
    if (std::isnan(value)) return "nan";
    if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
    if (value == 0) return std::signbit(value) ? "-0.0" : "0.0";
    char buffer[64];
    // Shortest round-trip digits, as "d.ddde+XX" (to_chars without a precision is shortest).
    const auto result = std::to_chars(buffer, buffer + sizeof buffer, value, std::chars_format::scientific);
    const std::string_view text(buffer, static_cast<std::size_t>(result.ptr - buffer));
    const auto e = text.find('e');
    const bool negative = text.front() == '-';
    std::string digits;
    for (const char c : text.substr(negative ? 1 : 0, e - (negative ? 1 : 0))) {
        if (c != '.') digits += c;
    }
    const int exponent = std::atoi(std::string(text.substr(e + 1)).c_str());
    std::string out = negative ? "-" : "";
    if (exponent >= -4 && exponent < 16) {
        if (exponent >= 0) {
            const auto whole = static_cast<std::size_t>(exponent) + 1;
            if (digits.size() < whole) digits.append(whole - digits.size(), '0');
            out += digits.substr(0, whole) + "." + (digits.size() > whole ? digits.substr(whole) : "0");
        } else {
            out += "0." + std::string(static_cast<std::size_t>(-exponent - 1), '0') + digits;
        }
        return out;
    }
    out += digits.substr(0, 1);
    if (digits.size() > 1) out += "." + digits.substr(1);
    const std::string magnitude = std::to_string(std::abs(exponent));
    out += std::string(exponent < 0 ? "e-" : "e+") + (magnitude.size() < 2 ? "0" : "") + magnitude;
    return out;
}

/// Appends Python's repr() of a str: 'text' (or "text" when it holds ' but no "), with \\ \n
/// \r \t and \xNN escapes for the other control characters; other bytes as they are.
inline void append_python_str_repr(std::string& out, std::string_view s) {
    const bool has_single = s.find('\'') != std::string_view::npos;
    const bool has_double = s.find('"') != std::string_view::npos;
    const char quote = (has_single && !has_double) ? '"' : '\'';
    static constexpr char hex[] = "0123456789abcdef";
    out += quote;
    for (const char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (ch == quote || ch == '\\') {
            out += '\\';
            out += ch;
        } else if (ch == '\n') {
            out += "\\n";
        } else if (ch == '\r') {
            out += "\\r";
        } else if (ch == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 0xF];
        } else {
            out += ch;
        }
    }
    out += quote;
}

/// Python's repr() of a str (see append_python_str_repr).
inline std::string python_str_repr(std::string_view s) {
    std::string out;
    append_python_str_repr(out, s);
    return out;
}

}  // namespace runbox::detail
