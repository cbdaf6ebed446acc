// soak_lifecycle: N connect/run/close cycles (default 1000) alternating over the in-process
// Daytona and Runloop fakes, with one random fault per cycle, then one sweep. Prints a
// Markdown table: cycles and faults by kind, connects that succeeded, sandboxes left after
// close (and how many of those close() reported), sandboxes left before and after the sweep,
// child processes and file descriptors left. Goal: 0 left after the sweep; 0 left without it
// for every fault but "unreachable close" (whose leftovers must all be reported).
//
//   soak_lifecycle [cycles] [seed]
#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <runbox/runbox.hpp>
#include <runbox/sweep.hpp>
#include <runbox/testing/fake_daytona.hpp>
#include <runbox/testing/fake_runloop.hpp>
#include <runbox/transport/testing.hpp>

namespace {

using namespace std::chrono_literals;
using Faulty = runbox::FaultInjectingTransport<runbox::HttplibTransport>;

enum class FaultKind { none, lost_create, unreachable_close, rate_limited_429, bad_gateway_502, slow, dropped };
constexpr FaultKind all_kinds[] = {FaultKind::none, FaultKind::lost_create, FaultKind::unreachable_close,
                                   FaultKind::rate_limited_429, FaultKind::bad_gateway_502, FaultKind::slow,
                                   FaultKind::dropped};

const char* name_of(FaultKind k) {
    switch (k) {
        case FaultKind::none: return "none";
        case FaultKind::lost_create: return "create answer lost (row 1)";
        case FaultKind::unreachable_close: return "API unreachable in close (row 2)";
        case FaultKind::rate_limited_429: return "429 on create";
        case FaultKind::bad_gateway_502: return "502 on an idempotent call";
        case FaultKind::slow: return "slow API (3 x 50 ms)";
        case FaultKind::dropped: return "dropped idempotent call";
    }
    return "?";
}

struct Row {
    int cycles = 0;
    int connected = 0;
    int left_after_close = 0;
    int reported = 0;
};

std::size_t count_fds() {
    std::size_t n = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
        while (::readdir(d) != nullptr) ++n;
        ::closedir(d);
    }
    return n - 3;  // ".", ".." and the directory's own fd
}

// Processes whose parent is this one (the fakes' shells and whatever they started).
std::size_t count_children() {
    std::size_t n = 0;
    const std::string self = std::to_string(::getpid());
    DIR* d = ::opendir("/proc");
    if (d == nullptr) return 0;
    while (dirent* e = ::readdir(d)) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        std::ifstream stat(std::string("/proc/") + e->d_name + "/stat");
        std::string line;
        std::getline(stat, line);
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        std::istringstream rest(line.substr(close + 2));
        std::string state, ppid;
        rest >> state >> ppid;
        if (ppid == self) ++n;
    }
    ::closedir(d);
    return n;
}

template <class Auth>
struct Paths;
template <>
struct Paths<runbox::daytona::Auth> {
    static constexpr const char* create = "/api/sandbox";
    static constexpr const char* api = "/api/sandbox";
    static constexpr const char* idempotent_method = "GET";
    static constexpr const char* idempotent = "/preview-url";
};
template <>
struct Paths<runbox::runloop::Auth> {
    static constexpr const char* create = "/v1/devboxes";
    static constexpr const char* api = "/v1/devboxes";
    static constexpr const char* idempotent_method = "POST";
    static constexpr const char* idempotent = "/enable_tunnel";
};

template <class Auth, class Left>
void cycle(const runbox::Config& config, FaultKind fault, int i, Row& row, Left&& left) {
    using P = Paths<Auth>;
    runbox::EventStream events;
    const std::size_t before = left();
    runbox::Runtime<Auth, Faulty> rt(config, events, {.sid = "soak-" + std::to_string(i)});
    auto& t = rt.transport();
    switch (fault) {
        case FaultKind::lost_create: t.lose_response("POST", P::create, 1); break;
        case FaultKind::rate_limited_429: {
            runbox::Headers h;
            h.set("Retry-After", "0");
            t.reply("POST", P::create, 429, h, R"({"message":"Too many requests"})", 1);
            break;
        }
        case FaultKind::bad_gateway_502: t.reply(P::idempotent_method, P::idempotent, 502, {}, "bad gateway", 1); break;
        case FaultKind::slow: t.delay("", P::api, 50ms, 3); break;
        case FaultKind::dropped: t.drop(P::idempotent_method, P::idempotent, 1); break;
        default: break;
    }
    try {
        rt.connect();
        const auto obs = rt.run("echo hi");
        const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs);
        if (out != nullptr && out->content == "hi") ++row.connected;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "cycle %d (%s): %s\n", i, name_of(fault), e.what());
    }
    if (fault == FaultKind::unreachable_close) t.drop("", P::api, -1);
    rt.close();
    row.reported += static_cast<int>(rt.unreleased().size());
    const std::size_t after = left();
    if (after > before) row.left_after_close += static_cast<int>(after - before);
}

}  // namespace

int main(int argc, char** argv) {
    const int cycles = argc > 1 ? std::atoi(argv[1]) : 1000;
    const unsigned seed = argc > 2 ? static_cast<unsigned>(std::atoi(argv[2])) : 11u;
    const std::size_t fds_before = count_fds();
    try {
        runbox::testing::FakeDaytonaOptions dopt;
        dopt.api_key = "dtn_soak";
        dopt.state_delay = 5ms;
        runbox::testing::FakeDaytona daytona(dopt);
        daytona.start();
        runbox::testing::FakeRunloopOptions ropt;
        ropt.provisioning_delay = 5ms;
        ropt.initializing_delay = 5ms;
        ropt.long_poll_timeout = 200ms;
        runbox::testing::FakeRunloop runloop(ropt);
        runloop.start();

        runbox::Config config;
        config.use_environment({});
        config.enable_browser = false;
        config.sandbox.runtime_container_image = "runbox/soak:1";
        config.providers["daytona"] = {{"api_key", "dtn_soak"}, {"api_url", daytona.url()}, {"poll_interval_ms", 5},
                                       {"start_timeout_ms", 10000}, {"alive_timeout_ms", 10000},
                                       {"alive_poll_interval_ms", 5}, {"retry_initial_backoff_ms", 5},
                                       {"close_timeout_ms", 100}, {"server_command", "runbox-server"}};
        config.providers["runloop"] = {{"api_key", runloop.api_key()}, {"base_url", runloop.url()},
                                       {"tunnel_url", runloop.tunnel_url_template()}, {"poll_interval_ms", 5},
                                       {"start_timeout_ms", 10000}, {"alive_timeout_ms", 10000},
                                       {"alive_poll_interval_ms", 5}, {"retry_initial_backoff_ms", 5},
                                       {"close_timeout_ms", 100}};

        std::mt19937 rng(seed);
        std::uniform_int_distribution<int> pick(0, static_cast<int>(std::size(all_kinds)) - 1);
        std::map<FaultKind, Row> rows;
        auto left = [&] { return daytona.live_sandboxes() + runloop.live_sandboxes(); };
        const auto start = std::chrono::steady_clock::now();
        for (int i = 0; i < cycles; ++i) {
            const FaultKind fault = all_kinds[pick(rng)];
            Row& row = rows[fault];
            ++row.cycles;
            if (i % 2 == 0) {
                cycle<runbox::daytona::Auth>(config, fault, i, row, left);
            } else {
                cycle<runbox::runloop::Auth>(config, fault, i, row, left);
            }
        }
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const std::size_t before_sweep = left();
        runbox::SweepOptions sweep;
        sweep.older_than = 0ms;
        sweep.dry_run = false;
        const auto report = runbox::sweep(runbox::default_providers{}, config, sweep);
        const std::size_t after_sweep = left();
        // Processes: the fakes' shells end with their sandboxes; give reaping a moment (bounded).
        runbox::poll_until([&] { return count_children() == 0; }, 5s, 10ms);
        const std::size_t children = count_children();
        daytona.stop();
        runloop.stop();
        const std::size_t fds_after = count_fds();

        std::printf("cycles: %d (seed %u) in %.1f s (%.1f ms per cycle)\n\n", cycles, seed, seconds,
                    1000.0 * seconds / std::max(cycles, 1));
        std::printf("| fault | cycles | connect+run ok | left after close | reported by close |\n|---|---|---|---|---|\n");
        Row total;
        for (FaultKind k : all_kinds) {
            const Row& r = rows[k];
            std::printf("| %s | %d | %d | %d | %d |\n", name_of(k), r.cycles, r.connected, r.left_after_close, r.reported);
            total.cycles += r.cycles;
            total.connected += r.connected;
            total.left_after_close += r.left_after_close;
            total.reported += r.reported;
        }
        std::printf("| **all** | %d | %d | %d | %d |\n\n", total.cycles, total.connected, total.left_after_close,
                    total.reported);
        std::printf("| measurement | value |\n|---|---|\n");
        std::printf("| sandboxes left before the sweep | %zu |\n", before_sweep);
        std::printf("| sweep released | %zu (errors: %zu) |\n", report.released(), report.errors.size());
        std::printf("| sandboxes left after one sweep | %zu |\n", after_sweep);
        std::printf("| child processes left | %zu |\n", children);
        std::printf("| fds before the fakes started / after they stopped | %zu / %zu |\n", fds_before, fds_after);
        for (const auto& e : report.errors) std::fprintf(stderr, "sweep: %s\n", e.c_str());
        return after_sweep == 0 && total.left_after_close == total.reported ? 0 : 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "soak_lifecycle: %s\n", e.what());
        return 2;
    }
}
