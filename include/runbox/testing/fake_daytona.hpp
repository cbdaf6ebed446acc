// runbox/testing/fake_daytona.hpp - an in-process fake of Daytona's API, toolbox and preview proxy.
//
// Use it in your own tests to run code written against Daytona (runbox::DaytonaRuntime, the
// official SDKs, curl) without network access or an account:
//
//     runbox::testing::FakeDaytona fake({.api_key = "dtn_test"});
//     fake.start();                                   // 127.0.0.1, any free port
//     cfg.providers["daytona"] = {{"api_key", "dtn_test"}, {"api_url", fake.url()}};
//     ...                                             // run the code under test
//     REQUIRE(fake.running_sandboxes() == 0);         // nothing leaked
//
// What it serves (paths and JSON shapes as Daytona's public API, SDK 0.218 generation):
//   {url()}                 = http://127.0.0.1:P/api      control plane: /sandbox create, get, list
//                             (labels filter, cursor pagination), start/stop/delete/archive, autostop,
//                             labels, preview-url, toolbox-proxy-url; 404 for /api/socket.io/.
//   {toolbox_url()}/{id}/   = http://127.0.0.1:P/toolbox  process/execute, process sessions (sync and
//                             async exec, command status and logs), a few files endpoints.
//   preview links           = http://127.0.0.1:P/preview/{id}/{port}/...  a path-based proxy to the
//                             sandbox's action server; 502 until it runs, like the real proxy.
// Every sandbox is backed by a real runbox::server::ActionServer, started in a fresh temporary
// directory when a toolbox session executes the action-server command (a command containing
// `action_execution_server` or `runbox-server`), so actions sent through the preview link really run.
// Shell commands sent to the toolbox run on this machine with the sandbox directory as cwd.
// States move over time: create -> started (or creating -> started with create_delay), stop ->
// stopping -> stopped, start -> starting -> started, delete -> destroying -> destroyed, each
// transition lasting `state_delay`. Faults can be injected (see FakeDaytonaOptions).
// Only listens on 127.0.0.1. Secrets never appear in requests().
#pragma once

#include <httplib.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/server/action_server.hpp"

extern char** environ;

namespace runbox::testing {

/// How a create request ends (failure injection).
enum class FakeCreateOutcome {
    started,       ///< normal: the sandbox reaches `started`
    error_state,   ///< 200, then the sandbox moves creating -> error (errorReason set)
    build_failed,  ///< 200, then the sandbox moves pending_build -> build_failed (errorReason set)
    http_error,    ///< the create request itself fails with `create_error_status`
};

struct FakeDaytonaOptions {
    std::string api_key = "dtn_test";  ///< the only Bearer token accepted
    int port = 0;                      ///< 0 = any free port
    std::string organization_id = "org-fake";
    std::string default_target = "us";
    /// How long each transitional state (stopping, starting, destroying...) lasts.
    std::chrono::milliseconds state_delay{50};
    /// Slow start: a created sandbox stays `creating` this long (create answers `creating`).
    std::chrono::milliseconds create_delay{0};
    /// Slow start: extra time a start request stays `starting` on top of state_delay.
    std::chrono::milliseconds start_delay{0};
    /// The next N API requests (under /api) are answered 429 with Daytona's rate-limit headers.
    int rate_limit_next = 0;
    int rate_limit_retry_after_seconds = 1;
    /// The next N preview-proxy requests are answered 502 (a burst while the proxy "warms up").
    int preview_bad_gateway_next = 0;
    FakeCreateOutcome create_outcome = FakeCreateOutcome::started;
    int create_error_status = 500;
    std::string create_error_reason = "injected failure";
    /// Largest page the list endpoint returns, whatever `limit` asks (to exercise pagination).
    int max_page_size = 200;
    /// The action server a sandbox runs gets these plugins / browser flag.
    std::vector<std::string> server_plugins{};
};

/// One request as the fake received it. Secret header values are replaced by "<redacted>".
struct FakeRequest {
    std::string method;
    std::string path;    ///< without query, e.g. "/api/sandbox"
    std::string target;  ///< path plus query as sent, e.g. "/api/sandbox?limit=50&labels=..."
    std::multimap<std::string, std::string> params;
    std::map<std::string, std::string> headers;  ///< lower-case names
    std::string body;
};

/// A snapshot of one sandbox.
struct FakeSandbox {
    std::string id;
    std::string name;
    std::string state;
    std::string desired_state;
    std::string error_reason;
    std::string snapshot;
    std::string target;
    std::map<std::string, std::string> labels;
    std::map<std::string, std::string> env;
    bool is_public = false;
    int auto_stop_interval = 15;
    bool server_running = false;
    std::string server_url;         ///< the action server's direct URL when running
    std::string server_command;     ///< the command that started it
    std::filesystem::path directory;  ///< the sandbox's temporary directory
    nlohmann::json dto;             ///< the JSON the API returns for it
};

namespace detail_fake_daytona {

inline std::string iso_now() {
    const auto now = std::chrono::system_clock::now();
    const auto secs = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm tm{};
    gmtime_r(&secs, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms));
    return out;
}

inline std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

struct ShellResult {
    int exit_code = -1;
    std::string out;
    std::string err;
};

// Runs `sh -c command` in `cwd` with extra environment, in its own process group so it can be
// killed as a whole. merge = stderr goes to the same pipe as stdout (Daytona's process/execute).
class ShellRunner {
public:
    ShellResult run(const std::string& command, const std::filesystem::path& cwd,
                    const std::map<std::string, std::string>& env, std::chrono::milliseconds timeout,
                    bool merge) {
        std::map<std::string, std::string> all;
        for (char** e = environ; e && *e; ++e) {
            std::string kv = *e;
            auto eq = kv.find('=');
            if (eq != std::string::npos) all[kv.substr(0, eq)] = kv.substr(eq + 1);
        }
        for (const auto& [k, v] : env) all[k] = v;
        std::vector<std::string> env_strings;
        for (const auto& [k, v] : all) env_strings.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& s : env_strings) envp.push_back(s.data());
        envp.push_back(nullptr);
        std::string dir = cwd.string();
        std::string cmd = command;
        char sh[] = "/bin/sh";
        char dash_c[] = "-c";
        char* argv[] = {sh, dash_c, cmd.data(), nullptr};

        int out_pipe[2];
        int err_pipe[2];
        if (::pipe2(out_pipe, O_CLOEXEC) != 0) return {};
        if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
            ::close(out_pipe[0]);
            ::close(out_pipe[1]);
            return {};
        }
        pid_t pid = ::fork();
        if (pid < 0) {
            for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
            return {};
        }
        if (pid == 0) {
            ::setpgid(0, 0);
            int devnull = ::open("/dev/null", O_RDONLY);
            if (devnull >= 0) ::dup2(devnull, 0);
            ::dup2(out_pipe[1], 1);
            ::dup2(merge ? out_pipe[1] : err_pipe[1], 2);
            if (!dir.empty() && ::chdir(dir.c_str()) != 0) ::_exit(126);
            ::execve(sh, argv, envp.data());
            ::_exit(127);
        }
        ::setpgid(pid, pid);
        ::close(out_pipe[1]);
        ::close(err_pipe[1]);
        {
            std::lock_guard lock(mutex_);
            pids_.insert(pid);
            if (killed_) ::kill(-pid, SIGKILL);
        }
        ShellResult result;
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        bool out_open = true;
        bool err_open = true;
        bool timed_out = false;
        while (out_open || err_open) {
            pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
            if (!out_open) fds[0].fd = -1;
            if (!err_open) fds[1].fd = -1;
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            if (left.count() <= 0) {
                timed_out = true;
                break;
            }
            int n = ::poll(fds, 2, static_cast<int>(std::min<std::int64_t>(left.count(), 200)));
            if (n < 0 && errno != EINTR) break;
            char buf[4096];
            for (int i = 0; i < 2; ++i) {
                if (fds[i].fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
                if (r <= 0) {
                    (i == 0 ? out_open : err_open) = false;
                } else {
                    (i == 0 ? result.out : result.err).append(buf, static_cast<std::size_t>(r));
                }
            }
        }
        if (timed_out) ::kill(-pid, SIGKILL);
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        int status = 0;
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
        {
            std::lock_guard lock(mutex_);
            pids_.erase(pid);
        }
        if (timed_out) {
            result.exit_code = -2;  // caller maps to a timeout answer
        } else if (WIFEXITED(status)) {
            result.exit_code = WEXITSTATUS(status);
        } else {
            result.exit_code = 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
        }
        return result;
    }

    // Kills every running command and makes later ones die at once.
    void kill_all() {
        std::lock_guard lock(mutex_);
        killed_ = true;
        for (pid_t pid : pids_) ::kill(-pid, SIGKILL);
    }

    void revive() {
        std::lock_guard lock(mutex_);
        killed_ = false;
    }

private:
    std::mutex mutex_;
    std::set<pid_t> pids_;
    bool killed_ = false;
};

}  // namespace detail_fake_daytona

class FakeDaytona {
public:
    explicit FakeDaytona(FakeDaytonaOptions options = {}) : options_(std::move(options)) {}
    FakeDaytona(const FakeDaytona&) = delete;
    FakeDaytona& operator=(const FakeDaytona&) = delete;
    ~FakeDaytona() { stop(); }

    /// Binds 127.0.0.1 and serves on a background thread; returns once it accepts connections.
    void start() {
        if (thread_.joinable()) return;
        register_routes();
        server_.set_tcp_nodelay(true);  // no Nagle delay on small JSON answers
        if (options_.port == 0) {
            port_ = server_.bind_to_any_port("127.0.0.1");
        } else {
            port_ = server_.bind_to_port("127.0.0.1", options_.port) ? options_.port : -1;
        }
        if (port_ <= 0) throw std::runtime_error("FakeDaytona: cannot bind 127.0.0.1:" + std::to_string(options_.port));
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!server_.is_running() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (!server_.is_running()) throw std::runtime_error("FakeDaytona: server did not start");
    }

    /// Stops serving, stops every sandbox's action server and removes the sandbox directories.
    void stop() {
        shell_.kill_all();
        if (thread_.joinable()) {
            server_.stop();
            thread_.join();
        }
        std::vector<std::shared_ptr<runbox::server::ActionServer>> servers;
        {
            std::lock_guard lock(mutex_);
            for (auto& [id, sb] : sandboxes_) {
                if (sb.server) servers.push_back(std::move(sb.server));
            }
        }
        for (auto& s : servers) s->stop();
        std::vector<std::thread> workers;
        {
            std::lock_guard lock(mutex_);
            workers.swap(workers_);
        }
        for (auto& w : workers) w.join();
        std::lock_guard lock(mutex_);
        for (auto& [id, sb] : sandboxes_) {
            std::error_code ec;
            if (!sb.directory.empty()) std::filesystem::remove_all(sb.directory, ec);
        }
    }

    int port() const { return port_; }
    std::string base_url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    /// The API base URL to configure clients with (DAYTONA_API_URL / apiUrl).
    std::string url() const { return base_url() + "/api"; }
    std::string toolbox_url() const { return base_url() + "/toolbox"; }

    /// Changes options (fault knobs) while running.
    void configure(const std::function<void(FakeDaytonaOptions&)>& change) {
        std::lock_guard lock(mutex_);
        change(options_);
    }

    /// Sandboxes that are running or on their way to it (desired state `started`, not failed or
    /// destroyed). A stop or delete request takes a sandbox out of this count at once.
    std::size_t running_sandboxes() {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (auto& [id, sb] : sandboxes_) {
            advance(sb);
            if (sb.desired_state == "started" && sb.state != "error" && sb.state != "build_failed" &&
                sb.state != "destroyed" && sb.state != "destroying")
                ++n;
        }
        return n;
    }

    /// Sandboxes not deleted (any state but destroying/destroyed).
    std::size_t existing_sandboxes() {
        std::lock_guard lock(mutex_);
        std::size_t n = 0;
        for (auto& [id, sb] : sandboxes_) {
            advance(sb);
            if (sb.state != "destroyed" && sb.state != "destroying") ++n;
        }
        return n;
    }

    /// Snapshot of every sandbox ever created (destroyed ones included).
    std::vector<FakeSandbox> sandboxes() {
        std::lock_guard lock(mutex_);
        std::vector<FakeSandbox> out;
        for (auto& [id, sb] : sandboxes_) {
            advance(sb);
            out.push_back(snapshot_of(sb));
        }
        std::sort(out.begin(), out.end(), [&](const FakeSandbox& a, const FakeSandbox& b) {
            return sandboxes_.at(a.id).seq < sandboxes_.at(b.id).seq;
        });
        return out;
    }

    std::optional<FakeSandbox> sandbox(const std::string& id) {
        std::lock_guard lock(mutex_);
        auto it = sandboxes_.find(id);
        if (it == sandboxes_.end()) return std::nullopt;
        advance(it->second);
        return snapshot_of(it->second);
    }

    /// Adds a sandbox directly (as if created earlier by someone else), in the given state. A
    /// `started` sandbox gets a running action server when `with_server` (as if its owner had
    /// started it), so a client can attach to it.
    std::string add_sandbox(std::map<std::string, std::string> labels, std::string state = "started",
                            bool is_public = true, bool with_server = true) {
        std::lock_guard lock(mutex_);
        Sandbox& sb = new_sandbox();
        sb.labels = std::move(labels);
        sb.is_public = is_public;
        sb.state = state;
        if (state == "stopped" || state == "stopping") sb.desired_state = "stopped";
        if (state == "archived" || state == "archiving") sb.desired_state = "archived";
        if (state == "stopping") schedule(sb, "stopped", options_.state_delay);
        if (state == "archiving") schedule(sb, "archived", options_.state_delay);
        if (state == "starting") schedule(sb, "started", options_.state_delay);
        if (state == "started" && with_server) start_server(sb, "runbox-server 4444");
        return sb.id;
    }

    /// Forces a state (e.g. to simulate a sandbox that failed or was stopped by auto-stop).
    void set_state(const std::string& id, const std::string& state, std::string error_reason = {}) {
        std::shared_ptr<runbox::server::ActionServer> server;
        {
            std::lock_guard lock(mutex_);
            auto it = sandboxes_.find(id);
            if (it == sandboxes_.end()) return;
            it->second.state = state;
            it->second.next_state.clear();
            if (state == "stopped" || state == "archived" || state == "destroyed") it->second.desired_state = state;
            if (state == "started") it->second.desired_state = "started";
            it->second.error_reason = std::move(error_reason);
            if (state != "started") server = std::move(it->second.server);
        }
        if (server) server->stop();
    }

    /// Every request received so far, in order.
    std::vector<FakeRequest> requests() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }

    void clear_requests() {
        std::lock_guard lock(mutex_);
        requests_.clear();
    }

private:
    struct Command {
        std::string id;
        std::string command;
        std::optional<int> exit_code;
        std::string out;
        std::string err;
    };
    struct Session {
        std::string id;
        std::vector<std::shared_ptr<Command>> commands;
    };
    struct Sandbox {
        std::uint64_t seq = 0;
        std::string id;
        std::string name;
        std::string state = "started";
        std::string desired_state = "started";
        std::string next_state;  // state reached at transition_at
        std::chrono::steady_clock::time_point transition_at{};
        std::string error_reason;
        std::string snapshot;
        std::string target;
        std::string user = "daytona";
        std::map<std::string, std::string> labels;
        std::map<std::string, std::string> env;
        bool is_public = false;
        int auto_stop_interval = 15;
        int auto_archive_interval = 10080;
        int auto_delete_interval = -1;
        std::string created_at;
        std::string updated_at;
        std::string preview_token;
        std::filesystem::path directory;
        std::shared_ptr<runbox::server::ActionServer> server;
        int server_port = 4444;
        std::string server_command;
        std::map<std::string, Session> sessions;
    };

    using Req = httplib::Request;
    using Res = httplib::Response;

    // ---- helpers (call with mutex_ held) ----------------------------------------------------

    std::string random_hex(std::size_t n) {
        static const char* digits = "0123456789abcdef";
        std::uniform_int_distribution<int> dist(0, 15);
        std::string s;
        for (std::size_t i = 0; i < n; ++i) s += digits[dist(rng_)];
        return s;
    }

    std::string new_uuid() {
        return random_hex(8) + "-" + random_hex(4) + "-" + random_hex(4) + "-" + random_hex(4) + "-" + random_hex(12);
    }

    Sandbox& new_sandbox() {
        std::string id = new_uuid();
        Sandbox& sb = sandboxes_[id];
        sb.seq = ++seq_;
        sb.id = id;
        sb.name = id;
        sb.target = options_.default_target;
        sb.created_at = sb.updated_at = detail_fake_daytona::iso_now();
        sb.preview_token = random_hex(32);
        char tmpl[] = "/tmp/runbox-fake-daytona-XXXXXX";
        if (char* dir = ::mkdtemp(tmpl)) sb.directory = dir;
        return sb;
    }

    void schedule(Sandbox& sb, std::string next, std::chrono::milliseconds delay) {
        sb.next_state = std::move(next);
        sb.transition_at = std::chrono::steady_clock::now() + delay;
        advance(sb);
    }

    void advance(Sandbox& sb) {
        if (sb.next_state.empty() || std::chrono::steady_clock::now() < sb.transition_at) return;
        sb.state = std::exchange(sb.next_state, {});
        sb.updated_at = detail_fake_daytona::iso_now();
        if (sb.state == "destroyed") {
            std::error_code ec;
            if (!sb.directory.empty()) std::filesystem::remove_all(sb.directory, ec);
        }
    }

    nlohmann::json dto(const Sandbox& sb) const {
        nlohmann::json j = {
            {"id", sb.id},
            {"organizationId", options_.organization_id},
            {"name", sb.name},
            {"user", sb.user},
            {"env", sb.env},
            {"labels", sb.labels},
            {"public", sb.is_public},
            {"networkBlockAll", false},
            {"target", sb.target},
            {"cpu", 1},
            {"gpu", 0},
            {"memory", 1},
            {"disk", 3},
            {"state", sb.state},
            {"desiredState", sb.desired_state},
            {"autoStopInterval", sb.auto_stop_interval},
            {"autoArchiveInterval", sb.auto_archive_interval},
            {"autoDeleteInterval", sb.auto_delete_interval},
            {"createdAt", sb.created_at},
            {"updatedAt", sb.updated_at},
            {"toolboxProxyUrl", toolbox_url()},
            {"daemonVersion", "0.190.0"},
        };
        if (!sb.snapshot.empty()) j["snapshot"] = sb.snapshot;
        if (!sb.error_reason.empty()) {
            j["errorReason"] = sb.error_reason;
            j["recoverable"] = false;
        }
        return j;
    }

    FakeSandbox snapshot_of(const Sandbox& sb) const {
        FakeSandbox out;
        out.id = sb.id;
        out.name = sb.name;
        out.state = sb.state;
        out.desired_state = sb.desired_state;
        out.error_reason = sb.error_reason;
        out.snapshot = sb.snapshot;
        out.target = sb.target;
        out.labels = sb.labels;
        out.env = sb.env;
        out.is_public = sb.is_public;
        out.auto_stop_interval = sb.auto_stop_interval;
        out.server_running = static_cast<bool>(sb.server);
        if (sb.server) out.server_url = sb.server->url();
        out.server_command = sb.server_command;
        out.directory = sb.directory;
        out.dto = dto(sb);
        return out;
    }

    static void send_json(Res& res, int status, const nlohmann::json& body) {
        res.status = status;
        res.set_content(body.dump(), "application/json");
    }

    // Daytona's API error body (NestJS exception filter).
    static void send_error(const Req& req, Res& res, int status, const std::string& message) {
        static const std::map<int, std::string> reasons = {
            {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
            {408, "Request Timeout"}, {409, "Conflict"}, {429, "Too Many Requests"},
            {500, "Internal Server Error"}, {502, "Bad Gateway"}};
        auto it = reasons.find(status);
        send_json(res, status,
                  {{"path", req.path}, {"timestamp", detail_fake_daytona::iso_now()}, {"statusCode", status},
                   {"error", it == reasons.end() ? "Error" : it->second}, {"message", message}});
    }

    void record(const Req& req) {
        FakeRequest r;
        r.method = req.method;
        r.path = req.path;
        r.target = req.target;
        for (const auto& [k, v] : req.params) r.params.emplace(k, v);
        for (const auto& [k, v] : req.headers) {
            auto name = detail_fake_daytona::lower(k);
            if (name == "remote_addr" || name == "remote_port" || name == "local_addr" || name == "local_port") continue;
            const bool secret = name == "authorization" || name == "x-daytona-preview-token" ||
                                name == "x-session-api-key" || name == "x-api-key";
            r.headers[name] = secret ? std::string("<redacted>") : v;
        }
        r.body = req.body;
        if (r.body.find("SESSION_API_KEY") != std::string::npos) {  // a create: the session key stays out of the log
            auto body = nlohmann::json::parse(r.body, nullptr, false);
            if (body.is_object() && body.contains("env") && body["env"].is_object() && body["env"].contains("SESSION_API_KEY")) {
                body["env"]["SESSION_API_KEY"] = "<redacted>";
                r.body = body.dump();
            }
        }
        if (req.is_multipart_form_data()) {
            for (const auto& [k, f] : req.files) r.body += "[part " + k + (f.filename.empty() ? "" : " file=" + f.filename) + "]";
        }
        requests_.push_back(std::move(r));
    }

    bool authorized(const Req& req) const {
        return req.get_header_value("Authorization") == "Bearer " + options_.api_key && !options_.api_key.empty();
    }

    static std::string throttler_for(const Req& req) {
        if (req.method == "POST" && req.path == "/api/sandbox") return "sandbox-create";
        static const std::regex lifecycle(R"(/api/sandbox/[^/]+(/(start|stop|archive))?)");
        if ((req.method == "POST" || req.method == "DELETE") && std::regex_match(req.path, lifecycle)) return "sandbox-lifecycle";
        return "authenticated";
    }

    using Handler = std::function<void(const Req&, Res&)>;

    // Wraps an API / toolbox handler: record, fault injection, auth, then the handler under lock.
    Handler api(Handler inner, bool is_api) {
        return [this, inner = std::move(inner), is_api](const Req& req, Res& res) {
            std::unique_lock lock(mutex_);
            record(req);
            if (is_api && options_.rate_limit_next > 0) {
                --options_.rate_limit_next;
                const std::string t = throttler_for(req);
                res.set_header("X-RateLimit-Limit-" + t, "10");
                res.set_header("X-RateLimit-Remaining-" + t, "0");
                res.set_header("X-RateLimit-Reset-" + t, std::to_string(options_.rate_limit_retry_after_seconds));
                res.set_header("Retry-After-" + t, std::to_string(options_.rate_limit_retry_after_seconds));
                send_json(res, 429, {{"statusCode", 429}, {"message", "Rate limit exceeded"}, {"error", "Too Many Requests"}});
                return;
            }
            if (!authorized(req)) {
                send_error(req, res, 401, "Invalid credentials");
                return;
            }
            lock.unlock();
            inner(req, res);
        };
    }

    // Finds a sandbox by id or name for an API call; answers 404 itself when absent.
    Sandbox* find(const Req& req, Res& res, const std::string& id_or_name) {
        auto it = sandboxes_.find(id_or_name);
        if (it == sandboxes_.end()) {
            it = std::find_if(sandboxes_.begin(), sandboxes_.end(),
                              [&](const auto& p) { return p.second.name == id_or_name; });
        }
        if (it != sandboxes_.end()) advance(it->second);
        if (it == sandboxes_.end() || it->second.state == "destroyed") {
            send_error(req, res, 404, "Sandbox with ID or name " + id_or_name + " not found");
            return nullptr;
        }
        return &it->second;
    }

    // Toolbox calls need a started sandbox (the proxy cannot reach a stopped one).
    Sandbox* find_started(const Req& req, Res& res, const std::string& id) {
        Sandbox* sb = find(req, res, id);
        if (sb && sb->state != "started") {
            send_json(res, 409, {{"statusCode", 409}, {"message", "Sandbox is not running"}, {"code", "CONFLICT"},
                                 {"source", "DAYTONA_PROXY"}});
            return nullptr;
        }
        return sb;
    }

    std::shared_ptr<runbox::server::ActionServer> take_server(Sandbox& sb) {
        sb.server_command.clear();
        sb.sessions.clear();
        return std::move(sb.server);
    }

    // ---- routes -----------------------------------------------------------------------------

    void register_routes() {
        namespace fs = std::filesystem;
        auto& s = server_;
        // Proxied actions can block a worker for minutes; keep plenty for everything else.
        s.new_task_queue = [] { return new httplib::ThreadPool(32); };

        s.Post("/api/sandbox", api([this](const Req& req, Res& res) { create(req, res); }, true));
        s.Get("/api/sandbox", api([this](const Req& req, Res& res) { list(req, res); }, true));
        s.Get(R"(/api/sandbox/([^/]+))", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (Sandbox* sb = find(req, res, req.matches[1])) send_json(res, 200, dto(*sb));
              }, true));
        s.Delete(R"(/api/sandbox/([^/]+))", api([this](const Req& req, Res& res) { remove(req, res); }, true));
        s.Post(R"(/api/sandbox/([^/]+)/start)", api([this](const Req& req, Res& res) { start_sandbox(req, res); }, true));
        s.Post(R"(/api/sandbox/([^/]+)/stop)", api([this](const Req& req, Res& res) { stop_sandbox(req, res, "stopped"); }, true));
        s.Post(R"(/api/sandbox/([^/]+)/archive)", api([this](const Req& req, Res& res) { stop_sandbox(req, res, "archived"); }, true));
        s.Post(R"(/api/sandbox/([^/]+)/(autostop|autoarchive|autodelete)/(-?\d+))", api([this](const Req& req, Res& res) {
                   std::lock_guard lock(mutex_);
                   if (Sandbox* sb = find(req, res, req.matches[1])) {
                       const int minutes = std::stoi(req.matches[3]);
                       const std::string what = req.matches[2];
                       (what == "autostop" ? sb->auto_stop_interval
                                           : what == "autoarchive" ? sb->auto_archive_interval : sb->auto_delete_interval) = minutes;
                       res.status = 200;
                   }
               }, true));
        s.Put(R"(/api/sandbox/([^/]+)/labels)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (Sandbox* sb = find(req, res, req.matches[1])) {
                      auto body = nlohmann::json::parse(req.body, nullptr, false);
                      if (body.is_discarded() || !body.contains("labels") || !body["labels"].is_object()) {
                          send_error(req, res, 400, "labels must be an object");
                          return;
                      }
                      sb->labels = body["labels"].get<std::map<std::string, std::string>>();
                      send_json(res, 200, {{"labels", sb->labels}});
                  }
              }, true));
        s.Get(R"(/api/sandbox/([^/]+)/ports/(\d+)/preview-url)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (Sandbox* sb = find(req, res, req.matches[1])) {
                      const std::string port = req.matches[2];
                      send_json(res, 200, {{"sandboxId", sb->id},
                                           {"url", base_url() + "/preview/" + sb->id + "/" + port},
                                           {"token", sb->preview_token}});
                  }
              }, true));
        s.Get(R"(/api/sandbox/([^/]+)/toolbox-proxy-url)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (find(req, res, req.matches[1])) send_json(res, 200, {{"url", toolbox_url()}});
              }, true));

        // Toolbox: process.
        s.Post(R"(/toolbox/([^/]+)/process/execute)", api([this](const Req& req, Res& res) { execute(req, res); }, false));
        s.Post(R"(/toolbox/([^/]+)/process/session)", api([this](const Req& req, Res& res) {
                   std::lock_guard lock(mutex_);
                   Sandbox* sb = find_started(req, res, req.matches[1]);
                   if (!sb) return;
                   auto body = nlohmann::json::parse(req.body, nullptr, false);
                   if (body.is_discarded() || !body.contains("sessionId") || !body["sessionId"].is_string()) {
                       send_error(req, res, 400, "sessionId is required");
                       return;
                   }
                   const std::string sid = body["sessionId"];
                   if (sb->sessions.count(sid)) {
                       send_error(req, res, 409, "session already exists");
                       return;
                   }
                   sb->sessions[sid].id = sid;
                   res.status = 201;
               }, false));
        s.Get(R"(/toolbox/([^/]+)/process/session)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  Sandbox* sb = find_started(req, res, req.matches[1]);
                  if (!sb) return;
                  nlohmann::json out = nlohmann::json::array();
                  for (const auto& [id, session] : sb->sessions) out.push_back(session_json(session));
                  send_json(res, 200, out);
              }, false));
        s.Get(R"(/toolbox/([^/]+)/process/session/([^/]+))", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  Sandbox* sb = find_started(req, res, req.matches[1]);
                  if (!sb) return;
                  auto it = sb->sessions.find(req.matches[2]);
                  if (it == sb->sessions.end()) return send_error(req, res, 404, "session not found");
                  send_json(res, 200, session_json(it->second));
              }, false));
        s.Delete(R"(/toolbox/([^/]+)/process/session/([^/]+))", api([this](const Req& req, Res& res) {
                     std::lock_guard lock(mutex_);
                     Sandbox* sb = find_started(req, res, req.matches[1]);
                     if (!sb) return;
                     if (!sb->sessions.erase(req.matches[2])) return send_error(req, res, 404, "session not found");
                     res.status = 204;
                 }, false));
        s.Post(R"(/toolbox/([^/]+)/process/session/([^/]+)/exec)", api([this](const Req& req, Res& res) { session_exec(req, res); }, false));
        s.Get(R"(/toolbox/([^/]+)/process/session/([^/]+)/command/([^/]+))", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  auto cmd = find_command(req, res);
                  if (!cmd) return;
                  nlohmann::json j = {{"id", cmd->id}, {"command", cmd->command}};
                  if (cmd->exit_code) j["exitCode"] = *cmd->exit_code;
                  send_json(res, 200, j);
              }, false));
        s.Get(R"(/toolbox/([^/]+)/process/session/([^/]+)/command/([^/]+)/logs)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  auto cmd = find_command(req, res);
                  if (!cmd) return;
                  send_json(res, 200, {{"output", cmd->out + cmd->err}, {"stdout", cmd->out}, {"stderr", cmd->err}});
              }, false));

        // Toolbox: files (paths are inside the sandbox directory; relative = from the home dir).
        s.Get(R"(/toolbox/([^/]+)/user-home-dir)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (find_started(req, res, req.matches[1])) send_json(res, 200, {{"dir", "/home/daytona"}});
              }, false));
        s.Get(R"(/toolbox/([^/]+)/work-dir)", api([this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (find_started(req, res, req.matches[1])) send_json(res, 200, {{"dir", "/home/daytona"}});
              }, false));
        s.Get(R"(/toolbox/([^/]+)/files)", api([this](const Req& req, Res& res) {
                  auto path = file_path(req, res, req.get_param_value("path"));
                  if (!path) return;
                  std::error_code ec;
                  if (!fs::is_directory(*path, ec)) return send_error(req, res, 404, "directory not found");
                  nlohmann::json out = nlohmann::json::array();
                  for (const auto& entry : fs::directory_iterator(*path, ec)) out.push_back(file_info(entry.path()));
                  send_json(res, 200, out);
              }, false));
        s.Get(R"(/toolbox/([^/]+)/files/info)", api([this](const Req& req, Res& res) {
                  auto path = file_path(req, res, req.get_param_value("path"));
                  if (!path) return;
                  std::error_code ec;
                  if (!fs::exists(*path, ec)) return send_error(req, res, 404, "file not found");
                  send_json(res, 200, file_info(*path));
              }, false));
        s.Get(R"(/toolbox/([^/]+)/files/download)", api([this](const Req& req, Res& res) {
                  auto path = file_path(req, res, req.get_param_value("path"));
                  if (!path) return;
                  std::ifstream in(*path, std::ios::binary);
                  if (!in) return send_error(req, res, 404, "file not found");
                  std::stringstream ss;
                  ss << in.rdbuf();
                  res.set_content(ss.str(), "application/octet-stream");
              }, false));
        s.Post(R"(/toolbox/([^/]+)/files/folder)", api([this](const Req& req, Res& res) {
                   auto path = file_path(req, res, req.get_param_value("path"));
                   if (!path) return;
                   std::error_code ec;
                   fs::create_directories(*path, ec);
                   res.status = ec ? 400 : 201;
               }, false));
        s.Delete(R"(/toolbox/([^/]+)/files)", api([this](const Req& req, Res& res) {
                     auto path = file_path(req, res, req.get_param_value("path"));
                     if (!path) return;
                     std::error_code ec;
                     if (!fs::exists(*path, ec)) return send_error(req, res, 404, "file not found");
                     fs::remove_all(*path, ec);
                     res.status = 204;
                 }, false));
        auto upload_one = [this](const Req& req, Res& res) {
            auto path = file_path(req, res, req.get_param_value("path"));
            if (!path) return;
            if (!req.has_file("file")) return send_error(req, res, 400, "file is required");
            write_file(*path, req.get_file_value("file").content);
            res.status = 200;
        };
        s.Post(R"(/toolbox/([^/]+)/files/upload)", api(upload_one, false));
        s.Post(R"(/toolbox/([^/]+)/files/upload-v2)", api(upload_one, false));
        s.Post(R"(/toolbox/([^/]+)/files/bulk-upload)", api([this](const Req& req, Res& res) {
                   for (int i = 0;; ++i) {
                       const std::string key = "files[" + std::to_string(i) + "]";
                       if (!req.has_file(key + ".path") || !req.has_file(key + ".file")) break;
                       auto path = file_path(req, res, req.get_file_value(key + ".path").content);
                       if (!path) return;
                       write_file(*path, req.get_file_value(key + ".file").content);
                   }
                   res.status = 200;
               }, false));
        s.Post(R"(/toolbox/([^/]+)/files/bulk-download)", api([this](const Req& req, Res& res) {
                   auto body = nlohmann::json::parse(req.body, nullptr, false);
                   if (body.is_discarded() || !body.contains("paths") || !body["paths"].is_array())
                       return send_error(req, res, 400, "paths is required");
                   const std::string boundary = "runbox-fake-" + std::to_string(port_);
                   std::string out;
                   for (const auto& p : body["paths"]) {
                       const std::string requested = p.is_string() ? p.get<std::string>() : "";
                       auto path = file_path(req, res, requested);
                       if (!path) return;
                       std::ifstream in(*path, std::ios::binary);
                       out += "--" + boundary + "\r\n";
                       if (in) {
                           std::stringstream ss;
                           ss << in.rdbuf();
                           out += "Content-Disposition: form-data; name=\"file\"; filename=\"" + requested +
                                  "\"\r\nContent-Type: application/octet-stream\r\n\r\n" + ss.str() + "\r\n";
                       } else {
                           out += "Content-Disposition: form-data; name=\"error\"; filename=\"" + requested +
                                  "\"\r\nContent-Type: application/json\r\n\r\n" +
                                  nlohmann::json({{"message", "file not found"}, {"statusCode", 404}, {"code", "FILE_NOT_FOUND"}}).dump() +
                                  "\r\n";
                       }
                   }
                   out += "--" + boundary + "--\r\n";
                   res.set_content(out, ("multipart/form-data; boundary=" + boundary).c_str());
               }, false));

        // Preview proxy: /preview/{id}/{port}/rest -> the sandbox's action server.
        const std::string preview = R"(/preview/([^/]+)/(\d+)(/.*)?)";
        s.Get(preview, [this](const Req& req, Res& res) { proxy(req, res); });
        s.Post(preview, [this](const Req& req, Res& res) { proxy(req, res); });
        s.Put(preview, [this](const Req& req, Res& res) { proxy(req, res); });
        s.Delete(preview, [this](const Req& req, Res& res) { proxy(req, res); });
        s.Patch(preview, [this](const Req& req, Res& res) { proxy(req, res); });
        s.Options(preview, [this](const Req& req, Res& res) { proxy(req, res); });

        // Anything else (including /api/socket.io/, so SDKs fall back to polling): 404 + record.
        s.set_error_handler([this](const Req& req, Res& res) {
            if (res.status == 404 && res.body.empty()) {
                {
                    std::lock_guard lock(mutex_);
                    record(req);
                }
                send_error(req, res, 404, "Cannot " + req.method + " " + req.path);
            }
        });
    }

    void create(const Req& req, Res& res) {
        std::lock_guard lock(mutex_);
        auto body = nlohmann::json::parse(req.body, nullptr, false);
        if (body.is_discarded() || !body.is_object()) return send_error(req, res, 400, "Invalid request body");
        if (body.contains("snapshot") && (body.contains("cpu") || body.contains("memory") || body.contains("disk") || body.contains("gpu")))
            return send_error(req, res, 400, "Cannot specify Sandbox resources when using a snapshot");
        if (options_.create_outcome == FakeCreateOutcome::http_error)
            return send_error(req, res, options_.create_error_status, options_.create_error_reason);
        try {
            Sandbox& sb = new_sandbox();
            if (body.contains("name") && body["name"].is_string()) sb.name = body["name"];
            if (body.contains("snapshot") && body["snapshot"].is_string()) sb.snapshot = body["snapshot"];
            if (body.contains("user") && body["user"].is_string()) sb.user = body["user"];
            if (body.contains("env")) sb.env = body["env"].get<std::map<std::string, std::string>>();
            if (body.contains("labels")) sb.labels = body["labels"].get<std::map<std::string, std::string>>();
            if (body.contains("public")) sb.is_public = body["public"].get<bool>();
            if (body.contains("target")) sb.target = body["target"].get<std::string>();
            if (body.contains("autoStopInterval")) sb.auto_stop_interval = body["autoStopInterval"].get<int>();
            if (body.contains("autoArchiveInterval")) sb.auto_archive_interval = body["autoArchiveInterval"].get<int>();
            if (body.contains("autoDeleteInterval")) sb.auto_delete_interval = body["autoDeleteInterval"].get<int>();
            switch (options_.create_outcome) {
                case FakeCreateOutcome::error_state:
                    sb.state = "creating";
                    sb.error_reason = options_.create_error_reason;
                    schedule(sb, "error", options_.state_delay);
                    break;
                case FakeCreateOutcome::build_failed:
                    sb.state = "pending_build";
                    sb.error_reason = options_.create_error_reason;
                    schedule(sb, "build_failed", options_.state_delay);
                    break;
                default:
                    sb.state = "creating";
                    schedule(sb, "started", options_.create_delay);
                    break;
            }
            send_json(res, 200, dto(sb));
        } catch (const nlohmann::json::exception& e) {
            send_error(req, res, 400, std::string("Invalid request body: ") + e.what());
        }
    }

    void list(const Req& req, Res& res) {
        std::lock_guard lock(mutex_);
        std::map<std::string, std::string> wanted;
        if (req.has_param("labels")) {
            auto labels = nlohmann::json::parse(req.get_param_value("labels"), nullptr, false);
            if (labels.is_discarded() || !labels.is_object()) return send_error(req, res, 400, "labels must be a JSON object");
            for (const auto& [k, v] : labels.items()) wanted[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
        std::set<std::string> states;
        for (std::size_t i = 0; i < req.get_param_value_count("states"); ++i) states.insert(req.get_param_value("states", i));
        int limit = 100;
        if (req.has_param("limit")) {
            try {
                limit = std::stoi(req.get_param_value("limit"));
            } catch (...) {
                return send_error(req, res, 400, "limit must be a number");
            }
            if (limit < 1 || limit > 200) return send_error(req, res, 400, "limit must be between 1 and 200");
        }
        limit = std::min(limit, options_.max_page_size);
        std::size_t offset = 0;
        if (req.has_param("cursor")) {
            try {
                offset = static_cast<std::size_t>(std::stoul(req.get_param_value("cursor")));
            } catch (...) {
                return send_error(req, res, 400, "invalid cursor");
            }
        }
        std::vector<Sandbox*> matching;
        for (auto& [id, sb] : sandboxes_) {
            advance(sb);
            if (sb.state == "destroyed") continue;
            if (!states.empty() && !states.count(sb.state)) continue;
            bool ok = true;
            for (const auto& [k, v] : wanted) {
                auto it = sb.labels.find(k);
                if (it == sb.labels.end() || it->second != v) ok = false;
            }
            if (ok) matching.push_back(&sb);
        }
        // Newest first, like the default sort.
        std::sort(matching.begin(), matching.end(), [](const Sandbox* a, const Sandbox* b) { return a->seq > b->seq; });
        nlohmann::json items = nlohmann::json::array();
        for (std::size_t i = offset; i < matching.size() && items.size() < static_cast<std::size_t>(limit); ++i)
            items.push_back(dto(*matching[i]));
        const std::size_t next = offset + items.size();
        send_json(res, 200, {{"items", items}, {"nextCursor", next < matching.size() ? nlohmann::json(std::to_string(next)) : nlohmann::json()}});
    }

    void start_sandbox(const Req& req, Res& res) {
        std::lock_guard lock(mutex_);
        Sandbox* sb = find(req, res, req.matches[1]);
        if (!sb) return;
        if (sb->state == "error" || sb->state == "build_failed" || sb->state == "destroying")
            return send_error(req, res, 409, "Sandbox is in state " + sb->state + " and cannot be started");
        if (sb->state != "started" && sb->state != "starting") {
            sb->preview_token = random_hex(32);  // the auth token resets on restart
            sb->state = "starting";
            schedule(*sb, "started", options_.state_delay + options_.start_delay);
        }
        sb->desired_state = "started";
        send_json(res, 200, dto(*sb));
    }

    void stop_sandbox(const Req& req, Res& res, const std::string& target_state) {
        std::shared_ptr<runbox::server::ActionServer> server;
        {
            std::lock_guard lock(mutex_);
            Sandbox* sb = find(req, res, req.matches[1]);
            if (!sb) return;
            if (sb->state == "destroying") return send_error(req, res, 409, "Sandbox is being destroyed");
            if (sb->state != target_state) {
                sb->state = target_state == "archived" ? "archiving" : "stopping";
                schedule(*sb, target_state, options_.state_delay);
            }
            sb->desired_state = target_state;
            server = take_server(*sb);
            send_json(res, 200, dto(*sb));
        }
        if (server) server->stop();
    }

    void remove(const Req& req, Res& res) {
        std::shared_ptr<runbox::server::ActionServer> server;
        {
            std::lock_guard lock(mutex_);
            Sandbox* sb = find(req, res, req.matches[1]);
            if (!sb) return;
            sb->state = "destroying";
            sb->desired_state = "destroyed";
            schedule(*sb, "destroyed", options_.state_delay);
            server = take_server(*sb);
            send_json(res, 200, dto(*sb));
        }
        if (server) server->stop();
    }

    static nlohmann::json session_json(const Session& session) {
        nlohmann::json cmds = nlohmann::json::array();
        for (const auto& c : session.commands) {
            nlohmann::json j = {{"id", c->id}, {"command", c->command}};
            if (c->exit_code) j["exitCode"] = *c->exit_code;
            cmds.push_back(j);
        }
        return {{"sessionId", session.id}, {"commands", cmds}};
    }

    std::shared_ptr<Command> find_command(const Req& req, Res& res) {
        Sandbox* sb = find_started(req, res, req.matches[1]);
        if (!sb) return nullptr;
        auto it = sb->sessions.find(req.matches[2]);
        if (it == sb->sessions.end()) {
            send_error(req, res, 404, "session not found");
            return nullptr;
        }
        for (auto& c : it->second.commands) {
            if (c->id == req.matches[3].str()) return c;
        }
        send_error(req, res, 404, "command not found");
        return nullptr;
    }

    static bool is_server_command(const std::string& command) {
        return command.find("action_execution_server") != std::string::npos ||
               command.find("runbox-server") != std::string::npos;
    }

    // The port the server command asks for: "--port N", or the first number after the program.
    static int server_port_of(const std::string& command) {
        std::istringstream in(command);
        std::vector<std::string> words;
        for (std::string w; in >> w;) words.push_back(w);
        bool after_program = false;
        for (std::size_t i = 0; i < words.size(); ++i) {
            if (words[i] == "--port" && i + 1 < words.size()) return std::atoi(words[i + 1].c_str());
            if (is_server_command(words[i])) {
                after_program = true;
                continue;
            }
            if (after_program && !words[i].empty() &&
                std::all_of(words[i].begin(), words[i].end(), [](unsigned char c) { return std::isdigit(c); }))
                return std::atoi(words[i].c_str());
        }
        return 4444;
    }

    static std::string flag_value(const std::string& command, const std::string& flag) {
        std::istringstream in(command);
        std::vector<std::string> words;
        for (std::string w; in >> w;) words.push_back(w);
        for (std::size_t i = 0; i + 1 < words.size(); ++i) {
            if (words[i] == flag) return words[i + 1];
        }
        return {};
    }

    // Starts the sandbox's action server (mutex_ held): a fresh server in the sandbox directory,
    // with the sandbox env and HOME inside the sandbox so nothing touches the real home.
    void start_server(Sandbox& sb, const std::string& command) {
        runbox::server::ActionServerOptions so;
        so.working_dir = sb.directory.string();
        so.plugins = options_.server_plugins;
        so.env = sb.env;
        so.env["HOME"] = sb.directory.string();
        // The server reads its key from the environment; its shell never sees it.
        if (auto it = so.env.find("SESSION_API_KEY"); it != so.env.end()) {
            so.session_api_key = it->second;
            so.env.erase(it);
        }
        auto server = std::make_shared<runbox::server::ActionServer>(std::move(so));
        server->start();
        sb.server = std::move(server);
        sb.server_port = server_port_of(command);
        sb.server_command = command;
    }

    void session_exec(const Req& req, Res& res) {
        auto body = nlohmann::json::parse(req.body, nullptr, false);
        std::unique_lock lock(mutex_);
        Sandbox* sb = find_started(req, res, req.matches[1]);
        if (!sb) return;
        auto sit = sb->sessions.find(req.matches[2]);
        if (sit == sb->sessions.end()) return send_error(req, res, 404, "session not found");
        if (body.is_discarded() || !body.contains("command") || !body["command"].is_string())
            return send_error(req, res, 400, "command is required");
        const std::string command = body["command"];
        const bool run_async = body.value("runAsync", false) || body.value("async", false);
        auto cmd = std::make_shared<Command>();
        cmd->id = new_uuid();
        cmd->command = command;
        sit->second.commands.push_back(cmd);

        if (is_server_command(command)) {
            if (sb->server) return send_error(req, res, 409, "the action server is already running");
            start_server(*sb, command);
            if (run_async) return send_json(res, 202, {{"cmdId", cmd->id}});
            cmd->exit_code = 0;
            return send_json(res, 200, {{"cmdId", cmd->id}, {"exitCode", 0}, {"output", ""}, {"stdout", ""}, {"stderr", ""}});
        }

        const auto dir = sb->directory;
        auto env = sb->env;
        env["HOME"] = sb->directory.string();
        if (run_async) {
            workers_.emplace_back([this, cmd, dir, env] {
                auto r = shell_.run(cmd->command, dir, env, std::chrono::hours(1), false);
                std::lock_guard worker_lock(mutex_);
                cmd->out = r.out;
                cmd->err = r.err;
                cmd->exit_code = r.exit_code;
            });
            return send_json(res, 202, {{"cmdId", cmd->id}});
        }
        lock.unlock();
        auto r = shell_.run(command, dir, env, std::chrono::hours(1), false);
        lock.lock();
        cmd->out = r.out;
        cmd->err = r.err;
        cmd->exit_code = r.exit_code;
        send_json(res, 200, {{"cmdId", cmd->id}, {"exitCode", r.exit_code}, {"output", r.out + r.err}, {"stdout", r.out}, {"stderr", r.err}});
    }

    void execute(const Req& req, Res& res) {
        auto body = nlohmann::json::parse(req.body, nullptr, false);
        std::unique_lock lock(mutex_);
        Sandbox* sb = find_started(req, res, req.matches[1]);
        if (!sb) return;
        if (body.is_discarded() || !body.contains("command") || !body["command"].is_string())
            return send_error(req, res, 400, "command is required");
        const std::string command = body["command"];
        if (command.find_first_not_of(" \t\r\n") == std::string::npos) return send_error(req, res, 400, "empty command");
        auto env = sb->env;
        env["HOME"] = sb->directory.string();
        if (body.contains("envs") && body["envs"].is_object()) {
            for (const auto& [k, v] : body["envs"].items()) env[k] = v.is_string() ? v.get<std::string>() : v.dump();
        }
        auto dir = sb->directory;
        if (body.contains("cwd") && body["cwd"].is_string()) {
            std::error_code ec;
            const std::string cwd = body["cwd"];
            if (std::filesystem::is_directory(cwd, ec)) dir = cwd;
        }
        const int timeout_s = body.contains("timeout") && body["timeout"].is_number() ? body["timeout"].get<int>() : 0;
        lock.unlock();
        auto r = shell_.run(command, dir, env, timeout_s > 0 ? std::chrono::milliseconds(timeout_s * 1000) : std::chrono::milliseconds(std::chrono::hours(1)), true);
        if (r.exit_code == -2) {
            return send_json(res, 408, {{"statusCode", 408}, {"message", "command execution timeout"}, {"code", "REQUEST_TIMEOUT"},
                                        {"timestamp", detail_fake_daytona::iso_now()}, {"path", "/process/execute"},
                                        {"method", "POST"}, {"source", "DAYTONA_DAEMON"}});
        }
        send_json(res, 200, {{"exitCode", r.exit_code}, {"result", r.out}});
    }

    // Maps a sandbox path to the sandbox directory ("/a" and "a" -> <dir>/home/daytona/a for
    // relative paths, <dir>/a for absolute ones); answers the error itself.
    std::optional<std::filesystem::path> file_path(const Req& req, Res& res, const std::string& path) {
        std::lock_guard lock(mutex_);
        Sandbox* sb = find_started(req, res, req.matches[1]);
        if (!sb) return std::nullopt;
        if (path.empty()) {
            send_error(req, res, 400, "path is required");
            return std::nullopt;
        }
        std::filesystem::path rel = path[0] == '/' ? std::filesystem::path(path).relative_path()
                                                   : std::filesystem::path("home/daytona") / path;
        rel = rel.lexically_normal();
        if (!rel.empty() && *rel.begin() == "..") {
            send_error(req, res, 400, "path escapes the sandbox");
            return std::nullopt;
        }
        return sb->directory / rel;
    }

    static void write_file(const std::filesystem::path& path, const std::string& content) {
        std::error_code ec;
        std::filesystem::create_directories(path.parent_path(), ec);
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out << content;
    }

    static nlohmann::json file_info(const std::filesystem::path& path) {
        std::error_code ec;
        const bool dir = std::filesystem::is_directory(path, ec);
        const auto size = dir ? 0 : std::filesystem::file_size(path, ec);
        return {{"name", path.filename().string()}, {"isDir", dir}, {"size", ec ? 0 : size},
                {"mode", dir ? "drwxr-xr-x" : "-rw-r--r--"}, {"permissions", dir ? "0755" : "0644"},
                {"owner", "daytona"}, {"group", "daytona"}, {"modTime", detail_fake_daytona::iso_now()},
                {"modifiedAt", detail_fake_daytona::iso_now()}};
    }

    void proxy(const Req& req, Res& res) {
        std::shared_ptr<runbox::server::ActionServer> server;
        {
            std::lock_guard lock(mutex_);
            record(req);
            auto it = sandboxes_.find(req.matches[1]);
            if (it == sandboxes_.end()) return send_error(req, res, 404, "sandbox not found");
            Sandbox& sb = it->second;
            advance(sb);
            if (!sb.is_public) {
                const bool header_ok = req.get_header_value("X-Daytona-Preview-Token") == sb.preview_token;
                const bool query_ok = req.get_param_value("DAYTONA_SANDBOX_AUTH_KEY") == sb.preview_token;
                if (!header_ok && !query_ok) return send_error(req, res, 401, "Unauthorized: missing or invalid preview token");
            }
            if (options_.preview_bad_gateway_next > 0) {
                --options_.preview_bad_gateway_next;
                return send_json(res, 502, {{"statusCode", 502}, {"message", "Bad Gateway"}, {"source", "DAYTONA_PROXY"}});
            }
            if (sb.state != "started" || !sb.server || std::to_string(sb.server_port) != req.matches[2].str())
                return send_json(res, 502, {{"statusCode", 502}, {"message", "Bad Gateway: no service on port " + req.matches[2].str()},
                                            {"source", "DAYTONA_PROXY"}});
            server = sb.server;
        }
        std::string path = req.matches[3].str();
        if (path.empty()) path = "/";
        if (auto q = req.target.find('?'); q != std::string::npos) path += req.target.substr(q);
        httplib::Client client("127.0.0.1", server->port());
        client.set_connection_timeout(std::chrono::seconds(5));
        client.set_read_timeout(std::chrono::seconds(900));
        client.set_write_timeout(std::chrono::seconds(60));
        httplib::Headers headers;
        for (const auto& [k, v] : req.headers) {
            const auto name = detail_fake_daytona::lower(k);
            if (name == "host" || name == "content-length" || name == "x-daytona-preview-token" || name == "connection" ||
                name == "remote_addr" || name == "remote_port" || name == "local_addr" || name == "local_port" ||
                name == "transfer-encoding" || name == "accept-encoding" || (name == "content-type" && req.is_multipart_form_data()))
                continue;
            headers.emplace(k, v);
        }
        httplib::Result result{nullptr, httplib::Error::Unknown};
        const std::string content_type = req.get_header_value("Content-Type");
        if (req.is_multipart_form_data()) {
            httplib::MultipartFormDataItems items;
            for (const auto& [name, part] : req.files) items.push_back(part);
            result = req.method == "PUT" ? client.Put(path.c_str(), headers, items) : client.Post(path.c_str(), headers, items);
        } else if (req.method == "GET") {
            result = client.Get(path.c_str(), headers);
        } else if (req.method == "POST") {
            result = client.Post(path.c_str(), headers, req.body, content_type.c_str());
        } else if (req.method == "PUT") {
            result = client.Put(path.c_str(), headers, req.body, content_type.c_str());
        } else if (req.method == "PATCH") {
            result = client.Patch(path.c_str(), headers, req.body, content_type.c_str());
        } else if (req.method == "DELETE") {
            result = client.Delete(path.c_str(), headers, req.body, content_type.c_str());
        } else {
            result = client.Options(path.c_str(), headers);
        }
        if (!result) {
            return send_json(res, 502, {{"statusCode", 502}, {"message", "Bad Gateway: " + httplib::to_string(result.error())},
                                        {"source", "DAYTONA_PROXY"}});
        }
        res.status = result->status;
        std::string type = "application/octet-stream";
        for (const auto& [k, v] : result->headers) {
            const auto name = detail_fake_daytona::lower(k);
            if (name == "content-type") {
                type = v;
            } else if (name != "content-length" && name != "transfer-encoding" && name != "connection" && name != "keep-alive") {
                res.set_header(k.c_str(), v);
            }
        }
        res.set_content(result->body, type.c_str());
    }

    FakeDaytonaOptions options_;
    httplib::Server server_;
    std::thread thread_;
    int port_ = -1;
    mutable std::mutex mutex_;
    std::map<std::string, Sandbox> sandboxes_;
    std::vector<FakeRequest> requests_;
    std::vector<std::thread> workers_;
    std::uint64_t seq_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
    detail_fake_daytona::ShellRunner shell_;
};

}  // namespace runbox::testing
