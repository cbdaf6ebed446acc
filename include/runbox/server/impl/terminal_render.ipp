#pragma once

#include "runbox/server/terminal_render.hpp"

#include "runbox/detail/utf8.hpp"

namespace runbox::server::bash {

namespace detail {

RUNBOX_DECL std::size_t escape_length(std::string_view s, std::size_t i, bool* complete) {
    const std::size_t n = s.size();
    auto done = [&](std::size_t len, bool ok) {
        if (complete) *complete = ok;
        return len;
    };
    if (i + 1 >= n) return done(n - i, false);
    const char c = s[i + 1];
    if (c == '[') {
        std::size_t k = i + 2;
        while (k < n && static_cast<unsigned char>(s[k]) >= 0x20 && static_cast<unsigned char>(s[k]) <= 0x3F) ++k;
        while (k < n && static_cast<unsigned char>(s[k]) >= 0x20 && static_cast<unsigned char>(s[k]) <= 0x2F) ++k;
        if (k >= n) return done(n - i, false);
        if (static_cast<unsigned char>(s[k]) >= 0x40 && static_cast<unsigned char>(s[k]) <= 0x7E) ++k;
        return done(k - i, true);
    }
    if (c == ']' || c == 'P' || c == 'X' || c == '^' || c == '_') {
        for (std::size_t k = i + 2; k < n; ++k) {
            if (c == ']' && s[k] == '\x07') return done(k + 1 - i, true);
            if (s[k] == '\x1b' && k + 1 < n && s[k + 1] == '\\') return done(k + 2 - i, true);
        }
        return done(n - i, false);
    }
    if (c == '(' || c == ')' || c == '*' || c == '+' || c == '-' || c == '.' || c == '/' || c == '#' || c == '%') {
        if (i + 3 > n) return done(n - i, false);
        return done(3, true);
    }
    return done(2, true);
}

}  // namespace detail

RUNBOX_DECL std::string render_terminal_output(std::string_view raw) {
    std::string out;
    out.reserve(raw.size());
    // Plain text goes straight to `out`; only a line that moves the cursor back (CR, BS) is
    // re-decoded into cells so later text can overwrite it.
    std::size_t line_start = 0;  // where the current line begins in `out`
    bool cells_mode = false;
    std::u32string line;
    std::size_t cursor = 0;
    auto enter_cells_mode = [&] {
        if (cells_mode) return;
        line.clear();
        const std::string_view text(out.data() + line_start, out.size() - line_start);
        for (std::size_t k = 0; k < text.size();) line.push_back(runbox::detail::decode_utf8(text, k));
        out.resize(line_start);
        cursor = line.size();
        cells_mode = true;
    };
    auto put = [&](char32_t cp) {
        if (!cells_mode) {
            runbox::detail::append_utf8(out, cp);
            return;
        }
        if (cursor < line.size()) line[cursor] = cp;
        else line.push_back(cp);
        ++cursor;
    };
    std::size_t i = 0;
    const std::size_t n = raw.size();
    while (i < n) {
        const auto b = static_cast<unsigned char>(raw[i]);
        if (!cells_mode && ((b >= 0x20 && b < 0x7f) || b == '\t')) {
            std::size_t j = i + 1;
            while (j < n) {
                const auto c = static_cast<unsigned char>(raw[j]);
                if (!((c >= 0x20 && c < 0x7f) || c == '\t')) break;
                ++j;
            }
            out.append(raw.substr(i, j - i));
            i = j;
            continue;
        }
        if (b == 0x1b) {
            i += detail::escape_length(raw, i);
            continue;
        }
        if (b == '\n') {
            if (cells_mode) {
                for (const auto cp : line) runbox::detail::append_utf8(out, cp);
                cells_mode = false;
            }
            out += '\n';
            line_start = out.size();
            ++i;
            continue;
        }
        if (b == '\r') {
            // CRLF is just a line end; a bare CR returns to the start of the line
            if (i + 1 < n && raw[i + 1] == '\n') {
                ++i;
                continue;
            }
            enter_cells_mode();
            cursor = 0;
            ++i;
            continue;
        }
        if (b == '\b') {
            enter_cells_mode();
            if (cursor > 0) --cursor;
            ++i;
            continue;
        }
        if (b < 0x20 || b == 0x7f) {
            ++i;
            continue;
        }
        const char32_t cp = runbox::detail::decode_utf8(raw, i);
        if (cp >= 0x80 && cp < 0xA0) continue;  // C1 controls
        put(cp);
    }
    if (cells_mode) {
        for (const auto cp : line) runbox::detail::append_utf8(out, cp);
    }
    return out;
}

}  // namespace runbox::server::bash
