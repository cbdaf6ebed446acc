/// \file
/// the text-level pieces of the bash session (OpenHands §4):
/// splitting input into top-level commands, the `\;`-style escaping quirk, the prompt
/// marker block and its metadata, the fixed observation texts, and terminal-output cleanup.
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

#include <nlohmann/json.hpp>

#include "runbox/detail/python.hpp"
#include "runbox/detail/utf8.hpp"
#include "runbox/events.hpp"

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
inline std::string multiple_commands_error(const std::vector<std::string>& commands) {
    std::string out =
        "ERROR: Cannot execute multiple commands at once.\nPlease run each command separately OR chain them into a "
        "single command via && or ;\nProvided commands:";
    for (std::size_t i = 0; i < commands.size(); ++i) out += "\n(" + std::to_string(i + 1) + ") " + commands[i];
    return out;
}

// ---- small string helpers ------------------------------------------------------------------

/// Python's ASCII whitespace: space, tab, newline, CR, VT, FF.
inline bool is_space(char c) noexcept { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

/// `s` without leading and trailing is_space() characters (Python's str.strip()).
inline std::string_view strip(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}
/// `s` without leading is_space() characters.
inline std::string_view lstrip(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    return s;
}
/// `s` without trailing is_space() characters.
inline std::string_view rstrip(std::string_view s) noexcept {
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

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

namespace detail {

/// A small recursive lexer for bash's top-level structure: quotes, $( ), ` `, ${ }, $(( )),
/// heredocs, backslash-newline, comments, and the compound keywords. It does not build a tree;
/// it records where top-level commands start and where unquoted `\;`-style escapes are.
class BashScanner {
public:
    explicit BashScanner(std::string_view s) : s_(s) {}

    bool run() {
        ok_ = true;
        if (!parse_list(false)) return false;
        return ok_ && i_ >= s_.size();
    }
    const std::vector<std::size_t>& starts() const noexcept { return starts_; }
    const std::vector<std::size_t>& escapes() const noexcept { return escapes_; }

private:
    enum class Frame { if_, loop, case_, brace };
    enum class CaseState { subject, in, pattern, body };
    struct Word {
        std::string_view raw;
        std::string value;  // quotes removed (used for heredoc delimiters)
        bool quoted = false;
    };
    struct Heredoc {
        std::string delim;
        bool strip_tabs;
    };

    static constexpr int max_depth = 256;

    std::string_view s_;
    std::size_t i_ = 0;
    bool ok_ = true;
    int depth_ = 0;        // recursion depth (parse_list / substitutions)
    int subst_depth_ = 0;  // inside $( ), ` `, "..." : escapes there are left alone
    std::vector<Heredoc> heredocs_;
    std::vector<std::size_t> starts_;
    std::vector<std::size_t> escapes_;

    bool fail() {
        ok_ = false;
        return false;
    }
    char at(std::size_t k) const noexcept { return k < s_.size() ? s_[k] : '\0'; }
    bool eof() const noexcept { return i_ >= s_.size(); }

    static bool is_meta(char c) noexcept {
        return c == ' ' || c == '\t' || c == '\n' || c == ';' || c == '&' || c == '|' || c == '(' || c == ')' ||
               c == '<' || c == '>' || c == '\r';
    }

    void skip_blanks() {
        while (!eof()) {
            const char c = s_[i_];
            if (c == ' ' || c == '\t' || c == '\r') {
                ++i_;
            } else if (c == '\\' && at(i_ + 1) == '\n') {
                i_ += 2;
            } else {
                break;
            }
        }
    }

    void read_heredoc_bodies() {
        for (const auto& h : heredocs_) {
            while (!eof()) {
                const auto nl = s_.find('\n', i_);
                const auto end = nl == std::string_view::npos ? s_.size() : nl;
                auto line = s_.substr(i_, end - i_);
                if (h.strip_tabs) {
                    while (!line.empty() && line.front() == '\t') line.remove_prefix(1);
                }
                if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
                i_ = nl == std::string_view::npos ? s_.size() : nl + 1;
                if (line == h.delim) break;
            }
        }
        heredocs_.clear();
    }

    bool scan_single_quote(Word& w) {
        const auto close = s_.find('\'', i_ + 1);
        if (close == std::string_view::npos) return fail();
        w.value.append(s_.substr(i_ + 1, close - i_ - 1));
        i_ = close + 1;
        return true;
    }

    bool scan_ansi_c_quote() {  // at $'
        i_ += 2;
        while (!eof()) {
            if (s_[i_] == '\\') {
                i_ += 2;
            } else if (s_[i_] == '\'') {
                ++i_;
                return true;
            } else {
                ++i_;
            }
        }
        return fail();
    }

    bool scan_backtick() {
        ++i_;
        ++subst_depth_;
        while (!eof()) {
            if (s_[i_] == '\\') {
                i_ += 2;
            } else if (s_[i_] == '`') {
                ++i_;
                --subst_depth_;
                return true;
            } else {
                ++i_;
            }
        }
        return fail();
    }

    bool scan_dollar() {  // at '$'
        const char n = at(i_ + 1);
        if (n == '(' && at(i_ + 2) == '(') {
            i_ += 3;
            return scan_arith();
        }
        if (n == '(') {
            i_ += 2;
            ++subst_depth_;
            const bool r = parse_list(true);
            --subst_depth_;
            return r;
        }
        if (n == '{') {
            i_ += 2;
            return scan_param();
        }
        if (n == '\'') return scan_ansi_c_quote();
        ++i_;
        return true;
    }

    bool scan_double_quote(Word* w) {  // at '"'
        ++i_;
        ++subst_depth_;
        while (!eof()) {
            const char c = s_[i_];
            if (c == '"') {
                ++i_;
                --subst_depth_;
                return true;
            }
            if (c == '\\') {
                if (w && i_ + 1 < s_.size()) w->value += s_[i_ + 1];
                i_ += 2;
            } else if (c == '$') {
                if (!scan_dollar()) return false;
            } else if (c == '`') {
                if (!scan_backtick()) return false;
            } else {
                if (w) w->value += c;
                ++i_;
            }
        }
        return fail();
    }

    bool scan_param() {  // after "${"
        if (++depth_ > max_depth) return fail();
        int depth = 1;
        while (!eof()) {
            const char c = s_[i_];
            if (c == '\\') {
                i_ += 2;
            } else if (c == '\'') {
                Word tmp;
                if (!scan_single_quote(tmp)) return false;
            } else if (c == '"') {
                if (!scan_double_quote(nullptr)) return false;
            } else if (c == '`') {
                if (!scan_backtick()) return false;
            } else if (c == '$') {
                if (!scan_dollar()) return false;
            } else if (c == '{') {
                ++depth;
                ++i_;
            } else if (c == '}') {
                ++i_;
                if (--depth == 0) {
                    --depth_;
                    return true;
                }
            } else {
                ++i_;
            }
        }
        return fail();
    }

    bool scan_arith() {  // after "$((" or "(("; ends at the matching "))"
        if (++depth_ > max_depth) return fail();
        int depth = 0;
        while (!eof()) {
            const char c = s_[i_];
            if (c == '(') {
                ++depth;
                ++i_;
            } else if (c == ')') {
                if (depth == 0) {
                    if (at(i_ + 1) != ')') return fail();
                    i_ += 2;
                    --depth_;
                    return true;
                }
                --depth;
                ++i_;
            } else if (c == '$') {
                if (!scan_dollar()) return false;
            } else if (c == '"') {
                if (!scan_double_quote(nullptr)) return false;
            } else if (c == '\'') {
                Word tmp;
                if (!scan_single_quote(tmp)) return false;
            } else if (c == '`') {
                if (!scan_backtick()) return false;
            } else if (c == '\\') {
                i_ += 2;
            } else {
                ++i_;
            }
        }
        return fail();
    }

    bool scan_balanced_parens(Word& w) {  // a=( ... ) or @( ... ) inside a word
        int depth = 0;
        const std::size_t start = i_;
        while (!eof()) {
            const char c = s_[i_];
            if (c == '(') {
                ++depth;
                ++i_;
            } else if (c == ')') {
                ++i_;
                if (--depth == 0) {
                    w.value.append(s_.substr(start, i_ - start));
                    return true;
                }
            } else if (c == '\\') {
                i_ += 2;
            } else if (c == '\'') {
                if (!scan_single_quote(w)) return false;
            } else if (c == '"') {
                if (!scan_double_quote(nullptr)) return false;
            } else if (c == '$') {
                if (!scan_dollar()) return false;
            } else if (c == '`') {
                if (!scan_backtick()) return false;
            } else {
                ++i_;
            }
        }
        return fail();
    }

    bool scan_word(Word& w) {
        const std::size_t start = i_;
        while (!eof()) {
            const char c = s_[i_];
            if (is_meta(c)) {
                if (c == '(' && i_ > start) {
                    const char prev = s_[i_ - 1];
                    if (prev == '=' || prev == '@' || prev == '!' || prev == '?' || prev == '*' || prev == '+') {
                        if (!scan_balanced_parens(w)) return false;
                        continue;
                    }
                }
                break;
            }
            if (c == '\\') {
                const char n = at(i_ + 1);
                if (n == '\n') {
                    i_ += 2;
                    continue;
                }
                if (subst_depth_ == 0 && (n == ';' || n == '&' || n == '|' || n == '>' || n == '<')) escapes_.push_back(i_);
                if (i_ + 1 < s_.size()) w.value += n;
                w.quoted = true;
                i_ += (i_ + 1 < s_.size()) ? 2 : 1;
            } else if (c == '\'') {
                w.quoted = true;
                if (!scan_single_quote(w)) return false;
            } else if (c == '"') {
                w.quoted = true;
                if (!scan_double_quote(&w)) return false;
            } else if (c == '`') {
                w.quoted = true;
                if (!scan_backtick()) return false;
            } else if (c == '$') {
                const char n = at(i_ + 1);
                if (n == '(' || n == '{' || n == '\'' || n == '"') w.quoted = true;
                if (n == '"') {
                    ++i_;
                    continue;
                }
                if (!scan_dollar()) return false;
            } else {
                w.value += c;
                ++i_;
            }
        }
        w.raw = s_.substr(start, i_ - start);
        return ok_;
    }

    bool scan_dbracket() {  // after the "[[" word: up to the "]]" word; operators are not special inside
        while (true) {
            while (!eof() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
            skip_blanks();
            if (eof()) return fail();
            const char c = s_[i_];
            if (c == '(' || c == ')' || c == '<' || c == '>' || c == '&' || c == '|' || c == ';') {
                ++i_;
                continue;
            }
            Word w;
            if (!scan_word(w)) return false;
            if (!w.quoted && w.raw == "]]") return true;
            if (w.raw.empty()) ++i_;
        }
    }

    bool scan_redirect(bool& consumed_heredoc) {
        consumed_heredoc = false;
        const char c = s_[i_];
        if (c == '<' && at(i_ + 1) == '<' && at(i_ + 2) == '<') {
            i_ += 3;
        } else if (c == '<' && at(i_ + 1) == '<') {
            const bool strip_tabs = at(i_ + 2) == '-';
            i_ += strip_tabs ? 3 : 2;
            skip_blanks();
            Word w;
            if (eof() || is_meta(s_[i_]) || !scan_word(w) || w.raw.empty()) return fail();
            heredocs_.push_back({w.value, strip_tabs});
            consumed_heredoc = true;
            return true;
        } else if ((c == '<' || c == '>') && at(i_ + 1) == '(') {
            i_ += 2;
            ++subst_depth_;
            const bool r = parse_list(true);
            --subst_depth_;
            return r;
        } else {
            ++i_;
            const char n = at(i_);
            if ((c == '>' && (n == '>' || n == '|' || n == '&')) || (c == '<' && (n == '&' || n == '>'))) ++i_;
        }
        skip_blanks();
        if (eof()) return fail();
        if (is_meta(s_[i_])) return fail();
        Word w;
        return scan_word(w);
    }

    /// Parses a command list. `in_parens`: ends at an unmatched ')' (consumed), else at end of input.
    bool parse_list(bool in_parens) {
        if (++depth_ > max_depth) return fail();
        const bool top = depth_ == 1;
        std::vector<Frame> frames;
        std::vector<CaseState> cases;  // one per Frame::case_
        bool cmd_pos = true;
        bool cont = false;       // the list continues on the next line (after | && || or "f()")
        bool have_cmd = false;   // top level: a command has started
        bool need_split = false; // top level: a newline ended the current command
        bool last_word = false;

        auto begin_command = [&](std::size_t pos) {
            if (top && frames.empty()) {
                if (need_split && have_cmd) starts_.push_back(pos);
                need_split = false;
                have_cmd = true;
            }
        };
        auto case_state = [&]() -> CaseState* {
            return (!frames.empty() && frames.back() == Frame::case_) ? &cases.back() : nullptr;
        };

        while (true) {
            skip_blanks();
            if (eof()) break;
            const std::size_t tok = i_;
            const char c = s_[i_];
            if (c == '#') {
                while (!eof() && s_[i_] != '\n') ++i_;
                continue;
            }
            if (c == '\n') {
                ++i_;
                read_heredoc_bodies();
                last_word = false;
                if (!cont) {
                    if (auto* cs = case_state(); !cs || *cs == CaseState::body || *cs == CaseState::pattern) cmd_pos = true;
                    if (top && frames.empty() && have_cmd) need_split = true;
                }
                continue;
            }
            last_word = false;
            if (c == ';') {
                if (at(i_ + 1) == ';' || at(i_ + 1) == '&') {
                    auto* cs = case_state();
                    if (!cs || *cs != CaseState::body) return fail();
                    i_ += (at(i_ + 1) == ';' && at(i_ + 2) == '&') ? 3 : 2;
                    *cs = CaseState::pattern;
                    cmd_pos = true;
                    cont = false;
                    continue;
                }
                if (cont) return fail();
                ++i_;
                cmd_pos = true;
                continue;
            }
            if (c == '&') {
                if (at(i_ + 1) == '&') {
                    i_ += 2;
                    cont = true;
                    cmd_pos = true;
                    continue;
                }
                if (at(i_ + 1) == '>') {
                    if (cmd_pos) begin_command(tok);
                    ++i_;  // "&>" / "&>>": the '>' part is a redirect
                    bool heredoc = false;
                    if (!scan_redirect(heredoc)) return false;
                    continue;
                }
                if (cont) return fail();
                ++i_;
                cmd_pos = true;
                continue;
            }
            if (c == '|') {
                if (auto* cs = case_state(); cs && *cs == CaseState::pattern) {
                    ++i_;
                    continue;
                }
                i_ += (at(i_ + 1) == '|' || at(i_ + 1) == '&') ? 2 : 1;
                cont = true;
                cmd_pos = true;
                continue;
            }
            if (c == '<' || c == '>') {
                if (cmd_pos) begin_command(tok);
                bool heredoc = false;
                if (!scan_redirect(heredoc)) return false;
                cont = false;
                continue;
            }
            if (c == '(') {
                if (auto* cs = case_state(); cs && *cs == CaseState::pattern) {
                    ++i_;
                    continue;
                }
                if (cmd_pos) {
                    begin_command(tok);
                    if (at(i_ + 1) == '(') {
                        i_ += 2;
                        if (!scan_arith()) return false;
                    } else {
                        ++i_;
                        if (!parse_list(true)) return false;
                    }
                    cmd_pos = false;
                    cont = false;
                    continue;
                }
                return fail();
            }
            if (c == ')') {
                if (auto* cs = case_state(); cs && *cs == CaseState::pattern) {
                    ++i_;
                    *cs = CaseState::body;
                    cmd_pos = true;
                    continue;
                }
                if (in_parens && frames.empty() && !cont) {
                    ++i_;
                    --depth_;
                    return true;
                }
                return fail();
            }

            Word w;
            if (!scan_word(w)) return false;
            if (w.raw.empty()) return fail();
            const bool kw = !w.quoted;
            const auto text = w.raw;

            // "name ( )": a function definition; its body may follow on the next line
            if (!eof() && cmd_pos && kw) {
                std::size_t k = i_;
                while (k < s_.size() && (s_[k] == ' ' || s_[k] == '\t')) ++k;
                if (at(k) == '(') {
                    std::size_t m = k + 1;
                    while (m < s_.size() && (s_[m] == ' ' || s_[m] == '\t')) ++m;
                    if (at(m) == ')') {
                        begin_command(tok);
                        i_ = m + 1;
                        cont = true;
                        cmd_pos = true;
                        continue;
                    }
                }
            }

            if (auto* cs = case_state(); cs && *cs != CaseState::body) {
                if (*cs == CaseState::subject) {
                    *cs = CaseState::in;
                } else if (*cs == CaseState::in) {
                    if (!(kw && text == "in")) return fail();
                    *cs = CaseState::pattern;
                    cmd_pos = true;
                } else if (kw && text == "esac") {
                    frames.pop_back();
                    cases.pop_back();
                    cmd_pos = false;
                }
                continue;
            }

            if (cmd_pos && kw) {
                if (text == "if" || text == "while" || text == "until") {
                    begin_command(tok);
                    frames.push_back(text == "if" ? Frame::if_ : Frame::loop);
                    cont = false;
                    continue;
                }
                if (text == "for" || text == "select") {
                    begin_command(tok);
                    frames.push_back(Frame::loop);
                    skip_blanks();
                    if (at(i_) == '(' && at(i_ + 1) == '(') {
                        i_ += 2;
                        if (!scan_arith()) return false;
                    }
                    cmd_pos = false;
                    cont = false;
                    continue;
                }
                if (text == "case") {
                    begin_command(tok);
                    frames.push_back(Frame::case_);
                    cases.push_back(CaseState::subject);
                    cmd_pos = false;
                    cont = false;
                    continue;
                }
                if (text == "then" || text == "else" || text == "elif" || text == "do") {
                    if (frames.empty()) return fail();
                    cont = false;
                    continue;
                }
                if (text == "fi" || text == "done" || text == "}") {
                    const Frame want = text == "fi" ? Frame::if_ : text == "done" ? Frame::loop : Frame::brace;
                    if (frames.empty() || frames.back() != want) return fail();
                    frames.pop_back();
                    cmd_pos = false;
                    continue;
                }
                if (text == "esac") {
                    auto* cs = case_state();
                    if (!cs || *cs != CaseState::body) return fail();
                    frames.pop_back();
                    cases.pop_back();
                    cmd_pos = false;
                    continue;
                }
                if (text == "{") {
                    begin_command(tok);
                    frames.push_back(Frame::brace);
                    cont = false;
                    continue;
                }
                if (text == "[[") {
                    begin_command(tok);
                    if (!scan_dbracket()) return false;
                    cmd_pos = false;
                    cont = false;
                    continue;
                }
                if (text == "!" || text == "time") {
                    begin_command(tok);
                    continue;
                }
                if (text == "function") {
                    begin_command(tok);
                    skip_blanks();
                    Word name;
                    if (eof() || is_meta(s_[i_]) || !scan_word(name)) return fail();
                    skip_blanks();
                    if (at(i_) == '(') {
                        ++i_;
                        skip_blanks();
                        if (at(i_) != ')') return fail();
                        ++i_;
                    }
                    cont = true;
                    cmd_pos = true;
                    continue;
                }
            }
            if (cmd_pos) begin_command(tok);
            cmd_pos = false;
            cont = false;
            last_word = true;
        }
        (void)last_word;
        if (cont || !frames.empty() || in_parens) return fail();
        --depth_;
        return true;
    }
};

}  // namespace detail

/// Splits input into top-level commands (one per line-separated command; heredocs, multi-line
/// compound commands, `\`-continuations, &&/;/| chains and comments stay with their command).
/// Blank input gives {""}; input that does not parse is returned whole, as one command.
inline std::vector<std::string> split_bash_commands(std::string_view commands) {
    if (strip(commands).empty()) return {std::string()};
    detail::BashScanner scanner(commands);
    if (!scanner.run()) return {std::string(commands)};
    std::vector<std::string> out;
    std::size_t begin = 0;
    auto push = [&](std::size_t end) {
        auto piece = rstrip(commands.substr(begin, end - begin));
        while (!piece.empty() && is_space(piece.front())) piece.remove_prefix(1);
        if (!piece.empty()) out.emplace_back(piece);
    };
    for (const auto start : scanner.starts()) {
        push(start);
        begin = start;
    }
    push(commands.size());
    if (out.empty()) out.emplace_back(commands);
    return out;
}

/// The reference's escaping of unquoted `\;` `\&` `\|` `\>` `\<` (each becomes `\\;` ...); quoted
/// strings, $( ), backticks and heredoc bodies are untouched. Unparseable input is returned as is.
/// (In OpenHands the doubled backslash is eaten by tmux; runbox types the original command and
/// only reports this escaped text in the observation's `command` field, reference quirk 7.)
inline std::string escape_bash_special_chars(std::string_view command) {
    if (strip(command).empty()) return {};
    detail::BashScanner scanner(command);
    if (!scanner.run()) return std::string(command);
    std::string out;
    out.reserve(command.size() + scanner.escapes().size());
    std::size_t last = 0;
    for (const auto pos : scanner.escapes()) {
        out.append(command.substr(last, pos - last));
        out += '\\';
        last = pos;
    }
    out.append(command.substr(last));
    return out;
}

// ---- prompt metadata ------------------------------------------------------------------------

/// Parses the JSON inside one prompt block; nullopt when it is not a JSON object. The fields are
/// read by events.hpp's cmd_output_metadata_from_json (the one CmdOutputMetadata reader); a
/// prompt never sets prefix or suffix.
inline std::optional<CmdOutputMetadata> parse_prompt_json(std::string_view inner) {
    const auto text = strip(inner);
    ordered_json j = runbox::detail::parse_untrusted_json<ordered_json>(text);  // the shell's output is untrusted
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    CmdOutputMetadata m = cmd_output_metadata_from_json(j);
    m.prefix.clear();
    m.suffix.clear();
    return m;
}

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
    std::optional<PromptBlock> next(std::string_view text) {
        const std::string& b = markers_.begin;
        const std::string& e = markers_.end;
        while (true) {
            if (next_begin_ == npos) next_begin_ = find(text, b, begin_cursor_);
            if (next_end_ == npos) next_end_ = find(text, e, end_cursor_);
            if (next_begin_ == npos && next_end_ == npos) return std::nullopt;
            if (next_begin_ != npos && (next_end_ == npos || next_begin_ < next_end_)) {
                if (next_begin_ == 0 || text[next_begin_ - 1] == '\n') open_ = next_begin_;
                begin_cursor_ = next_begin_ + 1;
                next_begin_ = npos;
                continue;
            }
            const std::size_t end_pos = next_end_;
            end_cursor_ = end_pos + e.size();
            next_end_ = npos;
            const auto start = open_;
            open_.reset();
            if (!start || *start + b.size() > end_pos || end_pos - *start - b.size() > max_inner) continue;
            if (auto m = parse_prompt_json(text.substr(*start + b.size(), end_pos - *start - b.size())))
                return PromptBlock{*start, end_pos + e.size(), std::move(*m)};
        }
    }

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
inline std::vector<PromptBlock> find_prompt_blocks(std::string_view text, const PromptMarkers& markers = {}) {
    std::vector<PromptBlock> out;
    PromptScanner scanner(markers);
    while (auto b = scanner.next(text)) out.push_back(std::move(*b));
    return out;
}

// ---- terminal output cleanup ------------------------------------------------------------------

namespace detail {

/// Length of the escape sequence starting at s[i] (== ESC); `complete` is false when the input
/// ends before the sequence does (the length then runs to the end).
inline std::size_t escape_length(std::string_view s, std::size_t i, bool* complete = nullptr) {
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

/// Renders raw terminal output as text: CRLF -> LF, a bare CR returns to the line start and
/// later text overwrites (progress bars), backspace moves left, ANSI escape sequences and other
/// control characters are dropped, invalid UTF-8 becomes U+FFFD.
inline std::string render_terminal_output(std::string_view raw) {
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

/// How many trailing bytes of a live stream to hold back because they may be completed by the
/// next read: an unterminated escape sequence, a CR (maybe the first half of CRLF), a partial
/// UTF-8 sequence, or the beginning of a prompt block.
inline std::size_t incomplete_tail(std::string_view raw, const PromptMarkers& markers = {}) {
    const std::string_view begin_marker = markers.begin, end_marker = markers.end;
    std::size_t cut = raw.size();
    // the start of a prompt block whose end has not arrived yet
    const auto line_start = raw.rfind('\n');
    const std::size_t last_line = line_start == std::string_view::npos ? 0 : line_start + 1;
    const auto last = raw.substr(last_line);
    if (!last.empty() && last.size() < begin_marker.size() && begin_marker.substr(0, last.size()) == last)
        cut = std::min(cut, last_line);
    for (auto p = raw.rfind(begin_marker); p != std::string_view::npos;) {
        if (p == 0 || raw[p - 1] == '\n') {
            if (raw.find(end_marker, p) == std::string_view::npos) cut = std::min(cut, p);
            break;
        }
        if (p == 0) break;
        p = raw.rfind(begin_marker, p - 1);
    }
    // an escape sequence without its final byte
    const std::size_t window = raw.size() > 4096 ? raw.size() - 4096 : 0;
    for (std::size_t k = raw.size(); k > window; --k) {
        if (raw[k - 1] == '\x1b') {
            bool complete = true;
            detail::escape_length(raw, k - 1, &complete);
            if (!complete) cut = std::min(cut, k - 1);
            break;
        }
    }
    // CR that may be the first half of CRLF
    if (!raw.empty() && raw.back() == '\r') cut = std::min(cut, raw.size() - 1);
    // a partial UTF-8 sequence
    for (std::size_t back = 1; back <= 3 && back <= raw.size(); ++back) {
        const auto b = static_cast<unsigned char>(raw[raw.size() - back]);
        if ((b & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
        std::size_t need = 0;
        if ((b & 0xE0) == 0xC0) need = 2;
        else if ((b & 0xF0) == 0xE0) need = 3;
        else if ((b & 0xF8) == 0xF0) need = 4;
        if (need > back) cut = std::min(cut, raw.size() - back);
        break;
    }
    return raw.size() - cut;
}

/// Python's len(text.splitlines()) for '\n'-separated text.
inline std::size_t count_lines(std::string_view text) {
    if (text.empty()) return 0;
    std::size_t n = 0;
    for (const char c : text) n += c == '\n';
    if (text.back() != '\n') ++n;
    return n;
}

}  // namespace runbox::server::bash
