// The action server over real HTTP on 127.0.0.1, driven by a raw httplib::Client.
#include "catch.hpp"
#include "temp_files.hpp"

#include "runbox/server/action_server.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <zip.h>

#include <dirent.h>
#include <fcntl.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <sstream>
#include <set>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace test_action_server {  // several files share a unit (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using json = nlohmann::json;
using runbox::server::ActionServer;
using runbox::server::ActionServerOptions;

namespace {

struct TempDir : runbox_test::TempDir {
    TempDir() : runbox_test::TempDir("runbox-server") {}
};
using runbox_test::read_file;
using runbox_test::write_file;

/// A server on a fresh temp working dir plus a client pointed at it.
struct Harness {
    TempDir work;
    ActionServer server;
    httplib::Client client;

    explicit Harness(ActionServerOptions options = {})
        : server(with_dir(std::move(options), work.path)), client(start_and_host(server)) {
        client.set_connection_timeout(std::chrono::seconds(5));
        client.set_read_timeout(std::chrono::seconds(60));
    }

    static ActionServerOptions with_dir(ActionServerOptions options, const fs::path& dir) {
        if (options.working_dir.empty()) options.working_dir = dir.string();
        return options;
    }
    static std::string start_and_host(ActionServer& server) {
        server.start();
        return server.url();
    }

    json execute(const json& action, int expected_status = 200) {
        auto res = client.Post("/execute_action", json{{"action", action}}.dump(), "application/json");
        REQUIRE(res);
        INFO(res->body);
        REQUIRE(res->status == expected_status);
        return json::parse(res->body);
    }
};

json run_action(const std::string& command) {
    return {{"action", "run"}, {"args", {{"command", command}, {"is_input", false}, {"thought", ""}, {"blocking", false}}}};
}

json ipython_action(const std::string& code) {
    return {{"action", "run_ipython"}, {"args", {{"code", code}}}};
}

httplib::Result upload(httplib::Client& client, const std::string& destination, bool recursive, const std::string& filename,
                       const std::string& content) {
    const httplib::MultipartFormDataItems items{{"file", content, filename, "application/octet-stream"}};
    const auto path = httplib::append_query_params(
        "/upload_file", {{"destination", destination}, {"recursive", recursive ? "true" : "false"}});
    return client.Post(path, items);
}

/// Builds a zip in memory with libzip (a real archive, not one of runbox's helpers).
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

std::vector<std::string> zip_names_of(const std::string& bytes) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* source = zip_source_buffer_create(bytes.data(), bytes.size(), 0, &err);
    REQUIRE(source != nullptr);
    zip_t* archive = zip_open_from_source(source, ZIP_RDONLY, &err);
    REQUIRE(archive != nullptr);
    std::vector<std::string> names;
    const auto count = zip_get_num_entries(archive, 0);
    for (zip_int64_t i = 0; i < count; ++i) names.emplace_back(zip_get_name(archive, static_cast<zip_uint64_t>(i), 0));
    zip_discard(archive);
    zip_error_fini(&err);
    std::sort(names.begin(), names.end());
    return names;
}

/// PIDs whose parent is this test process (from /proc).
std::set<int> child_pids() {
    std::set<int> out;
    const int self = ::getpid();
    for (const auto& entry : fs::directory_iterator("/proc")) {
        const auto name = entry.path().filename().string();
        if (name.empty() || !std::all_of(name.begin(), name.end(), ::isdigit)) continue;
        std::ifstream in(entry.path() / "stat");
        std::string line;
        if (!std::getline(in, line)) continue;
        const auto close = line.rfind(')');
        if (close == std::string::npos) continue;
        char state = 0;
        int ppid = 0;
        std::istringstream rest(line.substr(close + 1));
        rest >> state >> ppid;
        if (ppid == self) out.insert(std::stoi(name));
    }
    return out;
}

/// True once `pid` no longer runs (gone, or a zombie awaiting its new parent).
bool process_gone(int pid) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(in, line)) return true;
    const auto close = line.rfind(')');
    return close != std::string::npos && close + 2 < line.size() && line[close + 2] == 'Z';
}

ActionServerOptions make_options(std::string working_dir, std::vector<std::string> plugins = {}, std::string key = {}) {
    ActionServerOptions options;
    options.working_dir = std::move(working_dir);
    options.plugins = std::move(plugins);
    options.session_api_key = std::move(key);
    return options;
}

template <class Predicate>
bool wait_for(Predicate predicate, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (std::chrono::steady_clock::now() < deadline) {
        if (predicate()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return predicate();
}

/// Opens the FIFO's write end once a reader has it open (ENXIO until then): the signal that
/// the command reading it is running.
int open_fifo_writer_when_read(const fs::path& fifo) {
    int fd = -1;
    wait_for([&] {
        fd = ::open(fifo.c_str(), O_WRONLY | O_NONBLOCK);
        return fd >= 0;
    });
    return fd;
}

}  // namespace

TEST_CASE("alive and server_info answer with the reference keys", "[action_server]") {
    Harness h;
    auto alive = h.client.Get("/alive");
    REQUIRE(alive);
    REQUIRE(alive->status == 200);
    REQUIRE(json::parse(alive->body) == json{{"status", "ok"}});

    auto info = h.client.Get("/server_info");
    REQUIRE(info);
    REQUIRE(info->status == 200);
    const auto body = json::parse(info->body);
    REQUIRE(body["uptime"].is_number());
    REQUIRE(body["idle_time"].is_number());
    REQUIRE(body["uptime"].get<double>() >= 0.0);
    const auto& r = body["resources"];
    REQUIRE(r.size() == 4);
    REQUIRE(r["cpu_percent"].is_number());
    REQUIRE(r["memory"].size() == 3);
    REQUIRE(r["memory"]["rss"].get<std::int64_t>() > 0);
    REQUIRE(r["memory"]["vms"].get<std::int64_t>() >= r["memory"]["rss"].get<std::int64_t>());
    REQUIRE(r["memory"]["percent"].get<double>() > 0.0);
    REQUIRE(r["memory"]["percent"].get<double>() <= 100.0);
    REQUIRE(r["disk"].size() == 4);
    REQUIRE(r["disk"]["total"].get<std::int64_t>() > 0);
    REQUIRE(r["disk"]["used"].get<std::int64_t>() <= r["disk"]["total"].get<std::int64_t>());
    REQUIRE(r["disk"]["free"].is_number_integer());
    REQUIRE(r["disk"]["percent"].get<double>() >= 0.0);
    REQUIRE(r["disk"]["percent"].get<double>() <= 100.0);
    REQUIRE(r["io"].size() == 2);
    REQUIRE(r["io"]["read_bytes"].is_number_integer());
    REQUIRE(r["io"]["write_bytes"].is_number_integer());
    REQUIRE(h.server.url() == "http://127.0.0.1:" + std::to_string(h.server.port()));
}

TEST_CASE("idle_time restarts when an action starts", "[action_server]") {
    Harness h;
    const auto idle = [&] { return json::parse(h.client.Get("/server_info")->body)["idle_time"].get<double>(); };
    const double before = idle();
    REQUIRE(wait_for([&] { return idle() > before; }));
    const double grown = idle();
    h.execute({{"action", "read"}, {"args", {{"path", (h.work.path / "missing.txt").string()}}}});
    REQUIRE(idle() < grown);
}

TEST_CASE("session key middleware", "[action_server][auth]") {
    Harness h(make_options({}, {}, "s3cret-key"));
    const httplib::Headers good{{"X-Session-API-Key", "s3cret-key"}};
    const httplib::Headers bad{{"X-Session-API-Key", "wrong"}};
    const httplib::Headers other_case{{"x-session-api-key", "s3cret-key"}};

    SECTION("alive and server_info are exempt") {
        REQUIRE(h.client.Get("/alive")->status == 200);
        REQUIRE(h.client.Get("/server_info")->status == 200);
    }
    SECTION("a missing or wrong key is refused with 403") {
        for (const auto* headers : {static_cast<const httplib::Headers*>(nullptr), &bad}) {
            auto res = headers ? h.client.Post("/list_files", *headers, "{}", "application/json")
                               : h.client.Post("/list_files", "{}", "application/json");
            REQUIRE(res);
            REQUIRE(res->status == 403);
            REQUIRE(json::parse(res->body) == json{{"detail", "Invalid API Key"}});
        }
        auto token = h.client.Get("/vscode/connection_token");
        REQUIRE(token->status == 403);
        // The middleware also covers unknown paths.
        auto unknown = h.client.Get("/no/such/route");
        REQUIRE(unknown->status == 403);
    }
    SECTION("the right key (any header case) is accepted") {
        auto res = h.client.Post("/list_files", good, "{}", "application/json");
        REQUIRE(res->status == 200);
        REQUIRE(h.client.Post("/list_files", other_case, "{}", "application/json")->status == 200);
        auto unknown = h.client.Get("/no/such/route", good);
        REQUIRE(unknown->status == 404);
    }
    SECTION("a refused POST does not break the keep-alive connection") {
        h.client.set_keep_alive(true);
        REQUIRE(h.client.Post("/execute_action", bad, json{{"action", run_action("echo x")}}.dump(), "application/json")->status == 403);
        auto res = h.client.Post("/list_files", good, "{}", "application/json");
        REQUIRE(res);
        REQUIRE(res->status == 200);
    }
}

TEST_CASE("error envelopes", "[action_server]") {
    Harness h;
    SECTION("unknown path is 404 Not Found, wrong method 405") {
        auto res = h.client.Get("/nope");
        REQUIRE(res->status == 404);
        REQUIRE(json::parse(res->body) == json{{"detail", "Not Found"}});
        auto method = h.client.Get("/execute_action");
        REQUIRE(method->status == 405);
        REQUIRE(json::parse(method->body) == json{{"detail", "Method Not Allowed"}});
    }
    SECTION("an invalid execute_action body is 422") {
        for (const std::string body : {"not json", "{}", R"({"action": 3})", "[]"}) {
            auto res = h.client.Post("/execute_action", body, "application/json");
            REQUIRE(res->status == 422);
            const auto j = json::parse(res->body);
            REQUIRE(j["detail"] == "Invalid request parameters");
            REQUIRE(j["errors"].is_string());
        }
    }
    SECTION("an observation sent as an action is wrapped into a 500") {
        auto res = h.client.Post("/execute_action",
                                 json{{"action", {{"observation", "null"}, {"content", ""}, {"extras", json::object()}}}}.dump(),
                                 "application/json");
        REQUIRE(res->status == 500);
        REQUIRE(json::parse(res->body) == json{{"detail", "Internal server error: 400: Invalid action type"}});
    }
    SECTION("unknown and non-runnable action types are 500 Internal server error") {
        for (const auto& action : {json{{"action", "no_such_action"}, {"args", json::object()}},
                                   json{{"action", "think"}, {"args", {{"thought", "hm"}}}}}) {
            auto res = h.client.Post("/execute_action", json{{"action", action}}.dump(), "application/json");
            REQUIRE(res->status == 500);
            REQUIRE(json::parse(res->body)["detail"].get<std::string>().rfind("Internal server error: ", 0) == 0);
        }
    }
    SECTION("browse is refused with the disabled error observation") {
        const auto obs = h.execute({{"action", "browse"}, {"args", {{"url", "http://localhost:1"}}}});
        REQUIRE(obs["observation"] == "error");
        REQUIRE(obs["content"] == "Browser functionality is not supported or disabled.");
    }
    SECTION("list_files with a non-JSON or non-object body is the generic 500") {
        for (const std::string body : {"{oops", "[1]", R"({"path": 5})"}) {
            auto res = h.client.Post("/list_files", body, "application/json");
            REQUIRE(res->status == 500);
            REQUIRE(json::parse(res->body) == json{{"detail", "An unexpected error occurred. Please try again later."}});
        }
    }
    SECTION("vscode token is null and MCP updates report the missing manager") {
        REQUIRE(json::parse(h.client.Get("/vscode/connection_token")->body) == json{{"token", nullptr}});
        auto not_list = h.client.Post("/update_mcp_server", "{}", "application/json");
        REQUIRE(not_list->status == 400);
        REQUIRE(json::parse(not_list->body)["detail"] == "Request must be a list of MCP tools to sync");
        auto list = h.client.Post("/update_mcp_server", "[]", "application/json");
        REQUIRE(list->status == 500);
        REQUIRE(json::parse(list->body)["detail"] == "MCP Proxy Manager is not initialized");
    }
}

TEST_CASE("upload_file", "[action_server][upload]") {
    Harness h;
    const auto ws = h.work.path;

    SECTION("a single file lands in the destination directory, overwriting") {
        write_file(ws / "test_file.txt", "");
        auto res = upload(h.client, ws.string(), false, "test_file.txt", "Hello, World!");
        REQUIRE(res->status == 200);
        REQUIRE(json::parse(res->body) == json{{"filename", "test_file.txt"}, {"destination", ws.string()}, {"recursive", false}});
        REQUIRE(read_file(ws / "test_file.txt") == "Hello, World!");
    }
    SECTION("a missing destination directory is created") {
        REQUIRE(upload(h.client, (ws / "new_dir").string(), false, "test_file.txt", "x")->status == 200);
        REQUIRE(read_file(ws / "new_dir" / "test_file.txt") == "x");
    }
    SECTION("a recursive upload extracts the zip and removes it") {
        const auto bytes = make_zip({{"test_dir/file1.txt", "one"}, {"test_dir/file2.txt", "two"}}, ws.parent_path());
        auto res = upload(h.client, ws.string(), true, "test_dir.zip", bytes);
        REQUIRE(res->status == 200);
        REQUIRE(json::parse(res->body)["recursive"] == true);
        REQUIRE(read_file(ws / "test_dir" / "file1.txt") == "one");
        REQUIRE(read_file(ws / "test_dir" / "file2.txt") == "two");
        REQUIRE_FALSE(fs::exists(ws / "file1.txt"));
        REQUIRE_FALSE(fs::exists(ws / "test_dir.zip"));
    }
    SECTION("quirk: a non-recursive *.zip upload is extracted too") {
        const auto bytes = make_zip({{"inner.txt", "in"}}, ws.parent_path());
        REQUIRE(upload(h.client, ws.string(), false, "pack.zip", bytes)->status == 200);
        REQUIRE(read_file(ws / "inner.txt") == "in");
        REQUIRE_FALSE(fs::exists(ws / "pack.zip"));
    }
    SECTION("a zip with a traversal entry is refused and writes nothing outside") {
        const auto bytes = make_zip({{"../escaped.txt", "bad"}}, ws.parent_path());
        auto res = upload(h.client, (ws / "d").string(), true, "evil.zip", bytes);
        REQUIRE(res->status == 500);
        REQUIRE_FALSE(fs::exists(ws / "escaped.txt"));
        REQUIRE_FALSE(fs::exists(ws / "d" / "evil.zip"));
    }
    SECTION("errors are 400s wrapped into 500s") {
        auto relative = upload(h.client, "relative/dir", false, "a.txt", "x");
        REQUIRE(relative->status == 500);
        REQUIRE(json::parse(relative->body) == json{{"detail", "400: Destination must be an absolute path"}});
        auto not_zip = upload(h.client, ws.string(), true, "a.txt", "x");
        REQUIRE(not_zip->status == 500);
        REQUIRE(json::parse(not_zip->body) == json{{"detail", "400: Recursive uploads must be zip files"}});
    }
    SECTION("a request without the file part is 422") {
        auto res = h.client.Post("/upload_file?destination=/tmp", "", "application/octet-stream");
        REQUIRE(res->status == 422);
        REQUIRE(json::parse(res->body)["detail"] == "Invalid request parameters");
    }
}

TEST_CASE("download_files zips a directory with names relative to it", "[action_server][download]") {
    Harness h;
    const auto ws = h.work.path;
    write_file(ws / "test_dir" / "file1.txt", "one");
    write_file(ws / "test_dir" / "sub" / "file2.txt", "two");

    auto res = h.client.Get(httplib::append_query_params("/download_files", {{"path", (ws / "test_dir").string()}}));
    REQUIRE(res);
    REQUIRE(res->status == 200);
    REQUIRE(res->get_header_value("Content-Type") == "application/zip");
    REQUIRE(res->get_header_value("Content-Disposition") == "attachment; filename=\"test_dir.zip\"");
    REQUIRE(zip_names_of(res->body) == std::vector<std::string>{"file1.txt", "sub/file2.txt"});

    SECTION("quirk: a regular file gives an empty zip") {
        auto file = h.client.Get(httplib::append_query_params("/download_files", {{"path", (ws / "test_dir" / "file1.txt").string()}}));
        REQUIRE(file->status == 200);
        REQUIRE(zip_names_of(file->body).empty());
    }
    SECTION("errors are wrapped into 500s") {
        auto relative = h.client.Get("/download_files?path=test_dir");
        REQUIRE(relative->status == 500);
        REQUIRE(json::parse(relative->body) == json{{"detail", "400: Path must be an absolute path"}});
        auto missing = h.client.Get(httplib::append_query_params("/download_files", {{"path", (ws / "missing").string()}}));
        REQUIRE(missing->status == 500);
        REQUIRE(json::parse(missing->body) == json{{"detail", "404: File not found"}});
    }
}

TEST_CASE("list_files orders directories first, case-insensitively, hidden included", "[action_server][list]") {
    Harness h;
    const auto ws = h.work.path;
    write_file(ws / "b.txt", "");
    write_file(ws / "A.py", "");
    fs::create_directories(ws / "src");
    fs::create_directories(ws / ".git");
    write_file(ws / "src" / "main.cpp", "");

    const auto list = [&](const std::string& body) {
        auto res = h.client.Post("/list_files", body, "application/json");
        REQUIRE(res->status == 200);
        return json::parse(res->body);
    };
    REQUIRE(list("{}") == json{".git/", "src/", "A.py", "b.txt"});
    REQUIRE(list(R"({"path": null})") == json{".git/", "src/", "A.py", "b.txt"});
    REQUIRE(list(R"({"path": "src"})") == json{"main.cpp"});  // relative to the initial working dir
    REQUIRE(list(json{{"path", (ws / "src").string()}}.dump()) == json{"main.cpp"});
    REQUIRE(list(R"({"path": "missing"})") == json::array());
    REQUIRE(list(R"({"path": "b.txt"})") == json::array());
}

TEST_CASE("execute_action runs a command and returns the observation JSON", "[action_server][bash]") {
    Harness h;
    const auto obs = h.execute(run_action("echo hi"));
    REQUIRE(obs["observation"] == "run");
    REQUIRE(obs["message"] == "Command `echo hi` executed with exit code 0.");
    REQUIRE(obs["content"] == "hi");
    REQUIRE(obs["success"] == true);
    const auto& extras = obs["extras"];
    REQUIRE(extras["command"] == "echo hi");
    REQUIRE(extras["hidden"] == false);
    REQUIRE(extras["metadata"]["exit_code"] == 0);
    REQUIRE(extras["metadata"]["working_dir"] == h.work.path.string());
    REQUIRE(extras["metadata"]["suffix"] == "\n[The command completed with exit code 0.]");
    REQUIRE(extras["metadata"]["prefix"] == "");
    REQUIRE(extras.size() == 3);
    std::set<std::string> metadata_keys;
    for (const auto& [k, v] : extras["metadata"].items()) metadata_keys.insert(k);
    REQUIRE(metadata_keys == std::set<std::string>{"exit_code", "pid", "username", "hostname", "working_dir",
                                                   "py_interpreter_path", "prefix", "suffix"});
    REQUIRE(obs.size() == 5);
    // Key order is the wire order.
    const auto ordered = nlohmann::ordered_json::parse(
        h.client.Post("/execute_action", json{{"action", run_action("true")}}.dump(), "application/json")->body);
    std::vector<std::string> keys;
    for (auto it = ordered.begin(); it != ordered.end(); ++it) keys.push_back(it.key());
    REQUIRE(keys == std::vector<std::string>{"message", "observation", "content", "extras", "success"});
}

TEST_CASE("file actions resolve relative paths against the shell's cwd", "[action_server][files]") {
    Harness h;
    h.execute(run_action("mkdir -p sub && cd sub"));
    const auto written = h.execute({{"action", "write"}, {"args", {{"path", "hello.sh"}, {"content", "echo hi"}}}});
    REQUIRE(written["observation"] == "write");
    REQUIRE(written["extras"]["path"] == (h.work.path / "sub" / "hello.sh").string());
    REQUIRE(read_file(h.work.path / "sub" / "hello.sh") == "echo hi\n");
    const auto read = h.execute({{"action", "read"}, {"args", {{"path", "hello.sh"}}}});
    REQUIRE(read["observation"] == "read");
    REQUIRE(read["content"] == "echo hi\n");

    const auto path = (h.work.path / "sub" / "hello.sh").string();
    const auto edited = h.execute(
        {{"action", "edit"}, {"args", {{"path", path}, {"command", "str_replace"}, {"old_str", "hi"}, {"new_str", "ho"}}}});
    REQUIRE(edited["observation"] == "edit");
    REQUIRE(read_file(path) == "echo ho\n");
    // The editor keeps its undo history across requests.
    h.execute({{"action", "edit"}, {"args", {{"path", path}, {"command", "undo_edit"}}}});
    REQUIRE(read_file(path) == "echo hi\n");
    // insert_line arrives as a string on the wire: numeric is converted, anything else is the editor's error.
    const auto inserted = h.execute(
        {{"action", "edit"}, {"args", {{"path", path}, {"command", "insert"}, {"insert_line", "1"}, {"new_str", "echo 2"}}}});
    REQUIRE(inserted["observation"] == "edit");
    REQUIRE(read_file(path) == "echo hi\necho 2\n");
    const auto bad = h.execute(
        {{"action", "edit"}, {"args", {{"path", path}, {"command", "insert"}, {"insert_line", "x"}, {"new_str", "y"}}}});
    REQUIRE(bad["content"] == "ERROR:\nInvalid insert_line value: 'x'. Expected an integer.");
}

TEST_CASE("other requests are served while an action runs", "[action_server][concurrency]") {
    Harness h;
    const auto fifo = h.work.path.parent_path() / (h.work.path.filename().string() + ".fifo");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    struct Cleanup {
        fs::path p;
        ~Cleanup() { ::unlink(p.c_str()); }
    } cleanup{fifo};

    auto running = std::async(std::launch::async, [&] {
        httplib::Client second(h.server.url());
        second.set_read_timeout(std::chrono::seconds(60));
        auto res = second.Post("/execute_action", json{{"action", run_action("cat " + fifo.string())}}.dump(), "application/json");
        return res ? json::parse(res->body) : json();
    });
    const int fd = open_fifo_writer_when_read(fifo);
    REQUIRE(fd >= 0);  // the command is now blocked reading the FIFO

    auto alive = h.client.Get("/alive");
    REQUIRE(alive);
    REQUIRE(alive->status == 200);
    REQUIRE(h.client.Post("/list_files", "{}", "application/json")->status == 200);
    REQUIRE(running.wait_for(std::chrono::seconds(0)) == std::future_status::timeout);  // still blocked

    REQUIRE(::write(fd, "released\n", 9) == 9);
    ::close(fd);
    const auto obs = running.get();
    REQUIRE(obs["content"] == "released");
    REQUIRE(obs["extras"]["metadata"]["exit_code"] == 0);
}

TEST_CASE("run_ipython keeps state and reports cwd and interpreter", "[action_server][ipython]") {
    if (!runbox::server::detail::find_executable("python3", std::getenv("PATH") ? std::getenv("PATH") : "")) {
        WARN("python3 not on PATH: run_ipython not tested");
        return;
    }
    Harness h(make_options({}, {"agent_skills", "jupyter"}));
    const auto first = h.execute(ipython_action("x = 41\nprint('Hello, `World`!\\n')"));
    REQUIRE(first["observation"] == "run_ipython");
    REQUIRE(first["success"] == true);
    const std::string content = first["content"];
    const std::string expected_head =
        "Hello, `World`!\n[Jupyter current working directory: " + h.work.path.string() + "]\n[Jupyter Python interpreter: ";
    REQUIRE(content.rfind(expected_head, 0) == 0);
    REQUIRE(content.back() == ']');

    SECTION("state persists and the last expression is shown") {
        const std::string out = h.execute(ipython_action("x + 1"))["content"];
        REQUIRE(out.rfind("42\n[Jupyter current working directory: ", 0) == 0);
    }
    SECTION("no output") {
        const std::string out = h.execute(ipython_action("y = 1"))["content"];
        REQUIRE(out.rfind("[Code executed successfully with no output]\n", 0) == 0);
    }
    SECTION("errors show the exception") {
        const std::string out = h.execute(ipython_action("import no_such_module_xyz"))["content"];
        REQUIRE(out.find("ModuleNotFoundError") != std::string::npos);
    }
    SECTION("the kernel follows the shell's cwd, and a cell's own chdir sticks") {
        h.execute(run_action("mkdir -p pydir && cd pydir"));
        const std::string out = h.execute(ipython_action("import os; print(os.getcwd())"))["content"];
        REQUIRE(out.rfind((h.work.path / "pydir").string() + "\n", 0) == 0);
        h.execute(ipython_action("os.chdir('/')"));
        const std::string after = h.execute(ipython_action("print(os.getcwd())"))["content"];
        REQUIRE(after.rfind("/\n", 0) == 0);
    }
    SECTION("kernel_init_code runs once per interpreter") {
        auto action = ipython_action("print(counter)");
        action["args"]["kernel_init_code"] = "counter = globals().get('counter', 0) + 1";
        REQUIRE(h.execute(action)["content"].get<std::string>().rfind("1\n", 0) == 0);
        REQUIRE(h.execute(action)["content"].get<std::string>().rfind("1\n", 0) == 0);
    }
    SECTION("a dead interpreter is reported and replaced") {
        const auto died = h.execute(ipython_action("import os; os._exit(3)"));
        REQUIRE(died["observation"] == "error");
        const std::string out = h.execute(ipython_action("print('x' in globals(), os.getcwd() if 'os' in globals() else None)"))["content"];
        REQUIRE(out.rfind("False None\n", 0) == 0);
        const std::string cwd = h.execute(ipython_action("import os; print(os.getcwd())"))["content"];
        REQUIRE(cwd.rfind(h.work.path.string() + "\n", 0) == 0);
    }
    SECTION("a timed-out cell is interrupted and the kernel keeps working") {
        auto action = ipython_action("import time\nwhile True: time.sleep(0.01)");
        action["timeout"] = 0.5;
        const std::string out = h.execute(action)["content"];
        REQUIRE(out.rfind("[Execution timed out (0.5 seconds).]", 0) == 0);
        const std::string after = h.execute(ipython_action("print(x)"))["content"];
        REQUIRE(after.rfind("41\n", 0) == 0);
    }
}

TEST_CASE("run_ipython without the jupyter plugin is a 500", "[action_server][ipython]") {
    Harness h;
    auto res = h.client.Post("/execute_action", json{{"action", ipython_action("print(1)")}}.dump(), "application/json");
    REQUIRE(res->status == 500);
    REQUIRE(json::parse(res->body)["detail"] ==
            "Internal server error: JupyterRequirement not found. Unable to run IPython action.");
}

TEST_CASE("an unknown plugin is refused", "[action_server]") {
    try {
        ActionServer server(make_options("/tmp", {"nope"}));
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        REQUIRE(e.detail() == "Plugin nope not found");
    }
}

TEST_CASE("stop() kills and reaps everything the server started", "[action_server][lifecycle]") {
    const auto before = child_pids();
    int background = -1;
    {
        TempDir work;
        ActionServer server(make_options(work.path.string(), {"jupyter"}));
        server.start();
        httplib::Client client(server.url());
        client.set_read_timeout(std::chrono::seconds(60));
        auto res = client.Post("/execute_action", json{{"action", run_action("sleep 1000 &")}}.dump(), "application/json");
        REQUIRE(res->status == 200);
        auto pid = client.Post("/execute_action", json{{"action", run_action("echo $!")}}.dump(), "application/json");
        background = std::stoi(json::parse(pid->body)["content"].get<std::string>());
        REQUIRE_FALSE(process_gone(background));
        if (runbox::server::detail::find_executable("python3", std::getenv("PATH") ? std::getenv("PATH") : "")) {
            REQUIRE(client.Post("/execute_action", json{{"action", ipython_action("1")}}.dump(), "application/json")->status == 200);
        }
        REQUIRE(child_pids().size() > before.size());

        server.stop();
        server.stop();  // idempotent
        REQUIRE(child_pids() == before);
        REQUIRE_FALSE(client.Get("/alive"));  // no longer listening
    }
    REQUIRE(wait_for([&] { return process_gone(background); }));
}

TEST_CASE("stop() interrupts a running action", "[action_server][lifecycle]") {
    const auto before = child_pids();
    TempDir work;
    const auto fifo = work.path / "block.fifo";
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    ActionServer server(make_options((work.path / "ws").string()));
    server.start();
    auto running = std::async(std::launch::async, [&] {
        httplib::Client client(server.url());
        client.set_read_timeout(std::chrono::seconds(60));
        auto action = run_action("cat " + fifo.string());
        action["timeout"] = 50.0;
        auto res = client.Post("/execute_action", json{{"action", action}}.dump(), "application/json");
        return res ? res->status : -1;
    });
    const int fd = open_fifo_writer_when_read(fifo);
    REQUIRE(fd >= 0);

    auto stopping = std::async(std::launch::async, [&] { server.stop(); });
    REQUIRE(stopping.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    REQUIRE(running.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    running.get();  // an observation or a dropped connection: either way it returned
    ::close(fd);
    REQUIRE(child_pids() == before);
}

TEST_CASE("as root, the shell, the kernel and uploads belong to the requested user", "[action_server][user]") {
    struct passwd* nobody = ::getpwnam("nobody");
    if (::geteuid() != 0 || nobody == nullptr) {
        WARN("needs root and a 'nobody' user: run-as-user not tested");
        return;
    }
    const uid_t uid = nobody->pw_uid;
    ActionServerOptions options;
    options.username = "nobody";
    options.plugins = {"jupyter"};
    Harness h(options);
    REQUIRE(fs::status(h.work.path).permissions() != fs::perms::none);
    REQUIRE(h.execute(run_action("id -u"))["content"] == std::to_string(uid));
    REQUIRE(upload(h.client, (h.work.path / "up").string(), false, "f.txt", "x")->status == 200);
    struct stat st {};
    REQUIRE(::stat((h.work.path / "up" / "f.txt").c_str(), &st) == 0);
    REQUIRE(st.st_uid == uid);
    REQUIRE(::stat((h.work.path / "up").c_str(), &st) == 0);
    REQUIRE(st.st_uid == uid);
    if (runbox::server::detail::find_executable("python3", std::getenv("PATH") ? std::getenv("PATH") : "")) {
        const std::string out = h.execute(ipython_action("import os; print(os.getuid(), os.environ['USER'])"))["content"];
        INFO(out);
        REQUIRE(out.rfind(std::to_string(uid) + " nobody\n", 0) == 0);
    }
}

namespace {

/// The runbox-server program next to the tests (CMake build) or named by RUNBOX_SERVER_BIN.
std::optional<std::string> server_program() {
    if (const char* env = std::getenv("RUNBOX_SERVER_BIN")) return std::string(env);
#ifdef RUNBOX_BINARY_DIR
    const auto built = fs::path(RUNBOX_BINARY_DIR) / "examples" / "runbox-server";
    if (fs::exists(built)) return built.string();
#endif
    return std::nullopt;
}

struct ServerProcess {
    pid_t pid = -1;
    int out = -1;
    std::string output;

    ServerProcess(const std::string& program, const std::vector<std::string>& args, const std::vector<std::string>& env) {
        int fds[2];
        REQUIRE(::pipe2(fds, O_CLOEXEC) == 0);
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
        posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
        std::vector<std::string> argv_storage{program};
        argv_storage.insert(argv_storage.end(), args.begin(), args.end());
        std::vector<char*> argv, envp;
        for (auto& a : argv_storage) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<std::string> env_storage = env;
        for (char** e = environ; *e != nullptr; ++e) env_storage.emplace_back(*e);
        for (auto& e : env_storage) envp.push_back(e.data());
        envp.push_back(nullptr);
        REQUIRE(::posix_spawn(&pid, program.c_str(), &actions, nullptr, argv.data(), envp.data()) == 0);
        posix_spawn_file_actions_destroy(&actions);
        ::close(fds[1]);
        out = fds[0];
    }
    ~ServerProcess() {
        if (pid > 0) {
            ::kill(pid, SIGKILL);
            ::waitpid(pid, nullptr, 0);
        }
        if (out >= 0) ::close(out);
    }

    /// Reads output until `needle` appears (true) or EOF/deadline (false).
    bool read_until(const std::string& needle, std::chrono::seconds bound = std::chrono::seconds(30)) {
        const auto deadline = std::chrono::steady_clock::now() + bound;
        while (output.find(needle) == std::string::npos) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) return false;
            pollfd p{out, POLLIN, 0};
            if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
            char buf[4096];
            const auto n = ::read(out, buf, sizeof buf);
            if (n <= 0) return false;
            output.append(buf, static_cast<std::size_t>(n));
        }
        return true;
    }

    /// Exit status after waiting at most `bound`, or nullopt.
    std::optional<int> wait_exit(std::chrono::seconds bound = std::chrono::seconds(20)) {
        int status = 0;
        const bool exited = wait_for([&] { return ::waitpid(pid, &status, WNOHANG) == pid; }, bound);
        if (!exited) return std::nullopt;
        pid = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
};

}  // namespace

TEST_CASE("runbox-server program: OpenHands command line, env key, clean SIGTERM", "[action_server][program]") {
    const auto program = server_program();
    if (!program) {
        WARN("runbox-server not built (set RUNBOX_SERVER_BIN): program not tested");
        return;
    }
    TempDir work;
    const auto me = ::geteuid() == 0 ? std::string("root") : std::string();
    std::vector<std::string> args{"0", "--working-dir", (work.path / "ws").string(), "--plugins", "agent_skills", "jupyter"};
    if (!me.empty()) args.insert(args.end(), {"--username", "root", "--user-id", "0"});
    args.insert(args.end(), {"--no-enable-browser", "--host", "127.0.0.1"});
    ServerProcess server(*program, args, {"SESSION_API_KEY=program-key", "NO_CHANGE_TIMEOUT_SECONDS=1"});
    REQUIRE(server.read_until("\n"));
    INFO(server.output);
    const auto at = server.output.find("listening on http://127.0.0.1:");
    REQUIRE(at != std::string::npos);
    const std::string url = server.output.substr(at + 13, server.output.find('\n', at) - at - 13);
    httplib::Client client(url);
    client.set_read_timeout(std::chrono::seconds(30));
    REQUIRE(client.Get("/alive")->status == 200);
    REQUIRE(client.Post("/list_files", "{}", "application/json")->status == 403);
    const httplib::Headers key{{"X-Session-API-Key", "program-key"}};
    auto started = client.Post("/execute_action", key, json{{"action", run_action("sleep 1000 & echo $!")}}.dump(), "application/json");
    REQUIRE(started->status == 200);
    const std::string content = json::parse(started->body)["content"];
    const int background = std::stoi(content.substr(content.find('\n') + 1));
    // NO_CHANGE_TIMEOUT_SECONDS=1 reached the shell: a silent command returns after ~1 s.
    auto quiet = client.Post("/execute_action", key, json{{"action", run_action("sleep 30")}}.dump(), "application/json");
    REQUIRE(json::parse(quiet->body)["extras"]["metadata"]["suffix"].get<std::string>().find("no new output after 1 seconds") !=
            std::string::npos);

    ::kill(server.pid, SIGTERM);
    REQUIRE(server.wait_exit() == 0);
    REQUIRE(wait_for([&] { return process_gone(background); }));
}

TEST_CASE("runbox-server program refuses unknown plugins and the browsergym env", "[action_server][program]") {
    const auto program = server_program();
    if (!program) {
        WARN("runbox-server not built (set RUNBOX_SERVER_BIN): program not tested");
        return;
    }
    {
        ServerProcess server(*program, {"0", "--working-dir", "/tmp", "--plugins", "nope"}, {});
        server.read_until("\n");
        REQUIRE(server.wait_exit() == 1);
        REQUIRE(server.output.find("Plugin nope not found") != std::string::npos);
    }
    {
        ServerProcess server(*program, {"0", "--no-enable-browser", "--browsergym-eval-env", "browsergym/miniwob.x"}, {});
        server.read_until("\n");
        REQUIRE(server.wait_exit() == 1);
        REQUIRE(server.output.find("BrowserUnavailableException") != std::string::npos);
    }
    {
        ServerProcess server(*program, {"--working-dir", "/tmp"}, {});
        server.read_until("\n");
        REQUIRE(server.wait_exit() == 2);
    }
}

}  // namespace test_action_server
