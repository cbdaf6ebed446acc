// runbox/testing/fake_runloop.hpp - an in-process fake of Runloop's devbox API for offline tests.
//
// FakeRunloop serves the subset of https://api.runloop.ai that runbox and the official
// `@runloop/api-client` use (reference: provider-apis.md §3) on 127.0.0.1 with cpp-httplib:
// devbox create / retrieve / update / list (starting_after + limit + status, has_more), the
// wait_for_status long-poll (408 when the hold ends), shutdown, suspend/resume, keep_alive, V2 tunnels
// (enable_tunnel / remove_tunnel), command execution (execute, execute_sync, execute_async,
// executions wait/get/kill) and text/binary file transfer. Requests need
// `Authorization: Bearer <api_key>`; errors carry Runloop's `{"message": ...}` body.
//
// A devbox moves provisioning -> initializing -> running over (configurable) time. When it reaches
// running, a REAL runbox::server::ActionServer is started for it in a fresh temp directory (the
// devbox's "file system"), standing for the entrypoint; shutdown stops it and removes the directory.
// The real tunnel URL is https://{port}-{tunnel_key}.tunnel.runloop.ai; the fake serves tunnels
// path-based under its own URL, `tunnel_url_template()` = "http://127.0.0.1:P/tunnel/{port}-{tunnel_key}",
// and forwards them to the devbox's action server (which stands for port `server_port`, 4444).
//
// Devbox statuses are advanced lazily (on every request and accessor), so there is no ticker thread.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "runbox/error.hpp"
#include "runbox/server/action_server.hpp"

extern "C" char** environ;  // POSIX: the environment handed to commands

namespace runbox::testing {

/// What a newly created devbox does after `initializing`.
enum class FakeBootOutcome { running, failure, shutdown };

struct FakeRunloopOptions {
    std::string api_key = "rl_fake_key";  ///< the only bearer token accepted
    std::string host = "127.0.0.1";
    int port = 0;                         ///< 0 = any free port
    std::chrono::milliseconds provisioning_delay{50};   ///< provisioning -> initializing
    std::chrono::milliseconds initializing_delay{50};   ///< initializing -> running (or the boot outcome)
    std::chrono::milliseconds long_poll_timeout{1000};  ///< wait_for_status hold before 408 (real API: ~30 s)
    int server_port = 4444;               ///< the in-devbox port the action server stands for
    bool start_action_servers = true;     ///< false: devboxes run without a backing server
    std::chrono::milliseconds no_change_timeout{10000};  ///< passed to each ActionServer
    std::string temp_root;                ///< where devbox directories go; empty = system temp dir
    std::size_t worker_threads = 32;      ///< long-polls and proxied commands each hold one
};

/// One request the fake received, with credentials redacted.
struct FakeRunloopRequest {
    std::string method;
    std::string path;                            ///< without the query string
    std::map<std::string, std::string> query;
    std::map<std::string, std::string> headers;  ///< lower-case names; credentials as "Bearer ***"
    std::string body;  ///< secrets replaced by "***"; multipart parts summarised; tunnel bodies as "<N bytes>"
    int status = 0;                              ///< the status the fake answered
    bool tunnel = false;                         ///< a request through a tunnel (not the API)

    /// The body parsed as JSON, or null when it is not JSON.
    nlohmann::json json() const {
        auto parsed = nlohmann::json::parse(body, nullptr, false);
        return parsed.is_discarded() ? nlohmann::json() : parsed;
    }
};

/// A failure the fake answers instead of handling a matching request, `count` times.
struct FakeRunloopFailure {
    int status = 429;
    int count = 1;
    std::string method;         ///< empty = any
    std::string path_contains;  ///< empty = any
    bool tunnel = false;        ///< true: applies to tunnel requests; false: to API requests
    std::optional<std::chrono::milliseconds> retry_after_ms;  ///< sent as `retry-after-ms`
    std::optional<std::chrono::seconds> retry_after;          ///< sent as `retry-after`
    std::string message = "injected failure";
};

/// A snapshot of one devbox (copy; safe to keep).
struct FakeRunloopDevbox {
    std::string id;
    std::string name;
    std::string status;
    nlohmann::json create_request;        ///< the create body, secrets redacted
    nlohmann::json metadata = nlohmann::json::object();
    nlohmann::json environment_variables = nlohmann::json::object();  ///< secrets redacted
    nlohmann::json launch_parameters = nlohmann::json::object();
    std::string entrypoint;
    std::optional<std::string> failure_reason;
    std::optional<std::string> shutdown_reason;
    std::optional<std::string> tunnel_key;
    std::string tunnel_auth_mode;
    std::string home_dir;    ///< temp directory standing for the devbox's file system
    std::string server_url;  ///< the backing action server while running, else empty
};

namespace detail::fake_runloop {

inline std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline std::string random_token(std::size_t length) {
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::uniform_int_distribution<std::size_t> pick(0, sizeof(alphabet) - 2);
    std::string out;
    out.reserve(length);
    for (std::size_t i = 0; i < length; ++i) out.push_back(alphabet[pick(engine)]);
    return out;
}

inline std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

/// Keeps the last `n` lines of `text`; sets `truncated` when lines were dropped.
inline std::string last_lines(const std::string& text, std::size_t n, bool& truncated) {
    truncated = false;
    if (n == 0) return text;
    std::size_t count = 0;
    std::size_t pos = text.size();
    if (pos > 0 && text[pos - 1] == '\n') --pos;  // a trailing newline ends the last line
    while (pos > 0) {
        auto nl = text.rfind('\n', pos - 1);
        if (nl == std::string::npos) break;
        if (++count == n) {
            truncated = true;
            return text.substr(nl + 1);
        }
        pos = nl;
    }
    return text;
}

/// A shell command run as a child process with separate stdout/stderr pipes.
struct Child {
    pid_t pid = -1;
    int out_fd = -1;
    int err_fd = -1;
};

inline Child spawn_shell(const std::string& command, const std::string& cwd,
                         const std::map<std::string, std::string>& env) {
    int out_pipe[2];
    int err_pipe[2];
    if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw error(errc::server_error, "pipe failed", "fake-runloop");
    if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
        ::close(out_pipe[0]);
        ::close(out_pipe[1]);
        throw error(errc::server_error, "pipe failed", "fake-runloop");
    }
    std::map<std::string, std::string> merged;
    for (char** e = environ; e && *e; ++e) {
        std::string entry(*e);
        auto eq = entry.find('=');
        if (eq != std::string::npos) merged[entry.substr(0, eq)] = entry.substr(eq + 1);
    }
    for (const auto& [k, v] : env) merged[k] = v;
    std::vector<std::string> env_strings;
    for (const auto& [k, v] : merged) env_strings.push_back(k + "=" + v);
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK);
    posix_spawnattr_setpgroup(&attr, 0);  // own process group, so kill reaches its children
    sigset_t none;
    sigemptyset(&none);
    posix_spawnattr_setsigmask(&attr, &none);
    std::string shell = "/bin/sh";
    std::string dash_c = "-c";
    std::string cmd = command;
    char* argv[] = {shell.data(), dash_c.data(), cmd.data(), nullptr};
    pid_t pid = -1;
    int rc = posix_spawn(&pid, shell.c_str(), &actions, &attr, argv, envp.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    ::close(out_pipe[1]);
    ::close(err_pipe[1]);
    if (rc != 0) {
        ::close(out_pipe[0]);
        ::close(err_pipe[0]);
        throw error(errc::server_error, "spawn failed", "fake-runloop");
    }
    return {pid, out_pipe[0], err_pipe[0]};
}

}  // namespace detail::fake_runloop

class FakeRunloop {
public:
    explicit FakeRunloop(FakeRunloopOptions options = {}) : options_(std::move(options)) {}
    ~FakeRunloop() { stop(); }
    FakeRunloop(const FakeRunloop&) = delete;
    FakeRunloop& operator=(const FakeRunloop&) = delete;

    /// Binds and serves on a background thread; returns once listening.
    void start() {
        if (thread_.joinable()) return;
        namespace fs = std::filesystem;
        auto root = options_.temp_root.empty() ? fs::temp_directory_path() : fs::path(options_.temp_root);
        root_dir_ = root / ("runbox-fake-runloop-" + std::to_string(::getpid()) + "-" +
                            detail::fake_runloop::random_token(8));
        fs::create_directories(root_dir_);
        auto threads = options_.worker_threads;
        server_.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
        auto handler = [this](const httplib::Request& req, httplib::Response& res) { dispatch(req, res); };
        server_.Get(".*", handler);
        server_.Post(".*", handler);
        server_.Put(".*", handler);
        server_.Delete(".*", handler);
        server_.Patch(".*", handler);
        server_.Options(".*", handler);
        server_.set_tcp_nodelay(true);  // no Nagle delay on small JSON answers
        if (options_.port == 0) {
            port_ = server_.bind_to_any_port(options_.host);
        } else {
            port_ = server_.bind_to_port(options_.host, options_.port) ? options_.port : -1;
        }
        if (port_ <= 0) throw error(errc::transport, "fake runloop could not bind " + options_.host, "fake-runloop");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!server_.is_running()) {
            if (std::chrono::steady_clock::now() > deadline)
                throw error(errc::timeout, "fake runloop did not start listening", "fake-runloop");
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // httplib 0.11 has no wait_until_ready
        }
    }

    /// Stops serving, kills running commands, stops every action server, removes temp dirs. Idempotent.
    void stop() {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;  // ends long-polls; no new action server starts
        }
        cv_.notify_all();
        stop_backends();  // first, so that requests forwarded through tunnels end too
        if (thread_.joinable()) {
            server_.stop();
            thread_.join();
        }
        stop_backends();  // a server whose start was in flight
        std::error_code ec;
        if (!root_dir_.empty()) std::filesystem::remove_all(root_dir_, ec);
    }

    int port() const { return port_; }
    /// Base URL for clients, e.g. "http://127.0.0.1:43123" (the SDK's `baseURL`, runbox's base_url).
    std::string url() const { return "http://" + options_.host + ":" + std::to_string(port_); }
    const std::string& api_key() const { return options_.api_key; }
    const FakeRunloopOptions& options() const { return options_; }

    /// Template for tunnel URLs with `{port}` and `{tunnel_key}` placeholders (runbox's `tunnel_url`).
    std::string tunnel_url_template() const { return url() + "/tunnel/{port}-{tunnel_key}"; }

    /// The tunnel URL of a devbox's port, or empty when it has no tunnel.
    std::string tunnel_url(const std::string& devbox_id, int port) const {
        std::lock_guard<std::mutex> lock(mu_);
        auto d = find_locked(devbox_id);
        if (!d || d->tunnel.is_null()) return {};
        return url() + "/tunnel/" + std::to_string(port) + "-" + d->tunnel["tunnel_key"].get<std::string>();
    }

    /// Devboxes whose status is `running` (advancing statuses first).
    std::size_t running_devboxes() const { return count_if_status([](const std::string& s) { return s == "running"; }); }

    /// Devboxes not yet in a terminal status (`shutdown` / `failure`): what a leak check wants.
    std::size_t active_devboxes() const {
        return count_if_status([](const std::string& s) { return s != "shutdown" && s != "failure"; });
    }

    std::vector<FakeRunloopDevbox> devboxes() const {
        std::unique_lock<std::mutex> lock(mu_);
        const_cast<FakeRunloop*>(this)->advance(lock);
        std::vector<FakeRunloopDevbox> out;
        for (const auto& d : devboxes_) out.push_back(snapshot_locked(*d));
        return out;
    }

    std::optional<FakeRunloopDevbox> devbox(const std::string& id) const {
        std::unique_lock<std::mutex> lock(mu_);
        const_cast<FakeRunloop*>(this)->advance(lock);
        auto d = find_locked(id);
        if (!d) return std::nullopt;
        return snapshot_locked(*d);
    }

    std::vector<FakeRunloopRequest> requests() const {
        std::lock_guard<std::mutex> lock(mu_);
        return requests_;
    }
    void clear_requests() {
        std::lock_guard<std::mutex> lock(mu_);
        requests_.clear();
    }

    /// Answers the next matching request(s) with a failure instead of handling them.
    void inject(FakeRunloopFailure failure) {
        std::lock_guard<std::mutex> lock(mu_);
        failures_.push_back(std::move(failure));
    }

    /// The next `n` API requests get 429 with the given retry hints.
    void rate_limit_next(int n, std::optional<std::chrono::milliseconds> retry_after_ms = std::nullopt,
                         std::optional<std::chrono::seconds> retry_after = std::nullopt) {
        FakeRunloopFailure f;
        f.status = 429;
        f.count = n;
        f.retry_after_ms = retry_after_ms;
        f.retry_after = retry_after;
        f.message = "Too many requests";
        inject(std::move(f));
    }

    /// Devboxes created from now on end in `outcome` after initializing (reason: failure/shutdown reason).
    void set_boot_outcome(FakeBootOutcome outcome, std::string reason = {}) {
        std::lock_guard<std::mutex> lock(mu_);
        boot_outcome_ = outcome;
        boot_reason_ = std::move(reason);
    }

    /// Transition delays for devboxes created from now on (slow provisioning).
    void set_delays(std::chrono::milliseconds provisioning, std::chrono::milliseconds initializing) {
        std::lock_guard<std::mutex> lock(mu_);
        options_.provisioning_delay = provisioning;
        options_.initializing_delay = initializing;
    }

    void set_long_poll_timeout(std::chrono::milliseconds hold) {
        std::lock_guard<std::mutex> lock(mu_);
        options_.long_poll_timeout = hold;
    }

    /// Creates a devbox as POST /v1/devboxes would (no request is logged). Returns its id.
    std::string create_devbox(const nlohmann::json& params = nlohmann::json::object()) {
        std::lock_guard<std::mutex> lock(mu_);
        return create_locked(params)->id;
    }

    /// Shuts a devbox down out of band (e.g. `keep_alive_timeout`), as the platform would.
    void shutdown_devbox(const std::string& id, const std::string& reason = "keep_alive_timeout") {
        std::unique_ptr<server::ActionServer> srv;
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto d = find_locked(id);
            if (!d) return;
            srv = terminate_locked(*d, "shutdown", reason);
        }
        cv_.notify_all();
        if (srv) srv->stop();
    }

    /// Blocks until `pred()` over running_devboxes()/devboxes() holds or the deadline passes.
    template <class Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(10)) const {
        auto deadline = std::chrono::steady_clock::now() + bound;
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
            lock.unlock();
            if (pred()) return true;
            lock.lock();
            if (std::chrono::steady_clock::now() >= deadline) return false;
            cv_.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
        }
    }

private:
    struct Execution {
        std::string id;
        std::string command;
        std::string shell_name;
        std::string status = "queued";
        std::optional<int> exit_status;
        std::string out;
        std::string err;
        pid_t pid = -1;
    };

    struct Devbox {
        std::string id;
        std::string name;
        std::string status = "provisioning";
        nlohmann::json create_request = nlohmann::json::object();
        nlohmann::json metadata = nlohmann::json::object();
        nlohmann::json env = nlohmann::json::object();
        nlohmann::json launch_parameters = nlohmann::json::object();
        nlohmann::json blueprint_id;
        nlohmann::json snapshot_id;
        std::string entrypoint;
        std::int64_t create_time_ms = 0;
        std::optional<std::int64_t> end_time_ms;
        nlohmann::json transitions = nlohmann::json::array();
        std::chrono::steady_clock::time_point next_transition;
        std::chrono::milliseconds initializing_delay{0};
        FakeBootOutcome outcome = FakeBootOutcome::running;
        std::string outcome_reason;
        std::optional<std::string> failure_reason;
        std::optional<std::string> shutdown_reason;
        nlohmann::json tunnel;  // null or TunnelView (with auth_token when authenticated)
        std::filesystem::path home;
        std::unique_ptr<server::ActionServer> server;
        bool starting = false;
        std::map<std::string, std::shared_ptr<Execution>> executions;
    };

    using Json = nlohmann::json;

    // ---- helpers -------------------------------------------------------------------------------

    void stop_backends() {
        std::vector<std::unique_ptr<server::ActionServer>> servers;
        std::vector<std::thread> threads;
        {
            std::lock_guard<std::mutex> lock(mu_);
            for (auto& d : devboxes_) {
                kill_executions_locked(*d);
                if (d->server) servers.push_back(std::move(d->server));
            }
            threads.swap(exec_threads_);
        }
        for (auto& s : servers) s->stop();
        for (auto& t : threads) t.join();
    }

    static void send_json(httplib::Response& res, int status, const Json& body) {
        res.status = status;
        res.set_content(body.dump(), "application/json");
    }
    static void send_error(httplib::Response& res, int status, const std::string& message) {
        send_json(res, status, Json{{"message", message}});
    }

    std::vector<std::string> secrets_locked() const {
        std::vector<std::string> out{options_.api_key};
        for (const auto& d : devboxes_) {
            if (d->tunnel.is_object() && d->tunnel.contains("auth_token") && d->tunnel["auth_token"].is_string())
                out.push_back(d->tunnel["auth_token"].get<std::string>());
        }
        out.insert(out.end(), extra_secrets_.begin(), extra_secrets_.end());
        return out;
    }

    static bool secret_env_name(const std::string& name) {
        auto n = detail::fake_runloop::lower(name);
        for (const char* marker : {"key", "token", "secret", "password"})
            if (n.find(marker) != std::string::npos) return true;
        return false;
    }

    // Remembers secret-looking env values so logs and snapshots never show them.
    void learn_secrets_locked(const Json& env) {
        if (!env.is_object()) return;
        for (const auto& [k, v] : env.items())
            if (v.is_string() && secret_env_name(k) && !v.get<std::string>().empty())
                extra_secrets_.push_back(v.get<std::string>());
    }

    Json redact_json_locked(const Json& j) const {
        auto text = redact(j.dump(), secrets_locked());
        return Json::parse(text, nullptr, false);
    }

    std::size_t count_if_status(bool (*pred)(const std::string&)) const {
        std::unique_lock<std::mutex> lock(mu_);
        const_cast<FakeRunloop*>(this)->advance(lock);
        return static_cast<std::size_t>(
            std::count_if(devboxes_.begin(), devboxes_.end(), [&](const auto& d) { return pred(d->status); }));
    }

    std::shared_ptr<Devbox> find_locked(const std::string& id) const {
        for (const auto& d : devboxes_)
            if (d->id == id) return d;
        return nullptr;
    }

    FakeRunloopDevbox snapshot_locked(const Devbox& d) const {
        FakeRunloopDevbox s;
        s.id = d.id;
        s.name = d.name;
        s.status = d.status;
        s.create_request = redact_json_locked(d.create_request);
        s.metadata = d.metadata;
        s.environment_variables = redact_json_locked(d.env);
        s.launch_parameters = d.launch_parameters;
        s.entrypoint = redact(d.entrypoint, secrets_locked());
        s.failure_reason = d.failure_reason;
        s.shutdown_reason = d.shutdown_reason;
        if (d.tunnel.is_object()) {
            s.tunnel_key = d.tunnel["tunnel_key"].get<std::string>();
            s.tunnel_auth_mode = d.tunnel["auth_mode"].get<std::string>();
        }
        s.home_dir = d.home.string();
        if (d.server) s.server_url = d.server->url();
        return s;
    }

    Json tunnel_view(const Json& t) const {
        if (!t.is_object()) return nullptr;
        return t;  // includes auth_token for authenticated tunnels, as TunnelView allows
    }

    Json view_locked(const Devbox& d) const {
        Json v = {{"id", d.id},
                  {"name", d.name.empty() ? Json(nullptr) : Json(d.name)},
                  {"status", d.status},
                  {"create_time_ms", d.create_time_ms},
                  {"end_time_ms", d.end_time_ms ? Json(*d.end_time_ms) : Json(nullptr)},
                  {"capabilities", Json::array()},
                  {"launch_parameters", d.launch_parameters},
                  {"metadata", d.metadata},
                  {"state_transitions", d.transitions},
                  {"blueprint_id", d.blueprint_id},
                  {"snapshot_id", d.snapshot_id},
                  {"failure_reason", d.failure_reason ? Json(*d.failure_reason) : Json(nullptr)},
                  {"shutdown_reason", d.shutdown_reason ? Json(*d.shutdown_reason) : Json(nullptr)},
                  {"initiator_id", nullptr},
                  {"initiator_type", "api"},
                  {"tunnel", tunnel_view(d.tunnel)}};
        return v;
    }

    void set_status_locked(Devbox& d, const std::string& status, const std::optional<std::string>& failure = {}) {
        d.status = status;
        Json t = {{"status", status}, {"transition_time_ms", detail::fake_runloop::now_ms()}};
        if (failure) t["failure_reason"] = *failure;
        d.transitions.push_back(std::move(t));
    }

    // Moves a devbox to a terminal status; returns its server for the caller to stop unlocked.
    std::unique_ptr<server::ActionServer> terminate_locked(Devbox& d, const std::string& status,
                                                           const std::string& reason) {
        if (d.status == "shutdown" || d.status == "failure") return nullptr;
        if (status == "failure") {
            d.failure_reason = reason;
            set_status_locked(d, status, reason);
        } else {
            d.shutdown_reason = reason;
            set_status_locked(d, status);
        }
        d.end_time_ms = detail::fake_runloop::now_ms();
        kill_executions_locked(d);
        return std::move(d.server);
    }

    static void kill_executions_locked(Devbox& d) {
        for (auto& [id, e] : d.executions)
            if (e->pid > 0 && e->status != "completed") ::kill(-e->pid, SIGKILL);
    }

    std::shared_ptr<Devbox> create_locked(const Json& params) {
        auto d = std::make_shared<Devbox>();
        d->id = "dbx_" + detail::fake_runloop::random_token(20);
        if (params.contains("name") && params["name"].is_string()) d->name = params["name"].get<std::string>();
        d->create_request = params;
        if (params.contains("metadata") && params["metadata"].is_object()) d->metadata = params["metadata"];
        if (params.contains("environment_variables") && params["environment_variables"].is_object())
            d->env = params["environment_variables"];
        learn_secrets_locked(d->env);
        if (params.contains("launch_parameters") && params["launch_parameters"].is_object())
            d->launch_parameters = params["launch_parameters"];
        if (params.contains("entrypoint") && params["entrypoint"].is_string())
            d->entrypoint = params["entrypoint"].get<std::string>();
        if (params.contains("blueprint_id") && params["blueprint_id"].is_string()) d->blueprint_id = params["blueprint_id"];
        if (params.contains("blueprint_name") && params["blueprint_name"].is_string())
            d->blueprint_id = "bpt_" + params["blueprint_name"].get<std::string>();
        if (params.contains("snapshot_id") && params["snapshot_id"].is_string()) d->snapshot_id = params["snapshot_id"];
        d->create_time_ms = detail::fake_runloop::now_ms();
        set_status_locked(*d, "provisioning");
        d->next_transition = std::chrono::steady_clock::now() + options_.provisioning_delay;
        d->initializing_delay = options_.initializing_delay;
        d->outcome = boot_outcome_;
        d->outcome_reason = boot_reason_;
        d->home = root_dir_ / d->id;
        std::error_code ec;
        std::filesystem::create_directories(d->home / "workspace", ec);
        if (params.contains("tunnel") && params["tunnel"].is_object()) d->tunnel = make_tunnel(params["tunnel"]);
        devboxes_.push_back(d);
        return d;
    }

    static Json make_tunnel(const Json& body) {
        std::string mode = body.value("auth_mode", std::string("open"));
        Json t = {{"tunnel_key", detail::fake_runloop::random_token(24)},
                  {"auth_mode", mode},
                  {"create_time_ms", detail::fake_runloop::now_ms()},
                  {"http_keep_alive", body.value("http_keep_alive", true)},
                  {"wake_on_http", body.value("wake_on_http", false)}};
        if (mode == "authenticated") t["auth_token"] = detail::fake_runloop::random_token(32);
        return t;
    }

    // Advances every devbox's status by the clock; starts action servers without holding the lock.
    void advance(std::unique_lock<std::mutex>& lock) {
        auto now = std::chrono::steady_clock::now();
        std::vector<std::shared_ptr<Devbox>> to_start;
        std::vector<std::unique_ptr<server::ActionServer>> to_stop;
        for (auto& d : devboxes_) {
            if (d->status == "provisioning" && now >= d->next_transition) {
                set_status_locked(*d, "initializing");
                d->next_transition = now + d->initializing_delay;
            }
            if (d->status == "suspending" && now >= d->next_transition) {
                set_status_locked(*d, "suspended");  // the disk stays, compute stops
                kill_executions_locked(*d);
                if (d->server) to_stop.push_back(std::move(d->server));
            }
            if (d->status == "resuming" && !d->starting && now >= d->next_transition) {
                if (options_.start_action_servers && !stopping_) {
                    d->starting = true;
                    to_start.push_back(d);
                } else {
                    set_status_locked(*d, "running");
                }
            }
            if (d->status == "initializing" && !d->starting && now >= d->next_transition) {
                switch (d->outcome) {
                    case FakeBootOutcome::running:
                        if (options_.start_action_servers && !stopping_) {
                            d->starting = true;
                            to_start.push_back(d);
                        } else {
                            set_status_locked(*d, "running");
                        }
                        break;
                    case FakeBootOutcome::failure:
                        terminate_locked(*d, "failure", d->outcome_reason.empty() ? "execution_failed" : d->outcome_reason);
                        break;
                    case FakeBootOutcome::shutdown:
                        terminate_locked(*d, "shutdown", d->outcome_reason.empty() ? "entrypoint_exit" : d->outcome_reason);
                        break;
                }
            }
        }
        if (!to_stop.empty()) {
            lock.unlock();
            for (auto& srv : to_stop) srv->stop();
            lock.lock();
            cv_.notify_all();
        }
        if (to_start.empty()) return;
        std::vector<std::pair<std::shared_ptr<Devbox>, server::ActionServerOptions>> plans;
        for (auto& d : to_start) plans.emplace_back(d, server_options_locked(*d));
        lock.unlock();
        std::vector<std::unique_ptr<server::ActionServer>> started(plans.size());
        std::vector<std::string> failures(plans.size());
        for (std::size_t i = 0; i < plans.size(); ++i) {
            try {
                auto srv = std::make_unique<server::ActionServer>(plans[i].second);
                srv->start();
                started[i] = std::move(srv);
            } catch (const std::exception& e) {
                failures[i] = e.what();
            }
        }
        lock.lock();
        std::vector<std::unique_ptr<server::ActionServer>> orphans;
        for (std::size_t i = 0; i < plans.size(); ++i) {
            auto& d = plans[i].first;
            d->starting = false;
            if (d->status != "initializing" && d->status != "resuming") {  // shut down while starting
                if (started[i]) orphans.push_back(std::move(started[i]));
                continue;
            }
            if (started[i]) {
                d->server = std::move(started[i]);
                set_status_locked(*d, "running");
            } else {
                terminate_locked(*d, "failure", "execution_failed");
            }
        }
        cv_.notify_all();
        if (!orphans.empty()) {
            lock.unlock();
            for (auto& s : orphans) s->stop();
            lock.lock();
        }
    }

    server::ActionServerOptions server_options_locked(const Devbox& d) const {
        server::ActionServerOptions o;
        o.host = "127.0.0.1";
        o.port = 0;
        o.working_dir = (d.home / "workspace").string();
        o.no_change_timeout = options_.no_change_timeout;
        for (const auto& [k, v] : d.env.items()) {
            if (!v.is_string()) continue;
            if (k == "SESSION_API_KEY") {
                o.session_api_key = v.get<std::string>();  // the server reads it from its environment
            } else if (k == "NO_CHANGE_TIMEOUT_SECONDS") {
                try {
                    o.no_change_timeout = std::chrono::milliseconds(std::stoll(v.get<std::string>()) * 1000);
                } catch (...) {
                }
                o.env[k] = v.get<std::string>();
            } else {
                o.env[k] = v.get<std::string>();
            }
        }
        return o;
    }

    // ---- request plumbing ----------------------------------------------------------------------

    FakeRunloopRequest record_of(const httplib::Request& req, bool tunnel) const {
        FakeRunloopRequest r;
        r.method = req.method;
        r.path = req.path;
        for (const auto& [k, v] : req.params) r.query[k] = v;
        auto secrets = secrets_locked();
        for (const auto& [k, v] : req.headers) {
            auto name = detail::fake_runloop::lower(k);
            if (name == "authorization" || name == "x-runloop-tunnel-authorization" || name == "x-session-api-key") {
                auto space = v.find(' ');
                r.headers[name] = space == std::string::npos ? "***" : v.substr(0, space) + " ***";
            } else {
                r.headers[name] = redact(v, secrets);
            }
        }
        if (tunnel) {
            // Action-server traffic can carry anything (exported tokens): only its size is kept.
            r.body = "<" + std::to_string(req.body.size()) + " bytes>";
        } else if (req.is_multipart_form_data()) {
            Json parts = Json::array();
            for (const auto& [name, part] : req.files)
                parts.push_back({{"name", name}, {"filename", part.filename}, {"size", part.content.size()}});
            r.body = parts.dump();
        } else {
            r.body = redact(req.body, secrets);
        }
        r.tunnel = tunnel;
        return r;
    }

    // Returns true (and fills `res`) when an injected failure matches this request.
    bool take_failure_locked(const httplib::Request& req, bool tunnel, httplib::Response& res) {
        for (auto it = failures_.begin(); it != failures_.end(); ++it) {
            if (it->tunnel != tunnel) continue;
            if (!it->method.empty() && it->method != req.method) continue;
            if (!it->path_contains.empty() && req.path.find(it->path_contains) == std::string::npos) continue;
            send_error(res, it->status, it->message);
            if (it->retry_after_ms) res.set_header("retry-after-ms", std::to_string(it->retry_after_ms->count()));
            if (it->retry_after) res.set_header("retry-after", std::to_string(it->retry_after->count()));
            if (--it->count <= 0) failures_.erase(it);
            return true;
        }
        return false;
    }

    void dispatch(const httplib::Request& req, httplib::Response& res) {
        static const std::regex tunnel_re(R"(/tunnel/(\d+)-([a-z0-9]+)(/.*)?)");
        std::smatch m;
        bool tunnel = std::regex_match(req.path, m, tunnel_re);
        std::size_t index;
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (!tunnel && req.body.find("environment_variables") != std::string::npos) {
                auto j = Json::parse(req.body, nullptr, false);  // learn secrets before logging them
                if (j.is_object() && j.contains("environment_variables")) learn_secrets_locked(j["environment_variables"]);
            }
            index = requests_.size();
            requests_.push_back(record_of(req, tunnel));
        }
        try {
            if (tunnel) {
                handle_tunnel(req, res, std::stoi(m[1].str()), m[2].str());
            } else {
                handle_api(req, res);
            }
        } catch (const std::exception& e) {
            send_error(res, 500, std::string("fake runloop: ") + e.what());
        }
        std::lock_guard<std::mutex> lock(mu_);
        if (index < requests_.size()) requests_[index].status = res.status;
    }

    bool authorized(const httplib::Request& req) const {
        return req.get_header_value("Authorization") == "Bearer " + options_.api_key;
    }

    static std::optional<Json> parse_body(const httplib::Request& req, httplib::Response& res) {
        if (req.body.empty()) return Json::object();
        auto j = Json::parse(req.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            send_error(res, 400, "Request body must be a JSON object");
            return std::nullopt;
        }
        return j;
    }

    void handle_api(const httplib::Request& req, httplib::Response& res) {
        if (!authorized(req)) {
            send_error(res, 401, "Unauthorized: missing or invalid API key");
            return;
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            if (take_failure_locked(req, false, res)) return;
        }
        static const std::regex devbox_re(R"(/v1/devboxes/([A-Za-z0-9_\-]+)(/.*)?)");
        static const std::regex exec_re(R"(/executions/([A-Za-z0-9_\-]+)(/[a-z_]+)?)");
        const auto& path = req.path;
        if (path == "/v1/devboxes" || path == "/v1/devboxes/") {
            if (req.method == "POST") return api_create(req, res, false);
            if (req.method == "GET") return api_list(req, res);
            return send_error(res, 405, "Method not allowed");
        }
        if (path == "/v1/devboxes/create_and_await_running" && req.method == "POST") return api_create(req, res, true);
        std::smatch m;
        if (!std::regex_match(path, m, devbox_re)) return send_error(res, 404, "Not found: " + path);
        const std::string id = m[1].str();
        const std::string sub = m[2].str();
        if (sub.empty() || sub == "/") {
            if (req.method == "GET") return api_retrieve(res, id);
            if (req.method == "POST") return api_update(req, res, id);
            return send_error(res, 405, "Method not allowed");
        }
        if (req.method == "POST") {
            if (sub == "/wait_for_status") return api_wait_for_status(req, res, id);
            if (sub == "/shutdown") return api_shutdown(res, id);
            if (sub == "/enable_tunnel") return api_enable_tunnel(req, res, id);
            if (sub == "/remove_tunnel") return api_remove_tunnel(res, id);
            if (sub == "/suspend") return api_suspend_resume(res, id, true);
            if (sub == "/resume") return api_suspend_resume(res, id, false);
            if (sub == "/keep_alive") return with_devbox(res, id, false, [&](Devbox&) { send_json(res, 200, Json::object()); });
            if (sub == "/execute") return api_execute(req, res, id, "execute");
            if (sub == "/execute_sync") return api_execute(req, res, id, "execute_sync");
            if (sub == "/execute_async") return api_execute(req, res, id, "execute_async");
            if (sub == "/read_file_contents") return api_read_file(req, res, id, false);
            if (sub == "/download_file") return api_read_file(req, res, id, true);
            if (sub == "/write_file_contents") return api_write_file(req, res, id);
            if (sub == "/upload_file") return api_upload_file(req, res, id);
        }
        std::smatch em;
        if (std::regex_match(sub, em, exec_re)) {
            const std::string exec_id = em[1].str();
            const std::string action = em[2].str();
            if (req.method == "GET" && action.empty()) return api_execution(req, res, id, exec_id, "get");
            if (req.method == "POST" && action == "/wait_for_status") return api_execution(req, res, id, exec_id, "wait");
            if (req.method == "POST" && action == "/kill") return api_execution(req, res, id, exec_id, "kill");
        }
        send_error(res, 404, "Not found: " + path);
    }

    // Runs `fn` on the devbox under the lock; 404 when unknown, 400 when `need_running` and it is not.
    template <class Fn>
    void with_devbox(httplib::Response& res, const std::string& id, bool need_running, Fn&& fn) {
        std::unique_lock<std::mutex> lock(mu_);
        advance(lock);
        auto d = find_locked(id);
        if (!d) return send_error(res, 404, "Devbox " + id + " not found");
        if (need_running && d->status != "running")
            return send_error(res, 400, "Devbox " + id + " is not running (status " + d->status + ")");
        fn(*d);
    }

    void api_create(const httplib::Request& req, httplib::Response& res, bool await_running) {
        auto body = parse_body(req, res);
        if (!body) return;
        int given = 0;
        for (const char* k : {"blueprint_id", "blueprint_name", "snapshot_id"})
            if (body->contains(k) && !(*body)[k].is_null()) ++given;
        if (given > 1) return send_error(res, 400, "Only one of blueprint_id, blueprint_name, snapshot_id may be given");
        std::unique_lock<std::mutex> lock(mu_);
        auto d = create_locked(*body);
        if (await_running) {
            auto deadline = std::chrono::steady_clock::now() + options_.long_poll_timeout;
            wait_status_locked(lock, *d, {"running", "failure", "shutdown"}, deadline);
        }
        send_json(res, 200, view_locked(*d));
    }

    void api_retrieve(httplib::Response& res, const std::string& id) {
        with_devbox(res, id, false, [&](Devbox& d) { send_json(res, 200, view_locked(d)); });
    }

    void api_update(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto body = parse_body(req, res);
        if (!body) return;
        with_devbox(res, id, false, [&](Devbox& d) {
            if (body->contains("name") && (*body)["name"].is_string()) d.name = (*body)["name"].get<std::string>();
            if (body->contains("metadata") && (*body)["metadata"].is_object()) d.metadata = (*body)["metadata"];
            send_json(res, 200, view_locked(d));
        });
    }

    void api_list(const httplib::Request& req, httplib::Response& res) {
        std::size_t limit = 20;
        if (req.has_param("limit")) {
            try {
                limit = static_cast<std::size_t>(std::stoul(req.get_param_value("limit")));
            } catch (...) {
                return send_error(res, 400, "limit must be an integer");
            }
            limit = std::clamp<std::size_t>(limit, 1, 5000);
        }
        std::string status = req.get_param_value("status");
        std::string after = req.get_param_value("starting_after");
        bool include_total = req.get_param_value("include_total_count") != "false";
        std::unique_lock<std::mutex> lock(mu_);
        advance(lock);
        // Newest first, like the real API; the cursor is an id in that order.
        std::vector<std::shared_ptr<Devbox>> order(devboxes_.rbegin(), devboxes_.rend());
        std::size_t start = 0;
        if (!after.empty()) {
            auto it = std::find_if(order.begin(), order.end(), [&](const auto& d) { return d->id == after; });
            if (it == order.end()) return send_error(res, 400, "starting_after: unknown devbox " + after);
            start = static_cast<std::size_t>(std::distance(order.begin(), it)) + 1;
        }
        Json items = Json::array();
        bool has_more = false;
        std::size_t total = 0;
        for (std::size_t i = 0; i < order.size(); ++i) {
            if (!status.empty() && order[i]->status != status) continue;
            ++total;
            if (i < start) continue;
            if (items.size() < limit) {
                items.push_back(view_locked(*order[i]));
            } else {
                has_more = true;
            }
        }
        Json out = {{"devboxes", items}, {"has_more", has_more}};
        out["total_count"] = include_total ? Json(total) : Json(nullptr);
        send_json(res, 200, out);
    }

    // Waits (holding `lock` between wake-ups) until d's status is in `statuses` or the deadline.
    bool wait_status_locked(std::unique_lock<std::mutex>& lock, Devbox& d, const std::vector<std::string>& statuses,
                            std::chrono::steady_clock::time_point deadline) {
        for (;;) {
            advance(lock);
            if (std::find(statuses.begin(), statuses.end(), d.status) != statuses.end()) return true;
            auto now = std::chrono::steady_clock::now();
            if (stopping_ || now >= deadline) return false;
            auto wake = deadline;
            if ((d.status == "provisioning" || d.status == "initializing" || d.status == "suspending" ||
                 d.status == "resuming") &&
                !d.starting)
                wake = std::min(wake, d.next_transition);
            cv_.wait_until(lock, std::max(wake, now + std::chrono::milliseconds(1)));
        }
    }

    void api_wait_for_status(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto body = parse_body(req, res);
        if (!body) return;
        if (!body->contains("statuses") || !(*body)["statuses"].is_array() || (*body)["statuses"].empty())
            return send_error(res, 400, "statuses is required");
        std::vector<std::string> statuses;
        for (const auto& s : (*body)["statuses"])
            if (s.is_string()) statuses.push_back(s.get<std::string>());
        std::unique_lock<std::mutex> lock(mu_);
        auto d = find_locked(id);
        if (!d) return send_error(res, 404, "Devbox " + id + " not found");
        auto deadline = std::chrono::steady_clock::now() + options_.long_poll_timeout;
        if (wait_status_locked(lock, *d, statuses, deadline)) return send_json(res, 200, view_locked(*d));
        send_error(res, 408, "Timed out waiting for devbox " + id + " to reach a requested status");
    }

    void api_shutdown(httplib::Response& res, const std::string& id) {
        std::unique_ptr<server::ActionServer> srv;
        Json view;
        {
            std::unique_lock<std::mutex> lock(mu_);
            advance(lock);
            auto d = find_locked(id);
            if (!d) return send_error(res, 404, "Devbox " + id + " not found");
            srv = terminate_locked(*d, "shutdown", "api_shutdown");
            view = view_locked(*d);
        }
        cv_.notify_all();
        if (srv) srv->stop();
        send_json(res, 200, view);
    }

    // suspend: running -> suspending -> suspended (server stopped, files kept);
    // resume: suspended -> resuming -> running (server started again).
    void api_suspend_resume(httplib::Response& res, const std::string& id, bool suspend) {
        with_devbox(res, id, false, [&](Devbox& d) {
            const char* from = suspend ? "running" : "suspended";
            if (d.status != from)
                return send_error(res, 400, "Devbox " + id + " is " + d.status + ", not " + from);
            set_status_locked(d, suspend ? "suspending" : "resuming");
            d.next_transition = std::chrono::steady_clock::now() + d.initializing_delay;
            send_json(res, 200, view_locked(d));
        });
        cv_.notify_all();
    }

    void api_enable_tunnel(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto body = parse_body(req, res);
        if (!body) return;
        auto mode = body->value("auth_mode", std::string("open"));
        if (mode != "open" && mode != "authenticated") return send_error(res, 400, "auth_mode must be open or authenticated");
        with_devbox(res, id, false, [&](Devbox& d) {
            if (d.status == "shutdown" || d.status == "failure")
                return send_error(res, 400, "Devbox " + id + " is not active (status " + d.status + ")");
            if (!d.tunnel.is_object()) d.tunnel = make_tunnel(*body);  // one tunnel per devbox; repeat = same
            send_json(res, 200, tunnel_view(d.tunnel));
        });
    }

    void api_remove_tunnel(httplib::Response& res, const std::string& id) {
        with_devbox(res, id, false, [&](Devbox& d) {
            d.tunnel = nullptr;
            send_json(res, 200, Json::object());
        });
    }

    // ---- command execution -----------------------------------------------------------------------

    Json exec_view_locked(const Devbox& d, const Execution& e, std::size_t last_n) const {
        Json v = {{"devbox_id", d.id}, {"execution_id", e.id}, {"status", e.status}};
        if (!e.shell_name.empty()) v["shell_name"] = e.shell_name;
        if (e.status == "completed") {
            bool out_cut = false;
            bool err_cut = false;
            v["exit_status"] = e.exit_status ? Json(*e.exit_status) : Json(nullptr);
            v["stdout"] = detail::fake_runloop::last_lines(e.out, last_n, out_cut);
            v["stderr"] = detail::fake_runloop::last_lines(e.err, last_n, err_cut);
            v["stdout_truncated"] = out_cut;
            v["stderr_truncated"] = err_cut;
        }
        return v;
    }

    static std::size_t last_n_of(const httplib::Request& req) {
        if (!req.has_param("last_n")) return 100;
        try {
            return static_cast<std::size_t>(std::stoul(req.get_param_value("last_n")));
        } catch (...) {
            return 100;
        }
    }

    void api_execute(const httplib::Request& req, httplib::Response& res, const std::string& id, const std::string& mode) {
        auto body = parse_body(req, res);
        if (!body) return;
        if (!body->contains("command") || !(*body)["command"].is_string()) return send_error(res, 400, "command is required");
        if (mode == "execute" && (!body->contains("command_id") || !(*body)["command_id"].is_string()))
            return send_error(res, 400, "command_id is required");
        double optimistic = 25;
        if (body->contains("optimistic_timeout") && (*body)["optimistic_timeout"].is_number())
            optimistic = std::clamp((*body)["optimistic_timeout"].get<double>(), 0.0, 25.0);
        auto last_n = last_n_of(req);
        std::unique_lock<std::mutex> lock(mu_);
        advance(lock);
        auto d = find_locked(id);
        if (!d) return send_error(res, 404, "Devbox " + id + " not found");
        if (d->status != "running") return send_error(res, 400, "Devbox " + id + " is not running (status " + d->status + ")");
        auto e = std::make_shared<Execution>();
        e->id = "exe_" + detail::fake_runloop::random_token(20);
        e->command = (*body)["command"].get<std::string>();
        e->shell_name = body->value("shell_name", std::string());
        d->executions[e->id] = e;
        std::map<std::string, std::string> env;
        for (const auto& [k, v] : d->env.items())
            if (v.is_string()) env[k] = v.get<std::string>();
        try {
            auto child = detail::fake_runloop::spawn_shell(e->command, d->home.string(), env);
            e->pid = child.pid;
            e->status = "running";
            exec_threads_.emplace_back([this, e, child] { collect(e, child); });
        } catch (const error& err) {
            e->status = "completed";
            e->exit_status = 127;
            e->err = err.detail();
        }
        if (mode == "execute_async") return send_json(res, 200, exec_view_locked(*d, *e, last_n));
        auto deadline = mode == "execute_sync"
                            ? std::chrono::steady_clock::now() + std::chrono::minutes(10)
                            : std::chrono::steady_clock::now() +
                                  std::chrono::milliseconds(static_cast<std::int64_t>(optimistic * 1000));
        cv_.wait_until(lock, deadline, [&] { return e->status == "completed" || stopping_; });
        if (mode == "execute_sync") {
            Json v = {{"devbox_id", d->id},
                      {"exit_status", e->exit_status ? Json(*e->exit_status) : Json(nullptr)},
                      {"stdout", e->out},
                      {"stderr", e->err}};
            if (!e->shell_name.empty()) v["shell_name"] = e->shell_name;
            return send_json(res, 200, v);
        }
        send_json(res, 200, exec_view_locked(*d, *e, last_n));
    }

    // Reads a child's output until EOF, then reaps it (runs on its own thread).
    void collect(std::shared_ptr<Execution> e, detail::fake_runloop::Child child) {
        std::string out;
        std::string err;
        pollfd fds[2] = {{child.out_fd, POLLIN, 0}, {child.err_fd, POLLIN, 0}};
        int open_fds = 2;
        char buf[8192];
        while (open_fds > 0) {
            int rc = ::poll(fds, 2, -1);
            if (rc < 0) {
                if (errno == EINTR) continue;
                break;
            }
            for (auto& f : fds) {
                if (f.fd < 0 || !(f.revents & (POLLIN | POLLHUP | POLLERR))) continue;
                auto n = ::read(f.fd, buf, sizeof buf);
                if (n > 0) {
                    (f.fd == child.out_fd ? out : err).append(buf, static_cast<std::size_t>(n));
                } else if (n == 0 || errno != EINTR) {
                    ::close(f.fd);
                    f.fd = -1;
                    --open_fds;
                }
            }
        }
        for (auto& f : fds)
            if (f.fd >= 0) ::close(f.fd);
        int wstatus = 0;
        while (::waitpid(child.pid, &wstatus, 0) < 0 && errno == EINTR) {
        }
        {
            std::lock_guard<std::mutex> lock(mu_);
            e->out = std::move(out);
            e->err = std::move(err);
            e->exit_status = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
            e->status = "completed";
        }
        cv_.notify_all();
    }

    void api_execution(const httplib::Request& req, httplib::Response& res, const std::string& id,
                       const std::string& exec_id, const std::string& what) {
        std::optional<Json> body = Json::object();
        if (what != "get") body = parse_body(req, res);
        if (!body) return;
        auto last_n = body->contains("last_n") && (*body)["last_n"].is_string()
                          ? static_cast<std::size_t>(std::stoul((*body)["last_n"].get<std::string>()))
                          : last_n_of(req);
        std::unique_lock<std::mutex> lock(mu_);
        auto d = find_locked(id);
        if (!d) return send_error(res, 404, "Devbox " + id + " not found");
        auto it = d->executions.find(exec_id);
        if (it == d->executions.end()) return send_error(res, 404, "Execution " + exec_id + " not found");
        auto e = it->second;
        if (what == "kill") {
            if (e->pid > 0 && e->status != "completed") ::kill(-e->pid, SIGKILL);
            cv_.wait_for(lock, std::chrono::seconds(5), [&] { return e->status == "completed"; });
        } else if (what == "wait") {
            std::vector<std::string> statuses;
            if (body->contains("statuses") && (*body)["statuses"].is_array())
                for (const auto& s : (*body)["statuses"])
                    if (s.is_string()) statuses.push_back(s.get<std::string>());
            if (statuses.empty()) return send_error(res, 400, "statuses is required");
            auto hold = options_.long_poll_timeout;
            if (body->contains("timeout_seconds") && (*body)["timeout_seconds"].is_number())
                hold = std::min(hold, std::chrono::milliseconds(
                                          static_cast<std::int64_t>((*body)["timeout_seconds"].get<double>() * 1000)));
            auto matches = [&] { return std::find(statuses.begin(), statuses.end(), e->status) != statuses.end(); };
            if (!cv_.wait_for(lock, hold, [&] { return matches() || stopping_; }) || !matches()) {
                res.set_header("x-should-retry", "true");
                return send_error(res, 408, "Timed out waiting for execution " + exec_id);
            }
        }
        send_json(res, 200, exec_view_locked(*d, *e, last_n));
    }

    // ---- files (paths are relative to the devbox home) ------------------------------------------

    static std::optional<std::filesystem::path> resolve(const Devbox& d, const std::string& p) {
        if (p.empty()) return std::nullopt;
        std::filesystem::path path(p);
        if (path.is_absolute()) path = path.relative_path();  // "/x" lives under the devbox home
        auto full = (d.home / path).lexically_normal();
        auto home = d.home.lexically_normal().string();
        if (full.string().compare(0, home.size(), home) != 0) return std::nullopt;  // no escaping via ..
        return full;
    }

    void api_read_file(const httplib::Request& req, httplib::Response& res, const std::string& id, bool binary) {
        auto body = parse_body(req, res);
        if (!body) return;
        const char* key = binary ? "path" : "file_path";
        if (!body->contains(key) || !(*body)[key].is_string()) return send_error(res, 400, std::string(key) + " is required");
        with_devbox(res, id, true, [&](Devbox& d) {
            auto path = resolve(d, (*body)[key].get<std::string>());
            std::ifstream in(path ? *path : std::filesystem::path(), std::ios::binary);
            if (!path || !in) return send_error(res, 404, "File not found: " + (*body)[key].get<std::string>());
            std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
            res.status = 200;
            res.set_content(content, binary ? "application/octet-stream" : "text/plain");
        });
    }

    void api_write_file(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        auto body = parse_body(req, res);
        if (!body) return;
        if (!body->contains("file_path") || !(*body)["file_path"].is_string() || !body->contains("contents") ||
            !(*body)["contents"].is_string())
            return send_error(res, 400, "file_path and contents are required");
        with_devbox(res, id, true, [&](Devbox& d) {
            auto path = resolve(d, (*body)["file_path"].get<std::string>());
            if (!path) return send_error(res, 400, "invalid file_path");
            std::error_code ec;
            std::filesystem::create_directories(path->parent_path(), ec);
            std::ofstream(*path, std::ios::binary) << (*body)["contents"].get<std::string>();
            send_json(res, 200, Json{{"devbox_id", d.id}, {"exit_status", 0}, {"stdout", ""}, {"stderr", ""}});
        });
    }

    void api_upload_file(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        if (!req.has_file("path") || !req.has_file("file")) return send_error(res, 400, "multipart fields path and file are required");
        auto target = req.get_file_value("path").content;
        auto content = req.get_file_value("file").content;
        with_devbox(res, id, true, [&](Devbox& d) {
            auto path = resolve(d, target);
            if (!path) return send_error(res, 400, "invalid path");
            std::error_code ec;
            std::filesystem::create_directories(path->parent_path(), ec);
            std::ofstream(*path, std::ios::binary) << content;
            send_json(res, 200, Json::object());
        });
    }

    // ---- tunnels ---------------------------------------------------------------------------------

    void handle_tunnel(const httplib::Request& req, httplib::Response& res, int port, const std::string& key) {
        int server_port = 0;
        {
            std::unique_lock<std::mutex> lock(mu_);
            if (take_failure_locked(req, true, res)) return;
            advance(lock);
            std::shared_ptr<Devbox> d;
            for (const auto& c : devboxes_)
                if (c->tunnel.is_object() && c->tunnel["tunnel_key"] == key) d = c;
            if (!d) return send_error(res, 404, "Tunnel not found");
            if (d->tunnel["auth_mode"] == "authenticated" &&
                req.get_header_value("X-Runloop-Tunnel-Authorization") !=
                    "Bearer " + d->tunnel["auth_token"].get<std::string>())
                return send_error(res, 401, "Tunnel authorization required");
            if (d->status != "running" || !d->server || port != options_.server_port)
                return send_error(res, 502, "Bad gateway: nothing is serving port " + std::to_string(port));
            server_port = d->server->port();
        }
        forward(req, res, server_port, key);
    }

    static void forward(const httplib::Request& req, httplib::Response& res, int server_port, const std::string& key) {
        std::string prefix = "/tunnel/";
        auto target = req.target.empty() ? req.path : req.target;
        auto slash = target.find('/', prefix.size());
        auto qmark = target.find('?', prefix.size());
        std::string rest;
        if (slash != std::string::npos && (qmark == std::string::npos || slash < qmark)) {
            rest = target.substr(slash);
        } else {
            rest = "/" + (qmark == std::string::npos ? std::string() : target.substr(qmark));
        }
        (void)key;
        httplib::Client cli("127.0.0.1", server_port);
        cli.set_connection_timeout(std::chrono::seconds(5));
        cli.set_read_timeout(std::chrono::minutes(30));
        cli.set_write_timeout(std::chrono::minutes(5));
        httplib::Headers headers;
        for (const auto& [k, v] : req.headers) {
            auto name = detail::fake_runloop::lower(k);
            if (name == "host" || name == "content-length" || name == "transfer-encoding" || name == "connection" ||
                name == "x-runloop-tunnel-authorization" || name == "accept-encoding" || name == "keep-alive" ||
                name == "remote_addr" || name == "remote_port" || name == "local_addr" || name == "local_port")
                continue;
            if (req.is_multipart_form_data() && name == "content-type") continue;  // re-encoded below
            headers.emplace(k, v);
        }
        httplib::Result result{nullptr, httplib::Error::Unknown};
        if (req.is_multipart_form_data()) {
            httplib::MultipartFormDataItems items;
            for (const auto& [name, part] : req.files) items.push_back({name, part.content, part.filename, part.content_type});
            result = cli.Post(rest.c_str(), headers, items);
        } else {
            httplib::Request out;
            out.method = req.method;
            out.path = rest;
            out.headers = headers;
            out.body = req.body;
            if (!req.body.empty() && !out.has_header("Content-Type")) out.set_header("Content-Type", "application/octet-stream");
            result = cli.send(out);
        }
        if (!result) return send_error(res, 502, "Bad gateway: the devbox's server did not answer");
        res.status = result->status;
        std::string content_type = "application/octet-stream";
        for (const auto& [k, v] : result->headers) {
            auto name = detail::fake_runloop::lower(k);
            if (name == "content-type") {
                content_type = v;
            } else if (name != "content-length" && name != "transfer-encoding" && name != "connection" &&
                       name != "content-encoding" && name != "keep-alive") {
                res.set_header(k, v);
            }
        }
        res.set_content(result->body, content_type);
    }

    FakeRunloopOptions options_;
    httplib::Server server_;
    std::thread thread_;
    int port_ = 0;
    std::filesystem::path root_dir_;
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    bool stopping_ = false;
    std::vector<std::shared_ptr<Devbox>> devboxes_;
    std::vector<FakeRunloopRequest> requests_;
    std::vector<FakeRunloopFailure> failures_;
    std::vector<std::string> extra_secrets_;
    std::vector<std::thread> exec_threads_;
    FakeBootOutcome boot_outcome_ = FakeBootOutcome::running;
    std::string boot_reason_;
};

}  // namespace runbox::testing
