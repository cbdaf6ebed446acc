// Unit tests of runbox/transport/transport.hpp: Headers, Url, Retry-After,
// RetryPolicy decisions (with an injected sleep) and raise_for_status.
#include "runbox/transport/transport.hpp"

#include <chrono>
#include <limits>
#include <deque>
#include <functional>
#include <string>
#include <vector>

#include "catch.hpp"

namespace test_transport {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::errc;
using runbox::Headers;
using runbox::Request;
using runbox::Response;
using runbox::RetryPolicy;

namespace {

// Answers from a queue of steps; each step returns a Response or throws.
struct ScriptedTransport {
    static constexpr bool supports_http2 = false;
    static constexpr bool supports_streaming = true;
    explicit ScriptedTransport(const runbox::TransportOptions&) {}
    ScriptedTransport() = default;

    std::deque<std::function<Response(const Request&)>> steps;
    int calls = 0;

    Response send(const Request& request) {
        ++calls;
        REQUIRE(!steps.empty());
        auto step = std::move(steps.front());
        steps.pop_front();
        return step(request);
    }
    void reply(int status, Headers headers = {}) {
        steps.push_back([status, headers](const Request&) {
            Response r;
            r.status = status;
            r.headers = headers;
            return r;
        });
    }
    void fail(errc code) {
        steps.push_back([code](const Request&) -> Response { throw runbox::error(code, "injected", "transport"); });
    }
};

struct NoTraits {
    explicit NoTraits(const runbox::TransportOptions&) {}
    Response send(const Request&) { return {}; }
};
struct NoOptionsCtor {
    [[maybe_unused]] static constexpr bool supports_http2 = false;
    [[maybe_unused]] static constexpr bool supports_streaming = false;
    explicit NoOptionsCtor(int) {}
    Response send(const Request&) { return {}; }
};
struct WrongSend {
    [[maybe_unused]] static constexpr bool supports_http2 = false;
    [[maybe_unused]] static constexpr bool supports_streaming = false;
    explicit WrongSend(const runbox::TransportOptions&) {}
    int send(const Request&) { return 0; }
};
struct RuntimeTraits {  // not usable in a constant expression
    [[maybe_unused]] static inline bool supports_http2 = false;
    [[maybe_unused]] static inline bool supports_streaming = false;
    explicit RuntimeTraits(const runbox::TransportOptions&) {}
    Response send(const Request&) { return {}; }
};

static_assert(runbox::is_transport_policy_v<ScriptedTransport>);
static_assert(!runbox::is_transport_policy_v<NoTraits>);
static_assert(!runbox::is_transport_policy_v<NoOptionsCtor>);
static_assert(!runbox::is_transport_policy_v<WrongSend>);
static_assert(!runbox::is_transport_policy_v<RuntimeTraits>);
static_assert(runbox::TransportSends<NoTraits> && !runbox::TransportHasCapabilities<NoTraits>);

// A policy whose waits are recorded instead of slept.
RetryPolicy recording_policy(std::vector<std::chrono::milliseconds>& waits) {
    RetryPolicy policy;
    policy.jitter = 0;
    policy.sleep = [&waits](std::chrono::milliseconds d) { waits.push_back(d); };
    return policy;
}

Request get(std::string url = "http://127.0.0.1:1/x") {
    Request r;
    r.url = std::move(url);
    return r;
}

}  // namespace

TEST_CASE("Headers: case-insensitive lookup, set replaces, add appends", "[transport][headers]") {
    Headers h{{"Content-Type", "application/json"}, {"X-A", "1"}};
    REQUIRE(h.get("content-type") == "application/json");
    REQUIRE(h.get("CONTENT-TYPE") == "application/json");
    REQUIRE_FALSE(h.get("missing").has_value());
    REQUIRE(h.contains("x-a"));

    h.add("x-a", "2");
    REQUIRE(h.size() == 3);
    REQUIRE(h.get_all("X-A") == std::vector<std::string>{"1", "2"});
    REQUIRE(h.get("x-a") == "1");

    h.set("X-a", "3");  // collapses both into one, at the first one's position
    REQUIRE(h.get_all("x-a") == std::vector<std::string>{"3"});
    REQUIRE(h.size() == 2);
    auto it = h.begin();
    REQUIRE(it->first == "Content-Type");
    ++it;
    REQUIRE(it->first == "X-A");
    REQUIRE(it->second == "3");

    h.set("New", "v");
    REQUIRE(h.size() == 3);
    REQUIRE(h.erase("NEW") == 1);
    REQUIRE(h.erase("new") == 0);
    REQUIRE_FALSE(h.contains("new"));

    Headers overrides{{"content-type", "text/plain"}, {"X-B", "b"}};
    h.merge(overrides);
    REQUIRE(h.get("Content-Type") == "text/plain");
    REQUIRE(h.get("x-b") == "b");
    REQUIRE(h.size() == 3);
}

TEST_CASE("Request::is_idempotent follows the method unless overridden", "[transport]") {
    Request r;
    for (const char* m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "get"}) {
        r.method = m;
        CHECK(r.is_idempotent());
    }
    for (const char* m : {"POST", "PATCH"}) {
        r.method = m;
        CHECK_FALSE(r.is_idempotent());
    }
    r.method = "POST";
    r.idempotent = true;
    REQUIRE(r.is_idempotent());
    r.method = "GET";
    r.idempotent = false;
    REQUIRE_FALSE(r.is_idempotent());
}

TEST_CASE("parse_url splits scheme, host, port and target", "[transport][url]") {
    auto u = runbox::parse_url("http://example.com/a/b?x=1#frag");
    REQUIRE(u.scheme == "http");
    REQUIRE(u.host == "example.com");
    REQUIRE(u.port == 80);
    REQUIRE(u.target == "/a/b?x=1");
    REQUIRE(u.path() == "/a/b");
    REQUIRE(u.origin() == "http://example.com:80");

    u = runbox::parse_url("HTTPS://api.daytona.io");
    REQUIRE(u.scheme == "https");
    REQUIRE(u.port == 443);
    REQUIRE(u.target == "/");

    u = runbox::parse_url("http://127.0.0.1:8080?q=1");
    REQUIRE(u.host == "127.0.0.1");
    REQUIRE(u.port == 8080);
    REQUIRE(u.target == "/?q=1");

    u = runbox::parse_url("http://[::1]:3000/alive");
    REQUIRE(u.host == "::1");
    REQUIRE(u.port == 3000);
    REQUIRE(u.target == "/alive");
    REQUIRE(u.is_ipv6());
    REQUIRE(u.authority() == "[::1]:3000");

    u = runbox::parse_url("https://[::1]/");
    REQUIRE(u.port == 443);
}

TEST_CASE("parse_url rejects what a transport cannot dial, without echoing the URL", "[transport][url]") {
    for (const char* bad : {"ftp://host/", "host:80/x", "://x", "http://", "http://h:0/", "http://h:65536/",
                            "http://h:8x/", "http://[::1/", "http://::1/", "http://[zz]/"}) {
        INFO(bad);
        try {
            (void)runbox::parse_url(bad);
            FAIL("accepted");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == errc::config_invalid);
        }
    }
    try {
        (void)runbox::parse_url("http://user:hunter22@host/");
        FAIL("accepted user info");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::config_invalid);
        REQUIRE(std::string(e.what()).find("hunter22") == std::string::npos);
    }
}

TEST_CASE("parse_retry_after: seconds, milliseconds, dates and throttler suffixes", "[transport][retry-after]") {
    using std::chrono::milliseconds;
    REQUIRE_FALSE(runbox::parse_retry_after(Headers{}).has_value());
    REQUIRE_FALSE(runbox::parse_retry_after(Headers{{"Retry-After", "soon"}}).has_value());
    REQUIRE_FALSE(runbox::parse_retry_after(Headers{{"Retry-After", "-3"}}).has_value());
    REQUIRE(runbox::parse_retry_after(Headers{{"Retry-After", "2"}}) == milliseconds(2000));
    REQUIRE(runbox::parse_retry_after(Headers{{"retry-after", " 1.5 "}}) == milliseconds(1500));
    REQUIRE(runbox::parse_retry_after(Headers{{"retry-after-ms", "250"}}) == milliseconds(250));
    // Daytona: one header per throttler; the largest wins.
    REQUIRE(runbox::parse_retry_after(Headers{{"Retry-After-authenticated", "1"},
                                              {"Retry-After-sandbox-create", "7"},
                                              {"X-RateLimit-Reset-sandbox-create", "60"}}) == milliseconds(7000));
    REQUIRE(runbox::parse_retry_after(Headers{{"retry-after-ms", "9000"}, {"Retry-After", "3"}}) ==
            milliseconds(9000));

    using namespace std::chrono;
    const auto now = sys_days{year{1994} / November / 6} + hours{8} + minutes{49} + seconds{30};
    REQUIRE(runbox::parse_retry_after(Headers{{"Retry-After", "Sun, 06 Nov 1994 08:49:37 GMT"}}, now) ==
            milliseconds(7000));
    REQUIRE(runbox::parse_retry_after(Headers{{"Retry-After", "Sunday, 06-Nov-94 08:49:40 GMT"}}, now) ==
            milliseconds(10000));
    REQUIRE(runbox::parse_retry_after(Headers{{"Retry-After", "Sun Nov  6 08:49:50 1994"}}, now) ==
            milliseconds(20000));
    // A date in the past means "now".
    REQUIRE(runbox::parse_retry_after(Headers{{"Retry-After", "Sun, 06 Nov 1994 08:00:00 GMT"}}, now) ==
            milliseconds(0));
    REQUIRE_FALSE(runbox::parse_retry_after(Headers{{"Retry-After", "Sun, 06 Nov 1994 08:49:37 PST"}}, now));
}

TEST_CASE("parse_retry_after: a date centuries ahead is a capped wait, not an overflow", "[transport][retry-after]") {
    using namespace std::chrono;
    const auto now = sys_days{year{2026} / December / 3} + hours{12};
    const auto year_ms = duration_cast<milliseconds>(days{365});
    // 2903 is past the end of system_clock's nanoseconds (2262): computed in them, the wait
    // wrapped around to a negative or a centuries-long one.
    for (const char* date : {"Sat, 03 Oct 2903 11:21:25 GMT", "Fri, 31 Dec 9999 23:59:59 GMT", "Sat, 01 Jan 2263 00:00:00 GMT"}) {
        INFO(date);
        const auto wait = runbox::parse_retry_after(Headers{{"Retry-After", date}}, now);
        REQUIRE(wait.has_value());
        CHECK(*wait == year_ms);
    }
    CHECK(runbox::parse_retry_after(Headers{{"Retry-After", "Thu, 03 Dec 2026 12:00:09 GMT"}}, now) == milliseconds(9000));
    // to_millis, which every caller-given or peer-given wait goes through: defined for any double.
    CHECK(runbox::detail::to_millis(1e300) == year_ms);
    CHECK(runbox::detail::to_millis(std::numeric_limits<double>::quiet_NaN()) == milliseconds(0));
    CHECK(runbox::detail::to_millis(-1e300) == milliseconds(0));
    CHECK(runbox::detail::to_millis(1.5) == milliseconds(2));
}

TEST_CASE("send_with_retry refuses a far Retry-After date within its budget", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    ScriptedTransport t;
    t.reply(503, Headers{{"Retry-After", "Sat, 03 Oct 2903 11:21:25 GMT"}});
    t.reply(200);
    REQUIRE(runbox::send_with_retry(t, get(), policy).status == 503);  // the wait is past max_elapsed
    REQUIRE(t.calls == 1);
    REQUIRE(waits.empty());

    policy.max_elapsed = std::chrono::milliseconds::max();  // no budget: still no wrap-around
    ScriptedTransport u;
    u.reply(503, Headers{{"Retry-After", "Sat, 03 Oct 2903 11:21:25 GMT"}});
    u.reply(200);
    REQUIRE(runbox::send_with_retry(u, get(), policy).status == 200);
    REQUIRE(waits.size() == 1);
    REQUIRE(waits.front() == std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::days{365}));
}

TEST_CASE("RetryPolicy::backoff doubles, caps and jitters downwards", "[transport][retry]") {
    RetryPolicy p;
    p.jitter = 0;
    REQUIRE(p.backoff(1, 0.5) == 500ms);
    REQUIRE(p.backoff(2, 0.5) == 1000ms);
    REQUIRE(p.backoff(3, 0.5) == 2000ms);
    REQUIRE(p.backoff(5, 0.5) == 8000ms);
    REQUIRE(p.backoff(30, 0.5) == 8000ms);
    p.jitter = 0.2;
    REQUIRE(p.backoff(1, 0.0) == 500ms);
    REQUIRE(p.backoff(1, 1.0) == 400ms);
    REQUIRE(p.backoff(2, 0.5) == 900ms);
    REQUIRE(RetryPolicy::none().max_attempts == 1);
    REQUIRE(p.retries_status(429));
    REQUIRE(p.retries_status(504));
    REQUIRE_FALSE(p.retries_status(500));
}

TEST_CASE("send_with_retry retries retryable statuses with exponential backoff", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    ScriptedTransport t;
    t.reply(503);
    t.reply(502);
    t.reply(200);
    auto r = runbox::send_with_retry(t, get(), policy);
    REQUIRE(r.status == 200);
    REQUIRE(t.calls == 3);
    REQUIRE(waits == std::vector<std::chrono::milliseconds>{500ms, 1000ms});
}

TEST_CASE("send_with_retry returns the last response after max_attempts", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    policy.max_attempts = 3;
    ScriptedTransport t;
    for (int i = 0; i < 3; ++i) t.reply(429);
    auto r = runbox::send_with_retry(t, get(), policy);
    REQUIRE(r.status == 429);
    REQUIRE(t.calls == 3);
    REQUIRE(waits.size() == 2);
}

TEST_CASE("send_with_retry does not retry other statuses", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    for (int status : {200, 204, 400, 404, 500}) {
        ScriptedTransport t;
        t.reply(status);
        REQUIRE(runbox::send_with_retry(t, get(), policy).status == status);
        REQUIRE(t.calls == 1);
    }
    REQUIRE(waits.empty());
}

TEST_CASE("send_with_retry never retries a non-idempotent request", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    Request post = get();
    post.method = "POST";

    ScriptedTransport t;
    t.reply(503);
    REQUIRE(runbox::send_with_retry(t, post, policy).status == 503);
    REQUIRE(t.calls == 1);

    ScriptedTransport dropped;
    dropped.fail(errc::transport);
    REQUIRE_THROWS_AS(runbox::send_with_retry(dropped, post, policy), runbox::error);
    REQUIRE(dropped.calls == 1);
    REQUIRE(waits.empty());

    post.idempotent = true;  // the caller vouches for it (e.g. an idempotency key)
    ScriptedTransport vouched;
    vouched.reply(503);
    vouched.reply(200);
    REQUIRE(runbox::send_with_retry(vouched, post, policy).status == 200);
    REQUIRE(vouched.calls == 2);
}

TEST_CASE("send_with_retry honours Retry-After over the backoff", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    ScriptedTransport t;
    t.reply(429, Headers{{"retry-after-ms", "1234"}});
    t.reply(503, Headers{{"Retry-After", "2"}});
    t.reply(200);
    REQUIRE(runbox::send_with_retry(t, get(), policy).status == 200);
    REQUIRE(waits == std::vector<std::chrono::milliseconds>{1234ms, 2000ms});
}

TEST_CASE("send_with_retry stops when the wait would exceed max_elapsed", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    policy.max_elapsed = 3000ms;

    ScriptedTransport t;
    t.reply(429, Headers{{"Retry-After", "5"}});
    auto r = runbox::send_with_retry(t, get(), policy);
    REQUIRE(r.status == 429);
    REQUIRE(t.calls == 1);
    REQUIRE(waits.empty());

    // Backoff too: waits of 1000 + 2000 ms fit into 3000 ms (counted even though the sleep is fake); 4000 more do not.
    policy.initial_backoff = 1000ms;
    policy.max_attempts = 10;
    ScriptedTransport s;
    for (int i = 0; i < 10; ++i) s.reply(503);
    REQUIRE(runbox::send_with_retry(s, get(), policy).status == 503);
    REQUIRE(waits == std::vector<std::chrono::milliseconds>{1000ms, 2000ms});
    REQUIRE(s.calls == 3);
}

TEST_CASE("x-should-retry overrides the status rule", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    ScriptedTransport t;
    t.reply(503, Headers{{"x-should-retry", "false"}});
    REQUIRE(runbox::send_with_retry(t, get(), policy).status == 503);
    REQUIRE(t.calls == 1);

    ScriptedTransport u;
    u.reply(500, Headers{{"X-Should-Retry", "true"}});
    u.reply(200);
    REQUIRE(runbox::send_with_retry(u, get(), policy).status == 200);
    REQUIRE(u.calls == 2);

    // Where only a refusal may be repeated, the header does not widen the statuses.
    policy.honor_should_retry = false;
    ScriptedTransport v;
    v.reply(500, Headers{{"x-should-retry", "true"}});
    v.reply(200);
    REQUIRE(runbox::send_with_retry(v, get(), policy).status == 500);
    REQUIRE(v.calls == 1);
}

TEST_CASE("send_with_retry retries dropped connections of idempotent requests", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);

    ScriptedTransport t;
    t.fail(errc::transport);
    t.reply(200);
    REQUIRE(runbox::send_with_retry(t, get(), policy).status == 200);
    REQUIRE(t.calls == 2);
    REQUIRE(waits == std::vector<std::chrono::milliseconds>{500ms});

    // Exhausted: the last error is rethrown.
    policy.max_attempts = 2;
    ScriptedTransport all;
    all.fail(errc::transport);
    all.fail(errc::transport);
    try {
        (void)runbox::send_with_retry(all, get(), policy);
        FAIL("no throw");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::transport);
    }
    REQUIRE(all.calls == 2);

    // Timeouts are not connection drops: not retried (each would wait the whole timeout again).
    ScriptedTransport slow;
    slow.fail(errc::timeout);
    REQUIRE_THROWS_AS(runbox::send_with_retry(slow, get(), policy), runbox::error);
    REQUIRE(slow.calls == 1);

    // Opt-out.
    policy.retry_dropped_connections = false;
    ScriptedTransport off;
    off.fail(errc::transport);
    REQUIRE_THROWS_AS(runbox::send_with_retry(off, get(), policy), runbox::error);
    REQUIRE(off.calls == 1);
}

TEST_CASE("send_with_retry does not replay a stream that already delivered bytes", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    ScriptedTransport t;
    t.steps.push_back([](const Request& r) -> Response {
        REQUIRE(r.on_body("partial") == runbox::StreamAction::next);
        throw runbox::error(errc::transport, "dropped mid-body", "transport");
    });
    t.reply(200);
    std::string received;
    Request r = get();
    r.on_body = [&](std::string_view chunk) {
        received.append(chunk);
        return runbox::StreamAction::next;
    };
    REQUIRE_THROWS_AS(runbox::send_with_retry(t, r, policy), runbox::error);
    REQUIRE(t.calls == 1);
    REQUIRE(received == "partial");

    // A drop before any byte is retried.
    ScriptedTransport early;
    early.fail(errc::transport);
    early.steps.push_back([](const Request& req) {
        REQUIRE(req.on_body("all") == runbox::StreamAction::next);
        Response ok;
        ok.status = 200;
        return ok;
    });
    received.clear();
    REQUIRE(runbox::send_with_retry(early, r, policy).status == 200);
    REQUIRE(received == "all");
}

TEST_CASE("RetryPolicy::none sends exactly once", "[transport][retry]") {
    auto policy = RetryPolicy::none();
    int sleeps = 0;
    policy.sleep = [&](std::chrono::milliseconds) { ++sleeps; };
    ScriptedTransport t;
    t.reply(503);
    REQUIRE(runbox::send_with_retry(t, get(), policy).status == 503);
    REQUIRE(t.calls == 1);
    REQUIRE(sleeps == 0);
}

TEST_CASE("raise_for_status maps statuses to errc and keeps the server's message", "[transport][status]") {
    Response ok;
    ok.status = 204;
    REQUIRE_NOTHROW(runbox::raise_for_status(ok, "daytona"));
    ok.status = 302;
    REQUIRE_NOTHROW(runbox::raise_for_status(ok, "daytona"));

    struct Case {
        int status;
        std::string body;
        errc code;
        std::string message;
    };
    const std::vector<Case> cases{
        {404, R"({"statusCode":404,"message":"Sandbox with ID or name nope not found"})", errc::not_found,
         "Sandbox with ID or name nope not found"},
        {401, R"({"detail":"Invalid API key"})", errc::auth_failed, "Invalid API key"},
        {403, R"({"message":"forbidden"})", errc::auth_failed, "forbidden"},
        {409, R"({"message":"conflict here"})", errc::conflict, "conflict here"},
        {400, R"({"message":["name must be a string","cpu must be positive"]})", errc::config_invalid,
         "name must be a string; cpu must be positive"},
        {500, "upstream exploded", errc::server_error, "upstream exploded"},
        {503, "", errc::server_error, "HTTP status 503"},
        {504, R"({"code":504,"message":"gateway"})", errc::timeout, "gateway"},
        {402, R"({"error":"out of credits"})", errc::quota_exceeded, "out of credits"},
    };
    for (const auto& c : cases) {
        INFO(c.status);
        Response r;
        r.status = c.status;
        r.body = c.body;
        try {
            runbox::raise_for_status(r, "daytona");
            FAIL("no throw");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == c.code);
            REQUIRE(e.http_status() == c.status);
            REQUIRE(e.provider() == "daytona");
            REQUIRE(e.detail() == c.message);
            REQUIRE(std::string(e.what()).find("[daytona]") != std::string::npos);
        }
    }
}

TEST_CASE("raise_for_status carries Retry-After on 429", "[transport][status]") {
    Response r;
    r.status = 429;
    r.headers.add("Retry-After-sandbox-create", "3");
    r.body = R"({"statusCode":429,"message":"Rate limit exceeded","error":"Too Many Requests"})";
    try {
        runbox::raise_for_status(r, "daytona");
        FAIL("no throw");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::rate_limited);
        REQUIRE(e.retry_after() == std::chrono::milliseconds(3000));
        REQUIRE(e.detail() == "Rate limit exceeded");
    }
}

TEST_CASE("raise_for_status never lets an echoed API key into what()", "[transport][status][secrets]") {
    const std::string key = "dtn_0123456789abcdef_SECRET";
    for (std::string body : {R"({"detail":"API key )" + key + R"( is invalid"})",
                             R"({"message":["bad key )" + key + R"("]})",
                             "plain text: Bearer " + key,
                             R"({"nested":{"key":")" + key + R"("}})",
                             "\"" + key + "\""}) {
        INFO(body);
        Response r;
        r.status = 401;
        r.body = body;
        try {
            runbox::raise_for_status(r, "daytona", {key});
            FAIL("no throw");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == errc::auth_failed);
            REQUIRE(std::string(e.what()).find(key) == std::string::npos);
            REQUIRE(e.detail().find(key) == std::string::npos);
        }
    }
}

TEST_CASE("raise_for_status truncates long non-JSON bodies", "[transport][status]") {
    Response r;
    r.status = 502;
    r.body = std::string(5000, 'x');
    try {
        runbox::raise_for_status(r, "runloop");
        FAIL("no throw");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == errc::server_error);
        REQUIRE(e.detail().size() < 400);
    }
}

TEST_CASE("send_with_retry: a classify hook retries a 200 whose trailers say UNAVAILABLE", "[transport][retry][grpc]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    policy.classify = [](const Response& r) -> std::optional<runbox::RetryDecision> {
        const auto status = r.trailers.get("grpc-status");
        if (!status) return std::nullopt;
        return runbox::RetryDecision{*status == "14", r.trailers.get("pushback") ? std::optional(250ms) : std::nullopt};
    };
    ScriptedTransport t;
    t.steps.push_back([](const Request&) {
        Response r;
        r.status = 200;
        r.trailers = Headers{{"grpc-status", "14"}, {"pushback", "yes"}};
        return r;
    });
    t.steps.push_back([](const Request&) {
        Response r;
        r.status = 200;
        r.trailers = Headers{{"grpc-status", "14"}};
        return r;
    });
    t.steps.push_back([](const Request&) {
        Response r;
        r.status = 200;
        r.trailers = Headers{{"grpc-status", "0"}};
        return r;
    });
    Request rpc = get();
    rpc.method = "POST";
    rpc.idempotent = true;
    auto r = runbox::send_with_retry(t, rpc, policy);
    CHECK(r.trailers.get("grpc-status") == "0");
    CHECK(t.calls == 3);
    REQUIRE(waits.size() == 2);
    CHECK(waits[0] == 250ms);                 // the throttle the response carried
    CHECK(waits[1] == policy.backoff(2, 0));  // else the backoff

    // Without a decision the HTTP status rules stay: a 503 is retried, a 404 is not.
    waits.clear();
    ScriptedTransport http;
    http.reply(503);
    http.reply(404);
    CHECK(runbox::send_with_retry(http, get(), policy).status == 404);
    CHECK(http.calls == 2);
}

TEST_CASE("send_with_retry: on_attempt numbers attempts and keeps one idempotency key per call", "[transport][retry]") {
    std::vector<std::chrono::milliseconds> waits;
    auto policy = recording_policy(waits);
    policy.on_attempt = runbox::attempt_headers("x-attempt", "idempotency-key");
    std::vector<std::pair<std::string, std::string>> seen;
    ScriptedTransport t;
    for (int i = 0; i < 3; ++i) {
        t.steps.push_back([&seen, i](const Request& r) {
            seen.emplace_back(r.headers.get("x-attempt").value_or(""), r.headers.get("idempotency-key").value_or(""));
            Response out;
            out.status = i < 2 ? 503 : 200;
            return out;
        });
    }
    Request request = get();
    CHECK(runbox::send_with_retry(t, request, policy).status == 200);
    REQUIRE(seen.size() == 3);
    CHECK(seen[0].first == "1");
    CHECK(seen[1].first == "2");
    CHECK(seen[2].first == "3");
    CHECK(seen[0].second.size() == 32);
    CHECK(seen[1].second == seen[0].second);
    CHECK(seen[2].second == seen[0].second);
    CHECK_FALSE(request.headers.contains("x-attempt"));  // the caller's request is not edited

    // The next logical call gets a new key.
    t.steps.push_back([&seen](const Request& r) {
        seen.emplace_back(r.headers.get("x-attempt").value_or(""), r.headers.get("idempotency-key").value_or(""));
        Response out;
        out.status = 200;
        return out;
    });
    CHECK(runbox::send_with_retry(t, request, policy).status == 200);
    CHECK(seen[3].first == "1");
    CHECK(seen[3].second != seen[0].second);
}

TEST_CASE("url_encode keeps RFC 3986 unreserved characters and !*'(), encodes every other byte", "[transport][url]") {
    CHECK(runbox::url_encode("a b/c") == "a%20b%2Fc");
    CHECK(runbox::url_encode("AZaz09-._~!*'()") == "AZaz09-._~!*'()");
    CHECK(runbox::url_encode("/work space/a+b&c.txt") == "%2Fwork%20space%2Fa%2Bb%26c.txt");
    CHECK(runbox::url_encode("=?#%;,:@$[]\"<>") == "%3D%3F%23%25%3B%2C%3A%40%24%5B%5D%22%3C%3E");
    CHECK(runbox::url_encode("\xc3\xa9\x01\xff") == "%C3%A9%01%FF");  // UTF-8 and control bytes, upper-case hex
    CHECK(runbox::url_encode(R"({"team":"a"})") == "%7B%22team%22%3A%22a%22%7D");
    CHECK(runbox::url_encode("").empty());
    CHECK(runbox::query_string({{"path", "/a b"}, {"k&", "v="}}) == "path=%2Fa%20b&k%26=v%3D");
}

}  // namespace test_transport
