// The prompt scan under marker-heavy output (issue 10, row 9): 48 000 marker-like lines, ~1.3 MB.
//
//   bench_prompt_scan    prints "name median_ms p90_ms n" lines:
//     prompt_scan_1.3MB_4KiB_chunks  PromptScanner fed in 4 KiB pieces, as the PTY delivers them
//                                    (goal: well under 100 ms; it was quadratic, ~45 s end to end)
//     bash_marker_flood_1.3MB        a BashSession command printing those lines, to its prompt
//                                    (goal: under 2 s)
#include <runbox/server/bash_session.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <variant>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
void measure(const char* name, int n, F&& f) {
    std::vector<double> ms;
    for (int i = 0; i < n; ++i) {
        const auto start = clock_type::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s %.3f %.3f %d\n", name, ms[ms.size() / 2], ms[ms.size() * 9 / 10], n);
}

}  // namespace

int main() {
    namespace bash = runbox::server::bash;
    std::string flood;
    for (int i = 0; i < 24000; ++i) flood += "x###PS1JSON### padding-padding-padding-pad\n###PS1END###\n";

    measure("prompt_scan_1.3MB_4KiB_chunks", 20, [&] {
        bash::PromptScanner scanner(bash::PromptMarkers::with_nonce("00112233445566778899aabbccddeeff"));
        std::string buffer;
        for (std::size_t at = 0; at < flood.size(); at += 4096) {
            buffer.append(flood, at, 4096);
            if (scanner.next(buffer)) std::exit(1);  // there is no real block in there
        }
    });

    runbox::server::BashSessionOptions options;
    options.working_dir = "/tmp";
    runbox::server::BashSession session(options);
    runbox::CmdRunAction action;
    action.command = "for i in {1..24000}; do printf 'x###PS1JSON### padding-padding-padding-pad\\n###PS1END###\\n'; done";
    action.set_hard_timeout(60);
    measure("bash_marker_flood_1.3MB", 5, [&] {
        const auto obs = session.execute(action);
        const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs);
        if (out == nullptr || out->metadata.exit_code != 0) {
            std::fprintf(stderr, "unexpected observation: %s\n", runbox::to_wire(obs).c_str());
            std::exit(1);
        }
    });
    return 0;
}
