// attack_load: runbox-server under honest load, then the same load plus one attacker (issue 10,
// rows 5 and 6). Run through bench/attack_load.sh, or:
//
//   attack_load RUNBOX_SERVER [--clients 50] [--seconds 20] [--bombs 4] [--slow 31] [--mem-cap-mb 8192]
//               [--attack-mbps 1000]
//
// It starts RUNBOX_SERVER on 127.0.0.1 (random port, random session key, a temporary working
// dir, an address-space cap so an unbounded server cannot take the machine), then runs two phases
// of --seconds each:
//   load:   --clients honest clients, each alternating GET /alive and POST /execute_action
//           `echo hi` with the session key (keep-alive connections);
//   attack: the same, plus at once
//           (a) row 5: --bombs connections without the key, alternating a 1 MB gzip body that
//               inflates to 1 GB and a plain 200 MB body, to POST /execute_action, all of them
//               through one link of --attack-mbps (a remote attacker's bound; on loopback an
//               unbounded sender spends the server's own cores; 0 = unbounded);
//           (b) row 6: --slow connections without the key sending a request's headers one byte
//               every 100 ms (a connection the server closes is opened again).
// Prints one table (requests served, errors, p50/p99 over every honest request, failures
// included at the time they failed; the server's peak RSS) and what the attacker saw.
// Everything is loopback; every loop is bounded in count and time; the server is killed at the end.
#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zlib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

struct Options {
    std::string server;
    int clients = 50;
    int seconds = 20;
    int bombs = 4;
    int slow = 31;
    long mem_cap_mb = 8192;
    long attack_mbps = 1000;  // the attacker's link in Mbit/s (row 5's bodies); 0 = unbounded
};

// ---- the server process ----------------------------------------------------------------------

struct Server {
    pid_t pid = -1;
    int output = -1;      // the server's stdout and stderr
    std::thread drain;    // reads (and drops) that output until the server exits
    std::unique_ptr<std::atomic<bool>> stop_drain = std::make_unique<std::atomic<bool>>(false);
    int port = 0;
    std::string key;
    std::filesystem::path dir;
};

std::string random_hex(std::size_t bytes) {
    std::ifstream urandom("/dev/urandom", std::ios::binary);
    std::string raw(bytes, '\0');
    urandom.read(raw.data(), static_cast<std::streamsize>(raw.size()));
    std::string hex;
    for (const unsigned char c : raw) {
        static constexpr char digits[] = "0123456789abcdef";
        hex += digits[c >> 4];
        hex += digits[c & 15];
    }
    return hex;
}

void stop_server(Server& s);

void start_server(const Options& options, Server& s) {
    s.key = random_hex(16);
    char dir_template[] = "/tmp/runbox-attack-load-XXXXXX";
    if (::mkdtemp(dir_template) == nullptr) throw std::runtime_error("mkdtemp failed");
    s.dir = dir_template;
    int out[2];
    if (::pipe(out) != 0) throw std::runtime_error("pipe failed");
    s.pid = ::fork();
    if (s.pid < 0) throw std::runtime_error("fork failed");
    if (s.pid == 0) {
        ::dup2(out[1], 1);
        ::dup2(out[1], 2);
        ::close(out[0]);
        ::close(out[1]);
        const rlimit cap{static_cast<rlim_t>(options.mem_cap_mb) << 20, static_cast<rlim_t>(options.mem_cap_mb) << 20};
        ::setrlimit(RLIMIT_AS, &cap);
        ::setenv("SESSION_API_KEY", s.key.c_str(), 1);
        const std::string dir = s.dir.string();
        const char* argv[] = {options.server.c_str(), "0", "--working-dir", dir.c_str(), "--host", "127.0.0.1",
                              "--no-enable-browser", nullptr};
        ::execv(argv[0], const_cast<char* const*>(argv));
        std::perror("execv");
        ::_exit(127);
    }
    ::close(out[1]);
    // The server prints "listening on http://127.0.0.1:PORT" when ready.
    std::string text;
    const auto deadline = steady::now() + 20s;
    while (steady::now() < deadline) {
        pollfd p{out[0], POLLIN, 0};
        if (::poll(&p, 1, 100) <= 0) continue;
        char buffer[512];
        const auto n = ::read(out[0], buffer, sizeof buffer);
        if (n <= 0) break;
        text.append(buffer, static_cast<std::size_t>(n));
        if (const auto at = text.find("listening on http://127.0.0.1:"); at != std::string::npos) {
            const auto digits = text.c_str() + at + std::strlen("listening on http://127.0.0.1:");
            if (std::strchr(digits, '\n') != nullptr) {
                s.port = std::atoi(digits);
                break;
            }
        }
    }
    s.output = out[0];
    if (s.port <= 0) {
        stop_server(s);
        throw std::runtime_error("runbox-server did not start: " + text);
    }
    // Polls so that stop_server can end it even while a child of the server still holds the pipe.
    s.drain = std::thread([fd = s.output, stop = s.stop_drain.get()] {
        char buffer[4096];
        while (!stop->load()) {
            pollfd p{fd, POLLIN, 0};
            if (::poll(&p, 1, 100) > 0 && ::read(fd, buffer, sizeof buffer) <= 0) break;
        }
    });
}

void stop_server(Server& s) {
    if (s.pid > 0) {
        ::kill(s.pid, SIGTERM);
        int status = 0;
        const auto deadline = steady::now() + 5s;
        while (::waitpid(s.pid, &status, WNOHANG) == 0) {
            if (steady::now() > deadline) {
                ::kill(s.pid, SIGKILL);
                ::waitpid(s.pid, &status, 0);
                break;
            }
            std::this_thread::sleep_for(10ms);
        }
        s.pid = -1;
    }
    s.stop_drain->store(true);
    if (s.drain.joinable()) s.drain.join();
    if (s.output >= 0) ::close(s.output);
    s.output = -1;
    std::error_code ec;
    std::filesystem::remove_all(s.dir, ec);
}

/// CPU seconds (user + system) the process has used, from /proc/PID/stat; -1 when unknown.
double cpu_seconds(pid_t pid) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');  // the command name may hold spaces
    if (close == std::string::npos) return -1;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    double ticks = 0;
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14 || i == 15) ticks += std::strtod(field.c_str(), nullptr);  // utime, stime
    }
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

double own_cpu_seconds() {
    rusage usage{};
    ::getrusage(RUSAGE_SELF, &usage);
    return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
           static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

bool server_alive(const Server& s) { return s.pid > 0 && ::waitpid(s.pid, nullptr, WNOHANG) == 0; }

long status_kib(pid_t pid, const char* field) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    const std::size_t n = std::strlen(field);
    while (std::getline(status, line)) {
        if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::strtol(line.c_str() + n + 1, nullptr, 10);
    }
    return -1;
}

// ---- raw sockets for the attacker --------------------------------------------------------------

int connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

/// The attacker's link: at most `bytes_per_second` in all, shared by its connections (0: no
/// bound). On loopback the attacker's sending costs CPU on the server's own cores, which a
/// remote attacker's would not; a link speed is the bound a real one has.
class Link {
public:
    explicit Link(double bytes_per_second) : rate_(bytes_per_second) {}
    /// Waits until `n` more bytes fit the rate (or `deadline` passes: false).
    bool take(std::size_t n, steady::time_point deadline) {
        if (rate_ <= 0) return true;
        steady::time_point at;
        {
            std::lock_guard lock(mutex_);
            next_ = std::max(next_, steady::now());
            at = next_;
            next_ += std::chrono::duration_cast<steady::duration>(std::chrono::duration<double>(static_cast<double>(n) / rate_));
        }
        if (at > deadline) return false;
        std::this_thread::sleep_until(at);
        return true;
    }

private:
    double rate_;
    std::mutex mutex_;
    steady::time_point next_{};
};

bool send_all(int fd, std::string_view bytes, steady::time_point deadline, Link* link = nullptr) {
    std::size_t sent = 0;
    while (sent < bytes.size()) {
        if (steady::now() > deadline) return false;
        const std::size_t piece = link != nullptr ? std::min<std::size_t>(bytes.size() - sent, 64 << 10) : bytes.size() - sent;
        if (link != nullptr && !link->take(piece, deadline)) return false;
        const auto n = ::send(fd, bytes.data() + sent, piece, MSG_NOSIGNAL);
        if (n <= 0) return false;
        sent += static_cast<std::size_t>(n);
    }
    return true;
}

/// The status code of the first response line read before `deadline`; 0 when none came.
int read_status(int fd, steady::time_point deadline) {
    std::string head;
    while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) return 0;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        char buffer[4096];
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) return 0;
        head.append(buffer, static_cast<std::size_t>(n));
    }
    if (head.rfind("HTTP/1.", 0) != 0 || head.size() < 12) return 0;
    return std::atoi(head.c_str() + 9);
}

std::string gzip_of_zeros(std::size_t total) {
    z_stream z{};
    if (deflateInit2(&z, 9, Z_DEFLATED, 31, 9, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
    const std::string zeros(8 << 20, '\0');
    std::string out;
    std::vector<unsigned char> buffer(1 << 16);
    for (std::size_t done = 0; done < total; done += zeros.size()) {
        z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(zeros.data()));
        z.avail_in = static_cast<uInt>(zeros.size());
        const int flush = done + zeros.size() >= total ? Z_FINISH : Z_NO_FLUSH;
        do {
            z.next_out = buffer.data();
            z.avail_out = static_cast<uInt>(buffer.size());
            deflate(&z, flush);
            out.append(reinterpret_cast<const char*>(buffer.data()), buffer.size() - z.avail_out);
        } while (z.avail_out == 0);
    }
    deflateEnd(&z);
    return out;
}

// ---- one phase ---------------------------------------------------------------------------------

struct AttackStats {
    std::mutex mutex;
    std::map<int, int> bomb_statuses;  // status -> count (0: no answer / connection dropped)
    std::atomic<int> bombs_sent{0};
    std::atomic<int> slow_connections{0};
    std::atomic<int> slow_bytes{0};
};

struct PhaseResult {
    std::vector<double> latencies_ms;  // every honest request, failures included
    std::vector<double> alive_ms, echo_ms;
    long served = 0, errors = 0;
    std::map<std::string, int> error_kinds;
    long peak_rss_kib = 0;  // sampled VmRSS maximum during the phase
    long hwm_kib = 0;       // VmHWM at the end of the phase (since the server started)
    bool server_survived = true;
    std::map<int, int> bomb_statuses;
    int bombs_sent = 0, slow_connections = 0, slow_bytes = 0;
    double server_cpu_s = 0, bench_cpu_s = 0, wall_s = 0;  // CPU used during the phase
};

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

PhaseResult run_phase(const Options& options, Server& server, bool attack, const std::string& bomb) {
    const auto deadline = steady::now() + std::chrono::seconds(options.seconds);
    constexpr long max_requests_per_client = 200000;
    constexpr int max_attempts_per_attacker = 100000;
    PhaseResult result;
    std::mutex result_mutex;
    AttackStats stats;
    std::atomic<bool> done{false};
    const double server_cpu_before = cpu_seconds(server.pid);
    const double bench_cpu_before = own_cpu_seconds();
    const auto started = steady::now();

    std::vector<std::thread> threads;
    const std::string echo_body = nlohmann::json{
        {"action", {{"action", "run"}, {"args", {{"command", "echo hi"}, {"blocking", false}}}, {"timeout", 30}}}}.dump();
    for (int c = 0; c < options.clients; ++c) {
        threads.emplace_back([&, c] {
            httplib::Client client("127.0.0.1", server.port);
            client.set_connection_timeout(5, 0);
            client.set_read_timeout(10, 0);
            client.set_write_timeout(5, 0);
            client.set_keep_alive(true);
            const httplib::Headers headers{{"X-Session-API-Key", server.key}};
            std::vector<double> all, alive, echo;
            std::map<std::string, int> error_kinds;
            long served = 0, errors = 0;
            for (long i = c; i < max_requests_per_client + c && steady::now() < deadline; ++i) {
                const bool is_alive = i % 2 == 0;
                const auto start = steady::now();
                const auto res = is_alive ? client.Get("/alive", headers)
                                          : client.Post("/execute_action", headers, echo_body, "application/json");
                std::string error;  // empty = served
                if (!res) {
                    error = httplib::to_string(res.error());
                } else if (res->status != 200) {
                    error = "status " + std::to_string(res->status);
                } else if (is_alive ? res->body.find("\"ok\"") == std::string::npos
                                    : nlohmann::json::parse(res->body, nullptr, false).value("content", "") != "hi") {
                    error = "unexpected body";
                }
                const bool ok = error.empty();
                const double ms = std::chrono::duration<double, std::milli>(steady::now() - start).count();
                if (!ok) {
                    // How long a failure took tells a timeout (10 s) from a dropped connection.
                    ++error_kinds[(is_alive ? "alive " : "echo ") + error + (ms >= 9000 ? " (after >= 9 s)" : " (< 9 s)") + (i == c ? " first" : "")];
                }
                all.push_back(ms);
                (is_alive ? alive : echo).push_back(ms);
                ok ? ++served : ++errors;
            }
            std::lock_guard lock(result_mutex);
            result.latencies_ms.insert(result.latencies_ms.end(), all.begin(), all.end());
            result.alive_ms.insert(result.alive_ms.end(), alive.begin(), alive.end());
            result.echo_ms.insert(result.echo_ms.end(), echo.begin(), echo.end());
            result.served += served;
            result.errors += errors;
            for (const auto& [kind, count] : error_kinds) result.error_kinds[kind] += count;
        });
    }

    Link link(options.attack_mbps * 1e6 / 8);
    if (attack) {
        // (a) row 5: bodies without the key.
        for (int b = 0; b < options.bombs; ++b) {
            threads.emplace_back([&, b] {
                for (int i = b; i < max_attempts_per_attacker + b && steady::now() < deadline; ++i) {
                    const int fd = connect_loopback(server.port);
                    if (fd < 0) {
                        std::lock_guard lock(stats.mutex);
                        ++stats.bomb_statuses[-1];
                        std::this_thread::sleep_for(100ms);  // the server is gone or refusing: do not spin
                        continue;
                    }
                    const auto bound = std::min(deadline, steady::now() + 30s);
                    bool sent = false;
                    if (i % 2 == 0) {
                        const std::string head = "POST /execute_action HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                 "Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
                                                 "Content-Length: " + std::to_string(bomb.size()) + "\r\n\r\n";
                        sent = send_all(fd, head, bound, &link) && send_all(fd, bomb, bound, &link);
                    } else {
                        constexpr std::size_t plain = std::size_t{200} << 20;
                        const std::string head = "POST /execute_action HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                                                 "Content-Type: application/json\r\nContent-Length: " +
                                                 std::to_string(plain) + "\r\n\r\n";
                        const std::string chunk(1 << 20, ' ');
                        sent = send_all(fd, head, bound, &link);
                        for (std::size_t n = 0; sent && n < plain; n += chunk.size()) sent = send_all(fd, chunk, bound, &link);
                    }
                    ++stats.bombs_sent;
                    // A server that answers early (403 / 413) may close before the body is sent.
                    const int status = read_status(fd, bound);
                    ::close(fd);
                    std::lock_guard lock(stats.mutex);
                    ++stats.bomb_statuses[sent || status != 0 ? status : 0];
                }
            });
        }
        // (b) row 6: headers one byte at a time.
        for (int s = 0; s < options.slow; ++s) {
            threads.emplace_back([&] {
                const std::string request = "GET /alive HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + std::string(4000, 'a');
                int fd = -1;
                std::size_t at = 0;
                for (int i = 0; i < max_attempts_per_attacker && steady::now() < deadline; ++i) {
                    if (fd < 0) {
                        fd = connect_loopback(server.port);
                        at = 0;
                        if (fd < 0) {
                            std::this_thread::sleep_for(100ms);
                            continue;
                        }
                        ++stats.slow_connections;
                    }
                    if (at >= request.size() || ::send(fd, request.data() + at, 1, MSG_NOSIGNAL) != 1) {
                        ::close(fd);  // the server closed it (or the headers are all sent): start again
                        fd = -1;
                        continue;
                    }
                    ++at;
                    ++stats.slow_bytes;
                    std::this_thread::sleep_for(100ms);
                }
                if (fd >= 0) ::close(fd);
            });
        }
    }

    std::thread sampler([&] {
        while (!done.load()) {
            result.peak_rss_kib = std::max(result.peak_rss_kib, status_kib(server.pid, "VmRSS"));
            std::this_thread::sleep_for(50ms);
        }
    });
    for (auto& t : threads) t.join();
    done = true;
    sampler.join();
    result.server_cpu_s = cpu_seconds(server.pid) - server_cpu_before;
    result.bench_cpu_s = own_cpu_seconds() - bench_cpu_before;
    result.wall_s = std::chrono::duration<double>(steady::now() - started).count();
    result.hwm_kib = status_kib(server.pid, "VmHWM");
    result.server_survived = server_alive(server);
    result.bomb_statuses = stats.bomb_statuses;
    result.bombs_sent = stats.bombs_sent;
    result.slow_connections = stats.slow_connections;
    result.slow_bytes = stats.slow_bytes;
    return result;
}

void print_row(const char* name, const PhaseResult& r) {
    std::printf("| %s | %ld | %ld | %.2f | %.2f | %.2f | %.2f | %.0f | %.0f | %s |\n", name, r.served, r.errors,
                percentile(r.latencies_ms, 0.5), percentile(r.latencies_ms, 0.99), percentile(r.alive_ms, 0.99),
                percentile(r.echo_ms, 0.99), static_cast<double>(r.peak_rss_kib) / 1024.0,
                static_cast<double>(r.hwm_kib) / 1024.0, r.server_survived ? "yes" : "NO");
}

int run(const Options& options) {
    std::printf("runbox-server: %s; %d honest clients x %d s per phase; attacker: %d body connections (row 5), "
                "%d slow-header connections (row 6); attacker link %s; server address space capped at %ld MiB\n",
                options.server.c_str(), options.clients, options.seconds, options.bombs, options.slow,
                options.attack_mbps > 0 ? (std::to_string(options.attack_mbps) + " Mbit/s").c_str() : "unbounded",
                options.mem_cap_mb);
    std::fflush(stdout);
    const std::string bomb = gzip_of_zeros(std::size_t{1} << 30);
    Server server;
    start_server(options, server);
    const PhaseResult load = run_phase(options, server, false, bomb);
    PhaseResult attacked;
    if (server_alive(server)) attacked = run_phase(options, server, true, bomb);
    stop_server(server);

    std::printf("\n| phase | requests served | errors | p50 (ms) | p99 (ms) | /alive p99 | echo p99 | server peak VmRSS (MiB) | "
                "server VmHWM (MiB) | server alive |\n|---|---|---|---|---|---|---|---|---|---|\n");
    print_row("load alone", load);
    print_row("load + attacker", attacked);
    const double p99_load = percentile(load.latencies_ms, 0.99);
    const double p99_attack = percentile(attacked.latencies_ms, 0.99);
    std::printf("\nhonest p99 under attack / alone: %.1fx (goal <= 2x); served under attack / alone: %.2f\n",
                p99_load > 0 ? p99_attack / p99_load : 0.0,
                load.served > 0 ? static_cast<double>(attacked.served) / static_cast<double>(load.served) : 0.0);
    for (const PhaseResult* r : {&load, static_cast<const PhaseResult*>(&attacked)}) {
        std::printf("honest errors %s:", r == &load ? "alone" : "under attack");
        for (const auto& [kind, count] : r->error_kinds) std::printf(" %s=%d", kind.c_str(), count);
        std::printf("\n");
    }
    for (const PhaseResult* r : {&load, static_cast<const PhaseResult*>(&attacked)}) {
        std::printf("CPU %s: server %.1f s, this bench (clients and attacker) %.1f s, over %.1f s of wall time "
                    "(%ld cores)\n",
                    r == &load ? "alone" : "under attack", r->server_cpu_s, r->bench_cpu_s, r->wall_s, ::sysconf(_SC_NPROCESSORS_ONLN));
    }
    std::printf("attacker (a): %d bodies sent (gzip 1 MB -> 1 GB / plain 200 MB, no key); answers:", attacked.bombs_sent);
    for (const auto& [status, count] : attacked.bomb_statuses) {
        std::printf(" %s=%d", status == 0 ? "no-answer-in-phase" : status < 0 ? "connect-failed" : std::to_string(status).c_str(), count);
    }
    std::printf("\nattacker (b): %d slow connections opened (%d header bytes sent, one per 100 ms)\n",
                attacked.slow_connections, attacked.slow_bytes);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    Options options;
    bool bad = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view arg = argv[i];
        auto next = [&]() -> long { return i + 1 < argc ? std::strtol(argv[++i], nullptr, 10) : -1; };
        if (arg == "--clients") options.clients = static_cast<int>(next());
        else if (arg == "--seconds") options.seconds = static_cast<int>(next());
        else if (arg == "--bombs") options.bombs = static_cast<int>(next());
        else if (arg == "--slow") options.slow = static_cast<int>(next());
        else if (arg == "--mem-cap-mb") options.mem_cap_mb = next();
        else if (arg == "--attack-mbps") options.attack_mbps = next();
        else if (options.server.empty() && arg.rfind("--", 0) != 0) options.server = std::string(arg);
        else bad = true;
    }
    if (bad || options.server.empty() || options.clients < 1 || options.clients > 1000 || options.seconds < 1 ||
        options.seconds > 3600 || options.bombs < 0 || options.bombs > 100 || options.slow < 0 || options.slow > 1000 ||
        options.mem_cap_mb < 256 || options.attack_mbps < 0) {
        std::fprintf(stderr, "usage: attack_load RUNBOX_SERVER [--clients 50] [--seconds 20] [--bombs 4] [--slow 31] "
                             "[--mem-cap-mb 8192] [--attack-mbps 1000]\n");
        return 2;
    }
    ::signal(SIGPIPE, SIG_IGN);
    try {
        return run(options);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "attack_load: %s\n", e.what());
        return 1;
    }
}
