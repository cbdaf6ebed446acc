// runbox/detail/shell.hpp - the one POSIX shell quoter every command line in runbox goes through.
//
// Provider start commands, runloop's `bash -c` entrypoint and the action server's `cd` line are
// all built from settings and paths a user (or a sandbox) chose: each argument is quoted so that
// a space stays inside its word and `$(...)`, `;` or a backquote is text, never executed.
#pragma once

#include <string>
#include <string_view>

namespace runbox::detail {

/// `text` as one word for a POSIX shell: left bare when it holds only characters no shell treats
/// specially (letters, digits, `@%+=:,./_-`), else single-quoted with each `'` written `'\''`.
/// The empty string becomes `''`.
inline std::string shell_quote(std::string_view text) {
    auto plain = [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               std::string_view("@%+=:,./_-").find(c) != std::string_view::npos;
    };
    bool bare = !text.empty();
    for (const char c : text) bare = bare && plain(c);
    if (bare) return std::string(text);
    std::string out = "'";
    for (const char c : text) {
        if (c == '\'') out += "'\\''";
        else out += c;
    }
    return out + "'";
}

}  // namespace runbox::detail
