// libFuzzer harness: the HTTP request handling of the action server. One ActionServer listens on
// 127.0.0.1 for the whole process; each input is sent as raw bytes over a new TCP connection
// (then the write side is shut), and the answer is read with a bound.
//
// The server's session key is random and never in an input, so this exercises what a client
// without the key reaches: request line, headers, chunked / gzip / multipart body reading,
// routing, /alive, /server_info and the 403 path. No action is ever run (an input that did run
// shell commands would be running fuzzer-mutated commands as the fuzzing user).
#include "runbox/server/action_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

constexpr auto answer_bound = 5s;   // one input's whole exchange
constexpr auto alive_bound = 10s;   // the liveness probe after an input that got no complete answer

struct Fixture {
    std::filesystem::path dir;
    std::unique_ptr<runbox::server::ActionServer> server;

    Fixture() {
        std::random_device rd;
        std::string key;
        for (int i = 0; i < 4; ++i) key += std::to_string(rd());
        dir = std::filesystem::temp_directory_path() / ("runbox-fuzz-http-" + std::to_string(::getpid()));
        runbox::server::ActionServerOptions options;
        options.host = "127.0.0.1";
        options.working_dir = dir.string();
        options.session_api_key = key;
        server = std::make_unique<runbox::server::ActionServer>(options);
        server->start();
    }
    ~Fixture() {
        server->stop();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
};

Fixture& fixture() {
    static Fixture f;
    return f;
}

int connect_loopback(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    const timeval tv{2, 0};
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

/// Sends `bytes`, shuts the write side and reads until the server closes or `bound` passes.
/// Returns what was read and whether the server closed within the bound.
std::pair<std::string, bool> exchange(int port, std::string_view bytes, steady::duration bound) {
    const int fd = connect_loopback(port);
    if (fd < 0) {
        std::fprintf(stderr, "cannot connect to the action server on 127.0.0.1:%d\n", port);
        std::abort();
    }
    const auto deadline = steady::now() + bound;
    std::size_t sent = 0;
    while (sent < bytes.size() && steady::now() < deadline) {
        const auto n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may answer and close before the whole input is sent
        sent += static_cast<std::size_t>(n);
    }
    ::shutdown(fd, SHUT_WR);
    std::string answer;
    bool closed = false;
    char buffer[16384];
    while (!closed) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady::now()).count();
        if (left <= 0) break;
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) {
            closed = true;
        } else if (answer.size() < 1 << 20) {
            answer.append(buffer, static_cast<std::size_t>(n));
        }
    }
    ::close(fd);
    return {std::move(answer), closed};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const int port = fixture().server->port();
    const auto [answer, closed] = exchange(port, std::string_view(reinterpret_cast<const char*>(data), size), answer_bound);
    if (!closed) {
        // A request may legitimately take long; the server as a whole must still answer /alive.
        const auto [alive, alive_closed] =
            exchange(port, "GET /alive HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", alive_bound);
        if (alive.rfind("HTTP/1.1 200", 0) != 0) {
            std::fprintf(stderr, "the action server did not answer /alive within %lld s after an input\n",
                         static_cast<long long>(std::chrono::duration_cast<std::chrono::seconds>(alive_bound).count()));
            std::abort();
        }
    }
    return 0;
}
