// One transport test suite, run over every transport x protocol leg it supports:
//   HttplibTransport x HTTP/1.1 (an httplib server)
//   CurlTransport    x HTTP/1.1 (the same httplib server)               when runbox::curl exists
//   CurlTransport    x h2c      (runbox::testing::Http2Server)          and runbox::http2_server
// The transport-generic cases of test_httplib_transport.cpp live here now.
// Both servers serve the same routes (serve_route below), so every leg checks the same
// behaviour: statuses, headers, large bodies, max_response_bytes, per-read timeouts and the
// overall deadline, a stop token from another thread, connection reuse, framed streams
// (next/done/fail, truncation), trailers, IPv6 loopback and connect_to. Only 127.0.0.1/::1.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include <httplib.h>

#include "catch.hpp"
#if defined(RUNBOX_WITH_HTTP2_SERVER)
#include "runbox/testing/http2_server.hpp"
#endif
#if defined(RUNBOX_WITH_CURL)
#include "runbox/transport/curl.hpp"
#endif
#include "runbox/transport/envelope.hpp"
#include "runbox/transport/httplib.hpp"
#include "runbox/transport/transport.hpp"
#include "test_certificate.hpp"

namespace test_transport_suite {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
#if defined(RUNBOX_WITH_CURL)
using runbox::CurlTransport;
#endif
using runbox::errc;
using runbox::Headers;
using runbox::HttplibTransport;
using runbox::Request;
using runbox::Response;
using runbox::StreamAction;
using steady = std::chrono::steady_clock;

namespace {

// ---------------------------------------------------------------------------
// What a route answers, independent of the server that sends it.
struct Reply {
    int status = 200;
    Headers headers{};
    std::vector<std::string> chunks{};  // body, sent in this order
    std::chrono::milliseconds first_delay{0};  // before the first byte (a slow server)
    std::chrono::milliseconds gap{0};          // between chunks (a slow producer, not synchronisation)
    bool forever = false;                      // repeat the last chunk until the client goes (bounded: 10 s)
    Headers trailers{};                        // h2c only (httplib 0.11 cannot send trailers)
    bool trailers_only = false;                // h2c only
};

std::string pattern(std::size_t size) {
    std::string out(size, '\0');
    for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>('a' + i % 26);
    return out;
}

const std::string big_body = pattern(std::size_t{3} << 20);
const std::string frames_body = runbox::encode_frame("one") + runbox::encode_frame("two") +
                                runbox::encode_frame("three");

Reply serve_route(const std::string& method, const std::string& path, const Headers& headers, const std::string& body) {
    Reply r;
    r.headers.set("content-type", "text/plain");
    const std::string route = path.substr(0, path.find('?'));
    if (route == "/hello") {
        r.headers.set("x-reply", "yes");
        r.chunks = {"hi"};
    } else if (route == "/echo") {
        r.chunks = {method + ":" + body + "|" + headers.get("x-custom").value_or("") + "|" +
                    headers.get("host").value_or(headers.get(":authority").value_or(""))};
    } else if (route == "/headers") {
        r.chunks = {headers.get("x-custom").value_or("") + "|" + headers.get("authorization").value_or("")};
    } else if (route == "/query") {  // the raw query: the transport must neither decode nor re-encode it
        r.chunks = {path.find('?') == std::string::npos ? std::string() : path.substr(path.find('?') + 1)};
    } else if (route == "/status") {
        r.status = std::stoi(path.substr(path.find('=') + 1));
        r.headers.set("content-type", "application/json");
        if (r.status != 204) r.chunks = {R"({"detail":"status )" + std::to_string(r.status) + "\"}"};
    } else if (route == "/big") {
        r.chunks = {big_body};
    } else if (route == "/slow") {
        r.first_delay = 1500ms;
        r.chunks = {"late"};
    } else if (route == "/drip") {  // 8 bytes 30 ms apart: slower than a 150 ms timeout, never idle that long
        r.gap = 30ms;
        r.chunks = std::vector<std::string>(8, "x");
    } else if (route == "/trickle") {
        r.gap = 20ms;
        r.chunks = {"tick"};
        r.forever = true;
    } else if (route == "/frames") {
        r.headers.set("content-type", "application/grpc");
        r.gap = 10ms;
        for (std::size_t pos = 0; pos < frames_body.size(); pos += 4) r.chunks.push_back(frames_body.substr(pos, 4));
        r.trailers.set("grpc-status", "0");
        r.trailers.set("grpc-message", "fine");
    } else if (route == "/frames-cut") {
        r.headers.set("content-type", "application/grpc");
        r.chunks = {frames_body.substr(0, frames_body.size() - 2)};
    } else if (route == "/trailers-only") {
        r.trailers_only = true;
        r.headers = Headers{{"content-type", "application/grpc"}, {"grpc-status", "5"}, {"grpc-message", "no such sandbox"}};
    } else {
        r.status = 404;
        r.chunks = {"no route"};
    }
    return r;
}

/// Waits up to `d` unless the server is stopping (a slow server that still stops promptly).
class Pause {
public:
    bool wait(std::chrono::milliseconds d) {
        std::unique_lock lock(mutex_);
        return !cv_.wait_for(lock, d, [this] { return stopping_; });
    }
    void stop() {
        {
            std::lock_guard lock(mutex_);
            stopping_ = true;
        }
        cv_.notify_all();
    }

private:
    std::mutex mutex_;
    std::condition_variable cv_;
    bool stopping_ = false;
};

// ---------------------------------------------------------------------------
// The HTTP/1.1 server (httplib), optionally TLS.
class Http1Server {
public:
    explicit Http1Server(std::string host = "127.0.0.1", std::unique_ptr<httplib::Server> server = nullptr)
        : server_(server ? std::move(server) : std::make_unique<httplib::Server>()), host_(std::move(host)) {
        server_->set_keep_alive_max_count(1000);
        server_->set_payload_max_length(std::size_t{16} << 20);
        auto handler = [this](const httplib::Request& req, httplib::Response& res) {
            {
                std::lock_guard lock(mutex_);
                peers_.insert(req.remote_addr + ":" + std::to_string(req.remote_port));
            }
            Headers headers;
            for (const auto& [k, v] : req.headers) headers.add(k, v);
            auto reply = std::make_shared<Reply>(serve_route(req.method, req.target, headers, req.body));
            res.status = reply->status;
            std::string type = "text/plain";
            for (const auto& [k, v] : reply->headers) {
                if (runbox::detail::iequals(k, "content-type")) type = v;
                else res.set_header(k, v);
            }
            if (reply->first_delay.count() == 0 && reply->gap.count() == 0 && !reply->forever) {
                std::string all;
                for (const auto& c : reply->chunks) all += c;
                res.set_content(all, type);
                return;
            }
            res.set_chunked_content_provider(type, [this, reply](std::size_t, httplib::DataSink& sink) {
                if (reply->first_delay.count() > 0 && !pause_.wait(reply->first_delay)) return false;
                const auto end = steady::now() + 10s;
                for (std::size_t i = 0;; ++i) {
                    if (i >= reply->chunks.size() && !reply->forever) break;
                    const auto& chunk = reply->chunks[std::min(i, reply->chunks.size() - 1)];
                    if (!sink.write(chunk.data(), chunk.size())) return false;
                    if (steady::now() > end) break;
                    if (reply->gap.count() > 0 && !pause_.wait(reply->gap)) return false;
                }
                sink.done();
                return true;
            });
        };
        server_->Get(".*", handler);
        server_->Post(".*", handler);
        server_->Put(".*", handler);
        server_->Patch(".*", handler);
        server_->Delete(".*", handler);
        port_ = server_->bind_to_any_port(host_);
        REQUIRE(port_ > 0);
        thread_ = std::thread([this] { server_->listen_after_bind(); });
        const auto deadline = steady::now() + 5s;
        while (!server_->is_running() && steady::now() < deadline) std::this_thread::yield();
        REQUIRE(server_->is_running());
    }
    ~Http1Server() {
        pause_.stop();
        server_->stop();
        if (thread_.joinable()) thread_.join();
    }
    std::string url(const std::string& path, const std::string& scheme = "http") const {
        const bool v6 = host_.find(':') != std::string::npos;
        return scheme + "://" + (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_) + path;
    }
    int port() const { return port_; }
    std::size_t connections() const {
        std::lock_guard lock(mutex_);
        return peers_.size();
    }

private:
    std::unique_ptr<httplib::Server> server_;
    std::string host_;
    int port_ = 0;
    std::thread thread_;
    Pause pause_;
    mutable std::mutex mutex_;
    std::set<std::string> peers_;
};

#if defined(RUNBOX_WITH_HTTP2_SERVER)
// ---------------------------------------------------------------------------
// The h2c server (runbox::testing::Http2Server) with the same routes.
class H2cServer {
public:
    explicit H2cServer(std::string host = "127.0.0.1")
        : server_(
              [this](const runbox::testing::Http2Request& req, runbox::testing::Http2Stream& out) {
                  Headers headers = req.headers;
                  headers.add(":authority", req.authority);
                  const Reply reply = serve_route(req.method, req.path, headers, req.body);
                  if (reply.trailers_only) {
                      out.trailers_only(reply.status, reply.headers);
                      return;
                  }
                  out.respond(reply.status, reply.headers);
                  if (reply.first_delay.count() > 0 && !wait(out, reply.first_delay)) return;
                  const auto end = steady::now() + 10s;
                  for (std::size_t i = 0;; ++i) {
                      if (i >= reply.chunks.size() && !reply.forever) break;
                      out.write(reply.chunks[std::min(i, reply.chunks.size() - 1)]);
                      if (out.cancelled() || steady::now() > end) return;
                      if (reply.gap.count() > 0 && !wait(out, reply.gap)) return;
                  }
                  out.finish(reply.trailers);
              },
              runbox::testing::Http2ServerOptions{.host = std::move(host)}) {}
    ~H2cServer() {
        pause_.stop();
        server_.stop();
    }
    std::string url(const std::string& path) const { return server_.url(path); }
    int port() const { return server_.port(); }
    std::size_t connections() const { return server_.connections_accepted(); }

private:
    bool wait(runbox::testing::Http2Stream& out, std::chrono::milliseconds d) {
        return pause_.wait(d) && !out.cancelled();
    }
    Pause pause_;
    runbox::testing::Http2Server server_;
};

#endif

// ---------------------------------------------------------------------------
// The legs.
struct HttplibHttp1 {
    using transport = HttplibTransport;
    using server = Http1Server;
    static constexpr runbox::HttpVersion version = runbox::HttpVersion::any;
    static constexpr bool trailers = false;  // httplib drops them
    static constexpr bool connect_to = false;
};
#if defined(RUNBOX_WITH_CURL)
struct CurlHttp1 {
    using transport = CurlTransport;
    using server = Http1Server;
    static constexpr runbox::HttpVersion version = runbox::HttpVersion::http1_1;
    static constexpr bool trailers = false;  // the httplib server cannot send them
    static constexpr bool connect_to = true;
};
#endif
#if defined(RUNBOX_WITH_CURL) && defined(RUNBOX_WITH_HTTP2_SERVER)
struct CurlH2c {
    using transport = CurlTransport;
    using server = H2cServer;
    static constexpr runbox::HttpVersion version = runbox::HttpVersion::http2;
    static constexpr bool trailers = true;
    static constexpr bool connect_to = true;
};
#endif

template <class Leg>
Request make(std::string method, std::string url, std::string body = {}) {
    Request r;
    r.method = std::move(method);
    r.url = std::move(url);
    r.body = std::move(body);
    r.timeout = 5s;
    r.version = Leg::version;
    return r;
}

template <class F>
errc code_of(F&& f) {
    try {
        f();
    } catch (const runbox::error& e) {
        UNSCOPED_INFO(e.what());
        return e.code();
    }
    FAIL("no runbox::error thrown");
    return errc::config_invalid;
}

long long ms_since(steady::time_point start) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - start).count();
}

}  // namespace

#if defined(RUNBOX_WITH_CURL) && defined(RUNBOX_WITH_HTTP2_SERVER)
#define TRANSPORT_LEGS HttplibHttp1, CurlHttp1, CurlH2c
#elif defined(RUNBOX_WITH_CURL)
#define TRANSPORT_LEGS HttplibHttp1, CurlHttp1
#else
#define TRANSPORT_LEGS HttplibHttp1
#endif

namespace {
template <class Leg>
constexpr bool is_h2c() {
#if defined(RUNBOX_WITH_CURL) && defined(RUNBOX_WITH_HTTP2_SERVER)
    return std::is_same_v<Leg, CurlH2c>;
#else
    return false;
#endif
}
}  // namespace

TEMPLATE_TEST_CASE("transport suite: statuses, headers and methods", "[suite]", TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    auto r = t.send(make<TestType>("GET", server.url("/hello")));
    CHECK(r.status == 200);
    CHECK(r.headers.get("x-reply") == "yes");
    CHECK(r.body == "hi");
    CHECK(r.trailers.empty());
    for (int status : {201, 204, 400, 404, 429, 503}) {
        CAPTURE(status);
        auto s = t.send(make<TestType>("GET", server.url("/status?code=" + std::to_string(status))));
        CHECK(s.status == status);
        if (status != 204) CHECK(s.body == R"({"detail":"status )" + std::to_string(status) + "\"}");
    }
    for (const char* method : {"POST", "PUT", "PATCH", "DELETE"}) {
        auto req = make<TestType>(method, server.url("/echo"), R"({"x":1})");
        req.headers.set("X-Custom", "custom-value");
        req.headers.set("Content-Type", "application/json");
        auto e = t.send(req);
        CHECK(e.status == 200);
        CHECK(e.body.starts_with(std::string(method) + R"(:{"x":1}|custom-value|127.0.0.1:)"));
    }
    auto headers = make<TestType>("GET", server.url("/headers"));
    headers.headers.set("X-Custom", "custom-value");
    headers.headers.set("Authorization", "Bearer tok-123");
    CHECK(t.send(headers).body == "custom-value|Bearer tok-123");
    // Targets built with query_string travel as written: not decoded, not re-encoded.
    const std::string query = runbox::query_string({{"path", "/work space/a+b&c.txt"}});
    CHECK(t.send(make<TestType>("GET", server.url("/query?" + query))).body == query);
    // A header value with CR/LF would smuggle header lines: refused before anything is sent,
    // and the message names the field, never the value.
    auto bad = make<TestType>("GET", server.url("/hello"));
    bad.headers.set("X-Evil", "a\r\nInjected: yes");
    try {
        (void)t.send(bad);
        FAIL("CRLF accepted");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::config_invalid);
        CHECK(std::string(e.what()).find("X-Evil") != std::string::npos);
        CHECK(std::string(e.what()).find("Injected") == std::string::npos);
    }
}

TEMPLATE_TEST_CASE("transport suite: connection refused -> errc::transport naming the host, not the secrets",
                   "[suite][errors]", TRANSPORT_LEGS) {
    // A port nobody listens on: bind one, note it, close it.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    const int port = ntohs(address.sin_port);
    ::close(fd);

    runbox::TransportOptions options;
    options.connect_timeout = 1s;
    typename TestType::transport t(options);
    auto req = make<TestType>("GET", "http://127.0.0.1:" + std::to_string(port) + "/x?key=query-secret");
    req.headers.set("Authorization", "Bearer header-secret");
    try {
        (void)t.send(req);
        FAIL("connected to a closed port");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::transport);
        const std::string what = e.what();
        CHECK(what.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);
        CHECK(what.find("query-secret") == std::string::npos);
        CHECK(what.find("header-secret") == std::string::npos);
    }
}

TEMPLATE_TEST_CASE("transport suite: a streamed 2xx body goes to on_body, an error body does not", "[suite][stream]",
                   TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    std::string received;
    int chunks = 0;
    auto req = make<TestType>("GET", server.url("/drip"));
    req.on_body = [&](std::string_view chunk) {
        received.append(chunk);
        ++chunks;
        return StreamAction::next;
    };
    auto r = t.send(req);
    CHECK(r.status == 200);
    CHECK(r.body.empty());
    CHECK(received == "xxxxxxxx");
    CHECK(chunks >= 1);

    received.clear();
    req.url = server.url("/status?code=404");
    auto missing = t.send(req);
    CHECK(missing.status == 404);
    CHECK(received.empty());
    CHECK(missing.body == R"({"detail":"status 404"})");
}

TEMPLATE_TEST_CASE("transport suite: large bodies and max_response_bytes", "[suite]", TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    auto r = t.send(make<TestType>("GET", server.url("/big")));
    REQUIRE(r.status == 200);
    CHECK(r.body.size() == big_body.size());
    CHECK(r.body == big_body);
    const std::string upload = pattern(std::size_t{2} << 20);
    auto e = t.send(make<TestType>("POST", server.url("/echo"), upload));
    CHECK(e.body.size() == 5 + upload.size() + 1 + 1 + std::string("127.0.0.1:" + std::to_string(server.port())).size());

    runbox::TransportOptions options;
    options.max_response_bytes = 100000;
    typename TestType::transport small(options);
    CHECK(code_of([&] { (void)small.send(make<TestType>("GET", server.url("/big"))); }) == errc::bad_response);
    // A streamed body is the receiver's to bound, not max_response_bytes.
    std::size_t streamed = 0;
    auto req = make<TestType>("GET", server.url("/big"));
    req.on_body = [&](std::string_view chunk) {
        streamed += chunk.size();
        return StreamAction::next;
    };
    CHECK(small.send(req).status == 200);
    CHECK(streamed == big_body.size());
    CHECK(small.send(make<TestType>("GET", server.url("/hello"))).body == "hi");
}

TEMPLATE_TEST_CASE("transport suite: per-read timeout and overall deadline", "[suite][timeout]", TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;

    auto slow = make<TestType>("GET", server.url("/slow"));
    slow.timeout = 200ms;
    auto start = steady::now();
    CHECK(code_of([&] { (void)t.send(slow); }) == errc::timeout);
    const auto slow_ms = ms_since(start);
    CHECK(slow_ms >= 150);
    CHECK(slow_ms < 1400);  // well before the server's 1500 ms answer
    CHECK(t.send(make<TestType>("GET", server.url("/hello"))).body == "hi");  // the transport recovers

    // The per-read timeout bounds idleness, not a steadily streaming body.
    auto drip = make<TestType>("GET", server.url("/drip"));
    drip.timeout = 150ms;
    start = steady::now();
    CHECK(t.send(drip).body == "xxxxxxxx");
    CHECK(ms_since(start) >= 200);  // longer than one timeout in total

    // A body that never stops trickling ends at the deadline, although no read is idle.
    auto trickle = make<TestType>("GET", server.url("/trickle"));
    trickle.timeout = 1000ms;
    trickle.deadline = steady::now() + 400ms;
    std::size_t got = 0;
    trickle.on_body = [&](std::string_view chunk) {
        got += chunk.size();
        return StreamAction::next;
    };
    start = steady::now();
    CHECK(code_of([&] { (void)t.send(trickle); }) == errc::timeout);
    const auto trickle_ms = ms_since(start);
    CHECK(got > 0);
    CHECK(trickle_ms >= 350);
    CHECK(trickle_ms < 3000);
}

TEMPLATE_TEST_CASE("transport suite: a stop token ends a stream from another thread", "[suite][stop]", TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    std::stop_source source;
    std::mutex mutex;
    std::condition_variable first_chunk;
    bool started = false;
    auto req = make<TestType>("GET", server.url("/trickle"));
    req.stop = source.get_token();
    req.on_body = [&](std::string_view) {
        {
            std::lock_guard lock(mutex);
            started = true;
        }
        first_chunk.notify_all();
        return StreamAction::next;
    };
    std::jthread closer([&] {
        std::unique_lock lock(mutex);
        first_chunk.wait_for(lock, 5s, [&] { return started; });
        lock.unlock();
        source.request_stop();
    });
    const auto start = steady::now();
    CHECK(code_of([&] { (void)t.send(req); }) == errc::cancelled);
    CHECK(ms_since(start) < 5000);  // the trickle runs 10 s: the stop ended it, not the server
    // A stopped token refuses the next exchange at once.
    CHECK(code_of([&] { (void)t.send(req); }) == errc::cancelled);
    CHECK(t.send(make<TestType>("GET", server.url("/hello"))).body == "hi");
}

TEMPLATE_TEST_CASE("transport suite: connections are reused, also across threads", "[suite][pool]", TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    for (int i = 0; i < 5; ++i) REQUIRE(t.send(make<TestType>("GET", server.url("/hello"))).status == 200);
#if defined(RUNBOX_WITH_CURL)
    if constexpr (is_h2c<TestType>()) {
        if (!TestType::transport::reuses_h2c_connections()) {
            // libcurl < 8.0 cannot reuse h2c connections (curl/curl#10634): one per exchange, by design.
            WARN("libcurl " << curl_version_info(CURLVERSION_NOW)->version << ": h2c connections are not reused");
            CHECK(server.connections() == 5);
            return;
        }
    }
#endif
    CHECK(server.connections() == 1);
    CHECK(t.idle_connections() == 1);
    std::vector<std::thread> threads;
    std::atomic<int> ok{0};
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&] {
            for (int j = 0; j < 5; ++j) {
                if (t.send(make<TestType>("GET", server.url("/hello"))).body == "hi") ++ok;
            }
        });
    }
    for (auto& thread : threads) thread.join();
    CHECK(ok == 20);
    CHECK(server.connections() <= 5);  // at most one per concurrent sender, plus the first
}

TEMPLATE_TEST_CASE("transport suite: framed streams (next, done, fail, truncation)", "[suite][frames]", TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    std::vector<std::string> got;
    bool head_first = false;
    auto req = make<TestType>("POST", server.url("/frames"), "{}");
    req.on_head = [&](const Response& head) {
        head_first = got.empty() && head.status == 200 && head.headers.get("content-type") == "application/grpc";
    };
    auto r = runbox::send_framed(t, req, [&](runbox::Frame& f) {
        got.push_back(f.payload);
        return StreamAction::next;
    });
    CHECK(head_first);
    CHECK(r.status == 200);
    CHECK(r.body.empty());
    CHECK(got == std::vector<std::string>{"one", "two", "three"});
    if constexpr (TestType::trailers) {
        CHECK(r.trailers.get("grpc-status") == "0");
        CHECK(r.trailers.get("grpc-message") == "fine");
    }

    got.clear();
    auto done = runbox::send_framed(t, make<TestType>("POST", server.url("/frames"), "{}"), [&](runbox::Frame& f) {
        got.push_back(f.payload);
        return StreamAction::done;
    });
    CHECK(done.status == 200);  // no error
    CHECK(got == std::vector<std::string>{"one"});

    CHECK(code_of([&] {
              (void)runbox::send_framed(t, make<TestType>("POST", server.url("/frames"), "{}"),
                                        [](runbox::Frame&) { return StreamAction::fail; });
          }) == errc::bad_response);
    CHECK(code_of([&] {
              (void)runbox::send_framed(t, make<TestType>("POST", server.url("/frames-cut"), "{}"),
                                        [](runbox::Frame&) { return StreamAction::next; });
          }) == errc::bad_response);
    // A handler's own error comes out of send() as it was thrown.
    CHECK(code_of([&] {
              (void)runbox::send_framed(t, make<TestType>("POST", server.url("/frames"), "{}"),
                                        [](runbox::Frame&) -> StreamAction {
                                            throw runbox::error(errc::sandbox_gone, "from the handler");
                                        });
          }) == errc::sandbox_gone);
    CHECK(t.send(make<TestType>("GET", server.url("/hello"))).body == "hi");
}

TEMPLATE_TEST_CASE("transport suite: IPv6 loopback", "[suite][ipv6]", TRANSPORT_LEGS) {
    const int probe = ::socket(AF_INET6, SOCK_STREAM, 0);
    sockaddr_in6 address{};
    address.sin6_family = AF_INET6;
    address.sin6_addr = in6addr_loopback;
    const bool v6 = probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
    if (probe >= 0) ::close(probe);
    if (!v6) {
        WARN("no IPv6 loopback here; leg not run");
        return;
    }
    typename TestType::server server("::1");
    typename TestType::transport t;
    auto r = t.send(make<TestType>("POST", server.url("/echo"), "six"));
    CHECK(r.status == 200);
    CHECK(r.body.starts_with("POST:six||[::1]:"));
}

TEMPLATE_TEST_CASE("transport suite: connect_to dials another address, keeping the URL's host", "[suite][connect_to]",
                   TRANSPORT_LEGS) {
    typename TestType::server server;
    typename TestType::transport t;
    const std::string port = std::to_string(server.port());
    auto req = make<TestType>("POST", "http://sandbox.runbox.invalid:" + port + "/echo", "x");
    req.connect_to = "127.0.0.1:" + port;
    if constexpr (TestType::connect_to) {
        auto r = t.send(req);
        CHECK(r.status == 200);
        CHECK(r.body == "POST:x||sandbox.runbox.invalid:" + port);
        req.connect_to = "no-port";
        CHECK(code_of([&] { (void)t.send(req); }) == errc::config_invalid);
    } else {
        CHECK(code_of([&] { (void)t.send(req); }) == errc::unsupported);
    }
}

#if defined(RUNBOX_WITH_CURL) && defined(RUNBOX_WITH_HTTP2_SERVER)
TEST_CASE("Http2Server is bounded: header and body caps, and stop() ends a stream in progress", "[suite][h2server]") {
    std::atomic<int> handled{0};
    runbox::testing::Http2Server server(
        [&](const runbox::testing::Http2Request& req, runbox::testing::Http2Stream& out) {
            ++handled;
            if (req.path == "/forever") {
                out.respond(200, Headers{{"content-type", "text/plain"}});
                // Streams until the stream is cancelled (client gone or server stopping).
                while (!out.cancelled()) {
                    out.write("x");
                    std::this_thread::sleep_for(5ms);  // a slow producer, not synchronisation
                }
                return;
            }
            out.respond(200);
            out.write(std::to_string(req.body.size()));
            out.finish();
        },
        runbox::testing::Http2ServerOptions{.max_header_bytes = 1024, .max_body_bytes = 4096});
    CurlTransport t;
    CHECK(t.send(make<CurlH2c>("POST", server.url("/size"), std::string(4096, 'b'))).body == "4096");

    auto big_header = make<CurlH2c>("GET", server.url("/size"));
    big_header.headers.set("x-big", std::string(2000, 'h'));
    CHECK(code_of([&] { (void)t.send(big_header); }) == errc::transport);  // the stream is reset
    CHECK(code_of([&] { (void)t.send(make<CurlH2c>("POST", server.url("/size"), std::string(5000, 'b'))); }) ==
          errc::transport);
    CHECK(handled == 1);  // neither oversize request reached the handler

    // stop() with a stream in progress: the client's exchange ends, stop() returns.
    std::mutex mutex;
    std::condition_variable cv;
    bool streaming = false;
    auto forever = make<CurlH2c>("GET", server.url("/forever"));
    forever.on_body = [&](std::string_view) {
        {
            std::lock_guard lock(mutex);
            streaming = true;
        }
        cv.notify_all();
        return StreamAction::next;
    };
    std::jthread stopper([&] {
        std::unique_lock lock(mutex);
        cv.wait_for(lock, 5s, [&] { return streaming; });
        lock.unlock();
        server.stop();
    });
    const auto start = steady::now();
    CHECK(code_of([&] { (void)t.send(forever); }) == errc::transport);
    CHECK(ms_since(start) < 5000);
    CHECK(streaming);
}

TEST_CASE("transport suite: trailers-only answers (h2c)", "[suite][trailers]") {
    H2cServer server;
    CurlTransport t;
    auto r = t.send(make<CurlH2c>("POST", server.url("/trailers-only"), "{}"));
    CHECK(r.status == 200);
    CHECK(r.headers.get("grpc-status") == "5");
    CHECK(r.headers.get("grpc-message") == "no such sandbox");
    CHECK(r.body.empty());
    CHECK(r.trailers.empty());
}

#endif

#if defined(RUNBOX_WITH_CURL)
TEST_CASE("transport suite: HTTP/2 required but not spoken -> errc::unsupported", "[suite][http2]") {
    Http1Server server;
    auto h2 = make<CurlHttp1>("GET", server.url("/hello"));
    h2.version = runbox::HttpVersion::http2;
    HttplibTransport httplib_transport;
    CHECK(code_of([&] { (void)httplib_transport.send(h2); }) == errc::unsupported);

    CurlTransport t;
    // h2c prior knowledge to an HTTP/1.1-only server.
    CHECK(code_of([&] { (void)t.send(h2); }) == errc::unsupported);

    // https: ALPN offers h2, the server picks http/1.1; libcurl would fall back silently.
    TestCertificate certificate;
    auto ssl = std::make_unique<httplib::SSLServer>(certificate.cert.c_str(), certificate.key.c_str());
    REQUIRE(ssl->is_valid());
    Http1Server tls("127.0.0.1", std::move(ssl));
    runbox::TransportOptions options;
    options.ca_cert_path = certificate.cert.string();
    CurlTransport verified(options);
    auto h2_tls = make<CurlHttp1>("GET", tls.url("/hello", "https"));
    h2_tls.version = runbox::HttpVersion::http2;
    CHECK(code_of([&] { (void)verified.send(h2_tls); }) == errc::unsupported);
    // Without the requirement the same server answers over HTTP/1.1.
    CHECK(verified.send(make<CurlHttp1>("GET", tls.url("/hello", "https"))).body == "hi");
    auto any = make<CurlHttp1>("GET", tls.url("/hello", "https"));
    any.version = runbox::HttpVersion::any;
    CHECK(verified.send(any).body == "hi");
}

TEST_CASE("CurlTransport reads the trailers of a chunked HTTP/1.1 body", "[suite][trailers]") {
    // httplib 0.11 cannot send trailers: a raw loopback socket answers one request.
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener, 1) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    const int port = ntohs(address.sin_port);
    std::thread server([listener] {
        const int conn = ::accept(listener, nullptr, nullptr);
        if (conn < 0) return;
        std::string request;
        char buffer[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
            const auto got = ::read(conn, buffer, sizeof buffer);
            if (got <= 0) break;
            request.append(buffer, static_cast<std::size_t>(got));
        }
        const std::string reply =
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: grpc-status\r\nConnection: close\r\n\r\n"
            "5\r\nhello\r\n0\r\ngrpc-status: 7\r\ngrpc-message: denied\r\n\r\n";
        (void)!::write(conn, reply.data(), reply.size());
        ::close(conn);
    });
    CurlTransport t;
    auto r = t.send(make<CurlHttp1>("GET", "http://127.0.0.1:" + std::to_string(port) + "/"));
    server.join();
    ::close(listener);
    CHECK(r.status == 200);
    CHECK(r.body == "hello");
    CHECK(r.headers.get("trailer") == "grpc-status");
    CHECK_FALSE(r.headers.contains("grpc-status"));
    CHECK(r.trailers.get("grpc-status") == "7");
    CHECK(r.trailers.get("grpc-message") == "denied");
}

static_assert(runbox::is_transport_policy_v<CurlTransport>);
static_assert(CurlTransport::supports_http2 && CurlTransport::supports_streaming);

TEST_CASE("CurlTransport verifies TLS certificates unless told not to", "[suite][tls]") {
    TestCertificate certificate;
    auto ssl = std::make_unique<httplib::SSLServer>(certificate.cert.c_str(), certificate.key.c_str());
    REQUIRE(ssl->is_valid());
    Http1Server server("127.0.0.1", std::move(ssl));
    const auto url = server.url("/hello?token=query-secret", "https");
    CurlTransport strict;
    try {
        (void)strict.send(make<CurlHttp1>("GET", url));
        FAIL("untrusted certificate accepted");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::transport);
        CHECK(std::string(e.what()).find("127.0.0.1") != std::string::npos);
        CHECK(std::string(e.what()).find("query-secret") == std::string::npos);
    }
    runbox::TransportOptions options;
    options.verify_tls = false;
    CurlTransport lax(options);
    CHECK(lax.send(make<CurlHttp1>("GET", url)).body == "hi");
}
#endif

}  // namespace test_transport_suite
