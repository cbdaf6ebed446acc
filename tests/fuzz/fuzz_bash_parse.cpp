// libFuzzer harness: the text-level bash pieces the shell session runs on untrusted text:
// splitting a command into top-level commands, the `\;` escaping, the prompt blocks (their JSON
// and the scan for them), and the terminal-output cleanup applied to whatever a command prints.
#include "runbox/server/bash_parse.hpp"

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace bash = runbox::server::bash;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);

    const auto commands = bash::split_bash_commands(text);
    if (commands.empty()) {
        std::fprintf(stderr, "split_bash_commands returned no command\n");
        std::abort();
    }
    for (const auto& command : commands) {
        (void)bash::escape_bash_special_chars(command);
        (void)bash::remove_command_prefix(text, command);
    }

    (void)bash::parse_prompt_json(text);
    for (const auto& block : bash::find_prompt_blocks(text)) {
        if (block.begin >= block.end || block.end > text.size()) {
            std::fprintf(stderr, "prompt block [%zu, %zu) outside the text\n", block.begin, block.end);
            std::abort();
        }
    }
    const std::string rendered = bash::render_terminal_output(text);
    (void)bash::count_lines(rendered);
    if (bash::incomplete_tail(text) > text.size()) {
        std::fprintf(stderr, "incomplete_tail is longer than its input\n");
        std::abort();
    }
    return 0;
}
