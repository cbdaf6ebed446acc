// Unit tests of runbox/transport/testing.hpp: fault injection, record/replay,
// and redaction of credentials in cassettes (proved by reading the file).
#include "runbox/transport/testing.hpp"

#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "catch.hpp"
#include "runbox/transport/transport.hpp"

namespace test_transport_testing {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::errc;
using runbox::FaultInjectingTransport;
using runbox::HandlerTransport;
using runbox::Headers;
using runbox::RecordingTransport;
using runbox::ReplayTransport;
using runbox::Request;
using runbox::Response;
using steady = std::chrono::steady_clock;

namespace {

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string pattern = (std::filesystem::temp_directory_path() / "runbox-cassette-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        path = pattern;
    }
    ~TempDir() {
        std::error_code ignored;
        std::filesystem::remove_all(path, ignored);
    }
};

std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

Request make(std::string method, std::string url, std::string body = {}) {
    Request r;
    r.method = std::move(method);
    r.url = std::move(url);
    r.body = std::move(body);
    return r;
}

// Echoes "<METHOD> <url> <body>" with status 200, counts calls.
struct Echo {
    int* calls;
    Response operator()(const Request& r) const {
        ++*calls;
        Response out;
        out.status = 200;
        out.headers.add("Content-Type", "text/plain");
        out.body = r.method + " " + r.url + " " + r.body;
        return out;
    }
};

constexpr const char* base = "http://127.0.0.1:9/";

}  // namespace

TEST_CASE("HandlerTransport answers with its function, or fails like a dead host", "[testing]") {
    int calls = 0;
    HandlerTransport t{Echo{&calls}};
    REQUIRE(t.send(make("GET", std::string(base) + "alive")).body == "GET http://127.0.0.1:9/alive ");
    REQUIRE(calls == 1);

    HandlerTransport none;
    try {
        (void)none.send(make("GET", base));
        FAIL("no throw");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::transport);
    }
}

TEST_CASE("FaultInjectingTransport drops the next N matching requests, then forwards", "[testing][faults]") {
    int calls = 0;
    FaultInjectingTransport<HandlerTransport> t{HandlerTransport{Echo{&calls}}};
    t.drop("GET", "/alive", 2);
    for (int i = 0; i < 2; ++i) {
        try {
            (void)t.send(make("GET", std::string(base) + "alive"));
            FAIL("not dropped");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == errc::transport);
        }
    }
    REQUIRE(calls == 0);
    REQUIRE(t.send(make("GET", std::string(base) + "alive")).status == 200);
    REQUIRE(calls == 1);
    // Method and URL must both match.
    t.drop("POST", "/execute_action");
    REQUIRE(t.send(make("GET", std::string(base) + "execute_action")).status == 200);
    REQUIRE(t.send(make("POST", std::string(base) + "other")).status == 200);
    REQUIRE_THROWS_AS(t.send(make("post", std::string(base) + "execute_action")), runbox::error);

    REQUIRE(t.requests_seen() == 6);
    REQUIRE(t.requests_seen("GET", "/alive") == 3);
    REQUIRE(t.requests_seen("", "execute_action") == 2);
    REQUIRE(t.seen().front() == std::pair<std::string, std::string>{"GET", std::string(base) + "alive"});
}

TEST_CASE("FaultInjectingTransport loses the answer of a request the server performed", "[testing][faults]") {
    int calls = 0;
    FaultInjectingTransport<HandlerTransport> t(HandlerTransport(Echo{&calls}));
    t.lose_response("POST", "/sandbox");
    try {
        t.send(make("POST", "http://api/sandbox", "create"));
        FAIL("the answer was delivered");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::transport);
    }
    CHECK(calls == 1);  // it reached the server: this is what tells it apart from drop()
    // send_with_retry never resends a non-idempotent request whose answer was lost.
    t.lose_response("POST", "/sandbox");
    CHECK_THROWS(runbox::send_with_retry(t, make("POST", "http://api/sandbox"), runbox::RetryPolicy{}));
    CHECK(calls == 2);
    CHECK(t.send(make("POST", "http://api/sandbox", "again")).body == "POST http://api/sandbox again");
    CHECK(calls == 3);
}

TEST_CASE("FaultInjectingTransport replies with a canned status, headers and body", "[testing][faults]") {
    int calls = 0;
    FaultInjectingTransport<HandlerTransport> t{HandlerTransport{Echo{&calls}}};
    t.reply("", "/sandbox", 429, Headers{{"Retry-After", "1"}}, R"({"message":"slow down"})", 1);
    t.reply("GET", "/forever", 503, {}, "down", -1);

    auto r = t.send(make("POST", std::string(base) + "sandbox"));
    REQUIRE(r.status == 429);
    REQUIRE(r.headers.get("retry-after") == "1");
    REQUIRE(r.body == R"({"message":"slow down"})");
    REQUIRE(t.send(make("POST", std::string(base) + "sandbox")).status == 200);  // used up
    for (int i = 0; i < 5; ++i) REQUIRE(t.send(make("GET", std::string(base) + "forever")).status == 503);
    REQUIRE(calls == 1);

    t.clear_faults();
    REQUIRE(t.send(make("GET", std::string(base) + "forever")).status == 200);

    // A canned 2xx reaches a streaming receiver like a real body.
    t.reply("GET", "/download", 200, {}, "zipbytes");
    std::string streamed;
    auto req = make("GET", std::string(base) + "download");
    req.on_body = [&](std::string_view chunk) {
        streamed.append(chunk);
        return runbox::StreamAction::next;
    };
    auto d = t.send(req);
    REQUIRE(d.status == 200);
    REQUIRE(d.body.empty());
    REQUIRE(streamed == "zipbytes");
}

TEST_CASE("FaultInjectingTransport delays, and times out when the delay reaches the timeout", "[testing][faults]") {
    int calls = 0;
    FaultInjectingTransport<HandlerTransport> t{HandlerTransport{Echo{&calls}}};
    t.delay("GET", "/slow", 60ms);
    auto start = steady::now();
    REQUIRE(t.send(make("GET", std::string(base) + "slow")).status == 200);
    REQUIRE(steady::now() - start >= 60ms);
    REQUIRE(calls == 1);

    t.delay("GET", "/slow", 10s);
    auto req = make("GET", std::string(base) + "slow");
    req.timeout = 50ms;
    start = steady::now();
    try {
        (void)t.send(req);
        FAIL("no timeout");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::timeout);
    }
    const auto elapsed = steady::now() - start;
    REQUIRE(elapsed >= 50ms);
    REQUIRE(elapsed < 5s);
    REQUIRE(calls == 1);
}

TEST_CASE("FaultInjectingTransport composes with send_with_retry", "[testing][faults][retry]") {
    int calls = 0;
    FaultInjectingTransport<HandlerTransport> t{HandlerTransport{Echo{&calls}}};
    t.drop("GET", "/alive", 2);
    t.reply("POST", "/execute_action", 503, {}, "", 1);
    runbox::RetryPolicy policy;
    std::vector<std::chrono::milliseconds> waits;
    policy.sleep = [&](std::chrono::milliseconds d) { waits.push_back(d); };

    REQUIRE(runbox::send_with_retry(t, make("GET", std::string(base) + "alive"), policy).status == 200);
    REQUIRE(t.requests_seen("GET", "/alive") == 3);
    REQUIRE(waits.size() == 2);

    REQUIRE(runbox::send_with_retry(t, make("POST", std::string(base) + "execute_action"), policy).status == 503);
    REQUIRE(t.requests_seen("POST", "/execute_action") == 1);
}

TEST_CASE("RecordingTransport + ReplayTransport round trip, including streams, binary bodies and errors",
          "[testing][cassette]") {
    TempDir dir;
    const auto cassette = dir.path / "session.jsonl";
    const std::string binary("PK\x03\x04\x00\xff\xfe\x80zip", 11);

    std::vector<Response> live;
    {
        int calls = 0;
        HandlerTransport inner{[&](const Request& r) -> Response {
            ++calls;
            if (r.url.find("/download_files") != std::string::npos) {
                Response z;
                z.status = 200;
                z.body = binary;
                return z;
            }
            if (r.url.find("/boom") != std::string::npos) throw runbox::error(errc::transport, "reset", "transport");
            return Echo{&calls}(r);
        }};
        RecordingTransport<HandlerTransport> recorder(cassette, std::move(inner));
        live.push_back(recorder.send(make("GET", "http://127.0.0.1:1111/alive")));
        live.push_back(recorder.send(make("POST", "http://127.0.0.1:1111/execute_action", R"({"action":{}})")));
        std::string streamed;
        auto download = make("GET", "http://127.0.0.1:1111/download_files?path=%2Fworkspace");
        download.on_body = [&](std::string_view chunk) {
            streamed.append(chunk);
            return runbox::StreamAction::next;
        };
        live.push_back(recorder.send(download));
        REQUIRE(streamed == binary);
        REQUIRE_THROWS_AS(recorder.send(make("GET", "http://127.0.0.1:1111/boom")), runbox::error);
        REQUIRE(recorder.recorded() == 4);
    }

    const auto text = read_file(cassette);
    REQUIRE(std::count(text.begin(), text.end(), '\n') == 4);
    REQUIRE(text.find("body_base64") != std::string::npos);

    // Replay against another port: host and port are not compared.
    ReplayTransport replay(cassette);
    REQUIRE(replay.remaining() == 4);
    auto a = replay.send(make("GET", "http://127.0.0.1:2222/alive"));
    REQUIRE(a.status == live[0].status);
    REQUIRE(a.body == live[0].body);
    REQUIRE(a.headers == live[0].headers);
    auto b = replay.send(make("POST", "http://127.0.0.1:2222/execute_action", R"({"action":{}})"));
    REQUIRE(b.body == live[1].body);
    std::string streamed;
    auto download = make("GET", "http://127.0.0.1:2222/download_files?path=%2Fworkspace");
    download.on_body = [&](std::string_view chunk) {
        streamed.append(chunk);
        return runbox::StreamAction::next;
    };
    auto c = replay.send(download);
    REQUIRE(c.status == 200);
    REQUIRE(c.body.empty());
    REQUIRE(streamed == binary);
    try {
        (void)replay.send(make("GET", "http://127.0.0.1:2222/boom"));
        FAIL("recorded error not replayed");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::transport);
        REQUIRE(e.detail() == "reset");
    }
    REQUIRE(replay.remaining() == 0);
    try {
        (void)replay.send(make("GET", "http://127.0.0.1:2222/alive"));
        FAIL("exhausted cassette answered");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::bad_response);
        REQUIRE(std::string(e.what()).find("GET /alive") != std::string::npos);
    }
}

TEST_CASE("ReplayTransport names the expected and the received request on a mismatch", "[testing][cassette]") {
    TempDir dir;
    const auto cassette = dir.path / "c.jsonl";
    {
        int calls = 0;
        RecordingTransport<HandlerTransport> recorder(cassette, HandlerTransport{Echo{&calls}});
        (void)recorder.send(make("POST", "http://h:1/execute_action"));
    }
    ReplayTransport replay(cassette);
    try {
        (void)replay.send(make("GET", "http://h:1/alive"));
        FAIL("mismatch accepted");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::bad_response);
        const std::string what = e.what();
        REQUIRE(what.find("expected POST /execute_action") != std::string::npos);
        REQUIRE(what.find("got GET /alive") != std::string::npos);
    }
    REQUIRE(replay.remaining() == 1);  // a mismatch does not consume the entry
    REQUIRE(replay.send(make("POST", "http://h:1/execute_action")).status == 200);
}

TEST_CASE("RecordingTransport redacts credentials and registered secrets from the cassette",
          "[testing][cassette][secrets]") {
    TempDir dir;
    const auto cassette = dir.path / "redacted.jsonl";
    const std::string api_key = "dtn_live_api_key_0123456789";
    const std::vector<std::string> secrets_in_headers{
        "e2b_header_key_abcdef", "session-key-9f8e7d6c", "preview-token-55aa", "modal-secret-77bb", "modal-id-66cc"};
    const std::string registered = "registered-secret-xyz";

    {
        // The server echoes everything it gets, secrets included.
        HandlerTransport inner{[&](const Request& r) {
            Response out;
            out.status = 401;
            std::string echoed;
            for (const auto& [name, value] : r.headers) echoed += name + "=" + value + ";";
            out.headers.add("X-Echo-Auth", r.headers.get("Authorization").value_or(""));
            out.headers.add("Set-Cookie", "session=cookie-value-1234");
            out.body = R"({"message":"bad credentials )" + echoed + " " + r.url + R"("})";
            return out;
        }};
        RecordingTransport<HandlerTransport> recorder(cassette, std::move(inner), {registered});
        auto req = make("POST", "http://127.0.0.1:1/sandbox?token=" + registered, R"({"key":")" + registered + "\"}");
        req.headers.set("Authorization", "Bearer " + api_key);
        req.headers.set("X-API-Key", secrets_in_headers[0]);
        req.headers.set("X-Session-API-Key", secrets_in_headers[1]);
        req.headers.set("X-Daytona-Preview-Token", secrets_in_headers[2]);
        req.headers.set("X-Modal-Token-Secret", secrets_in_headers[3]);
        req.headers.set("x-modal-token-id", secrets_in_headers[4]);
        req.headers.set("Content-Type", "application/json");
        auto r = recorder.send(req);
        // The caller still gets the real response.
        REQUIRE(r.headers.get("X-Echo-Auth") == "Bearer " + api_key);
        REQUIRE(r.body.find(api_key) != std::string::npos);
    }

    const auto text = read_file(cassette);
    REQUIRE_FALSE(text.empty());
    REQUIRE(text.find(api_key) == std::string::npos);
    for (const auto& secret : secrets_in_headers) {
        INFO(secret);
        REQUIRE(text.find(secret) == std::string::npos);
    }
    REQUIRE(text.find(registered) == std::string::npos);
    REQUIRE(text.find("cookie-value-1234") == std::string::npos);
    REQUIRE(text.find("<redacted>") != std::string::npos);
    // What is not a credential stays readable.
    REQUIRE(text.find("application/json") != std::string::npos);
    REQUIRE(text.find("/sandbox?token=") != std::string::npos);
    REQUIRE(text.find("bad credentials") != std::string::npos);

    // The redacted cassette still replays.
    ReplayTransport replay(cassette);
    auto replayed = replay.send(make("POST", "http://127.0.0.1:7/sandbox"));
    REQUIRE(replayed.status == 401);
    REQUIRE(replayed.headers.get("X-Echo-Auth").value_or("").find("<redacted>") != std::string::npos);
}

TEST_CASE("Record/replay transports are built from TransportOptions", "[testing][cassette]") {
    static_assert(runbox::is_transport_policy_v<RecordingTransport<HandlerTransport>>);
    static_assert(runbox::is_transport_policy_v<ReplayTransport>);
    static_assert(runbox::is_transport_policy_v<FaultInjectingTransport<ReplayTransport>>);
    TempDir dir;
    runbox::TransportOptions options;
    options.cassette_path = (dir.path / "opts.jsonl").string();
    {
        RecordingTransport<HandlerTransport> recorder(options);
        // Without a handler the inner transport fails; the failure is recorded too.
        REQUIRE_THROWS_AS(recorder.send(make("GET", "http://h:1/x")), runbox::error);
    }
    ReplayTransport replay(options);
    REQUIRE(replay.remaining() == 1);

    runbox::TransportOptions empty;
    try {
        RecordingTransport<HandlerTransport> recorder(empty);
        FAIL("no cassette path accepted");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::config_invalid);
    }
    options.cassette_path = (dir.path / "missing.jsonl").string();
    REQUIRE_THROWS_AS(ReplayTransport(options), runbox::error);
}

// ---------------------------------------------------------------------------
// Stream seams over the test transports (the network transports run the same
// checks in tests/integration/test_transport_suite.cpp).

namespace {
Response framed_answer(std::string body, Headers trailers = {}) {
    Response r;
    r.status = 200;
    r.headers.set("content-type", "application/grpc");
    r.body = std::move(body);
    r.trailers = std::move(trailers);
    return r;
}
}  // namespace

TEST_CASE("HandlerTransport: on_head comes first, done ends cleanly, fail and throws are typed", "[testing][stream]") {
    HandlerTransport t{[](const Request&) { return framed_answer("abcdef", Headers{{"grpc-status", "0"}}); }};
    std::vector<std::string> events;
    auto req = make("POST", "http://127.0.0.1:1/x");
    req.on_head = [&](const Response& head) {
        events.push_back("head " + std::to_string(head.status) + " " + head.headers.get("content-type").value_or(""));
        CHECK(head.body.empty());
    };
    req.on_body = [&](std::string_view chunk) {
        events.push_back("body " + std::string(chunk));
        return runbox::StreamAction::next;
    };
    auto r = t.send(req);
    REQUIRE(events == std::vector<std::string>{"head 200 application/grpc", "body abcdef"});
    CHECK(r.body.empty());
    CHECK(r.trailers.get("grpc-status") == "0");

    req.on_body = [](std::string_view) { return runbox::StreamAction::done; };
    CHECK(t.send(req).status == 200);  // no error

    req.on_body = [](std::string_view) { return runbox::StreamAction::fail; };
    try {
        (void)t.send(req);
        FAIL("fail not reported");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::bad_response);
    }

    req.on_body = [](std::string_view) -> runbox::StreamAction {
        throw runbox::error(errc::sandbox_gone, "the handler's own error");
    };
    try {
        (void)t.send(req);
        FAIL("handler error lost");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::sandbox_gone);
    }
}

TEST_CASE("HandlerTransport honours the stop token and the deadline", "[testing][stream]") {
    int calls = 0;
    HandlerTransport t{Echo{&calls}};
    std::stop_source source;
    auto req = make("GET", "http://127.0.0.1:1/x");
    req.stop = source.get_token();
    CHECK(t.send(req).status == 200);
    source.request_stop();
    try {
        (void)t.send(req);
        FAIL("stopped request sent");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::cancelled);
    }
    auto late = make("GET", "http://127.0.0.1:1/x");
    late.deadline = steady::now() - 1ms;
    try {
        (void)t.send(late);
        FAIL("expired request sent");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::timeout);
    }
    CHECK(calls == 1);
}

TEST_CASE("send_framed delivers whole frames and detects truncation", "[testing][stream][envelope]") {
    const std::string body = runbox::encode_frame("one") + runbox::encode_frame("two") +
                             runbox::encode_frame("{}", runbox::frame_end_stream);
    HandlerTransport t{[&](const Request& r) {
        return framed_answer(r.url.find("cut") != std::string::npos ? body.substr(0, body.size() - 1) : body);
    }};
    std::vector<std::string> got;
    auto collect = [&](runbox::Frame& f) {
        got.push_back(f.payload);
        return f.end_stream() ? runbox::StreamAction::done : runbox::StreamAction::next;
    };
    CHECK(runbox::send_framed(t, make("POST", "http://127.0.0.1:1/full"), collect).status == 200);
    CHECK(got == std::vector<std::string>{"one", "two", "{}"});

    got.clear();
    try {
        (void)runbox::send_framed(t, make("POST", "http://127.0.0.1:1/cut"), collect);
        FAIL("truncation not detected");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::bad_response);
    }
    CHECK(got == std::vector<std::string>{"one", "two"});

    // done after the first frame: the rest is not read, and no error.
    got.clear();
    auto first_only = [&](runbox::Frame& f) {
        got.push_back(f.payload);
        return runbox::StreamAction::done;
    };
    CHECK(runbox::send_framed(t, make("POST", "http://127.0.0.1:1/cut"), first_only).status == 200);
    CHECK(got == std::vector<std::string>{"one"});
}

TEST_CASE("Cassettes record and replay trailers", "[testing][cassette][trailers]") {
    TempDir dir;
    const auto cassette = dir.path / "trailers.jsonl";
    {
        RecordingTransport<HandlerTransport> recorder(
            cassette, HandlerTransport{[](const Request&) {
                return framed_answer(runbox::encode_frame("m"), Headers{{"grpc-status", "5"}, {"grpc-message", "gone"}});
            }});
        CHECK(recorder.send(make("POST", "http://127.0.0.1:1/rpc")).trailers.get("grpc-status") == "5");
    }
    ReplayTransport replay(cassette);
    auto r = replay.send(make("POST", "http://127.0.0.1:2/rpc"));
    CHECK(r.trailers.get("grpc-status") == "5");
    CHECK(r.trailers.get("grpc-message") == "gone");
    CHECK(r.body == runbox::encode_frame("m"));
}

// ---------------------------------------------------------------------------
// Redaction that keeps framed and binary bodies valid; secrets learned from responses.

TEST_CASE("Cassette redaction keeps framed and binary bodies the same length", "[testing][cassette][redaction]") {
    TempDir dir;
    const auto cassette = dir.path / "framed.jsonl";
    const std::string secret = "sk-framed-secret-0123456789";
    // A protobuf-like payload (a length-prefixed string field) inside a gRPC envelope.
    const std::string payload = std::string("\x0a", 1) + static_cast<char>(secret.size()) + secret + std::string("\x10\x01", 2);
    const std::string framed = runbox::encode_frame(payload) + runbox::encode_frame("tail");
    const std::string binary = std::string("\xff\xfe\x00", 3) + secret + std::string("\x80", 1);
    {
        RecordingTransport<HandlerTransport> recorder(
            cassette,
            HandlerTransport{[&](const Request& r) {
                Response out;
                out.status = 200;
                if (r.url.find("grpc") != std::string::npos) {
                    out.headers.set("content-type", "application/grpc");
                    out.body = framed;
                } else {
                    out.body = binary;
                }
                return out;
            }},
            {secret});
        auto rpc = make("POST", "http://127.0.0.1:1/grpc", framed);
        rpc.headers.set("content-type", "application/grpc");
        REQUIRE(recorder.send(rpc).body == framed);
        REQUIRE(recorder.send(make("GET", "http://127.0.0.1:1/blob")).body == binary);
    }
    const auto text = read_file(cassette);
    CHECK(text.find(secret) == std::string::npos);
    CHECK(text.find(runbox::detail::base64_encode(framed)) == std::string::npos);

    ReplayTransport replay(cassette);
    auto rpc = make("POST", "http://127.0.0.1:2/grpc");
    auto r = replay.send(rpc);
    REQUIRE(r.body.size() == framed.size());
    runbox::FrameReader reader;
    reader.feed(r.body);
    auto first = reader.next();
    REQUIRE(first);
    CHECK(first->payload == std::string("\x0a", 1) + static_cast<char>(secret.size()) + std::string(secret.size(), '*') +
                                std::string("\x10\x01", 2));
    REQUIRE(reader.next()->payload == "tail");
    CHECK(reader.idle());
    auto blob = replay.send(make("GET", "http://127.0.0.1:2/blob"));
    CHECK(blob.body == std::string("\xff\xfe\x00", 3) + std::string(secret.size(), '*') + std::string("\x80", 1));
}

TEST_CASE("Tunnel and traffic tokens are credential headers", "[testing][cassette][redaction]") {
    TempDir dir;
    const auto cassette = dir.path / "tokens.jsonl";
    {
        RecordingTransport<HandlerTransport> recorder(cassette, HandlerTransport{[](const Request& r) {
                                                          Response out;
                                                          out.status = 200;
                                                          out.body = "seen " + r.headers.get("e2b-traffic-access-token").value_or("");
                                                          return out;
                                                      }});
        auto req = make("GET", "http://127.0.0.1:1/proxy");
        req.headers.set("X-Runloop-Tunnel-Authorization", "Bearer tunnel-token-abcdef");
        req.headers.set("E2B-Traffic-Access-Token", "traffic-token-123456");
        REQUIRE(recorder.send(req).body == "seen traffic-token-123456");
    }
    const auto text = read_file(cassette);
    CHECK(text.find("tunnel-token-abcdef") == std::string::npos);
    CHECK(text.find("traffic-token-123456") == std::string::npos);
    CHECK(text.find("seen <redacted>") != std::string::npos);
}

TEST_CASE("Secrets named by Request::secret_fields are learned before anything is written",
          "[testing][cassette][redaction]") {
    TempDir dir;
    const auto cassette = dir.path / "learned.jsonl";
    const std::string tunnel = "runloop-tunnel-auth-7f3a9c";
    const std::string envd = "envd-access-token-51d2e8";
    {
        RecordingTransport<HandlerTransport> recorder(
            cassette, HandlerTransport{[&](const Request& r) {
                Response out;
                out.status = 200;
                if (r.url.find("/tunnel") != std::string::npos) {
                    out.headers.set("content-type", "application/json");
                    out.body = R"({"tunnel":{"tunnel_key":"k1","auth_token":")" + tunnel + R"("},"note":"auth_token"})";
                } else if (r.url.find("/connect") != std::string::npos) {
                    out.headers.set("content-type", "application/connect+json");
                    out.body = runbox::encode_frame(R"({"sandbox":{"envdAccessToken":")" + envd + R"("}})") +
                               runbox::encode_frame("{}", runbox::frame_end_stream);
                } else {
                    out.body = "echo " + r.url + " " + r.headers.get("x-token").value_or("");
                }
                return out;
            }});
        auto create = make("POST", "http://127.0.0.1:1/v1/devboxes/dbx/tunnel");
        create.secret_fields = {"auth_token", "envdAccessToken"};
        REQUIRE(recorder.send(create).body.find(tunnel) != std::string::npos);  // the caller still sees it
        auto connect = make("POST", "http://127.0.0.1:1/connect");
        connect.secret_fields = {"envdAccessToken"};
        (void)recorder.send(connect);
        // Later uses of the learned tokens, in a URL and in an unlisted header, are redacted too.
        auto use = make("GET", "http://127.0.0.1:1/use?t=" + tunnel);
        use.headers.set("x-token", envd);
        (void)recorder.send(use);
    }
    const auto text = read_file(cassette);
    CHECK(text.find(tunnel) == std::string::npos);
    CHECK(text.find(envd) == std::string::npos);
    CHECK(text.find(R"(\"note\":\"auth_token\")") != std::string::npos);  // a key name is not a secret

    // The framed Connect body still parses after the same-length mask.
    ReplayTransport replay(cassette);
    (void)replay.send(make("POST", "http://127.0.0.1:2/v1/devboxes/dbx/tunnel"));
    auto connect = replay.send(make("POST", "http://127.0.0.1:2/connect"));
    runbox::FrameReader reader;
    reader.feed(connect.body);
    auto message = reader.next();
    REQUIRE(message);
    const auto json = nlohmann::json::parse(message->payload);
    CHECK(json["sandbox"]["envdAccessToken"] == std::string(envd.size(), '*'));
    REQUIRE(reader.next());
    CHECK(reader.idle());
}

}  // namespace test_transport_testing
