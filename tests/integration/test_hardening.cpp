// The action server and the client under hostile input (issue 10 rows 1-7, 12, 13; issue 11
// row 5): real servers on 127.0.0.1, raw sockets where a polite client would not do.
#include "catch.hpp"
#include "temp_files.hpp"

#include "runbox/client.hpp"
#include "runbox/zip.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/events.hpp"
#include "runbox/server/action_server.hpp"
#include "runbox/transport/httplib.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zip.h>

#include <arpa/inet.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace test_hardening {  // several files share a unit (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using json = nlohmann::json;
using runbox::server::ActionServer;
using runbox::server::ActionServerOptions;
using namespace std::chrono_literals;

namespace {

struct TempDir : runbox_test::TempDir {
    TempDir() : runbox_test::TempDir("runbox-hardening") {}
};
using runbox_test::read_file;
using runbox_test::write_file;

struct Harness {
    TempDir work;
    ActionServer server;
    httplib::Client client;

    explicit Harness(ActionServerOptions options = {})
        : server(with_dir(std::move(options), work.path)), client(start_and_url(server)) {
        client.set_connection_timeout(5s);
        client.set_read_timeout(60s);
    }
    static ActionServerOptions with_dir(ActionServerOptions options, const fs::path& dir) {
        if (options.working_dir.empty()) options.working_dir = dir.string();
        return options;
    }
    static std::string start_and_url(ActionServer& server) {
        server.start();
        return server.url();
    }
    httplib::Result post_action(const json& action) {
        return client.Post("/execute_action", json{{"action", action}}.dump(), "application/json");
    }
};

json run_action(const std::string& command, double timeout = 30) {
    return {{"action", "run"},
            {"args", {{"command", command}, {"is_input", false}, {"thought", ""}, {"blocking", true}}},
            {"timeout", timeout}};
}

json read_action(const std::string& path) { return {{"action", "read"}, {"args", {{"path", path}}}, {"timeout", 10}}; }

json write_action(const std::string& path, const std::string& content) {
    return {{"action", "write"}, {"args", {{"path", path}, {"content", content}}}, {"timeout", 10}};
}

std::string nested_arrays(std::size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

/// kB from /proc/self/status ("VmHWM", "VmRSS").
long proc_status_kb(const std::string& key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) return std::stol(line.substr(key.size() + 1));
    }
    return -1;
}

int connect_to(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<std::uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    return fd;
}

/// Sends `head`, then up to `body_bytes` of body while watching for an answer (as a client
/// that reads while it sends); returns the status line's code (0 if none came within `bound`).
int send_and_read_status(int port, const std::string& head, std::size_t body_bytes, std::chrono::milliseconds bound) {
    const int fd = connect_to(port);
    std::string answer;
    const auto deadline = std::chrono::steady_clock::now() + bound;
    std::size_t head_sent = 0, body_sent = 0;
    const std::string chunk(64 * 1024, 'x');
    while (std::chrono::steady_clock::now() < deadline && answer.find("\r\n") == std::string::npos) {
        pollfd pfd{fd, static_cast<short>(POLLIN | (head_sent < head.size() || body_sent < body_bytes ? POLLOUT : 0)), 0};
        if (::poll(&pfd, 1, 50) <= 0) continue;
        if (pfd.revents & POLLIN) {
            char buf[4096];
            const auto n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) break;
            answer.append(buf, static_cast<std::size_t>(n));
            continue;
        }
        if (pfd.revents & POLLOUT) {
            ssize_t n = 0;
            if (head_sent < head.size()) {
                n = ::send(fd, head.data() + head_sent, head.size() - head_sent, MSG_NOSIGNAL);
                if (n > 0) head_sent += static_cast<std::size_t>(n);
            } else {
                n = ::send(fd, chunk.data(), std::min(chunk.size(), body_bytes - body_sent), MSG_NOSIGNAL);
                if (n > 0) body_sent += static_cast<std::size_t>(n);
            }
            if (n < 0) {
                // The server closed: what it answered may still be readable.
                char buf[4096];
                const auto got = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
                if (got > 0) answer.append(buf, static_cast<std::size_t>(got));
                break;
            }
        }
        if (pfd.revents & (POLLERR | POLLHUP)) break;
    }
    ::close(fd);
    if (answer.rfind("HTTP/1.1 ", 0) != 0 || answer.size() < 12) return 0;
    return std::stoi(answer.substr(9, 3));
}

std::string make_zip(const std::vector<std::pair<std::string, std::string>>& entries, const fs::path& scratch) {
    const auto archive_path = scratch / "made-by-test.zip";
    int code = 0;
    zip_t* archive = zip_open(archive_path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    REQUIRE(archive != nullptr);
    for (const auto& [name, content] : entries) {
        zip_source_t* source = zip_source_buffer(archive, content.data(), content.size(), 0);
        REQUIRE(source != nullptr);
        REQUIRE(zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8) >= 0);
    }
    REQUIRE(zip_close(archive) == 0);
    auto bytes = read_file(archive_path);
    fs::remove(archive_path);
    return bytes;
}

httplib::Result upload(httplib::Client& client, const std::string& destination, const std::string& filename,
                       const std::string& content) {
    const httplib::MultipartFormDataItems items{{"file", content, filename, "application/octet-stream"}};
    const bool recursive = filename.size() > 4 && filename.substr(filename.size() - 4) == ".zip";
    return client.Post(httplib::append_query_params("/upload_file", {{"destination", destination},
                                                                     {"recursive", recursive ? "true" : "false"}}),
                       items);
}

}  // namespace

// ---- rows 1 and 2, issue 11 row 5: depth limits ---------------------------------------------

TEST_CASE("untrusted JSON: depth and size are bounded, a typed failure, no recursion", "[hardening][json]") {
    using runbox::detail::json_failure;
    json_failure why{};
    auto deep = runbox::detail::parse_untrusted_json(nested_arrays(50000), {}, &why);
    REQUIRE(deep.is_discarded());
    REQUIRE(why == json_failure::too_deep);
    auto fits = runbox::detail::parse_untrusted_json(nested_arrays(runbox::detail::max_nesting_depth), {}, &why);
    REQUIRE(why == json_failure::none);
    REQUIRE(fits.is_array());
    runbox::detail::parse_untrusted_json("[1,2,3]", {.max_depth = 10, .max_bytes = 4}, &why);
    REQUIRE(why == json_failure::too_large);
    runbox::detail::parse_untrusted_json("{\"a\":", {}, &why);
    REQUIRE(why == json_failure::syntax);
    // The tree is bounded too, not only the text: 3 bytes of `{},` become an object each.
    std::string many = "[";
    for (int i = 0; i < 1000; ++i) many += "{},";
    many += "{}]";
    auto counted = runbox::detail::parse_untrusted_json(many, {.max_values = 1000}, &why);
    REQUIRE(why == json_failure::too_many_values);
    REQUIRE(counted.is_discarded());
    REQUIRE(runbox::detail::json_failure_text(why, {.max_values = 1000}) == "holds more than 1000 values");
    (void)runbox::detail::parse_untrusted_json(many, {.max_values = 1002}, &why);  // the array and 1001 objects
    REQUIRE(why == json_failure::none);
    (void)runbox::detail::parse_untrusted_json("{\"a\":[1,2],\"b\":\"x\"}", {.max_values = 5}, &why);
    REQUIRE(why == json_failure::none);  // object, array, 1, 2, "x"
    (void)runbox::detail::parse_untrusted_json("{\"a\":[1,2],\"b\":\"x\"}", {.max_values = 4}, &why);
    REQUIRE(why == json_failure::too_many_values);
}

TEST_CASE("row 2: the Python literal reader refuses deep nesting with a typed error", "[hardening][literal]") {
    for (const std::size_t depth : {35000u, 100000u}) {
        const std::string text(depth, '[');  // the reader keeps a view of it
        runbox::detail::python_literal_reader reader(text);
        try {
            (void)reader.read();
            FAIL("a " << depth << "-deep literal was accepted");
        } catch (const runbox::error& e) {
            REQUIRE(e.code() == runbox::errc::bad_response);
        }
    }
    const auto ok = runbox::detail::python_literal_reader("{'a': [[1, (2, 3)]], 'b': None}").read();
    REQUIRE(ok);
    REQUIRE(ok->at("a").at(0).at(1).at(1) == 3);
}

TEST_CASE("row 1: an action nesting 50 000 arrays is a 422, and the server keeps serving", "[hardening][json]") {
    Harness h;
    json action = run_action("echo still-here");
    const std::string body = "{\"action\":" + action.dump().substr(0, action.dump().size() - 1) +
                             ",\"tool_call_metadata\":" + nested_arrays(50000) + "}}";
    auto res = h.client.Post("/execute_action", body, "application/json");
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 422);
    const auto detail = json::parse(res->body);
    REQUIRE(detail["detail"] == "Invalid request parameters");
    REQUIRE(detail["errors"].get<std::string>().find("deeper than 200") != std::string::npos);
    REQUIRE(h.client.Get("/alive")->status == 200);
    auto ran = h.post_action(action);
    REQUIRE(ran->status == 200);
    REQUIRE(json::parse(ran->body)["content"] == "still-here");
}

TEST_CASE("row 1: an action holding more values than max_json_values is a 422, and the server keeps serving", "[hardening][json]") {
    ActionServerOptions options;
    options.max_json_values = 10000;
    Harness h(options);
    json action = run_action("echo still-here");
    std::string many = "[";
    for (int i = 0; i < 20000; ++i) many += "{},";
    many += "{}]";
    const std::string body = "{\"action\":" + action.dump().substr(0, action.dump().size() - 1) +
                             ",\"tool_call_metadata\":" + many + "}}";
    auto res = h.client.Post("/execute_action", body, "application/json");
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 422);
    REQUIRE(json::parse(res->body)["errors"].get<std::string>().find("holds more than 10000 values") != std::string::npos);
    auto ran = h.post_action(action);
    REQUIRE(ran->status == 200);
    REQUIRE(json::parse(ran->body)["content"] == "still-here");
}

TEST_CASE("row 2: translated_ipython_code nesting 35 000 brackets is refused, the server lives", "[hardening][literal]") {
    Harness h;
    json action = read_action((h.work.path / "x.txt").string());
    action["args"]["translated_ipython_code"] = "print(file_editor(**{'a': " + std::string(35000, '[') + "}))";
    auto res = h.post_action(action);
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 500);
    REQUIRE(res->body.find("deeper than") != std::string::npos);
    REQUIRE(h.client.Get("/alive")->status == 200);
}

TEST_CASE("issue 11 row 5: an answer nesting 50 000 arrays is a typed client error, no crash", "[hardening][client]") {
    httplib::Server hostile;
    // A well-formed observation whose extras nest 50 000 arrays (a bare array would be refused
    // as "not an object" before any walk).
    const std::string deep =
        "{\"observation\":\"run\",\"content\":\"x\",\"extras\":{\"metadata\":" + nested_arrays(50000) + "}}";
    hostile.Post("/execute_action", [&](const httplib::Request&, httplib::Response& res) { res.set_content(deep, "application/json"); });
    hostile.Get("/server_info", [&](const httplib::Request&, httplib::Response& res) { res.set_content(deep, "application/json"); });
    const int port = hostile.bind_to_any_port("127.0.0.1");
    REQUIRE(port > 0);
    std::thread serving([&] { hostile.listen_after_bind(); });
    struct Stop {
        httplib::Server& s;
        std::thread& t;
        ~Stop() {
            s.stop();
            t.join();
        }
    } stop{hostile, serving};

    runbox::HttplibTransport transport(runbox::TransportOptions{});
    runbox::ServerEndpoint endpoint;
    endpoint.url = "http://127.0.0.1:" + std::to_string(port);
    runbox::ActionExecutionClient<runbox::HttplibTransport> client(transport, endpoint, "test");
    runbox::CmdRunAction action;
    action.command = "true";
    action.set_hard_timeout(5);
    try {
        (void)client.execute_action(action);
        FAIL("a 50 000-deep answer was accepted");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::bad_response);
        REQUIRE(std::string(e.what()).find("deeper than") != std::string::npos);
    }
    REQUIRE_THROWS_AS(client.server_info(), runbox::error);
}

// ---- rows 3 and 4: reads ---------------------------------------------------------------------

TEST_CASE("rows 3-4: reading /dev/zero or a FIFO is refused at once; the next run still works", "[hardening][files]") {
    Harness h;
    const auto fifo = h.work.path / "pipe";
    REQUIRE(::mkfifo(fifo.c_str(), 0666) == 0);
    for (const std::string& path : {std::string("/dev/zero"), fifo.string()}) {
        const auto start = std::chrono::steady_clock::now();
        auto res = h.post_action(read_action(path));
        REQUIRE(res);
        INFO(res->body);
        REQUIRE(res->status == 200);
        const auto obs = json::parse(res->body);
        REQUIRE(obs["observation"] == "error");
        REQUIRE(obs["content"].get<std::string>().find("not a regular file") != std::string::npos);
        REQUIRE(std::chrono::steady_clock::now() - start < 5s);
    }
    // Writing into the FIFO or a device is refused the same way, without blocking.
    auto wrote = h.post_action(write_action(fifo.string(), "x"));
    REQUIRE(json::parse(wrote->body)["observation"] == "error");
    const auto start = std::chrono::steady_clock::now();
    auto ran = h.post_action(run_action("echo after", 3));
    REQUIRE(ran->status == 200);
    REQUIRE(json::parse(ran->body)["content"] == "after");
    REQUIRE(std::chrono::steady_clock::now() - start < 3s);
}

TEST_CASE("row 3: a read is bounded and says it was cut", "[hardening][files]") {
    ActionServerOptions options;
    options.max_read_bytes = 1000;
    Harness h(options);
    const auto big = h.work.path / "big.txt";
    std::string text;
    for (int i = 0; text.size() < 5000; ++i) text += "line " + std::to_string(i) + "\n";
    write_file(big, text);
    auto res = h.post_action(read_action(big.string()));
    const auto obs = json::parse(res->body);
    REQUIRE(obs["observation"] == "read");
    const std::string content = obs["content"];
    REQUIRE(content.rfind(text.substr(0, 900), 0) == 0);
    REQUIRE(content.find("<response clipped>") != std::string::npos);
    REQUIRE(content.find("first 1000 bytes") != std::string::npos);
    REQUIRE(content.size() < 1400);
    write_file(h.work.path / "small.txt", "small\n");
    REQUIRE(json::parse(h.post_action(read_action((h.work.path / "small.txt").string()))->body)["content"] == "small\n");
}

// ---- row 5: body limits before the body ---------------------------------------------------------

TEST_CASE("row 5: a 200 MB body without the key is refused before it is read", "[hardening][http]") {
    ActionServerOptions options;
    options.session_api_key = "the-key";
    options.max_body_bytes = 1 << 20;
    Harness h(options);
    const std::size_t big = 200u << 20;
    const long hwm_before = proc_status_kb("VmHWM");
    const long rss_before = proc_status_kb("VmRSS");
    const int status = send_and_read_status(
        h.server.port(), "POST /execute_action HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(big) + "\r\n\r\n",
        big, 60s);
    const long hwm_after = proc_status_kb("VmHWM");
    const long rss_after = proc_status_kb("VmRSS");
    INFO("VmHWM " << hwm_before << " -> " << hwm_after << " kB, VmRSS " << rss_before << " -> " << rss_after << " kB");
    REQUIRE(status == 403);
    REQUIRE(hwm_after - hwm_before < 32 * 1024);  // the body was never held (main: +262 MB)

    SECTION("with the key, a body over the limit is 413, checked from Content-Length") {
        const int too_large = send_and_read_status(
            h.server.port(), "POST /execute_action HTTP/1.1\r\nHost: x\r\nX-Session-API-Key: the-key\r\nContent-Length: " +
                                 std::to_string(2u << 20) + "\r\n\r\n",
            2u << 20, 30s);
        REQUIRE(too_large == 413);
    }
    SECTION("a compressed or chunked body is refused") {
        REQUIRE(send_and_read_status(h.server.port(),
                                     "POST /execute_action HTTP/1.1\r\nHost: x\r\nX-Session-API-Key: the-key\r\n"
                                     "Content-Encoding: gzip\r\nContent-Length: 100\r\n\r\n",
                                     100, 30s) == 415);
        REQUIRE(send_and_read_status(h.server.port(),
                                     "POST /execute_action HTTP/1.1\r\nHost: x\r\nX-Session-API-Key: the-key\r\n"
                                     "Transfer-Encoding: chunked\r\n\r\n",
                                     0, 30s) == 411);
    }
    SECTION("a body within the limit with the key is served") {
        httplib::Headers key{{"X-Session-API-Key", "the-key"}};
        auto res = h.client.Post("/list_files", key, "{}", "application/json");
        REQUIRE(res);
        REQUIRE(res->status == 200);
    }
}

/// Sends `head`, then blindly `body_bytes` in 1 MiB sends, as an attacker that never reads;
/// returns how many body bytes the server took before the connection failed.
std::size_t send_blindly(int port, const std::string& head, std::size_t body_bytes, std::chrono::milliseconds bound) {
    const int fd = connect_to(port);
    const timeval tv{5, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const auto deadline = std::chrono::steady_clock::now() + bound;
    const std::string chunk(1 << 20, ' ');  // no line break: httplib 0.11 read it as one request line
    std::size_t sent = 0;
    bool ok = ::send(fd, head.data(), head.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(head.size());
    while (ok && sent < body_bytes && std::chrono::steady_clock::now() < deadline) {
        const auto n = ::send(fd, chunk.data(), std::min(chunk.size(), body_bytes - sent), MSG_NOSIGNAL);
        ok = n > 0;
        if (ok) sent += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return sent;
}

TEST_CASE("row 5: after refusing an unread body the server ends the connection instead of reading it", "[hardening][http]") {
    ActionServerOptions options;
    options.session_api_key = "the-key";
    Harness h(options);
    const std::size_t big = 200u << 20;
    const long hwm_before = proc_status_kb("VmHWM");
    const std::size_t taken = send_blindly(
        h.server.port(), "POST /execute_action HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                             std::to_string(big) + "\r\n\r\n",
        big, 60s);
    const long hwm_after = proc_status_kb("VmHWM");
    INFO("the server took " << taken << " of " << big << " bytes; VmHWM " << hwm_before << " -> " << hwm_after << " kB");
    // Only what the socket buffers hold gets in (main: all 200 MB, parsed as a request line, +256 MB).
    REQUIRE(taken < big / 4);
    REQUIRE(hwm_after - hwm_before < 32 * 1024);
    REQUIRE(h.client.Get("/alive")->status == 200);

    SECTION("a large body without the key is refused on the public routes too") {
        const std::size_t large = 100u << 20;
        const int status = send_and_read_status(
            h.server.port(), "POST /alive HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(large) + "\r\n\r\n",
            large, 60s);
        const long hwm_public = proc_status_kb("VmHWM");
        INFO("VmHWM " << hwm_before << " -> " << hwm_public << " kB");
        REQUIRE(status == 413);  // main: the 100 MB were read into memory, then 404
        REQUIRE(hwm_public - hwm_before < 32 * 1024);
    }
    SECTION("a small body without the key is still read and answered on a connection kept alive") {
        httplib::Client client(h.server.url());
        client.set_keep_alive(true);
        for (int i = 0; i < 3; ++i) {
            auto res = client.Post("/execute_action", json{{"action", run_action("echo x")}}.dump(), "application/json");
            REQUIRE(res);
            REQUIRE(res->status == 403);
        }
    }
}

/// The accept backlog of the IPv4 TCP socket listening on 127.0.0.1:`port`, from the kernel
/// (sock_diag; what `ss -lt` prints as Send-Q); -1 when not found.
long listen_backlog(int port) {
    const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
    REQUIRE(fd >= 0);
    struct {
        nlmsghdr header;
        inet_diag_req_v2 request;
    } query{};
    query.header.nlmsg_len = sizeof query;
    query.header.nlmsg_type = SOCK_DIAG_BY_FAMILY;
    query.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    query.request.sdiag_family = AF_INET;
    query.request.sdiag_protocol = IPPROTO_TCP;
    query.request.idiag_states = 1u << 10;  // TCP_LISTEN
    REQUIRE(::send(fd, &query, sizeof query, 0) == static_cast<ssize_t>(sizeof query));
    long backlog = -1;
    alignas(nlmsghdr) char buffer[16384];
    for (bool done = false; !done;) {
        const auto n = ::recv(fd, buffer, sizeof buffer, 0);
        if (n <= 0) break;
        auto left = static_cast<unsigned int>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
                done = true;
                break;
            }
            const auto* msg = reinterpret_cast<const inet_diag_msg*>(NLMSG_DATA(h));
            if (ntohs(msg->id.idiag_sport) == port) backlog = msg->idiag_wqueue;  // a listener's max backlog
        }
    }
    ::close(fd);
    return backlog;
}

TEST_CASE("row 6: the server queues a burst of connections (backlog 128 instead of httplib's 5)", "[hardening][http]") {
    Harness h;
    // Debian's httplib listens with 5: 50 clients connecting at once lost handshakes.
    REQUIRE(listen_backlog(h.server.port()) == 128);
    REQUIRE(h.client.Get("/alive")->status == 200);
}

// ---- row 6: slow clients ----------------------------------------------------------------------

TEST_CASE("row 6: 40 connections sending headers a byte at a time do not starve /alive", "[hardening][http]") {
    ActionServerOptions options;
    options.session_api_key = "the-key";
    options.header_timeout = 60s;  // the pool, not the deadline, keeps /alive answering here
    Harness h(options);
    std::atomic<bool> stop{false};
    std::vector<int> fds;
    for (int i = 0; i < 40; ++i) fds.push_back(connect_to(h.server.port()));
    std::thread drip([&] {
        const std::string head = "POST /execute_action HTTP/1.1\r\nHost: x\r\n";
        for (std::size_t i = 0; !stop && i < head.size() * 100; ++i) {
            for (const int fd : fds) ::send(fd, &head[i % head.size()], 1, MSG_NOSIGNAL);
            std::this_thread::sleep_for(200ms);
        }
    });
    h.client.set_read_timeout(5s);
    int answered = 0;
    for (int probe = 0; probe < 8; ++probe) {
        const auto start = std::chrono::steady_clock::now();
        auto res = h.client.Get("/alive");
        if (res && res->status == 200 && std::chrono::steady_clock::now() - start < 2s) ++answered;
    }
    stop = true;
    drip.join();
    for (const int fd : fds) ::close(fd);
    REQUIRE(answered == 8);
}

TEST_CASE("row 6: a connection that does not finish its headers in time is closed", "[hardening][http]") {
    ActionServerOptions options;
    options.header_timeout = 1s;
    Harness h(options);
    const int fd = connect_to(h.server.port());
    const auto start = std::chrono::steady_clock::now();
    bool closed = false;
    for (int i = 0; i < 100 && !closed; ++i) {
        ::send(fd, "G", 1, MSG_NOSIGNAL);  // one byte every 100 ms: each recv is well within its timeout
        pollfd pfd{fd, POLLIN, 0};
        if (::poll(&pfd, 1, 100) > 0) {
            char buf[64];
            closed = ::recv(fd, buf, sizeof buf, 0) <= 0;
        }
    }
    const auto took = std::chrono::steady_clock::now() - start;
    ::close(fd);
    INFO("closed after " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count() << " ms");
    REQUIRE(closed);
    REQUIRE(took < 5s);
    REQUIRE(h.client.Get("/alive")->status == 200);
}

// ---- row 7: least privilege ----------------------------------------------------------------------

TEST_CASE("row 7: with --username nobody, file actions act as nobody", "[hardening][user]") {
    struct passwd* nobody = ::getpwnam("nobody");
    if (::geteuid() != 0 || nobody == nullptr) {
        WARN("needs root and a 'nobody' user");
        return;
    }
    const uid_t uid = nobody->pw_uid;
    ActionServerOptions options;
    options.username = "nobody";
    Harness h(options);
    const fs::path root_file = "/root/runbox-hardening-" + std::to_string(::getpid());
    auto wrote = h.post_action(write_action(root_file.string(), "x"));
    REQUIRE(wrote);
    INFO(wrote->body);
    REQUIRE(wrote->body.find("Permission denied") != std::string::npos);
    REQUIRE_FALSE(fs::exists(root_file));

    auto shadow = h.post_action(read_action("/etc/shadow"));
    REQUIRE(shadow);
    INFO(shadow->body);
    REQUIRE(shadow->body.find("Permission denied") != std::string::npos);
    REQUIRE(shadow->body.find("root:") == std::string::npos);

    // In a directory nobody owns, writing, reading and uploading work, and the files are nobody's.
    const auto mine = h.work.path / "mine.txt";
    auto ok = h.post_action(write_action(mine.string(), "hello"));
    REQUIRE(json::parse(ok->body)["observation"] == "write");
    struct stat st {};
    REQUIRE(::stat(mine.c_str(), &st) == 0);
    REQUIRE(st.st_uid == uid);
    REQUIRE(json::parse(h.post_action(read_action(mine.string()))->body)["content"] == "hello\n");
    REQUIRE(upload(h.client, "/root", "up.txt", "x")->status == 500);
    REQUIRE_FALSE(fs::exists("/root/up.txt"));
    auto listed = h.client.Post("/list_files", json{{"path", "/root"}}.dump(), "application/json");
    REQUIRE(listed->status == 200);
    REQUIRE(json::parse(listed->body) == json::array());  // nobody cannot list /root
}

// ---- row 12: uploads and symbolic links -------------------------------------------------------

TEST_CASE("row 12: uploads never write through a symbolic link", "[hardening][upload]") {
    Harness h;
    TempDir outside;
    const auto target = outside.path / "target.txt";
    write_file(target, "original");
    const auto dest = h.work.path / "dest";
    fs::create_directories(dest);

    SECTION("a link at the destination file") {
        fs::create_symlink(target, dest / "f.txt");
        auto res = upload(h.client, dest.string(), "f.txt", "overwritten");
        REQUIRE(res);
        INFO(res->body);
        REQUIRE(res->status == 500);
        REQUIRE(res->body.find("symbolic link") != std::string::npos);
        REQUIRE(read_file(target) == "original");
    }
    SECTION("the destination directory is a link") {
        fs::create_symlink(outside.path, h.work.path / "linked");
        auto res = upload(h.client, (h.work.path / "linked").string(), "new.txt", "x");
        REQUIRE(res->status == 500);
        REQUIRE_FALSE(fs::exists(outside.path / "new.txt"));
    }
    SECTION("a directory inside a zip's destination is a link") {
        fs::create_symlink(outside.path, dest / "sub");
        const auto zip = make_zip({{"sub/planted.txt", "planted"}}, h.work.path);
        auto res = upload(h.client, dest.string(), "tree.zip", zip);
        REQUIRE(res->status == 500);
        REQUIRE(res->body.find("symbolic link") != std::string::npos);
        REQUIRE_FALSE(fs::exists(outside.path / "planted.txt"));
    }
    SECTION("plain uploads still work") {
        REQUIRE(upload(h.client, dest.string(), "plain.txt", "ok")->status == 200);
        REQUIRE(read_file(dest / "plain.txt") == "ok");
        const auto zip = make_zip({{"a/b.txt", "deep"}}, h.work.path);
        REQUIRE(upload(h.client, dest.string(), "t.zip", zip)->status == 200);
        REQUIRE(read_file(dest / "a" / "b.txt") == "deep");
        REQUIRE_FALSE(fs::exists(dest / "t.zip"));
    }
}

// ---- row 13: downloads --------------------------------------------------------------------------

TEST_CASE("row 13: a download over the limit is a clear 413; one within it works", "[hardening][download]") {
    ActionServerOptions options;
    options.max_download_bytes = 10000;
    Harness h(options);
    write_file(h.work.path / "tree" / "a.bin", std::string(6000, 'a'));
    write_file(h.work.path / "tree" / "b.bin", std::string(6000, 'b'));
    write_file(h.work.path / "small" / "c.txt", "c");

    auto res = h.client.Get(httplib::append_query_params("/download_files", {{"path", (h.work.path / "tree").string()}}));
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 413);
    REQUIRE(json::parse(res->body)["detail"].get<std::string>().find("larger than the limit of 10000 bytes") != std::string::npos);

    runbox::HttplibTransport transport(runbox::TransportOptions{});
    runbox::ServerEndpoint endpoint;
    endpoint.url = h.server.url();
    runbox::ActionExecutionClient<runbox::HttplibTransport> client(transport, endpoint, "test");
    try {
        (void)client.copy_from((h.work.path / "tree").string());
        FAIL("an oversized download was accepted");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::quota_exceeded);
    }
    const auto local = client.copy_from((h.work.path / "small").string());
    REQUIRE(runbox::zip_entry_names(local) == std::vector<std::string>{"c.txt"});
    fs::remove(local);
}

TEST_CASE("row 13: an upload that extracts past the limit is a clear 413 and extracts nothing", "[hardening][upload]") {
    ActionServerOptions options;
    options.max_extracted_bytes = std::uintmax_t{1} << 20;
    Harness h(options);
    const auto dest = h.work.path / "dest";
    // 8 MiB of zeros: a few kilobytes on the wire, far below max_body_bytes.
    const auto bomb = make_zip({{"first.txt", "1"}, {"zeros.bin", std::string(std::size_t{8} << 20, '\0')}}, h.work.path);
    REQUIRE(bomb.size() < 100000);

    auto res = upload(h.client, dest.string(), "bomb.zip", bomb);
    REQUIRE(res);
    INFO(res->body);
    REQUIRE(res->status == 413);
    REQUIRE(json::parse(res->body)["detail"].get<std::string>().find("extracts to more than the limit of 1048576 bytes") !=
            std::string::npos);
    REQUIRE_FALSE(fs::exists(dest / "first.txt"));
    REQUIRE_FALSE(fs::exists(dest / "zeros.bin"));
    REQUIRE_FALSE(fs::exists(dest / "bomb.zip"));  // the uploaded archive is not left behind

    // The client's recursive copy_to says "too large" as a type; a tree within the bound works.
    runbox::HttplibTransport transport(runbox::TransportOptions{});
    runbox::ServerEndpoint endpoint;
    endpoint.url = h.server.url();
    runbox::ActionExecutionClient<runbox::HttplibTransport> client(transport, endpoint, "test");
    TempDir host;
    write_file(host.path / "big" / "zeros.bin", std::string(std::size_t{2} << 20, '\0'));
    write_file(host.path / "small" / "s.txt", "s");
    try {
        client.copy_to(host.path / "big", dest.string(), true);
        FAIL("an upload over max_extracted_bytes was accepted");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::quota_exceeded);
    }
    client.copy_to(host.path / "small", dest.string(), true);
    REQUIRE(read_file(dest / "small" / "s.txt") == "s");
}

// ---- rows 3 and 7: the file worker -----------------------------------------------------------

TEST_CASE("rows 3-4: a caller waits for file work at most its timeout; the worker goes on", "[hardening][files]") {
    runbox::server::FileWorker worker(std::nullopt);
    std::promise<void> release;
    auto released = release.get_future().share();
    const auto start = std::chrono::steady_clock::now();
    try {
        (void)worker.run([released] { released.wait(); return 1; }, 200ms);
        FAIL("the stuck job was waited for");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::timeout);
    }
    REQUIRE(std::chrono::steady_clock::now() - start < 5s);
    release.set_value();
    REQUIRE(worker.run([] { return 2; }, 5s) == 2);  // the next job runs once the stuck one ends
}

TEST_CASE("row 7: the file worker thread alone takes the user's filesystem identity", "[hardening][user]") {
    struct passwd* nobody = ::getpwnam("nobody");
    if (::geteuid() != 0 || nobody == nullptr) {
        WARN("needs root and a 'nobody' user");
        return;
    }
    runbox::server::FileWorker worker(runbox::server::FileIdentity{"nobody", nobody->pw_uid, nobody->pw_gid, {nobody->pw_gid}});
    const auto fsuid = worker.run([] { return static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1))); }, 5s);
    REQUIRE(fsuid == nobody->pw_uid);
    const auto denied = worker.run([] { return ::open("/etc/shadow", O_RDONLY | O_CLOEXEC) < 0 && errno == EACCES; }, 5s);
    REQUIRE(denied);
    // The rest of the process is still root.
    REQUIRE(static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1))) == 0);
}

}  // namespace test_hardening
