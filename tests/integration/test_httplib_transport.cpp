// HttplibTransport against loopback servers started in-test: keep-alive reuse,
// timeouts, streaming, retries (with send_with_retry), dropped connections and
// TLS verification with a certificate generated at test time.
#include "runbox/transport/httplib.hpp"

#include <httplib.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "catch.hpp"
#include "test_certificate.hpp"
#include "runbox/transport/testing.hpp"
#include "runbox/transport/transport.hpp"

namespace test_httplib_transport {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::errc;
using runbox::HttplibTransport;
using runbox::Request;
using runbox::Response;
using steady = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------
// A loopback httplib server with a few routes and a connection counter.
class TestServer {
public:
    explicit TestServer(std::unique_ptr<httplib::Server> server = std::make_unique<httplib::Server>(),
                        std::string host = "127.0.0.1")
        : server_(std::move(server)), host_(std::move(host)) {
        auto& s = *server_;
        s.set_keep_alive_max_count(1000);
        s.set_tcp_nodelay(true);
        s.Get("/hello", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_header("X-Reply", "yes");
            res.set_content("hi", "text/plain");
        });
        s.Get("/headers", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_content(req.get_header_value("X-Custom") + "|" + req.get_header_value("Authorization"),
                            "text/plain");
        });
        auto echo = [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_content(req.method + ":" + req.body, "text/plain");
        };
        s.Post("/echo", echo);
        s.Put("/echo", echo);
        s.Patch("/echo", echo);
        s.Delete("/echo", echo);
        s.Get("/query", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_content(req.get_param_value("path"), "text/plain");
        });
        s.Get("/slow", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            std::unique_lock lock(mutex_);
            released_cv_.wait_for(lock, 3s, [this] { return released_; });
            res.set_content("late", "text/plain");
        });
        s.Get("/stream", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_chunked_content_provider("application/octet-stream", [](std::size_t, httplib::DataSink& sink) {
                for (int i = 0; i < 5; ++i) {
                    const std::string chunk = "chunk" + std::to_string(i) + ";";
                    sink.write(chunk.data(), chunk.size());
                }
                sink.done();
                return true;
            });
        });
        s.Get("/big", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            std::string big(3 << 20, '\0');
            for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
            res.set_content(big, "application/octet-stream");
        });
        // Eight chunks 30 ms apart: slower in total than a 150 ms timeout, never idle that long.
        s.Get("/drip", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_chunked_content_provider("text/plain", [](std::size_t, httplib::DataSink& sink) {
                for (int i = 0; i < 8; ++i) {
                    std::this_thread::sleep_for(30ms);  // a slow producer, not synchronisation
                    sink.write("x", 1);
                }
                sink.done();
                return true;
            });
        });
        s.Get("/missing", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.status = 404;
            res.set_content(R"({"detail":"no such file"})", "application/json");
        });
        // /flaky answers flaky_status (with flaky_headers) flaky_count times, then 200.
        auto flaky = [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            const int hit = ++flaky_hits;
            std::lock_guard lock(mutex_);
            if (hit <= flaky_count) {
                res.status = flaky_status;
                for (const auto& [k, v] : flaky_headers) res.set_header(k, v);
                res.set_content(R"({"message":"try later"})", "application/json");
            } else {
                res.set_content("recovered", "text/plain");
            }
        };
        s.Get("/flaky", flaky);
        s.Post("/flaky", flaky);

        s.Get("/host", [this](const httplib::Request& req, httplib::Response& res) {
            note(req);
            res.set_content(req.get_header_value("Host"), "text/plain");
        });

        port_ = s.bind_to_any_port(host_);
        REQUIRE(port_ > 0);
        thread_ = std::thread([this] { server_->listen_after_bind(); });
        const auto deadline = steady::now() + 5s;
        while (!server_->is_running() && steady::now() < deadline) std::this_thread::yield();
        REQUIRE(server_->is_running());
    }

    ~TestServer() {
        release();
        server_->stop();
        if (thread_.joinable()) thread_.join();
    }

    void release() {
        {
            std::lock_guard lock(mutex_);
            released_ = true;
        }
        released_cv_.notify_all();
    }

    void set_flaky(int status, int count, std::vector<std::pair<std::string, std::string>> headers = {}) {
        std::lock_guard lock(mutex_);
        flaky_status = status;
        flaky_count = count;
        flaky_headers = std::move(headers);
        flaky_hits = 0;
    }

    std::size_t connections() const {
        std::lock_guard lock(mutex_);
        return peers_.size();
    }

    std::string url(const std::string& path, const std::string& scheme = "http") const {
        const bool v6 = host_.find(':') != std::string::npos;
        return scheme + "://" + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_) + path;
    }

    std::atomic<int> flaky_hits{0};

private:
    void note(const httplib::Request& req) {
        std::lock_guard lock(mutex_);
        peers_.insert(req.remote_addr + ":" + std::to_string(req.remote_port));
    }

    std::unique_ptr<httplib::Server> server_;
    std::string host_;
    std::thread thread_;
    int port_ = 0;
    mutable std::mutex mutex_;
    std::condition_variable released_cv_;
    bool released_ = false;
    std::set<std::string> peers_;
    int flaky_status = 503;
    int flaky_count = 0;
    std::vector<std::pair<std::string, std::string>> flaky_headers;
};

// ---------------------------------------------------------------------------
// A raw TCP server that resets the first `drop_first` connections after
// reading the request, then answers 200 "ok" and closes.
class DroppingServer {
public:
    explicit DroppingServer(int drop_first) : drop_first_(drop_first) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(fd_ >= 0);
        sockaddr_in addr{};
        addr.sin_family = AF_INET;
        addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        addr.sin_port = 0;
        REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
        REQUIRE(::listen(fd_, 16) == 0);
        socklen_t len = sizeof addr;
        REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
        port_ = ntohs(addr.sin_port);
        thread_ = std::thread([this] { run(); });
    }
    ~DroppingServer() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    int accepted() const { return accepted_; }
    std::string url(const std::string& path) const { return "http://127.0.0.1:" + std::to_string(port_) + path; }

private:
    void run() {
        while (!stop_) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const int conn = ::accept(fd_, nullptr, nullptr);
            if (conn < 0) continue;
            const int n = ++accepted_;
            read_request(conn);
            if (n <= drop_first_) {
                linger reset{1, 0};  // close with RST
                ::setsockopt(conn, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
            } else {
                const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
                (void)!::write(conn, reply.data(), reply.size());
            }
            ::close(conn);
        }
    }
    static void read_request(int conn) {
        std::string data;
        char buffer[4096];
        const auto deadline = steady::now() + 2s;
        while (data.find("\r\n\r\n") == std::string::npos && steady::now() < deadline) {
            pollfd p{conn, POLLIN, 0};
            if (::poll(&p, 1, 20) <= 0) continue;
            const auto got = ::read(conn, buffer, sizeof buffer);
            if (got <= 0) return;
            data.append(buffer, static_cast<std::size_t>(got));
        }
    }

    int fd_ = -1;
    int port_ = 0;
    int drop_first_;
    std::atomic<bool> stop_{false};
    std::atomic<int> accepted_{0};
    std::thread thread_;
};

Request make(std::string method, std::string url) {
    Request r;
    r.method = std::move(method);
    r.url = std::move(url);
    r.timeout = 5s;
    return r;
}

runbox::RetryPolicy fast_policy() {
    runbox::RetryPolicy p;
    p.initial_backoff = 10ms;
    p.max_backoff = 40ms;
    p.max_elapsed = 5s;
    return p;
}

long long ms_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

}  // namespace

static_assert(runbox::is_transport_policy_v<HttplibTransport>);
static_assert(!HttplibTransport::supports_http2 && HttplibTransport::supports_streaming);
static_assert(runbox::is_transport_policy_v<runbox::FaultInjectingTransport<HttplibTransport>>);
static_assert(runbox::is_transport_policy_v<runbox::RecordingTransport<HttplibTransport>>);

// The transport-generic cases (reuse, threads, methods and headers, timeouts, refused
// connections, streaming, IPv6) run over every transport in test_transport_suite.cpp.

TEST_CASE("HttplibTransport refuses what it cannot do: HTTP/2 and connect_to", "[httplib]") {
    HttplibTransport t;
    auto h2 = make("GET", "http://127.0.0.1:1/");
    h2.version = runbox::HttpVersion::http2;
    try {
        (void)t.send(h2);
        FAIL("accepted http2");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::unsupported);
    }
    auto dial = make("GET", "http://example.invalid:1/");
    dial.connect_to = "127.0.0.1:1";
    try {
        (void)t.send(dial);
        FAIL("accepted connect_to");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::unsupported);
    }
}

TEST_CASE("HttplibTransport pool limits: idle timeout and pool size", "[httplib]") {
    TestServer server;
    runbox::TransportOptions options;
    options.idle_connection_timeout = 0ms;  // every pooled connection is too old to trust
    HttplibTransport fresh(options);
    for (int i = 0; i < 3; ++i) REQUIRE(fresh.send(make("GET", server.url("/hello"))).status == 200);
    REQUIRE(server.connections() == 3);

    TestServer other;
    options = {};
    options.max_idle_connections_per_host = 0;
    HttplibTransport unpooled(options);
    for (int i = 0; i < 2; ++i) REQUIRE(unpooled.send(make("GET", other.url("/hello"))).status == 200);
    REQUIRE(unpooled.idle_connections() == 0);
    REQUIRE(other.connections() == 2);

    HttplibTransport pooled;
    REQUIRE(pooled.send(make("GET", other.url("/hello"))).status == 200);
    REQUIRE(pooled.idle_connections() == 1);
    pooled.clear_pool();
    REQUIRE(pooled.idle_connections() == 0);
}

TEST_CASE("send_with_retry over HttplibTransport retries 429/502/503/504", "[httplib][retry]") {
    TestServer server;
    HttplibTransport t;
    for (int status : {429, 502, 503, 504}) {
        INFO(status);
        server.set_flaky(status, 2);
        auto r = runbox::send_with_retry(t, make("GET", server.url("/flaky")), fast_policy());
        REQUIRE(r.status == 200);
        REQUIRE(r.body == "recovered");
        REQUIRE(server.flaky_hits == 3);
    }
    server.set_flaky(500, 2);  // not in retry_statuses
    REQUIRE(runbox::send_with_retry(t, make("GET", server.url("/flaky")), fast_policy()).status == 500);
    REQUIRE(server.flaky_hits == 1);
}

TEST_CASE("send_with_retry waits at least the server's Retry-After", "[httplib][retry]") {
    TestServer server;
    HttplibTransport t;
    auto policy = fast_policy();
    policy.initial_backoff = 1ms;

    server.set_flaky(429, 1, {{"retry-after-ms", "150"}});
    auto start = steady::now();
    REQUIRE(runbox::send_with_retry(t, make("GET", server.url("/flaky")), policy).status == 200);
    REQUIRE(ms_since(start) >= 150);
    REQUIRE(server.flaky_hits == 2);

    // Daytona-style throttler header, seconds with a fraction.
    server.set_flaky(429, 1, {{"Retry-After-sandbox-create", "0.12"}});
    start = steady::now();
    REQUIRE(runbox::send_with_retry(t, make("GET", server.url("/flaky")), policy).status == 200);
    REQUIRE(ms_since(start) >= 120);

    // A Retry-After beyond the budget ends the loop at once with the 429.
    policy.max_elapsed = 100ms;
    server.set_flaky(429, 1, {{"Retry-After", "30"}});
    start = steady::now();
    auto r = runbox::send_with_retry(t, make("GET", server.url("/flaky")), policy);
    REQUIRE(r.status == 429);
    REQUIRE(ms_since(start) < 1000);
    REQUIRE(server.flaky_hits == 1);
    try {
        runbox::raise_for_status(r, "test");
        FAIL("no throw");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::rate_limited);
        REQUIRE(e.retry_after() == std::chrono::milliseconds(30000));
    }
}

TEST_CASE("send_with_retry never retries a POST", "[httplib][retry]") {
    TestServer server;
    HttplibTransport t;
    server.set_flaky(503, 5);
    auto r = runbox::send_with_retry(t, make("POST", server.url("/flaky")), fast_policy());
    REQUIRE(r.status == 503);
    REQUIRE(server.flaky_hits == 1);
}

TEST_CASE("send_with_retry bounds attempts and total time", "[httplib][retry]") {
    TestServer server;
    HttplibTransport t;
    server.set_flaky(503, 1000);
    auto policy = fast_policy();
    policy.max_attempts = 3;
    REQUIRE(runbox::send_with_retry(t, make("GET", server.url("/flaky")), policy).status == 503);
    REQUIRE(server.flaky_hits == 3);

    server.set_flaky(503, 1000);
    policy.max_attempts = 1000;
    policy.initial_backoff = 30ms;
    policy.max_backoff = 30ms;
    policy.jitter = 0;
    policy.max_elapsed = 300ms;
    const auto start = steady::now();
    REQUIRE(runbox::send_with_retry(t, make("GET", server.url("/flaky")), policy).status == 503);
    const auto elapsed = ms_since(start);
    REQUIRE(elapsed < 1500);
    REQUIRE(server.flaky_hits >= 2);
    REQUIRE(server.flaky_hits <= 11);  // at most 300 ms / 30 ms waits, + the first attempt
}

TEST_CASE("a dropped connection is retried for GET, not for POST", "[httplib][retry]") {
    {
        DroppingServer dropper(1);
        HttplibTransport t;
        auto r = runbox::send_with_retry(t, make("GET", dropper.url("/alive")), fast_policy());
        REQUIRE(r.status == 200);
        REQUIRE(r.body == "ok");
        REQUIRE(dropper.accepted() == 2);
    }
    {
        DroppingServer dropper(1);
        HttplibTransport t;
        try {
            (void)runbox::send_with_retry(t, make("POST", dropper.url("/execute_action")), fast_policy());
            FAIL("no throw");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == errc::transport);
        }
        REQUIRE(dropper.accepted() == 1);
    }
}

TEST_CASE("HttplibTransport verifies TLS certificates unless told not to", "[httplib][tls]") {
    TestCertificate certificate;
    auto ssl = std::make_unique<httplib::SSLServer>(certificate.cert.c_str(), certificate.key.c_str());
    REQUIRE(ssl->is_valid());
    TestServer server(std::move(ssl));
    const auto url = server.url("/hello", "https");

    SECTION("verification on, CA given -> ok") {
        runbox::TransportOptions options;
        options.ca_cert_path = certificate.cert.string();
        HttplibTransport t(options);
        auto r = t.send(make("GET", url));
        REQUIRE(r.status == 200);
        REQUIRE(r.body == "hi");
        REQUIRE(t.send(make("GET", url)).status == 200);
        REQUIRE(server.connections() == 1);
    }
    SECTION("verification on, no CA -> errc::transport") {
        HttplibTransport t;
        try {
            (void)t.send(make("GET", url));
            FAIL("untrusted certificate accepted");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == errc::transport);
            UNSCOPED_INFO(e.what());
            REQUIRE(std::string(e.what()).find("127.0.0.1") != std::string::npos);
            REQUIRE(std::string(e.what()).find("TLS") != std::string::npos);
        }
    }
    SECTION("verify_tls = false -> ok") {
        runbox::TransportOptions options;
        options.verify_tls = false;
        HttplibTransport t(options);
        REQUIRE(t.send(make("GET", url)).body == "hi");
    }
}

TEST_CASE("RecordingTransport over HttplibTransport records a real exchange, credentials redacted",
          "[httplib][cassette]") {
    TestServer server;
    std::string pattern = (std::filesystem::temp_directory_path() / "runbox-rec-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    const std::filesystem::path dir = pattern;
    runbox::TransportOptions options;
    options.cassette_path = (dir / "live.jsonl").string();
    {
        runbox::RecordingTransport<HttplibTransport> recorder(options);
        auto req = make("GET", server.url("/headers"));
        req.headers.set("X-Custom", "visible");
        req.headers.set("Authorization", "Bearer live-token-4242");
        auto r = recorder.send(req);
        REQUIRE(r.body == "visible|Bearer live-token-4242");  // the caller sees the real thing
    }
    std::ifstream in(dir / "live.jsonl");
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    std::filesystem::remove_all(dir);
    REQUIRE(text.find("live-token-4242") == std::string::npos);
    REQUIRE(text.find("visible|<redacted>") != std::string::npos);
}

}  // namespace test_httplib_transport
