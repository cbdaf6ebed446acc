// The whole Runtime path (provider seam, client, event stream, factory) against a loopback
// server that speaks the action server protocol, with a test provider: the core is tested on
// its own, independent of runbox's real server.
#include <httplib.h>
#include <zip.h>

#include <atomic>
#include <boost/mp11/list.hpp>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "catch.hpp"
#include "runbox/runbox.hpp"

namespace test_runtime_core {  // several files share a unit (tests/CMakeLists.txt)

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A minimal action execution server: records what it receives, answers like OpenHands' server.
class ProtocolServer {
public:
    explicit ProtocolServer(std::string key) : key_(std::move(key)) {
        server_.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            if (req.path == "/alive" || req.path == "/server_info") return httplib::Server::HandlerResponse::Unhandled;
            if (req.get_header_value("X-Session-API-Key") != key_) {
                res.status = 403;
                res.set_content(R"({"detail": "Invalid API Key"})", "application/json");
                return httplib::Server::HandlerResponse::Handled;
            }
            return httplib::Server::HandlerResponse::Unhandled;
        });
        server_.Get("/alive", [this](const httplib::Request&, httplib::Response& res) {
            if (alive_failures_ > 0) {
                --alive_failures_;
                res.status = alive_failure_status_;
                res.set_content(R"({"detail": "starting"})", "application/json");
                return;
            }
            res.set_content(R"({"status": "ok"})", "application/json");
        });
        server_.Post("/execute_action", [this](const httplib::Request& req, httplib::Response& res) {
            const auto body = json::parse(req.body);
            const auto& action = body.at("action");
            {
                std::lock_guard<std::mutex> lock(mutex_);
                actions_.push_back(action);
            }
            if (action.at("action") == "run") {
                const std::string command = action.at("args").at("command");
                if (command.find("echo-secret") != std::string::npos) {
                    res.status = 500;
                    res.set_content(json{{"detail", "Internal server error: bad key " + key_}}.dump(), "application/json");
                    return;
                }
                const int exit_code = command == "false" || command.find("FAILME") != std::string::npos ? 1 : 0;
                res.set_content(json{{"message", "Command `" + command + "` executed with exit code " + std::to_string(exit_code) + "."},
                                     {"observation", "run"},
                                     {"content", "ran: " + command},
                                     {"extras",
                                      {{"command", command},
                                       {"metadata", {{"exit_code", exit_code}, {"pid", -1}, {"working_dir", "/workspace"}}},
                                       {"hidden", false}}},
                                     {"success", exit_code == 0}}
                                    .dump(),
                                "application/json");
                return;
            }
            res.set_content(json{{"observation", "error"}, {"content", "unsupported here"}, {"extras", {{"error_id", ""}}}}.dump(),
                            "application/json");
        });
        server_.Post("/list_files", [this](const httplib::Request& req, httplib::Response& res) {
            std::lock_guard<std::mutex> lock(mutex_);
            list_bodies_.push_back(json::parse(req.body));
            res.set_content(R"(["src/", "a.txt"])", "application/json");
        });
        server_.Post("/upload_file", [this](const httplib::Request& req, httplib::Response& res) {
            REQUIRE(req.has_file("file"));
            const auto file = req.get_file_value("file");
            std::lock_guard<std::mutex> lock(mutex_);
            uploads_.push_back({file.filename, req.get_param_value("destination"), req.get_param_value("recursive"), file.content});
            res.set_content(json{{"filename", file.filename}, {"destination", req.get_param_value("destination")}}.dump(),
                            "application/json");
        });
        server_.Get("/download_files", [](const httplib::Request& req, httplib::Response& res) {
            if (req.get_param_value("path") == "/missing") {
                res.status = 500;
                res.set_content(R"({"detail": "404: File not found"})", "application/json");
                return;
            }
            if (req.get_param_value("path") == "/big") {  // 3 MiB, streamed in 64 KiB chunks
                res.set_chunked_content_provider("application/zip", [](std::size_t offset, httplib::DataSink& sink) {
                    if (offset >= (std::size_t{3} << 20)) {
                        sink.done();
                        return true;
                    }
                    const std::string chunk(64 * 1024, 'z');
                    return sink.write(chunk.data(), chunk.size());
                });
                return;
            }
            if (req.get_param_value("path") == "/moved") {
                res.set_redirect("/elsewhere", 302);
                return;
            }
            res.set_content("PK-fake-zip-bytes", "application/zip");
        });
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::yield();
    }
    ~ProtocolServer() {
        server_.stop();
        thread_.join();
    }

    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::vector<json> actions() {
        std::lock_guard<std::mutex> lock(mutex_);
        return actions_;
    }
    std::vector<std::string> commands() {
        std::vector<std::string> out;
        for (const auto& a : actions()) {
            if (a.at("action") == "run") out.push_back(a.at("args").at("command"));
        }
        return out;
    }
    struct Upload {
        std::string filename, destination, recursive, content;
    };
    std::vector<Upload> uploads() {
        std::lock_guard<std::mutex> lock(mutex_);
        return uploads_;
    }
    std::vector<json> list_bodies() {
        std::lock_guard<std::mutex> lock(mutex_);
        return list_bodies_;
    }
    std::atomic<int> alive_failures_{0};
    std::atomic<int> alive_failure_status_{503};  ///< 502: what a provider's proxy answers while nothing listens

private:
    std::string key_;
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
    std::mutex mutex_;
    std::vector<json> actions_;
    std::vector<json> list_bodies_;
    std::vector<Upload> uploads_;
};

// Where the test provider finds its server, and what it saw.
struct TestWorld {
    ProtocolServer* server = nullptr;
    std::vector<runbox::CloseReason> closes;
    int connects = 0;
    bool fail_connect = false;
    std::optional<std::string> server_url{};  ///< instead of server->url()
    std::optional<runbox::RetryPolicy> retry{};
    std::function<std::optional<runbox::error>()> probe{};
    int refreshes = 0;
    std::optional<std::string> authorized{};  ///< the Authorization a control-plane request got through the seam
};
TestWorld* world = nullptr;

struct TestAuth {
    static constexpr std::string_view name = "test";
    using default_transport = runbox::HttplibTransport;

    explicit TestAuth(const runbox::Config& config) {
        key = config.required_setting("test", "api_key", "TEST_API_KEY");
    }
    void authorize(runbox::Request& request) const { request.headers.set("Authorization", "Bearer " + key); }
    template <class T>
    void refresh(runbox::ProviderContext<T>&) {
        ++world->refreshes;
    }

    template <class T>
    runbox::ServerEndpoint connect(runbox::ProviderContext<T>& ctx) {
        ++world->connects;
        ctx.status(runbox::RuntimeStatus::building_runtime, "creating");
        if (world->fail_connect) throw runbox::error(runbox::errc::server_error, "create failed", "test", 500);
        runbox::Request control;  // a control-plane request gets the credentials through the context
        ctx.authorize(control);
        world->authorized = control.headers.get("Authorization");
        runbox::ServerEndpoint endpoint;
        endpoint.url = world->server_url.value_or(world->server->url()) + "/";
        endpoint.retry = world->retry;
        endpoint.probe = world->probe;
        endpoint.headers.set("X-Session-API-Key", key);
        endpoint.secrets = {key};
        endpoint.alive_timeout = std::chrono::milliseconds(ctx.config.setting("test", "alive_ms") ? std::stoi(*ctx.config.setting("test", "alive_ms")) : 5000);
        endpoint.alive_poll_interval = std::chrono::milliseconds(5);
        endpoint.attached = ctx.options.attach_to_existing;  // this provider always finds its sandbox
        return endpoint;
    }
    template <class T>
    void close(runbox::ProviderContext<T>&, runbox::CloseReason reason) noexcept {
        world->closes.push_back(reason);
    }
    std::string key;
};
static_assert(runbox::is_auth_policy_v<TestAuth>);
using TestRuntime = runbox::Runtime<TestAuth>;

const std::string kKey = "sk-test-0123456789";

runbox::Config test_config(std::map<std::string, std::string> env = {}) {
    runbox::Config config;
    config.providers["test"]["api_key"] = kKey;
    config.use_environment(std::move(env));
    return config;
}

struct Fixture {
    Fixture() : server(kKey) {
        state.server = &server;
        world = &state;
    }
    ~Fixture() { world = nullptr; }
    ProtocolServer server;
    TestWorld state;
};

runbox::CmdOutputObservation as_cmd(const runbox::Observation& obs) {
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(obs));
    return std::get<runbox::CmdOutputObservation>(obs);
}

}  // namespace

TEST_CASE_METHOD(Fixture, "runtime: connect reports each status, waits for /alive and sets up the environment") {
    server.alive_failures_ = 3;
    std::vector<std::pair<std::string, runbox::RuntimeStatus>> statuses;
    runbox::EventStream events;
    TestRuntime rt(test_config({{"SANDBOX_ENV_FOO", "bar"}, {"UNRELATED", "x"}}), events,
                   {.sid = "s1",
                    .env_vars = {{"my_var", "va\"lue"}},
                    .status_callback = [&](std::string_view level, runbox::RuntimeStatus status,
                                           std::string_view) { statuses.emplace_back(level, status); },
                    .git_provider_tokens = {{"github", "ghp_tok"}}});
    REQUIRE(state.connects == 0);  // construction does no I/O
    rt.connect();
    REQUIRE(rt.connected());
    REQUIRE(server.alive_failures_ == 0);
    REQUIRE(rt.action_execution_server_url() == server.url());  // trailing slash dropped

    using S = runbox::RuntimeStatus;
    const std::vector<std::pair<std::string, S>> expected{{"info", S::starting_runtime}, {"info", S::building_runtime},
                                                          {"info", S::starting_runtime}, {"info", S::ready}};
    REQUIRE(statuses == expected);

    const auto commands = server.commands();
    REQUIRE(commands.size() == 3);
    // Keys upper-cased, values as JSON string literals, in key order (reference §7.3).
    CHECK(commands[0] == R"(export FOO="bar"; export GITHUB_TOKEN="ghp_tok"; export MY_VAR="va\"lue";)");
    CHECK(commands[1].find(R"(touch ~/.bashrc; grep -q "^export FOO=" ~/.bashrc || echo "export FOO="bar"" >> ~/.bashrc;)") == 0);
    CHECK(commands[2] == R"(git config --global user.name "openhands" && git config --global user.email "openhands@all-hands.dev")");
    for (const auto& action : server.actions()) CHECK(action.at("args").at("hidden") == true);
}

TEST_CASE_METHOD(Fixture, "runtime: run applies the default non-blocking timeout; blocking without timeout is refused") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();
    REQUIRE(server.actions().empty());  // attaching skips the environment setup

    const auto& obs = as_cmd(rt.run("ls -l"));
    CHECK(obs.content == "ran: ls -l");
    CHECK(obs.metadata.exit_code == 0);
    const auto sent = server.actions().back();
    CHECK(sent.at("timeout") == 120.0);
    CHECK(sent.at("args").at("blocking") == false);

    runbox::CmdRunAction blocking;
    blocking.command = "sleep 1";
    blocking.blocking = true;
    try {
        rt.run(blocking);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(e.detail() == "Blocking command with no timeout set");
    }

    runbox::CmdRunAction hard;
    hard.command = "make";
    hard.set_hard_timeout(300);
    rt.run(hard);
    CHECK(server.actions().back().at("timeout") == 300.0);
    CHECK(server.actions().back().at("args").at("blocking") == true);
}

TEST_CASE_METHOD(Fixture, "runtime: the gates of run_action answer without the server") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();

    runbox::AgentThinkAction think;
    const auto thought = rt.run_action(think);
    REQUIRE(std::holds_alternative<runbox::AgentThinkObservation>(thought));
    CHECK(std::get<runbox::AgentThinkObservation>(thought).content == "Your thought has been logged.");

    runbox::CmdRunAction rejected;
    rejected.command = "rm -rf /";
    rejected.confirmation_state = runbox::ConfirmationState::rejected;
    const auto reject = rt.run_action(rejected);
    REQUIRE(std::holds_alternative<runbox::UserRejectObservation>(reject));
    CHECK(std::get<runbox::UserRejectObservation>(reject).content ==
          "Action has been rejected by the user! Waiting for further user input.");

    runbox::CmdRunAction waiting;
    waiting.command = "ls";
    waiting.confirmation_state = runbox::ConfirmationState::awaiting_confirmation;
    CHECK(std::holds_alternative<runbox::NullObservation>(rt.run_action(waiting)));
    CHECK(server.actions().empty());
}

TEST_CASE_METHOD(Fixture, "runtime: hidden actions come back hidden") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();
    runbox::CmdRunAction action;
    action.command = "git status";
    action.hidden = true;
    CHECK(as_cmd(rt.run(action)).hidden);
}

TEST_CASE_METHOD(Fixture, "runtime: a published action is answered on the stream with cause = its id") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.sid = "evt", .attach_to_existing = true});
    rt.connect();

    std::mutex mutex;
    std::condition_variable cv;
    std::vector<runbox::Event> seen;
    events.subscribe("test", [&](const runbox::Event& e) {
        std::lock_guard<std::mutex> lock(mutex);
        seen.push_back(e);
        cv.notify_all();
    }, "watcher");

    runbox::CmdRunAction action;
    action.command = "echo from-stream";
    const auto id = events.add_event(runbox::Action(action), runbox::EventSource::agent);

    std::unique_lock<std::mutex> lock(mutex);
    const bool got = cv.wait_for(lock, std::chrono::seconds(10), [&] {
        return std::any_of(seen.begin(), seen.end(), [](const runbox::Event& e) { return std::holds_alternative<runbox::Observation>(e); });
    });
    REQUIRE(got);
    const auto it = std::find_if(seen.begin(), seen.end(), [](const runbox::Event& e) { return std::holds_alternative<runbox::Observation>(e); });
    const auto& obs = std::get<runbox::Observation>(*it);
    CHECK(runbox::meta(obs).cause == id);
    CHECK(runbox::meta(obs).source == runbox::EventSource::agent);
    CHECK(as_cmd(obs).content == "ran: echo from-stream");
}

TEST_CASE_METHOD(Fixture, "runtime: a connect that fails at any step closes with connect_failed") {
    runbox::EventStream events;
    SECTION("the provider fails") {
        state.fail_connect = true;
        TestRuntime rt(test_config(), events);
        REQUIRE_THROWS_AS(rt.connect(), runbox::error);
        REQUIRE(state.closes == std::vector<runbox::CloseReason>{runbox::CloseReason::connect_failed});
        REQUIRE_FALSE(rt.connected());
    }
    SECTION("/alive never answers within the bound") {
        server.alive_failures_ = 1000000;
        auto config = test_config();
        config.providers["test"]["alive_ms"] = "150";
        TestRuntime rt(config, events);
        try {
            rt.connect();
            FAIL("expected a timeout");
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::timeout);
            CHECK(std::string(e.what()).find("/alive within 150 ms") != std::string::npos);
        }
        REQUIRE(state.closes == std::vector<runbox::CloseReason>{runbox::CloseReason::connect_failed});
    }
}

TEST_CASE_METHOD(Fixture, "runtime: close is idempotent and runs once from the destructor") {
    runbox::EventStream events;
    {
        TestRuntime rt(test_config(), events, {.attach_to_existing = true});
        rt.connect();
        rt.close();
        rt.close();
        REQUIRE(state.closes.size() == 1);
        try {
            (void)rt.run("ls");
            FAIL("run after close() must throw");
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::not_connected);
        }
    }
    REQUIRE(state.closes.size() == 1);
    {
        TestRuntime moved_from(test_config(), events, {.attach_to_existing = true});
        TestRuntime owner(std::move(moved_from));
    }
    REQUIRE(state.closes.size() == 2);
}

TEST_CASE_METHOD(Fixture, "runtime: before connect() and moved-from, calls that need a session are not_connected") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    const auto code_of = [](auto&& call) {
        try {
            call();
        } catch (const runbox::error& e) {
            return e.code();
        }
        return runbox::errc{};
    };
    CHECK(code_of([&] { (void)rt.run("ls"); }) == runbox::errc::not_connected);
    CHECK(code_of([&] { (void)rt.list_files("/"); }) == runbox::errc::not_connected);
    TestRuntime owner(std::move(rt));
    CHECK(code_of([&] { (void)rt.run("ls"); }) == runbox::errc::not_connected);  // NOLINT(bugprone-use-after-move)
    CHECK(code_of([&] { (void)rt.sid(); }) == runbox::errc::not_connected);     // an error, not std::terminate
    CHECK(code_of([&] { (void)rt.provider(); }) == runbox::errc::not_connected);
    CHECK_FALSE(rt.status().has_value());
    CHECK_FALSE(rt.connected());
    CHECK(std::error_code(runbox::errc::not_connected).message() == "not_connected");
    CHECK(std::error_code(runbox::errc::system).message() == "system");
}

TEST_CASE_METHOD(Fixture, "runtime: files go through upload, download and list") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();

    const fs::path dir = fs::temp_directory_path() / ("runbox-core-" + runbox::detail::random_hex(4));
    fs::create_directories(dir / "tree" / "sub");
    std::ofstream(dir / "one.txt") << "Hello, World!";
    std::ofstream(dir / "tree" / "sub" / "deep.txt") << "deep";

    rt.copy_to(dir / "one.txt", "/workspace");
    rt.copy_to(dir / "tree", "/workspace/dest", true);
    REQUIRE_THROWS_AS(rt.copy_to(dir / "missing.txt", "/workspace"), runbox::error);
    const auto uploads = server.uploads();
    REQUIRE(uploads.size() == 2);
    CHECK(uploads[0].filename == "one.txt");
    CHECK(uploads[0].destination == "/workspace");
    CHECK(uploads[0].recursive == "false");
    CHECK(uploads[0].content == "Hello, World!");
    CHECK(uploads[1].recursive == "true");
    CHECK(uploads[1].filename.size() > 4);
    CHECK(uploads[1].filename.substr(uploads[1].filename.size() - 4) == ".zip");
    // The zip carries the directory's own name.
    const fs::path zip_path = dir / "uploaded.zip";
    std::ofstream(zip_path, std::ios::binary) << uploads[1].content;
    const auto names = runbox::zip_entry_names(zip_path);
    CHECK(std::find(names.begin(), names.end(), "tree/sub/deep.txt") != names.end());

    const auto local = rt.copy_from("/workspace/tree");
    std::ifstream in(local, std::ios::binary);
    CHECK(std::string(std::istreambuf_iterator<char>(in), {}) == "PK-fake-zip-bytes");
    fs::remove(local);
    try {
        rt.copy_from("/missing");
        FAIL("a failed download must be an error, not a zip");
    } catch (const runbox::error& e) {
        CHECK(e.http_status() == 500);
        CHECK(e.detail().find("404: File not found") != std::string::npos);
    }

    CHECK(rt.list_files() == std::vector<std::string>{"src/", "a.txt"});
    CHECK(rt.list_files("/workspace/src") == std::vector<std::string>{"src/", "a.txt"});
    CHECK(server.list_bodies()[0] == json::object());
    CHECK(server.list_bodies()[1] == json{{"path", "/workspace/src"}});
    fs::remove_all(dir);
}

TEST_CASE_METHOD(Fixture, "runtime: a download is bounded, a redirect is an error, and neither leaves a file") {
    // The downloads land in the temporary directory: a private one, so the test can see all of them.
    const fs::path tmp = fs::temp_directory_path() / ("runbox-core-dl-" + runbox::detail::random_hex(4));
    fs::create_directories(tmp);
    const char* old_tmpdir = std::getenv("TMPDIR");
    const std::string saved = old_tmpdir ? old_tmpdir : "";
    ::setenv("TMPDIR", tmp.c_str(), 1);
    struct Restore {
        const char* old;
        std::string saved;
        fs::path dir;
        ~Restore() {
            if (old) ::setenv("TMPDIR", saved.c_str(), 1);
            else ::unsetenv("TMPDIR");
            std::error_code ec;
            fs::remove_all(dir, ec);
        }
    } restore{old_tmpdir, saved, tmp};
    const auto files_left = [&] { return std::distance(fs::directory_iterator(tmp), fs::directory_iterator()); };

    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();
    try {
        (void)rt.copy_from("/big", std::uintmax_t{1} << 20);
        FAIL("a download past its bound was accepted");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::quota_exceeded);
        CHECK(e.detail() == "the download of /big is larger than the limit of 1048576 bytes");
    }
    CHECK(files_left() == 0);

    const auto whole = rt.copy_from("/big");  // the default bound (4 GiB) lets it through
    CHECK(whole.parent_path() == tmp);  // where the failed ones would have been left
    CHECK(fs::file_size(whole) == (std::uintmax_t{3} << 20));
    fs::remove(whole);

    try {
        (void)rt.copy_from("/moved");
        FAIL("a redirect was taken for a download");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::bad_response);
        CHECK(e.http_status() == 302);
    }
    CHECK(files_left() == 0);
}

// A hostile server that answers every request with a body trickled one byte at a time, each
// byte well inside the client's per-read timeout.
class TrickleServer {
public:
    TrickleServer() {
        const auto trickle = [this](const httplib::Request&, httplib::Response& res) {
            res.set_chunked_content_provider("application/json", [this](std::size_t, httplib::DataSink& sink) {
                if (stopping_) return false;
                std::this_thread::sleep_for(std::chrono::milliseconds(100));  // the hostile server's pace
                return sink.write(" ", 1);
            });
        };
        server_.Get("/alive", trickle);
        server_.Post("/execute_action", trickle);
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        while (!server_.is_running()) std::this_thread::yield();
    }
    ~TrickleServer() {
        stopping_ = true;
        server_.stop();
        thread_.join();
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }

private:
    std::atomic<bool> stopping_{false};
    httplib::Server server_;
    int port_ = 0;
    std::thread thread_;
};

TEST_CASE("runtime: a server that trickles its answers cannot stretch /alive or an action past its bound") {
    TrickleServer server;
    runbox::HttplibTransport transport;
    runbox::ServerEndpoint endpoint;
    endpoint.url = server.url();
    endpoint.alive_timeout = std::chrono::milliseconds(1000);
    runbox::ClientTimeouts timeouts;
    timeouts.execute_margin = std::chrono::milliseconds(500);
    runbox::ActionExecutionClient<runbox::HttplibTransport> client(transport, endpoint, "test", timeouts);

    // Each byte arrives long before the 5 s per-read timeout: only a deadline ends these. The
    // bounds below are generous; without the deadlines both calls never return.
    const auto start = std::chrono::steady_clock::now();
    try {
        client.wait_until_alive();
        FAIL("a trickling /alive counted as alive");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::timeout);
    }
    CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));

    runbox::CmdRunAction action;
    action.command = "true";
    action.set_hard_timeout(1);
    const auto sent = std::chrono::steady_clock::now();
    try {
        (void)client.execute_action(action);
        FAIL("a trickled answer was taken");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::timeout);
    }
    CHECK(std::chrono::steady_clock::now() - sent < std::chrono::seconds(30));
}

TEST_CASE_METHOD(Fixture, "runtime: a failed env export names the variables, never their values") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();
    try {
        // The server answers with the command it ran (values and all), exit code 1.
        rt.add_env_vars({{"api_token", "sk-supersecret\"FAILME"}});
        FAIL("a failed export was accepted");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::server_error);
        CHECK(e.detail().find("Failed to add env vars [API_TOKEN] to environment: ran: export API_TOKEN=") == 0);
        CHECK(e.detail().find("supersecret") == std::string::npos);  // neither as given nor as quoted
        CHECK(std::string(e.what()).find("supersecret") == std::string::npos);
    }
}

TEST_CASE_METHOD(Fixture, "runtime: a session key echoed by the server never appears in an error") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events, {.attach_to_existing = true});
    rt.connect();
    try {
        rt.run("echo-secret");
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.http_status() == 500);
        CHECK(std::string(e.what()).find(kKey) == std::string::npos);
        CHECK(std::string(e.what()).find("bad key ***") != std::string::npos);
    }
}

TEST_CASE_METHOD(Fixture, "runtime: the positional constructor is the seed's signature") {
    runbox::EventStream events;
    std::vector<runbox::RuntimeStatus> statuses;
    TestRuntime rt(test_config(), events, "positional", {}, {}, [&](std::string_view, runbox::RuntimeStatus s, std::string_view) {
        statuses.push_back(s);
    }, true);
    CHECK(rt.sid() == "positional");
    CHECK(rt.options().attach_to_existing);
    rt.connect();
    CHECK(statuses.back() == runbox::RuntimeStatus::ready);
}

TEST_CASE("runtime: missing credentials fail at construction and name the variable") {
    runbox::EventStream events;
    runbox::Config config;
    config.use_environment({});
    try {
        TestRuntime rt(config, events);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(std::string(e.what()).find("TEST_API_KEY") != std::string::npos);
    }
}

TEST_CASE_METHOD(Fixture, "factory: selects by name, lists the known names otherwise, and forwards the API") {
    using providers = boost::mp11::mp_list<runbox::local::Auth, TestAuth>;
    runbox::EventStream events;
    auto config = test_config();
    try {
        (void)runbox::make_runtime<providers>("nope", config, events);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::config_invalid);
        CHECK(e.detail() == "Runtime nope not supported, known are: local, test, modal (link runbox::curl)");
    }
    try {
        (void)runbox::make_runtime("nope", config, events);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.detail() == "Runtime nope not supported, known are: local, daytona, runloop, e2b, modal (link runbox::curl)");
    }
    try {  // without runbox::curl, "modal" is known but not enabled, and the message says how to enable it
        (void)runbox::make_runtime("modal", config, events);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::unsupported);
        CHECK(e.detail().find("runbox::curl") != std::string::npos);
    }

    auto rt = runbox::make_runtime<providers>("test", config, events, {.attach_to_existing = true});
    CHECK(rt.provider_name() == "test");
    CHECK(rt.index() == 1);
    rt.connect();
    CHECK(as_cmd(rt.run("whoami")).content == "ran: whoami");
    CHECK(rt.list_files() == std::vector<std::string>{"src/", "a.txt"});
    rt.close();
    CHECK(state.closes.size() == 1);

    config.runtime = "test";
    auto by_config = runbox::make_runtime<providers>(config, events);
    CHECK(by_config.provider_name() == "test");
    CHECK(std::holds_alternative<TestRuntime>(by_config));  // it is a std::variant
}

TEST_CASE_METHOD(Fixture, "runtime: the provider's credentials are applied through the context, refresh first") {
    runbox::EventStream events;
    TestRuntime rt(test_config(), events);
    rt.connect();
    REQUIRE(state.authorized == std::optional<std::string>("Bearer " + kKey));
    REQUIRE(state.refreshes == 1);  // the optional refresh clause ran before authorize
    static_assert(runbox::AuthPolicyRefreshes<TestAuth, runbox::HttplibTransport>);
}

TEST_CASE_METHOD(Fixture, "runtime: one deadline bounds the /alive wait, 502 retries of the endpoint's policy included") {
    runbox::EventStream events;
    server.alive_failures_ = 1000000;
    server.alive_failure_status_ = 502;
    // A Daytona-like window: 502 retried every 20 ms for 10 s. The wait's bound is 400 ms.
    runbox::RetryPolicy window;
    window.max_elapsed = std::chrono::seconds(10);
    window.max_attempts = 501;
    window.initial_backoff = window.max_backoff = std::chrono::milliseconds(20);
    window.jitter = 0;
    state.retry = window;
    auto config = test_config();
    config.providers["test"]["alive_ms"] = "400";
    TestRuntime rt(config, events);
    const auto start = std::chrono::steady_clock::now();
    try {
        rt.connect();
        FAIL("connected to a server that only answers 502");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::timeout);
        CHECK(e.provider() == "test");
        CHECK(std::string(e.what()).find("/alive within 400 ms") != std::string::npos);
        CHECK(std::string(e.what()).find("502") != std::string::npos);  // the last attempt's answer
    }
    const auto took = std::chrono::steady_clock::now() - start;
    // The bound holds: on main one /alive attempt alone ran the whole 10 s window.
    CHECK(took >= std::chrono::milliseconds(400));
    CHECK(took < std::chrono::milliseconds(2400));
    REQUIRE(state.closes == std::vector<runbox::CloseReason>{runbox::CloseReason::connect_failed});
}

TEST_CASE_METHOD(Fixture, "runtime: the endpoint's early-failure probe ends the /alive wait at once") {
    runbox::EventStream events;
    server.alive_failures_ = 1000000;  // the server never comes up
    std::atomic<int> asked{0};
    SECTION("the probe reports an exit: that error, without waiting out the bound") {
        state.probe = [&]() -> std::optional<runbox::error> {
            if (++asked < 3) return std::nullopt;
            return runbox::error(runbox::errc::sandbox_gone, "the action server exited with code 2", "test");
        };
        auto config = test_config();
        config.providers["test"]["alive_ms"] = "60000";
        TestRuntime rt(config, events);
        const auto start = std::chrono::steady_clock::now();
        try {
            rt.connect();
            FAIL("connected to a server that exited");
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::sandbox_gone);
            CHECK(e.detail() == "the action server exited with code 2");
        }
        CHECK(asked == 3);  // asked before each attempt, stopped at the first report
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(30));  // far below the 60 s bound
        REQUIRE(state.closes == std::vector<runbox::CloseReason>{runbox::CloseReason::connect_failed});
    }
    SECTION("a probe that reports nothing leaves the wait alone") {
        server.alive_failures_ = 3;
        state.probe = [&]() -> std::optional<runbox::error> {
            ++asked;
            return std::nullopt;
        };
        TestRuntime rt(test_config(), events);
        rt.connect();
        CHECK(asked == 4);  // three failed attempts and the one that answered
        REQUIRE(rt.connected());
    }
}

TEST_CASE_METHOD(Fixture, "runtime: a sandbox that disappears under a connected runtime is named by its provider") {
    runbox::EventStream events;
    auto doomed = std::make_unique<ProtocolServer>(kKey);
    state.server_url = doomed->url();
    TestRuntime rt(test_config(), events);
    rt.connect();
    REQUIRE(std::holds_alternative<runbox::CmdOutputObservation>(rt.run("true")));
    rt.transport().clear_pool();
    doomed.reset();  // the sandbox is gone: nothing listens any more
    try {
        (void)rt.run("true");
        FAIL("ran a command in a sandbox that is gone");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::transport);
        CHECK(e.provider() == "test");
        CHECK(std::string(e.what()).rfind("runbox [test] ", 0) == 0);
    }
    try {
        (void)rt.list_files();
        FAIL("listed files in a sandbox that is gone");
    } catch (const runbox::error& e) {
        CHECK(e.provider() == "test");
    }
}

}  // namespace test_runtime_core
