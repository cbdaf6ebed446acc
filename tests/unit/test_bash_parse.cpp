// Text-level bash helpers: command splitting, the `\;` escaping quirk, prompt metadata blocks,
// the fixed observation texts and terminal-output rendering. Ported from the reference's
// test_bash_parsing.py and test_bash_ps1_metadata.py (behaviours, not code).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "catch.hpp"
#include "runbox/server/bash_parse.hpp"

namespace test_bash_parse {  // several files share a unit (tests/CMakeLists.txt)

using namespace runbox::server::bash;
using runbox::CmdOutputMetadata;

namespace {
std::string join(const std::vector<std::string>& v, const std::string& sep) {
    std::string out;
    for (std::size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
    return out;
}
}  // namespace

TEST_CASE("split: each of a list of multi-line commands comes back intact (test_split_commands_util)") {
    const std::vector<std::string> cmds = {
        "ls -l",
        "echo -e \"hello\nworld\"",
        "echo -e \"hello it\\'s me\"",
        "echo \\\n    -e 'hello' \\\n    -v",
        "echo -e 'hello\\nworld\\nare\\nyou\\nthere?'",
        "echo -e 'hello\nworld\nare\nyou\\n\nthere?'",
        "echo -e 'hello\nworld \"\n'",
        "kubectl apply -f - <<EOF\napiVersion: v1\nkind: Pod\nmetadata:\n  name: busybox-sleep\nspec:\n  containers:\n  - "
        "name: busybox\n    image: busybox:1.28\n    args:\n    - sleep\n    - \"1000000\"\nEOF",
        "mkdir -p _modules && \\\nfor month in {01..04}; do\n    for day in {01..05}; do\n        touch "
        "\"_modules/2024-${month}-${day}-sample.md\"\n    done\ndone",
    };
    const auto split = split_bash_commands(join(cmds, "\n"));
    REQUIRE(split.size() == cmds.size());
    for (std::size_t i = 0; i < cmds.size(); ++i) CHECK(split[i] == cmds[i]);
}

TEST_CASE("split: single commands stay single") {
    for (const std::string c : {"ls", "pwd", "echo \"Hello, World!\"", "cd /home/user", "touch file.txt",
                                "rm -rf temp_folder", "mkdir new_directory", "a && b || c | d; e &",
                                "echo $(echo a\necho b)", "echo `echo a; echo b`", "x=$((1 + (2*3)))",
                                "arr=(a b\nc) && echo ${arr[@]}", "[[ -n \"$x\" && $y =~ ^(a|b)$ ]] && echo ok"}) {
        const auto split = split_bash_commands(c);
        REQUIRE(split.size() == 1);
        CHECK(split[0] == c);
    }
}

TEST_CASE("split: heredocs") {
    const std::string heredoc = "cat <<EOF\nmultiline\ntext\nEOF";
    CHECK(split_bash_commands(heredoc) == std::vector<std::string>{heredoc});
    const std::string quoted = "cat <<'END' > f.txt\n$(not run) `x` \"unbalanced\nEND";
    CHECK(split_bash_commands(quoted) == std::vector<std::string>{quoted});
    const std::string tabs = "cat <<-EOF\n\tindented\n\tEOF";
    CHECK(split_bash_commands(tabs) == std::vector<std::string>{tabs});
    const auto two = split_bash_commands(heredoc + "\necho after");
    REQUIRE(two.size() == 2);
    CHECK(two[0] == heredoc);
    CHECK(two[1] == "echo after");
    const std::string in_subst = "x=$(cat <<EOF\na)b\nEOF\n)";
    CHECK(split_bash_commands(in_subst).size() == 1);
}

TEST_CASE("split: backslash continuation") {
    const std::string c = "echo \"This is a long \\\ncommand that spans \\\nmultiple lines\"";
    CHECK(split_bash_commands(c) == std::vector<std::string>{c});
    const std::string c2 = "ls \\\n  -l \\\n  -a";
    CHECK(split_bash_commands(c2) == std::vector<std::string>{c2});
}

TEST_CASE("split: comments stay with the previous command") {
    const auto split = split_bash_commands("\necho \"Hello\" # This is a comment\n# This is another comment\nls -l\n");
    REQUIRE(split.size() == 2);
    CHECK(split[0] == "echo \"Hello\" # This is a comment\n# This is another comment");
    CHECK(split[1] == "ls -l");
    CHECK(split_bash_commands("echo a # ; echo b\n").size() == 1);
    CHECK(split_bash_commands("# just a comment\necho hi").size() == 1);
}

TEST_CASE("split: complex quoting") {
    const std::vector<std::string> cmds = {"echo \"This is a \\\"quoted\\\" string\"",
                                           "echo 'This is a '\\''single-quoted'\\'' string'",
                                           "echo \"Mixed 'quotes' in \\\"double quotes\\\"\""};
    CHECK(split_bash_commands(join(cmds, "\n")) == cmds);
}

TEST_CASE("split: invalid syntax returns the input unchanged") {
    for (const std::string c : {"echo \"Unclosed quote", "echo 'Another unclosed quote", "ls -l |", "echo `unclosed",
                                "echo $(unclosed", "if true; then echo x", "for i in 1; do echo\necho", "done",
                                "echo a\n)", "case x in a) echo;;"}) {
        CHECK(split_bash_commands(c) == std::vector<std::string>{c});
    }
}

TEST_CASE("split: multi-line compound commands are one command each") {
    const std::string loop = "for i in 1 2 3; do\n  echo $i\ndone";
    const std::string cond = "if [ -f x ]; then\n  echo yes\nelif true; then\n  echo maybe\nelse\n  echo no\nfi";
    const std::string cases = "case \"$x\" in\n  a|b) echo ab;;\n  (c) echo c\n    ;;\n  *) echo other\nesac";
    const std::string group = "{\n  echo a\n  echo b\n} > out.txt";
    const std::string sub = "(\n  cd /tmp\n  ls\n)";
    const std::string func = "f() {\n  echo in f\n}";
    const std::string func2 = "function g\n{\n  echo g\n}";
    const std::string whiles = "while read -r line; do\n  echo \"$line\"\ndone < input.txt";
    const std::string pipe = "cat file |\n  grep x &&\n  echo found";
    for (const auto& c : {loop, cond, cases, group, sub, func, func2, whiles, pipe}) {
        CHECK(split_bash_commands(c) == std::vector<std::string>{c});
    }
    const auto all = split_bash_commands(loop + "\n" + cond + "\n" + cases + "\n" + group + "\n" + sub + "\n" + func);
    CHECK(all == std::vector<std::string>{loop, cond, cases, group, sub, func});
}

TEST_CASE("split: commands separated by newlines are split, blank input gives one empty command") {
    CHECK(split_bash_commands("echo a\necho b") == std::vector<std::string>{"echo a", "echo b"});
    CHECK(split_bash_commands("a;\nb") == std::vector<std::string>{"a;", "b"});
    CHECK(split_bash_commands("sleep 1 &\necho x") == std::vector<std::string>{"sleep 1 &", "echo x"});
    CHECK(split_bash_commands("   \n  ") == std::vector<std::string>{""});
    CHECK(split_bash_commands("echo a\n\n\n") == std::vector<std::string>{"echo a"});
}

TEST_CASE("split: blanks are Python's str.strip() whitespace, the C0 separators too") {
    // The reference strips with str.strip(): "\x1c".."\x1f" are whitespace to it, as to the editor.
    CHECK(split_bash_commands("\x1c\x1f \x0b") == std::vector<std::string>{""});
    CHECK(split_bash_commands("\x1e" " echo a \x1f\necho b\x1c") == std::vector<std::string>{"echo a", "echo b"});
    CHECK(is_special_key("\x1d" "C-c\x1f"));
}

TEST_CASE("multiple-commands error text") {
    CHECK(multiple_commands_error({"ls", "pwd"}) ==
          "ERROR: Cannot execute multiple commands at once.\nPlease run each command separately OR chain them into a "
          "single command via && or ;\nProvided commands:\n(1) ls\n(2) pwd");
}

TEST_CASE("escape_bash_special_chars (test_escape_bash_special_chars)") {
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"echo test \\; ls", "echo test \\\\; ls"},
        {"grep pattern \\| sort", "grep pattern \\\\| sort"},
        {"cmd1 \\&\\& cmd2", "cmd1 \\\\&\\\\& cmd2"},
        {"cat file \\> output.txt", "cat file \\\\> output.txt"},
        {"cat \\< input.txt", "cat \\\\< input.txt"},
        {"echo \"test \\; unchanged\"", "echo \"test \\; unchanged\""},
        {"echo 'test \\| unchanged'", "echo 'test \\| unchanged'"},
        {"echo \"quoted \\;\" \\; \"more\" \\| grep", "echo \"quoted \\;\" \\\\; \"more\" \\\\| grep"},
        {"cmd1 \\;\\|\\& cmd2", "cmd1 \\\\;\\\\|\\\\& cmd2"},
        {"echo test\\ntest", "echo test\\ntest"},
        {"echo \"test\\ntest\"", "echo \"test\\ntest\""},
        {"", ""},
        {"\\\\", "\\\\"},
        {"\\\"", "\\\""},
        {"find /tmp -name x -exec grep -l y {} \\;", "find /tmp -name x -exec grep -l y {} \\\\;"},
        {"echo $(echo a \\; b)", "echo $(echo a \\; b)"},
        {"cat <<EOF\na \\; b\nEOF", "cat <<EOF\na \\; b\nEOF"},
        {"echo \"unclosed \\;", "echo \"unclosed \\;"},
    };
    for (const auto& [in, want] : cases) {
        INFO(in);
        CHECK(escape_bash_special_chars(in) == want);
    }
}

TEST_CASE("prompt block: parse, numeric coercion, invalid JSON skipped, several blocks") {
    const std::string good =
        "output\n###PS1JSON###\n{\"pid\": \"\", \"exit_code\": \"0\", \"username\": \"me\", \"hostname\": \"h\", "
        "\"working_dir\": \"/w\", \"py_interpreter_path\": \"/usr/bin/python\"}\n###PS1END###\n";
    auto blocks = find_prompt_blocks(good);
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].begin == good.find("###PS1JSON###"));
    CHECK(blocks[0].end == good.find("###PS1END###") + 12);
    const auto& m = blocks[0].metadata;
    CHECK(m.pid == -1);
    CHECK(m.exit_code == 0);
    CHECK(m.username == "me");
    CHECK(m.hostname == "h");
    CHECK(m.working_dir == "/w");
    CHECK(m.py_interpreter_path == "/usr/bin/python");

    const std::string multi =
        "###PS1JSON###\n{\"exit_code\": \"1\", \"pid\": \"42\"}\n###PS1END###\nmiddle\n###PS1JSON###\nnot json\n###PS1END###\n"
        "###PS1JSON###\n{\"exit_code\": \"2.7\", \"pid\": 7}\n###PS1END###";
    blocks = find_prompt_blocks(multi);
    REQUIRE(blocks.size() == 2);
    CHECK(blocks[0].metadata.exit_code == 1);
    CHECK(blocks[0].metadata.pid == 42);
    CHECK(blocks[1].metadata.exit_code == 2);
    CHECK(blocks[1].metadata.pid == 7);

    // the marker must start a line; a stray start marker does not swallow the real block
    CHECK(find_prompt_blocks("x ###PS1JSON###\n{}\n###PS1END###").empty());
    blocks = find_prompt_blocks("###PS1JSON### printed by a program\n###PS1JSON###\n{\"exit_code\": \"3\"}\n###PS1END###");
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].metadata.exit_code == 3);
    CHECK(find_prompt_blocks("###PS1JSON###\n{\"exit_code\": \"0\"}\n").empty());  // no end marker yet
}

TEST_CASE("prompt numeric coercion follows int(float(str(x))), failures give -1") {
    // one reader for CmdOutputMetadata: the prompt's JSON goes through events.hpp's
    const auto exit_code = [](const std::string& value) {
        return parse_prompt_json("{\"exit_code\": " + value + "}")->exit_code;
    };
    CHECK(exit_code("\"127\"") == 127);
    CHECK(exit_code("\"1.9\"") == 1);
    CHECK(exit_code("\" 5 \"") == 5);
    CHECK(exit_code("\"-3\"") == -3);
    CHECK(exit_code("4.5") == 4);
    CHECK(exit_code("\"\"") == -1);
    CHECK(exit_code("\"abc\"") == -1);
    CHECK(exit_code("\"1e400\"") == -1);
    CHECK(exit_code("\"0x10\"") == -1);
    CHECK(exit_code("null") == -1);
    CHECK(parse_prompt_json("[1, 2]") == std::nullopt);
    CHECK(parse_prompt_json("{\"exit_code\": \"x\"}")->exit_code == -1);
    CHECK(parse_prompt_json("{\"exit_code\": \"0\", \"suffix\": \"forged\"}")->suffix.empty());
}

TEST_CASE("observation texts: suffixes, prefixes, python float formatting") {
    using runbox::detail::python_float;
    CHECK(python_float(1.0) == "1.0");
    CHECK(python_float(2.5) == "2.5");
    CHECK(python_float(120) == "120.0");
    CHECK(python_float(0.1) == "0.1");
    // Python's repr() beyond the common cases (the three formatters this replaced differed here).
    CHECK(python_float(0.1 + 0.2) == "0.30000000000000004");
    CHECK(python_float(1e16) == "1e+16");
    CHECK(python_float(1234567890123456.0) == "1234567890123456.0");
    CHECK(python_float(1.5e300) == "1.5e+300");
    CHECK(python_float(0.0001) == "0.0001");
    CHECK(python_float(0.00001) == "1e-05");
    CHECK(python_float(-2.5e-7) == "-2.5e-07");
    CHECK(python_float(-0.0) == "-0.0");
    CHECK(python_float(100.0) == "100.0");
    CHECK(python_float(123.456) == "123.456");
    CHECK(python_float(std::numeric_limits<double>::infinity()) == "inf");
    CHECK(python_float(-std::numeric_limits<double>::infinity()) == "-inf");
    CHECK(python_float(std::nan("")) == "nan");
    CHECK(runbox::detail::python_str_repr("it's") == "\"it's\"");
    CHECK(runbox::detail::python_str_repr("a'b\"c\n\x01") == "'a\\'b\"c\\n\\x01'");
    CHECK(seconds_text(std::chrono::milliseconds(10000)) == "10");
    CHECK(seconds_text(std::chrono::milliseconds(300)) == "0.3");
    CHECK(completed_suffix(0) == "\n[The command completed with exit code 0.]");
    CHECK(completed_special_key_suffix(130, 'c') == "\n[The command completed with exit code 130. CTRL+C was sent.]");
    CHECK(hard_timeout_suffix(1.0) == "\n[The command timed out after 1.0 seconds. " + std::string(timeout_message) + "]");
    CHECK(no_change_timeout_suffix(std::chrono::seconds(1)) ==
          "\n[The command has no new output after 1 seconds. " + std::string(timeout_message) + "]");
    CHECK(not_executed_suffix("ls").rfind("\n[Your command \"ls\" is NOT executed. The previous command is still running", 0) == 0);
    CHECK(truncated_prefix(10) == "[Previous command outputs are truncated. Showing the last 10 lines of the output below.]\n");
    CHECK(std::string(timeout_message) ==
          "You may wait longer to see additional output by sending empty command '', send other commands to interact "
          "with the current process, send keys (\"C-c\", \"C-z\", \"C-d\") to interrupt/kill the previous command before "
          "sending your new command, or use the timeout parameter in execute_bash for future commands.");
}

TEST_CASE("special keys") {
    CHECK(is_special_key("C-c"));
    CHECK(is_special_key(" C-d "));
    CHECK_FALSE(is_special_key("C-cc"));
    CHECK_FALSE(is_special_key("c-c"));
    CHECK(control_char('c') == '\x03');
    CHECK(control_char('D') == '\x04');
    CHECK(control_char('z') == '\x1a');
    CHECK(control_char('[') == '\x1b');
}

TEST_CASE("terminal rendering: CRLF, carriage-return overwrite, ANSI escapes, invalid UTF-8") {
    CHECK(render_terminal_output("a\r\nb\r\n") == "a\nb\n");
    CHECK(render_terminal_output("abcdef\rXY\n") == "XYcdef\n");
    CHECK(render_terminal_output("50%\r100%") == "100%");
    CHECK(render_terminal_output("\x1b[31mred\x1b[0m \x1b]0;title\x07ok") == "red ok");
    CHECK(render_terminal_output("ab\bc") == "ac");
    CHECK(render_terminal_output("caf\xc3\xa9") == "caf\xc3\xa9");
    CHECK(render_terminal_output("bad\xff!") == "bad\xef\xbf\xbd!");
    CHECK(render_terminal_output("bell\x07!") == "bell!");
}

TEST_CASE("incomplete tail is held back") {
    CHECK(incomplete_tail("abc") == 0);
    CHECK(incomplete_tail("abc\r") == 1);
    CHECK(incomplete_tail("abc\x1b[3") == 3);
    CHECK(incomplete_tail("abc\x1b[31m") == 0);
    CHECK(incomplete_tail("caf\xc3") == 1);
    CHECK(incomplete_tail("out\n###PS1") == 6);
    CHECK(incomplete_tail("out\n###PS1JSON###\n{\"a\":") == std::string("###PS1JSON###\n{\"a\":").size());
}

TEST_CASE("command prefix removal and line counting") {
    CHECK(remove_command_prefix("  ls\nfile", "ls") == "file");
    CHECK(remove_command_prefix("other", "ls") == "other");
    CHECK(count_lines("") == 0);
    CHECK(count_lines("a\nb\n") == 2);
    CHECK(count_lines("a\nb") == 2);
}

TEST_CASE("prompt scanner: a nonce in the markers, blocks with other markers are only text") {
    const auto markers = PromptMarkers::with_nonce("00112233445566778899aabbccddeeff");
    CHECK(markers.begin == "###PS1JSON###00112233445566778899aabbccddeeff");
    CHECK(markers.end == "###PS1END###00112233445566778899aabbccddeeff");
    const std::string text =
        "###PS1JSON###\n{\"exit_code\": \"1\"}\n###PS1END###\n"
        "###PS1JSON###ffffffffffffffffffffffffffffffff\n{\"exit_code\": \"2\"}\n###PS1END###ffffffffffffffffffffffffffffffff\n"
        "###PS1JSON###00112233445566778899aabbccddeeff\n{\"exit_code\": \"3\"}\n###PS1END###00112233445566778899aabbccddeeff\n";
    const auto blocks = find_prompt_blocks(text, markers);
    REQUIRE(blocks.size() == 1);
    CHECK(blocks[0].metadata.exit_code == 3);
    CHECK(blocks[0].begin == text.find(markers.begin));
    CHECK(incomplete_tail("out\n" + markers.begin + "\n{", markers) == markers.begin.size() + 2);
    CHECK(incomplete_tail("out\n###PS1JSON###\n{", markers) == 0);  // another marker is not held back
}

TEST_CASE("prompt scanner: fed in pieces, with text dropped from the front, finds what one pass finds") {
    std::string text;
    for (int i = 0; i < 2000; ++i) {
        text += "x###PS1JSON### not at a line start\n###PS1END###\n";
        if (i % 500 == 0) text += "###PS1JSON###\n{\"exit_code\": \"" + std::to_string(i) + "\"}\n###PS1END###\n";
    }
    const auto whole = find_prompt_blocks(text);
    REQUIRE(whole.size() == 4);
    for (const std::size_t piece : {1U, 7U, 13U, 4096U}) {
        INFO("piece " << piece);
        PromptScanner scanner;
        std::string buffer;
        std::size_t dropped = 0;
        std::vector<int> codes;
        for (std::size_t at = 0; at < text.size(); at += piece) {
            buffer.append(text, at, piece);
            while (auto b = scanner.next(buffer)) {
                CHECK(b->begin + dropped == whole[codes.size()].begin);
                codes.push_back(b->metadata.exit_code);
                buffer.erase(0, b->end);  // what the session does with a completed block
                scanner.erase_front(b->end);
                dropped += b->end;
            }
            const auto end_line = buffer.size() > 3000 ? buffer.find("###PS1END###\n", buffer.size() - 2000) : std::string::npos;
            if (end_line != std::string::npos) {  // history trimming after a complete line (no block is cut)
                const auto cut = end_line + 13;
                buffer.erase(0, cut);
                scanner.erase_front(cut);
                dropped += cut;
            }
        }
        CHECK(codes == std::vector<int>{0, 500, 1000, 1500});
    }
}

}  // namespace test_bash_parse
