#pragma once

#include "runbox/server/bash_parse.hpp"

#include "runbox/detail/json.hpp"

#include <nlohmann/json.hpp>

namespace runbox::server::bash {

RUNBOX_DECL std::string multiple_commands_error(const std::vector<std::string>& commands) {
    std::string out =
        "ERROR: Cannot execute multiple commands at once.\nPlease run each command separately OR chain them into a "
        "single command via && or ;\nProvided commands:";
    for (std::size_t i = 0; i < commands.size(); ++i) out += "\n(" + std::to_string(i + 1) + ") " + commands[i];
    return out;
}

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

RUNBOX_DECL std::vector<std::string> split_bash_commands(std::string_view commands) {
    if (strip(commands).empty()) return {std::string()};
    detail::BashScanner scanner(commands);
    if (!scanner.run()) return {std::string(commands)};
    std::vector<std::string> out;
    std::size_t begin = 0;
    auto push = [&](std::size_t end) {
        auto piece = rstrip(commands.substr(begin, end - begin));
        piece = lstrip(piece);
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

RUNBOX_DECL std::string escape_bash_special_chars(std::string_view command) {
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

RUNBOX_DECL std::optional<CmdOutputMetadata> parse_prompt_json(std::string_view inner) {
    const auto text = strip(inner);
    ordered_json j = runbox::detail::parse_untrusted_json<ordered_json>(text);  // the shell's output is untrusted
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    CmdOutputMetadata m = cmd_output_metadata_from_json(j);
    m.prefix.clear();
    m.suffix.clear();
    return m;
}

RUNBOX_DECL std::optional<PromptBlock> PromptScanner::next(std::string_view text) {
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

RUNBOX_DECL std::vector<PromptBlock> find_prompt_blocks(std::string_view text, const PromptMarkers& markers) {
    std::vector<PromptBlock> out;
    PromptScanner scanner(markers);
    while (auto b = scanner.next(text)) out.push_back(std::move(*b));
    return out;
}

RUNBOX_DECL std::size_t incomplete_tail(std::string_view raw, const PromptMarkers& markers) {
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

}  // namespace runbox::server::bash
