/// \file
/// the one UTF-8 codec: encode a code point, step over one well-formed sequence, validate.
///
/// Kept here rather than taken from libutfcpp: the editor needs Python's own fault names and
/// positions ("invalid start byte", "invalid continuation byte", "unexpected end of data"),
/// which utfcpp's error classes do not map onto (it reports E0 80 as an overlong sequence where
/// Python reports the continuation byte), and the whole codec is the one table below.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace runbox::detail {

/// Appends the UTF-8 bytes of `cp`; false (nothing appended) above U+10FFFF. A lone surrogate
/// is encoded as it is (a Python str may hold one; the caller decides whether that is allowed).
inline bool append_utf8(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x110000) {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        return false;
    }
    return true;
}

/// What is wrong with the sequence at a position (Python's 'utf-8' codec names them).
enum class Utf8Fault { none, invalid_start, invalid_continuation, truncated };

/// One step over s[i] (i < s.size()): the code point and its length, or a fault (length 1).
struct Utf8Step {
    char32_t code_point = 0xFFFD;  ///< the decoded code point (U+FFFD on a fault)
    std::size_t length = 1;  ///< bytes consumed
    Utf8Fault fault = Utf8Fault::none;  ///< none when the sequence is well-formed
};

/// Decodes the well-formed sequence at s[i] by Unicode's table 3-7: no overlongs, no
/// surrogates, nothing above U+10FFFF.
inline Utf8Step utf8_next(std::string_view s, std::size_t i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) return {c, 1, Utf8Fault::none};
    std::size_t len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    char32_t cp = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2, cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, cp = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, cp = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else {
        return {0xFFFD, 1, Utf8Fault::invalid_start};
    }
    for (std::size_t k = 1; k < len; ++k) {
        if (i + k >= s.size()) return {0xFFFD, 1, Utf8Fault::truncated};
        const auto cc = static_cast<unsigned char>(s[i + k]);
        if (cc < (k == 1 ? lo : 0x80) || cc > (k == 1 ? hi : 0xBF)) return {0xFFFD, 1, Utf8Fault::invalid_continuation};
        cp = (cp << 6) | (cc & 0x3F);
    }
    return {cp, len, Utf8Fault::none};
}

/// Decodes one sequence at s[i] and advances i; an ill-formed byte gives U+FFFD and advances by one.
inline char32_t decode_utf8(std::string_view s, std::size_t& i) {
    const Utf8Step step = utf8_next(s, i);
    i += step.length;
    return step.code_point;
}

/// The first ill-formed sequence of a text.
struct Utf8Error {
    std::size_t position = 0;  ///< byte offset of the sequence's first byte
    unsigned byte = 0;  ///< that byte
    std::string reason;  ///< Python's: "invalid start byte", "invalid continuation byte", "unexpected end of data"
};

/// Strict validation like Python's 'utf-8' codec; nullopt when `s` is well-formed.
/// `allow_truncated_tail` accepts a sequence cut off by the end (a sniffed chunk).
inline std::optional<Utf8Error> utf8_error(std::string_view s, bool allow_truncated_tail = false) {
    for (std::size_t i = 0; i < s.size();) {
        const Utf8Step step = utf8_next(s, i);
        switch (step.fault) {
            case Utf8Fault::none: i += step.length; continue;
            case Utf8Fault::truncated:
                if (allow_truncated_tail) return std::nullopt;
                return Utf8Error{i, static_cast<unsigned char>(s[i]), "unexpected end of data"};
            case Utf8Fault::invalid_start: return Utf8Error{i, static_cast<unsigned char>(s[i]), "invalid start byte"};
            case Utf8Fault::invalid_continuation:
                return Utf8Error{i, static_cast<unsigned char>(s[i]), "invalid continuation byte"};
        }
    }
    return std::nullopt;
}

}  // namespace runbox::detail
