// FakeE2B's own behaviour beyond what the official SDK exercises (test_e2b_conformance.cpp):
// the action server started by Process/Start behind the port proxy and the traffic token, raw
// uploads, keepalive events and Connect-Timeout-Ms on a stream, the TTL, faults, and its limits.
#include <chrono>
#include <fstream>
#include <functional>
#include <iterator>
#include <thread>
#include <string>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "catch.hpp"

#include "runbox/testing/fake_e2b.hpp"
#include "runbox/transport/envelope.hpp"

namespace test_fake_e2b {  // several files share a unit (tests/CMakeLists.txt)

using runbox::testing::FakeE2B;
using runbox::testing::FakeE2BOptions;
using nlohmann::json;

namespace {

struct Created {
    std::string id;
    std::string envd_token;
    std::string traffic_token;
};

Created create(httplib::Client& cli, const json& body) {
    auto r = cli.Post("/v2/sandboxes", {{"X-API-Key", "e2b_test"}}, body.dump(), "application/json");
    REQUIRE(r);
    REQUIRE(r->status == 201);
    auto j = json::parse(r->body);
    return {j["sandboxID"], j["envdAccessToken"], j["trafficAccessToken"].is_string() ? j["trafficAccessToken"].get<std::string>() : ""};
}

httplib::Headers envd_headers(const Created& sb) {
    return {{"E2b-Sandbox-Id", sb.id}, {"E2b-Sandbox-Port", "49983"}, {"X-Access-Token", sb.envd_token},
            {"Connect-Protocol-Version", "1"}};
}

// Reads a Connect stream until `stop(frames)` says so or it ends; returns the frames.
std::vector<runbox::Frame> stream(httplib::Client& cli, const std::string& path, httplib::Headers headers,
                                  const json& request, const std::function<bool(const std::vector<runbox::Frame>&)>& stop) {
    httplib::Request req;
    req.method = "POST";
    req.path = path;
    req.headers = std::move(headers);
    req.headers.emplace("Content-Type", "application/connect+json");
    req.body = runbox::encode_frame(request.dump());
    std::vector<runbox::Frame> frames;
    runbox::FrameReader reader;
    bool stopped = false;
    req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
        reader.feed(std::string_view(data, n));
        while (auto f = reader.next()) frames.push_back(std::move(*f));
        if (stop(frames)) {
            stopped = true;
            return false;
        }
        return true;
    };
    httplib::Response res;
    httplib::Error err = httplib::Error::Success;
    const bool ok = cli.send(req, res, err);
    if (!stopped) {
        REQUIRE(ok);
        REQUIRE(res.status == 200);
    }
    return frames;
}

json event(const runbox::Frame& f) { return json::parse(f.payload)["event"]; }

bool ended(const std::vector<runbox::Frame>& frames) { return !frames.empty() && frames.back().end_stream(); }

}  // namespace

TEST_CASE("fake e2b: a server command runs a real action server behind the port proxy and its traffic token") {
    FakeE2B fake;
    fake.start();
    httplib::Client cli("127.0.0.1", fake.port());
    cli.set_read_timeout(std::chrono::seconds(20));
    auto sb = create(cli, {{"templateID", "base"}, {"network", {{"allowPublicTraffic", false}}}});
    REQUIRE_FALSE(sb.traffic_token.empty());

    // Before the server runs the port is closed: 502, as E2B's edge answers.
    auto closed = cli.Get("/ports/4444-" + sb.id + "/alive", {{"e2b-traffic-access-token", sb.traffic_token}});
    REQUIRE(closed);
    CHECK(closed->status == 502);

    const json start = {{"process",
                         {{"cmd", "/bin/bash"},
                          {"args", {"-l", "-c", "runbox-server --port 4444 --working-dir /workspace"}},
                          {"envs", {{"SESSION_API_KEY", "sk-session-1"}}}}}};
    auto frames = stream(cli, "/process.Process/Start", envd_headers(sb), start,
                         [](const auto& fs) { return !fs.empty(); });
    REQUIRE(frames.size() >= 1);
    const auto pid = event(frames[0])["start"]["pid"].get<std::uint32_t>();
    CHECK(pid > 0);

    // Through the proxy: the traffic token is required, then the session key (the real server's check).
    auto no_token = cli.Get("/ports/4444-" + sb.id + "/alive");
    REQUIRE(no_token);
    CHECK(no_token->status == 403);
    auto alive = cli.Get("/ports/4444-" + sb.id + "/alive",
                         {{"e2b-traffic-access-token", sb.traffic_token}, {"X-Session-API-Key", "sk-session-1"}});
    REQUIRE(alive);
    CHECK(alive->status == 200);
    auto no_key = cli.Get("/ports/4444-" + sb.id + "/vscode/connection_token", {{"e2b-traffic-access-token", sb.traffic_token}});
    REQUIRE(no_key);
    CHECK(no_key->status == 403);
    auto with_key = cli.Get("/ports/4444-" + sb.id + "/vscode/connection_token",
                            {{"e2b-traffic-access-token", sb.traffic_token}, {"X-Session-API-Key", "sk-session-1"}});
    REQUIRE(with_key);
    CHECK(with_key->status == 200);
    // Another port of the sandbox has nothing behind it.
    auto other = cli.Get("/ports/8080-" + sb.id + "/", {{"e2b-traffic-access-token", sb.traffic_token}});
    REQUIRE(other);
    CHECK(other->status == 502);

    // The process outlived its stream; it is listed, Connect rejoins it, SendSignal ends it.
    auto list = cli.Post("/process.Process/List", envd_headers(sb), "{}", "application/json");
    REQUIRE(list);
    REQUIRE(list->status == 200);
    auto processes = json::parse(list->body)["processes"];
    REQUIRE(processes.size() == 1);
    CHECK(processes[0]["pid"] == pid);
    CHECK(processes[0]["config"]["envs"]["SESSION_API_KEY"] == "***");  // secrets never shown
    std::vector<runbox::Frame> joined;
    std::thread signaller;
    joined = stream(cli, "/process.Process/Connect", envd_headers(sb), {{"process", {{"pid", pid}}}},
                    [&](const auto& fs) {
                        if (fs.size() == 1 && !signaller.joinable()) {
                            signaller = std::thread([&] {
                                httplib::Client c2("127.0.0.1", fake.port());
                                auto r = c2.Post("/process.Process/SendSignal", envd_headers(sb),
                                                 json{{"process", {{"pid", pid}}}, {"signal", "SIGNAL_SIGKILL"}}.dump(),
                                                 "application/json");
                                CHECK((r && r->status == 200));
                            });
                        }
                        return false;
                    });
    if (signaller.joinable()) signaller.join();
    REQUIRE(ended(joined));
    CHECK(event(joined.front())["start"]["pid"] == pid);
    CHECK(event(joined[joined.size() - 2])["end"]["exitCode"] == -1);
    CHECK(json::parse(joined.back().payload) == json::object());
    auto gone = cli.Get("/ports/4444-" + sb.id + "/alive", {{"e2b-traffic-access-token", sb.traffic_token}});
    REQUIRE(gone);
    CHECK(gone->status == 502);

    // The log never shows the session key or the tokens.
    for (const auto& r : fake.requests()) {
        CHECK(r.body.find("sk-session-1") == std::string::npos);
        CHECK(r.target.find(sb.envd_token) == std::string::npos);
        for (const auto& [k, v] : r.headers) {
            CHECK(v.find(sb.traffic_token) == std::string::npos);
            CHECK(v.find(sb.envd_token) == std::string::npos);
        }
    }
    auto del = cli.Delete("/sandboxes/" + sb.id, {{"X-API-Key", "e2b_test"}});
    REQUIRE(del);
    CHECK(del->status == 204);
    CHECK(fake.live_sandboxes() == 0);
    CHECK(fake.running_processes() == 0);
}

TEST_CASE("fake e2b: streams send keepalives while a command runs and end at Connect-Timeout-Ms, the process going on") {
    FakeE2BOptions options;
    options.max_keepalive_interval = std::chrono::milliseconds(20);
    FakeE2B fake(options);
    fake.start();
    httplib::Client cli("127.0.0.1", fake.port());
    cli.set_read_timeout(std::chrono::seconds(20));
    auto sb = create(cli, {{"templateID", "base"}});

    auto headers = envd_headers(sb);
    headers.emplace("Keepalive-Ping-Interval", "50");
    auto frames = stream(cli, "/process.Process/Start", headers,
                         {{"process", {{"cmd", "/bin/bash"}, {"args", {"-c", "sleep 0.3; echo done"}}}}},
                         [](const auto&) { return false; });
    REQUIRE(ended(frames));
    int keepalives = 0;
    for (std::size_t i = 0; i + 1 < frames.size(); ++i) keepalives += event(frames[i]).contains("keepalive") ? 1 : 0;
    CHECK(keepalives >= 2);
    CHECK(event(frames[frames.size() - 2]).contains("end"));

    auto timed = envd_headers(sb);
    timed.emplace("Connect-Timeout-Ms", "200");
    frames = stream(cli, "/process.Process/Start", timed,
                    {{"process", {{"cmd", "/bin/bash"}, {"args", {"-c", "sleep 30"}}}}}, [](const auto&) { return false; });
    REQUIRE(ended(frames));
    CHECK(json::parse(frames.back().payload)["error"]["code"] == "deadline_exceeded");
    CHECK(fake.running_processes() == 1);  // the stream ended, the process did not
    auto del = cli.Delete("/sandboxes/" + sb.id, {{"X-API-Key", "e2b_test"}});
    REQUIRE(del);
    CHECK(fake.wait_until([&] { return fake.running_processes() == 0; }));
}

TEST_CASE("fake e2b: raw and multipart uploads, downloads, and envd errors as E2B sends them") {
    FakeE2B fake;
    fake.start();
    httplib::Client cli("127.0.0.1", fake.port());
    auto sb = create(cli, {{"templateID", "base"}});
    auto h = envd_headers(sb);
    const std::string binary("a\0b\xff", 4);
    auto up = cli.Post("/files?path=/home/user/raw.bin", h, binary, "application/octet-stream");
    REQUIRE(up);
    REQUIRE(up->status == 200);
    CHECK(json::parse(up->body)[0]["path"] == "/home/user/raw.bin");
    httplib::MultipartFormDataItems items = {{"file", "multi", "sub/m.txt", "application/octet-stream"}};
    auto mp = cli.Post("/files", h, items);  // no path: the part's filename, relative to the home
    REQUIRE(mp);
    REQUIRE(mp->status == 200);
    CHECK(json::parse(mp->body)[0]["path"] == "/home/user/sub/m.txt");
    auto down = cli.Get("/files?path=raw.bin", h);
    REQUIRE(down);
    CHECK(down->status == 200);
    CHECK(down->body == binary);
    std::ifstream on_disk(fake.sandbox(sb.id)->root / "home/user/sub/m.txt");
    CHECK(std::string(std::istreambuf_iterator<char>(on_disk), {}) == "multi");
    auto missing = cli.Get("/files?path=/nope", h);
    REQUIRE(missing);
    CHECK(missing->status == 404);
    CHECK(json::parse(missing->body)["code"] == 404);
    auto stat = cli.Post("/filesystem.Filesystem/Stat", h, R"({"path":"/nope"})", "application/json");
    REQUIRE(stat);
    CHECK(stat->status == 404);
    CHECK(json::parse(stat->body)["code"] == "not_found");
    // Paths cannot leave the sandbox: "/../../etc/passwd" is the sandbox's own /etc/passwd.
    auto escape = cli.Get("/files?path=/../../etc/passwd", h);
    REQUIRE(escape);
    CHECK(escape->status == 404);
    // Wrong token, unknown sandbox.
    auto bad = h;
    bad.erase("X-Access-Token");
    bad.emplace("X-Access-Token", "forged");
    auto denied = cli.Get("/files?path=raw.bin", bad);
    REQUIRE(denied);
    CHECK(denied->status == 401);
    auto unknown = cli.Get("/health", {{"E2b-Sandbox-Id", "nosuch"}});
    REQUIRE(unknown);
    CHECK(unknown->status == 502);
    auto api_health = cli.Get("/health");
    REQUIRE(api_health);
    CHECK(api_health->status == 204);
}

TEST_CASE("fake e2b: the timeout kills (or with autoPause pauses) a sandbox; pause stops its processes") {
    FakeE2B fake;
    fake.start();
    httplib::Client cli("127.0.0.1", fake.port());
    auto killed = create(cli, {{"templateID", "base"}, {"timeout", 60}});
    auto paused = create(cli, {{"templateID", "base"}, {"timeout", 60}, {"autoPause", true}});
    CHECK(fake.live_sandboxes() == 2);
    fake.expire(killed.id);
    fake.expire(paused.id);
    CHECK_FALSE(fake.sandbox(killed.id));
    REQUIRE(fake.sandbox(paused.id));
    CHECK(fake.sandbox(paused.id)->state == "paused");
    auto again = cli.Post("/sandboxes/" + paused.id + "/pause", {{"X-API-Key", "e2b_test"}}, "{}", "application/json");
    REQUIRE(again);
    CHECK(again->status == 409);
    CHECK(json::parse(again->body)["code"] == 409);
    auto resumed = cli.Post("/v2/sandboxes/" + paused.id + "/connect", {{"X-API-Key", "e2b_test"}},
                            R"({"timeout":120})", "application/json");
    REQUIRE(resumed);
    CHECK(resumed->status == 201);
    CHECK(json::parse(resumed->body)["envdAccessToken"] == paused.envd_token);  // unchanged on resume
    CHECK(fake.sandbox(paused.id)->timeout_seconds == 120);
    auto del = cli.Delete("/sandboxes/" + paused.id, {{"X-API-Key", "e2b_test"}});
    REQUIRE(del);
    CHECK(del->status == 204);
    CHECK(fake.live_sandboxes() == 0);
}

TEST_CASE("fake e2b: injected faults, and the limits on what a client can make it hold") {
    FakeE2BOptions options;
    options.max_body_bytes = 1 << 16;
    options.max_json_depth = 16;
    FakeE2B fake(options);
    fake.start();
    httplib::Client cli("127.0.0.1", fake.port());

    runbox::Fault busy;
    busy.kind = runbox::Fault::Kind::reply;
    busy.method = "POST";
    busy.url_contains = "/v2/sandboxes";
    busy.status = 429;
    busy.headers = {{"Retry-After", "1"}};
    busy.body = R"({"code":429,"message":"rate limited"})";
    fake.inject(busy);
    auto limited = cli.Post("/v2/sandboxes", {{"X-API-Key", "e2b_test"}}, R"({"templateID":"base"})", "application/json");
    REQUIRE(limited);
    CHECK(limited->status == 429);
    CHECK(limited->get_header_value("Retry-After") == "1");
    CHECK(fake.live_sandboxes() == 0);

    runbox::Fault cut;
    cut.kind = runbox::Fault::Kind::drop;
    cut.url_contains = "/v2/sandboxes";
    fake.inject(cut);
    auto dropped = cli.Get("/v2/sandboxes", {{"X-API-Key", "e2b_test"}});
    CHECK((!dropped || dropped->body.empty()));

    auto sb = create(cli, {{"templateID", "base"}});  // the faults are used up
    auto too_big = cli.Post("/files?path=big", envd_headers(sb), std::string(options.max_body_bytes + 1, 'x'),
                            "application/octet-stream");
    REQUIRE(too_big);
    CHECK(too_big->status == 413);
    std::string deep = R"({"templateID":"base","metadata":)" + std::string(40, '[') + std::string(40, ']') + "}";
    auto nested = cli.Post("/v2/sandboxes", {{"X-API-Key", "e2b_test"}}, deep, "application/json");
    REQUIRE(nested);
    CHECK(nested->status == 400);
    auto wrong_key = cli.Get("/v2/sandboxes", {{"X-API-Key", "e2b_wrong"}});
    REQUIRE(wrong_key);
    CHECK(wrong_key->status == 401);
    CHECK(json::parse(wrong_key->body)["code"] == 401);
    // A stream request whose envelope announces more than the limit is refused before it is read.
    httplib::Headers h = envd_headers(sb);
    std::string header("\0\x7f\xff\xff\xff", 5);
    auto huge = cli.Post("/process.Process/Start", h, header + "{}", "application/connect+json");
    REQUIRE(huge);
    CHECK(huge->status == 400);
    CHECK(json::parse(huge->body)["code"] == "invalid_argument");
    CHECK(fake.live_sandboxes() == 1);
}

}  // namespace test_fake_e2b
