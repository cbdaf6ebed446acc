/// \file
/// terminal rendering: raw PTY output (CRLF, bare CR overwrites, backspace, ANSI escape
/// sequences, invalid UTF-8) turned into the plain text an observation carries.
///
/// Plain string code, no process or PTY: the bash session renders its output with it, and
/// bash_parse.hpp's incomplete_tail() uses escape_length() to hold back a partial sequence.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "runbox/detail/linkage.hpp"

namespace runbox::server::bash {

namespace detail {

/// Length of the escape sequence starting at s[i] (== ESC); `complete` is false when the input
/// ends before the sequence does (the length then runs to the end).
RUNBOX_DECL std::size_t escape_length(std::string_view s, std::size_t i, bool* complete = nullptr);

}  // namespace detail

/// Renders raw terminal output as text: CRLF -> LF, a bare CR returns to the line start and
/// later text overwrites (progress bars), backspace moves left, ANSI escape sequences and other
/// control characters are dropped, invalid UTF-8 becomes U+FFFD.
RUNBOX_DECL std::string render_terminal_output(std::string_view raw);

}  // namespace runbox::server::bash

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/terminal_render.ipp"
#endif
