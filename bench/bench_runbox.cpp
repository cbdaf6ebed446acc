// runbox benchmarks (run through bench/run.sh, which prints one table).
//
//   bench_runbox local             LocalRuntime: connect() to ready, and run("echo hi") round trips
//   bench_runbox client URL KEY    the runbox client against a running runbox-server:
//                                  GET /alive and run("echo hi") round trips
// Prints "name median_ms p90_ms n" lines.
#include <runbox/runbox.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

template <class F>
void measure(const char* name, int n, F&& f) {
    std::vector<double> ms;
    ms.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) {
        const auto start = clock_type::now();
        f();
        ms.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("%s %.3f %.3f %d\n", name, ms[ms.size() / 2], ms[ms.size() * 9 / 10], n);
}

void require_ok(const runbox::Observation& obs) {
    const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs);
    if (out == nullptr || out->metadata.exit_code != 0 || out->content != "hi") {
        std::fprintf(stderr, "unexpected observation: %s\n", runbox::to_wire(obs).c_str());
        std::exit(1);
    }
}

int bench_local() {
    runbox::Config config;
    runbox::EventStream events;
    measure("local_connect_to_ready", 20, [&] {
        runbox::LocalRuntime rt(config, events, {.sid = "bench"});
        rt.connect();
        rt.close();
    });
    runbox::LocalRuntime rt(config, events, {.sid = "bench"});
    rt.connect();
    for (int i = 0; i < 20; ++i) require_ok(rt.run("echo hi"));  // warm-up
    measure("local_run_echo", 300, [&] { require_ok(rt.run("echo hi")); });
    return 0;
}

int bench_client(const std::string& url, const std::string& key) {
    runbox::HttplibTransport transport;
    runbox::ServerEndpoint endpoint;
    endpoint.url = url;
    endpoint.headers.set("X-Session-API-Key", key);
    runbox::ActionExecutionClient<runbox::HttplibTransport> client(transport, endpoint);
    for (int i = 0; i < 50; ++i) client.check_if_alive();
    measure("client_alive", 1000, [&] { client.check_if_alive(); });
    runbox::CmdRunAction action;
    action.command = "echo hi";
    action.set_hard_timeout(30, false);
    for (int i = 0; i < 20; ++i) require_ok(client.execute_action(action));
    measure("client_run_echo", 300, [&] { require_ok(client.execute_action(action)); });
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        if (argc >= 2 && std::strcmp(argv[1], "local") == 0) return bench_local();
        if (argc >= 4 && std::strcmp(argv[1], "client") == 0) return bench_client(argv[2], argv[3]);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_runbox: %s\n", e.what());
        return 1;
    }
    std::fprintf(stderr, "usage: bench_runbox local | client URL KEY\n");
    return 2;
}
