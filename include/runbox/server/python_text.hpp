/// \file
/// Python `str` semantics that the file editor's wire texts depend on: str.split, splitlines,
/// universal newlines, strip, int(), len() in code points, str(list). Plain string code.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace runbox::server::detail {


/// str.split(sep): "a\n" -> {"a", ""}, "" -> {""}.
inline std::vector<std::string> split(std::string_view s, char sep) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    for (;;) {
        const auto pos = s.find(sep, begin);
        if (pos == std::string_view::npos) {
            out.emplace_back(s.substr(begin));
            return out;
        }
        out.emplace_back(s.substr(begin, pos - begin));
        begin = pos + 1;
    }
}

/// Lines as a Python text file yields them: each keeps its '\n'; "" -> {}.
inline std::vector<std::string> split_keepends(std::string_view s) {
    std::vector<std::string> out;
    std::size_t begin = 0;
    while (begin < s.size()) {
        const auto pos = s.find('\n', begin);
        const auto stop = pos == std::string_view::npos ? s.size() : pos + 1;
        out.emplace_back(s.substr(begin, stop - begin));
        begin = stop;
    }
    return out;
}

/// Number of lines Python iteration over the file yields.
inline long long count_lines(std::string_view s) {
    long long n = static_cast<long long>(std::count(s.begin(), s.end(), '\n'));
    if (!s.empty() && s.back() != '\n') ++n;
    return n;
}

/// Universal newlines (Python text-mode read): "\r\n" and lone "\r" become "\n".
inline std::string translate_newlines(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r') {
            out.push_back('\n');
            if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

/// str.splitlines() (no keepends): also breaks on \v \f \x1c-\x1e U+0085 U+2028 U+2029.
inline std::vector<std::string> splitlines(std::string_view s) {
    std::vector<std::string> out;
    std::string cur;
    std::size_t i = 0;
    bool pending = false;  // a line was started (text or terminator seen)
    while (i < s.size()) {
        const auto c = static_cast<unsigned char>(s[i]);
        std::size_t term = 0;
        if (c == '\n' || c == '\v' || c == '\f' || c == 0x1c || c == 0x1d || c == 0x1e) {
            term = 1;
        } else if (c == '\r') {
            term = (i + 1 < s.size() && s[i + 1] == '\n') ? 2 : 1;
        } else if (c == 0xC2 && i + 1 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x85) {
            term = 2;
        } else if (c == 0xE2 && i + 2 < s.size() && static_cast<unsigned char>(s[i + 1]) == 0x80 &&
                   (static_cast<unsigned char>(s[i + 2]) == 0xA8 || static_cast<unsigned char>(s[i + 2]) == 0xA9)) {
            term = 3;
        }
        if (term != 0) {
            out.push_back(std::move(cur));
            cur.clear();
            pending = false;
            i += term;
        } else {
            cur.push_back(s[i]);
            pending = true;
            ++i;
        }
    }
    if (pending) out.push_back(std::move(cur));
    return out;
}

inline std::string join(const std::vector<std::string>& parts, std::string_view sep) {
    std::string out;
    for (std::size_t i = 0; i < parts.size(); ++i) {
        if (i != 0) out += sep;
        out += parts[i];
    }
    return out;
}

/// Python's str.isspace() for ASCII plus the C0 separators it also treats as whitespace.
inline bool is_py_space(unsigned char c) noexcept {
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

/// Python's str.strip(), lstrip() and rstrip() over is_py_space(): views into `s` (the bash
/// session and the editor both strip this way, as their Python originals do).
///@{
inline std::string_view lstrip(std::string_view s) noexcept {
    while (!s.empty() && is_py_space(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
    return s;
}
inline std::string_view rstrip(std::string_view s) noexcept {
    while (!s.empty() && is_py_space(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
    return s;
}
inline std::string_view strip(std::string_view s) noexcept { return rstrip(lstrip(s)); }
///@}


/// "[1, 2, 3]" like str(list_of_ints).
inline std::string py_int_list(const std::vector<long long>& values) {
    std::string out = "[";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i != 0) out += ", ";
        out += std::to_string(values[i]);
    }
    return out + "]";
}

/// int(text) for base-10 text: surrounding whitespace, sign, '_' between digits.
/// nullopt when Python would raise ValueError (or the value does not fit 64 bits).
inline std::optional<long long> parse_py_int(std::string_view text) {
    const std::string s(strip(text));
    std::size_t i = 0;
    bool negative = false;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) negative = s[i++] == '-';
    if (i >= s.size()) return std::nullopt;
    unsigned long long value = 0;
    bool last_digit = false;
    constexpr auto limit = static_cast<unsigned long long>(std::numeric_limits<long long>::max());
    for (; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '_') {
            if (!last_digit) return std::nullopt;
            last_digit = false;
            continue;
        }
        if (c < '0' || c > '9') return std::nullopt;
        const auto digit = static_cast<unsigned long long>(c - '0');
        if (value > (limit - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
        last_digit = true;
    }
    if (!last_digit) return std::nullopt;
    return negative ? -static_cast<long long>(value) : static_cast<long long>(value);
}

/// Number of code points (Python len) of UTF-8 text.
inline std::size_t code_points(std::string_view s) noexcept {
    std::size_t n = 0;
    for (const char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    return n;
}

}  // namespace runbox::server::detail
