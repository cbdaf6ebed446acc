/// \file
/// Definitions of runbox/detail/python.hpp (included by it when header-only; by runbox/src.hpp
/// in compiled mode).
#pragma once

#include "runbox/detail/python.hpp"

#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <system_error>
#include <utility>

#include "runbox/detail/utf8.hpp"
#include "runbox/error.hpp"

namespace runbox::detail {

RUNBOX_DECL std::string python_float(double value) {
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

RUNBOX_DECL void append_python_str_repr(std::string& out, std::string_view s) {
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

RUNBOX_DECL std::string python_str_repr(std::string_view s) {
    std::string out;
    append_python_str_repr(out, s);
    return out;
}


RUNBOX_DECL void python_repr(std::string& out, const nlohmann::ordered_json& v) {
    switch (v.type()) {
        case nlohmann::ordered_json::value_t::null: out += "None"; return;
        case nlohmann::ordered_json::value_t::boolean: out += v.get<bool>() ? "True" : "False"; return;
        case nlohmann::ordered_json::value_t::string: append_python_str_repr(out, v.get_ref<const std::string&>()); return;
        case nlohmann::ordered_json::value_t::array: {
            out += '[';
            bool first = true;
            for (const auto& x : v) {
                if (!first) out += ", ";
                first = false;
                python_repr(out, x);
            }
            out += ']';
            return;
        }
        case nlohmann::ordered_json::value_t::object: {
            out += '{';
            bool first = true;
            for (auto it = v.begin(); it != v.end(); ++it) {
                if (!first) out += ", ";
                first = false;
                append_python_str_repr(out, it.key());
                out += ": ";
                python_repr(out, it.value());
            }
            out += '}';
            return;
        }
        default: out += v.dump(); return;
    }
}
RUNBOX_DECL std::string python_repr(const nlohmann::ordered_json& v) {
    std::string out;
    python_repr(out, v);
    return out;
}


// --- the Python literal reader ---

RUNBOX_DECL std::optional<nlohmann::ordered_json> python_literal_reader::read() {
    try {
        nlohmann::ordered_json v = value();
        skip_ws();
        if (i_ != s_.size()) return std::nullopt;
        return v;
    } catch (const failure&) {
        return std::nullopt;
    }
}

RUNBOX_DECL python_literal_reader::nesting::nesting(python_literal_reader& reader) : r(reader) {
    if (++r.depth_ > r.max_depth_) {
        throw error(errc::bad_response, "Python literal nests deeper than " + std::to_string(r.max_depth_) + " levels");
    }
}

RUNBOX_DECL void python_literal_reader::skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
}
RUNBOX_DECL bool python_literal_reader::eat(char c) {
    skip_ws();
    if (i_ < s_.size() && s_[i_] == c) {
        ++i_;
        return true;
    }
    return false;
}
RUNBOX_DECL nlohmann::ordered_json python_literal_reader::value() {
    skip_ws();
    if (i_ >= s_.size()) throw failure{};
    const char c = s_[i_];
    if (c == '{') return dict();
    if (c == '[' || c == '(') return list(c == '[' ? ']' : ')');
    if (c == '\'' || c == '"') return nlohmann::ordered_json(string());
    if (c == '-' || c == '+' || c == '.' || (c >= '0' && c <= '9')) return number();
    for (auto [word, val] : {std::pair<std::string_view, nlohmann::ordered_json>{"True", true},
                             {"False", false}, {"None", nullptr}}) {
        if (s_.substr(i_, word.size()) == word) {
            i_ += word.size();
            return val;
        }
    }
    throw failure{};
}
RUNBOX_DECL nlohmann::ordered_json python_literal_reader::dict() {
    const nesting level(*this);
    ++i_;
    nlohmann::ordered_json out = nlohmann::ordered_json::object();
    if (eat('}')) return out;
    while (true) {
        nlohmann::ordered_json key = value();
        if (!key.is_string() || !eat(':')) throw failure{};
        out[key.get<std::string>()] = value();
        if (eat(',')) {
            if (eat('}')) return out;
            continue;
        }
        if (eat('}')) return out;
        throw failure{};
    }
}
RUNBOX_DECL nlohmann::ordered_json python_literal_reader::list(char close) {
    const nesting level(*this);
    ++i_;
    nlohmann::ordered_json out = nlohmann::ordered_json::array();
    if (eat(close)) return out;
    while (true) {
        out.push_back(value());
        if (eat(',')) {
            if (eat(close)) return out;
            continue;
        }
        if (eat(close)) return out;
        throw failure{};
    }
}
RUNBOX_DECL nlohmann::ordered_json python_literal_reader::number() {
    std::string text;
    while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '.' || s_[i_] == '-' ||
                              s_[i_] == '+' || s_[i_] == '_')) {
        if (s_[i_] != '_') text += s_[i_];
        ++i_;
    }
    if (text.empty()) throw failure{};
    char* end = nullptr;
    const bool is_float = text.find_first_of(".eE") != std::string::npos;
    if (is_float) {
        double d = std::strtod(text.c_str(), &end);
        if (end != text.c_str() + text.size()) throw failure{};
        return d;
    }
    errno = 0;
    long long v = std::strtoll(text.c_str(), &end, 10);
    if (errno != 0 || end != text.c_str() + text.size()) throw failure{};
    return v;
}
RUNBOX_DECL void python_literal_reader::append_utf8(std::string& out, unsigned long cp) {
    if (cp > 0x10FFFF || !detail::append_utf8(out, static_cast<char32_t>(cp))) throw failure{};
}
RUNBOX_DECL unsigned long python_literal_reader::hex_digits(std::size_t n) {
    if (i_ + n > s_.size()) throw failure{};
    const std::string digits(s_.substr(i_, n));
    char* end = nullptr;
    const unsigned long v = std::strtoul(digits.c_str(), &end, 16);
    if (end != digits.c_str() + n) throw failure{};
    i_ += n;
    return v;
}
RUNBOX_DECL std::string python_literal_reader::string() {
    const char q = s_[i_];
    const bool triple = s_.substr(i_, 3) == std::string(3, q);
    i_ += triple ? 3 : 1;
    std::string out;
    while (true) {
        if (i_ >= s_.size()) throw failure{};
        if (triple && s_.substr(i_, 3) == std::string(3, q)) {
            i_ += 3;
            return out;
        }
        const char c = s_[i_];
        if (!triple && c == q) {
            ++i_;
            return out;
        }
        if (!triple && c == '\n') throw failure{};
        ++i_;
        if (c != '\\') {
            out += c;
            continue;
        }
        if (i_ >= s_.size()) throw failure{};
        const char e = s_[i_++];
        switch (e) {
            case 'n': out += '\n'; break;
            case 't': out += '\t'; break;
            case 'r': out += '\r'; break;
            case 'a': out += '\a'; break;
            case 'b': out += '\b'; break;
            case 'f': out += '\f'; break;
            case 'v': out += '\v'; break;
            case '0': out += '\0'; break;
            case '\\': case '\'': case '"': out += e; break;
            case '\n': break;  // line continuation
            case 'x': append_utf8(out, hex_digits(2)); break;
            case 'u': append_utf8(out, hex_digits(4)); break;
            case 'U': append_utf8(out, hex_digits(8)); break;
            default:
                out += '\\';
                out += e;
                break;
        }
    }
}

}  // namespace runbox::detail
