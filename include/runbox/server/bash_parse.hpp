/// \file
/// the text-level pieces of the bash session (OpenHands §4):
/// splitting input into top-level commands, the `\;`-style escaping quirk, the prompt
/// marker block and its metadata, and the fixed observation texts. Rendering terminal output is
/// server/terminal_render.hpp's concern (included here: incomplete_tail() needs it).
///
/// No process or PTY code lives here, so all of it is unit-testable on plain strings.
#pragma once

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "runbox/detail/linkage.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/detail/utf8.hpp"
#include "runbox/events.hpp"
#include "runbox/server/python_text.hpp"
#include "runbox/server/terminal_render.hpp"

namespace runbox::server::bash {

// ---- fixed texts ---------------------------------------------------------------------------

inline constexpr std::string_view ps1_begin = "###PS1JSON###";  ///< OpenHands' prompt start marker
inline constexpr std::string_view ps1_end = "###PS1END###";    ///< OpenHands' prompt end marker

/// The advice every timeout notice ends with (OpenHands' exact text).
inline constexpr std::string_view timeout_message =
    "You may wait longer to see additional output by sending empty command '', send other commands to "
    "interact with the current process, send keys (\"C-c\", \"C-z\", \"C-d\") to interrupt/kill the previous "
    "command before sending your new command, or use the timeout parameter in execute_bash for future commands.";

/// Prefix of the output a continuation (`""`) returns.
inline constexpr std::string_view continue_prefix = "[Below is the output of the previous command.]\n";
/// The answer to a continuation when no command is running.
inline constexpr std::string_view no_previous_logs = "ERROR: No previous running command to retrieve logs from.";
/// The answer to input (`is_input`) when no command is running.
inline constexpr std::string_view no_previous_interact = "ERROR: No previous running command to interact with.";


/// A duration in seconds the way the reference prints NO_CHANGE_TIMEOUT_SECONDS: an integer when
/// whole (the configured value always is in OpenHands), else Python float style ("0.3").
inline std::string seconds_text(std::chrono::milliseconds ms) {
    if (ms.count() % 1000 == 0) return std::to_string(ms.count() / 1000);
    return runbox::detail::python_float(static_cast<double>(ms.count()) / 1000.0);
}

/// The notice after a command that finished ("[The command completed with exit code N.]").
inline std::string completed_suffix(int exit_code) {
    return "\n[The command completed with exit code " + std::to_string(exit_code) + ".]";
}
/// The notice after a special key ended the command ("... CTRL+C was sent.]").
inline std::string completed_special_key_suffix(int exit_code, char key) {
    const char upper = (key >= 'a' && key <= 'z') ? static_cast<char>(key - 'a' + 'A') : key;
    return "\n[The command completed with exit code " + std::to_string(exit_code) + ". CTRL+" + std::string(1, upper) +
           " was sent.]";
}
/// The notice when a command printed nothing new for `no_change` (it keeps running).
inline std::string no_change_timeout_suffix(std::chrono::milliseconds no_change) {
    return "\n[The command has no new output after " + seconds_text(no_change) + " seconds. " +
           std::string(timeout_message) + "]";
}
/// The notice when a command's hard timeout (seconds) ran out (it keeps running).
inline std::string hard_timeout_suffix(double timeout_seconds) {
    return "\n[The command timed out after " + runbox::detail::python_float(timeout_seconds) + " seconds. " +
           std::string(timeout_message) + "]";
}
/// The answer to a new command sent while the previous one still runs.
inline std::string not_executed_suffix(std::string_view command) {
    return "\n[Your command \"" + std::string(command) +
           "\" is NOT executed. The previous command is still running - You CANNOT send new commands until the "
           "previous command is completed. By setting `is_input` to `true`, you can interact with the current "
           "process: " +
           std::string(timeout_message) + "]";
}
/// The notice before output cut to its last `lines` lines.
inline std::string truncated_prefix(std::size_t lines) {
    return "[Previous command outputs are truncated. Showing the last " + std::to_string(lines) +
           " lines of the output below.]\n";
}
/// The error for input holding several top-level commands, listing them numbered.
RUNBOX_DECL std::string multiple_commands_error(const std::vector<std::string>& commands);

// ---- small string helpers ------------------------------------------------------------------

// Python's str.strip() family, shared with the editor (server/python_text.hpp).
using runbox::server::detail::lstrip;
using runbox::server::detail::rstrip;
using runbox::server::detail::strip;

/// A special key is exactly "C-" plus one character (after stripping), sent as a chord without Enter.
inline bool is_special_key(std::string_view command) noexcept {
    const auto c = strip(command);
    return c.size() == 3 && c[0] == 'C' && c[1] == '-';
}

/// The byte a terminal sends for Ctrl+`key`: C-c -> 0x03, C-[ -> ESC, C-? -> DEL.
inline char control_char(char key) noexcept {
    char k = key;
    if (k >= 'a' && k <= 'z') k = static_cast<char>(k - 'a' + 'A');
    if (k == '?') return '\x7f';
    if (k >= '@' && k <= '_') return static_cast<char>(k ^ 0x40);
    return static_cast<char>(k & 0x1f);
}

/// OpenHands' `_remove_command_prefix`: drop an echoed copy of the command from the output start.
inline std::string_view remove_command_prefix(std::string_view output, std::string_view command) {
    auto out = lstrip(output);
    const auto cmd = lstrip(command);
    if (!cmd.empty() && out.substr(0, cmd.size()) == cmd) out.remove_prefix(cmd.size());
    return lstrip(out);
}

// ---- command splitting and escaping ---------------------------------------------------------

/// Splits input into top-level commands (one per line-separated command; heredocs, multi-line
/// compound commands, `\`-continuations, &&/;/| chains and comments stay with their command).
/// Blank input gives {""}; input that does not parse is returned whole, as one command.
RUNBOX_DECL std::vector<std::string> split_bash_commands(std::string_view commands);

/// The reference's escaping of unquoted `\;` `\&` `\|` `\>` `\<` (each becomes `\\;` ...); quoted
/// strings, $( ), backticks and heredoc bodies are untouched. Unparseable input is returned as is.
/// (In OpenHands the doubled backslash is eaten by tmux; runbox types the original command and
/// only reports this escaped text in the observation's `command` field, reference quirk 7.)
RUNBOX_DECL std::string escape_bash_special_chars(std::string_view command);

// ---- prompt metadata ------------------------------------------------------------------------

/// Parses the JSON inside one prompt block; nullopt when it is not a JSON object. The fields are
/// read by events.hpp's cmd_output_metadata_from_json (the one CmdOutputMetadata reader); a
/// prompt never sets prefix or suffix.
RUNBOX_DECL std::optional<CmdOutputMetadata> parse_prompt_json(std::string_view inner);

/// One prompt block found in the shell's output.
struct PromptBlock {
    std::size_t begin = 0;  ///< offset of the start marker (at a line start)
    std::size_t end = 0;    ///< one past the end marker
    CmdOutputMetadata metadata;  ///< the prompt's JSON (exit code, pid, user, host, directories)
};

/// The two marker strings of a prompt block. A session appends its own random nonce to the
/// reference's markers (with_nonce), so output cannot print a block the scanner accepts.
struct PromptMarkers {
    /// The start and end markers.
    ///@{
    std::string begin{ps1_begin}, end{ps1_end};
    ///@}

    /// The reference's markers with `nonce` appended to both.
    static PromptMarkers with_nonce(std::string_view nonce) {
        return {std::string(ps1_begin) + std::string(nonce), std::string(ps1_end) + std::string(nonce)};
    }
};

/// Finds prompt blocks in a growing buffer, looking at each byte once: a line starting with the
/// start marker, up to the next end marker, whose inner text is a JSON object; invalid blocks
/// are skipped, and when several start markers precede one end marker the last one wins (a
/// stray marker printed by a program cannot swallow the real prompt). The scanner remembers
/// where it stopped; the caller says when it drops text from the front (erase_front).
class PromptScanner {
public:
    /// A block's inner text longer than this is not a prompt (a real one is a few hundred bytes
    /// plus two paths).
    static constexpr std::size_t max_inner = std::size_t{1} << 16;

    /// A scanner for `markers` (default: the reference's, without a nonce).
    explicit PromptScanner(PromptMarkers markers = {}) : markers_(std::move(markers)) {}

    /// The markers it looks for.
    const PromptMarkers& markers() const noexcept { return markers_; }

    /// Forgets the scan position (the buffer was cleared); keeps the markers.
    void reset() noexcept {
        begin_cursor_ = end_cursor_ = 0;
        next_begin_ = next_end_ = npos;
        open_.reset();
    }

    /// The next complete block in `text` after the last one returned, or nullopt (for now).
    std::optional<PromptBlock> next(std::string_view text);

    /// The caller removed the first `n` bytes of the buffer.
    void erase_front(std::size_t n) noexcept {
        const auto shift = [n](std::size_t& v) { v = v > n ? v - n : 0; };
        shift(begin_cursor_);
        shift(end_cursor_);
        for (std::size_t* found : {&next_begin_, &next_end_}) {
            if (*found != npos) *found = *found >= n ? *found - n : npos;
        }
        if (open_) {
            if (*open_ >= n) *open_ -= n;
            else open_.reset();
        }
    }

private:
    static constexpr std::size_t npos = std::string_view::npos;

    /// Finds `marker` from `cursor`; when absent, moves the cursor to where a marker that is
    /// still arriving could start, so the next search only reads new text.
    static std::size_t find(std::string_view text, const std::string& marker, std::size_t& cursor) {
        const auto pos = cursor <= text.size() ? text.find(marker, cursor) : npos;
        if (pos == npos && text.size() >= marker.size()) cursor = std::max(cursor, text.size() - marker.size() + 1);
        return pos;
    }

    PromptMarkers markers_;
    std::size_t begin_cursor_ = 0, end_cursor_ = 0;
    std::size_t next_begin_ = npos, next_end_ = npos;  // found and not yet consumed
    std::optional<std::size_t> open_;                  // a start marker at a line start, not closed yet
};

/// All valid prompt blocks in `text`, in order.
RUNBOX_DECL std::vector<PromptBlock> find_prompt_blocks(std::string_view text, const PromptMarkers& markers = {});

/// How many trailing bytes of a live stream to hold back because they may be completed by the
/// next read: an unterminated escape sequence, a CR (maybe the first half of CRLF), a partial
/// UTF-8 sequence, or the beginning of a prompt block.
RUNBOX_DECL std::size_t incomplete_tail(std::string_view raw, const PromptMarkers& markers = {});

/// Python's len(text.splitlines()) for '\n'-separated text.
inline std::size_t count_lines(std::string_view text) {
    if (text.empty()) return 0;
    std::size_t n = 0;
    for (const char c : text) n += c == '\n';
    if (text.back() != '\n') ++n;
    return n;
}

}  // namespace runbox::server::bash

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/bash_parse.ipp"
#endif
