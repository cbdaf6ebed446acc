// runbox/testing/fake_runloop.hpp - an in-process fake of Runloop's devbox API for offline tests.
//
// FakeRunloop serves the subset of https://api.runloop.ai that runbox and the official
// `@runloop/api-client` use (reference: provider-apis.md §3) on 127.0.0.1: devbox create /
// retrieve / update / list (starting_after + limit + status, has_more), the wait_for_status
// long-poll (408 when the hold ends), shutdown, suspend/resume, keep_alive, V2 tunnels
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
// Faults are runbox::Fault rules (inject(); testing/fake_http.hpp says how each kind applies; a
// tunnel request's path starts with "/tunnel/"). A start_failure on the create request ends the
// new devbox after initializing: in `shutdown` when its body is a shutdown reason Runloop reports
// for an entrypoint that ended (entrypoint_exit, api_shutdown, keep_alive_timeout, idle), else in
// `failure` with the body as failure_reason (empty: execution_failed).
//
// Devbox statuses are advanced lazily (on every request and accessor), so there is no ticker thread.
#pragma once

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/error.hpp"
#include "runbox/testing/fake_http.hpp"

namespace runbox::testing {

/// Settings of a FakeRunloop (designated initializers: `{.provisioning_delay = 10ms}`).
struct FakeRunloopOptions {
    std::string api_key = "rl_fake_key";  ///< the only bearer token accepted
    std::string host = "127.0.0.1";  ///< address to bind (loopback by default)
    int port = 0;                         ///< 0 = any free port
    std::chrono::milliseconds provisioning_delay{50};   ///< provisioning -> initializing
    std::chrono::milliseconds initializing_delay{50};   ///< initializing -> running (or a start failure)
    std::chrono::milliseconds long_poll_timeout{1000};  ///< wait_for_status hold before 408 (real API: ~30 s)
    int server_port = 4444;               ///< the in-devbox port the action server stands for
    bool start_action_servers = true;     ///< false: devboxes run without a backing server
    std::chrono::milliseconds no_change_timeout{10000};  ///< passed to each ActionServer
    std::string temp_root{};              ///< where devbox directories go; empty = system temp dir
    std::size_t worker_threads = 32;      ///< long-polls and proxied commands each hold one
};

/// A snapshot of one devbox (copy; safe to keep).
struct FakeRunloopDevbox {
    std::string id;  ///< devbox id
    std::string name;  ///< devbox name (runbox uses the sid)
    std::string status;  ///< Runloop status: provisioning, initializing, running, suspended, shutdown, failure...
    nlohmann::json create_request;        ///< the create body, secrets redacted
    nlohmann::json metadata = nlohmann::json::object();  ///< the devbox's metadata (runbox's ownership labels)
    nlohmann::json environment_variables = nlohmann::json::object();  ///< secrets redacted
    nlohmann::json launch_parameters = nlohmann::json::object();  ///< launch_parameters of the create request
    std::string entrypoint;  ///< the entrypoint command it was created with
    std::optional<std::string> failure_reason;  ///< set when the status is failure
    std::optional<std::string> shutdown_reason;  ///< set when it was shut down (e.g. "api_shutdown")
    std::optional<std::string> tunnel_key;  ///< the tunnel's key once enable_tunnel ran
    std::string tunnel_auth_mode;  ///< the tunnel's auth mode ("open" or "authenticated"); empty without a tunnel
    std::string home_dir;    ///< temp directory standing for the devbox's file system
    std::string server_url;  ///< the backing action server while running, else empty
};

namespace detail {

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

}  // namespace detail

/// The Runloop fake (see the header comment). Public surface as every fake (FakeHttpServer),
/// plus Runloop's devboxes, tunnels and executions.
class FakeRunloop : public FakeHttpServer {
public:
    using Options = FakeRunloopOptions;  ///< the options type

    /// A stopped fake with `options`; call start() to serve. errc::server_error if its temp directory cannot
    /// be made.
    explicit FakeRunloop(FakeRunloopOptions options = {})
        : FakeHttpServer({.name = "fake-runloop", .host = options.host, .port = options.port, .api_key = options.api_key,
                          .worker_threads = options.worker_threads}),
          options_(std::move(options)),
          root_dir_(std::make_unique<SandboxDir>("runloop", options_.temp_root)) {}
    ~FakeRunloop() override { stop(); }

    const FakeRunloopOptions& options() const { return options_; }  ///< the current options (not synchronised with a concurrent configure())

    /// Changes options (delays, long-poll hold) for what happens from now on.
    void configure(const std::function<void(FakeRunloopOptions&)>& change) {
        std::lock_guard<std::mutex> lock(mu_);
        change(options_);
    }

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
    std::size_t live_sandboxes() const override {
        return count_if_status([](const std::string& s) { return s != "shutdown" && s != "failure"; });
    }

    /// Snapshot of every devbox ever created, in creation order (advancing statuses first).
    std::vector<FakeRunloopDevbox> devboxes() const {
        std::unique_lock<std::mutex> lock(mu_);
        const_cast<FakeRunloop*>(this)->advance(lock);
        std::vector<FakeRunloopDevbox> out;
        for (const auto& d : devboxes_) out.push_back(snapshot_locked(*d));
        return out;
    }

    /// Snapshot of devbox `id`, or nullopt if it never existed.
    std::optional<FakeRunloopDevbox> devbox(const std::string& id) const {
        std::unique_lock<std::mutex> lock(mu_);
        const_cast<FakeRunloop*>(this)->advance(lock);
        auto d = find_locked(id);
        if (!d) return std::nullopt;
        return snapshot_locked(*d);
    }

    /// Creates a devbox as POST /v1/devboxes would (no request is logged). Returns its id.
    std::string create_devbox(const nlohmann::json& params = nlohmann::json::object()) {
        std::lock_guard<std::mutex> lock(mu_);
        return create_locked(params)->id;
    }

    /// Shuts a devbox down out of band (e.g. `keep_alive_timeout`), as the platform would.
    void shutdown_devbox(const std::string& id, const std::string& reason = "keep_alive_timeout") {
        SandboxServers::Server srv;
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto d = find_locked(id);
            if (!d) return;
            srv = terminate_locked(*d, "shutdown", reason);
        }
        cv_.notify_all();
        SandboxServers::stop(std::move(srv));
    }

    /// Blocks until `pred()` over running_devboxes()/devboxes() holds or the deadline passes.
    template <class Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(10)) const {
        return wait_for_change(mu_, cv_, std::move(pred), bound);
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
        std::shared_ptr<ShellCommand> shell;  // null when the command could not start
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
        std::optional<std::string> start_failure;  // an injected start failure: its reason
        std::optional<std::string> failure_reason;
        std::optional<std::string> shutdown_reason;
        nlohmann::json tunnel;  // null or TunnelView (with auth_token when authenticated)
        std::filesystem::path home;
        SandboxServers::Server server;
        bool starting = false;
        std::map<std::string, std::shared_ptr<Execution>> executions;
    };

    using Json = nlohmann::json;

    // ---- helpers -------------------------------------------------------------------------------

    void on_stop() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;  // ends long-polls; no new action server starts
        }
        cv_.notify_all();
    }

    static void send_json(httplib::Response& res, int status, const Json& body) {
        res.status = status;
        res.set_content(body.dump(), "application/json");
    }
    static void fail(httplib::Response& res, int status, const std::string& message) {
        send_json(res, status, Json{{"message", message}});
    }
    void send_error(const Req&, Res& res, int status, const std::string& message) const override {
        fail(res, status, message);
    }

    // A create's secret-looking variables (SESSION_API_KEY...) stay out of the log and snapshots.
    void learn_secrets(const Req& req) override {
        if (req.body.find("environment_variables") == std::string::npos || is_proxied(req)) return;
        auto j = Json::parse(req.body, nullptr, false);
        if (j.is_object() && j.contains("environment_variables")) log_.add_secrets_from_env(j["environment_variables"]);
    }

    bool is_proxied(const Req& req) const override { return std::regex_match(req.path, tunnel_pattern()); }

    Json redact_json_locked(const Json& j) const { return Json::parse(log_.redact(j.dump()), nullptr, false); }

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
        s.entrypoint = log_.redact(d.entrypoint);
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
        Json t = {{"status", status}, {"transition_time_ms", detail::now_ms()}};
        if (failure) t["failure_reason"] = *failure;
        d.transitions.push_back(std::move(t));
    }

    // Moves a devbox to a terminal status; returns its server for the caller to stop unlocked.
    SandboxServers::Server terminate_locked(Devbox& d, const std::string& status,
                                                           const std::string& reason) {
        if (d.status == "shutdown" || d.status == "failure") return nullptr;
        if (status == "failure") {
            d.failure_reason = reason;
            set_status_locked(d, status, reason);
        } else {
            d.shutdown_reason = reason;
            set_status_locked(d, status);
        }
        d.end_time_ms = detail::now_ms();
        kill_executions_locked(d);
        return std::move(d.server);
    }

    static void kill_executions_locked(Devbox& d) {
        for (auto& [id, e] : d.executions)
            if (e->shell) e->shell->kill();
    }

    std::shared_ptr<Devbox> create_locked(const Json& params) {
        auto d = std::make_shared<Devbox>();
        d->id = "dbx_" + detail::random_token(20);
        if (params.contains("name") && params["name"].is_string()) d->name = params["name"].get<std::string>();
        d->create_request = params;
        if (params.contains("metadata") && params["metadata"].is_object()) d->metadata = params["metadata"];
        if (params.contains("environment_variables") && params["environment_variables"].is_object())
            d->env = params["environment_variables"];
        log_.add_secrets_from_env(d->env);
        if (params.contains("launch_parameters") && params["launch_parameters"].is_object())
            d->launch_parameters = params["launch_parameters"];
        if (params.contains("entrypoint") && params["entrypoint"].is_string())
            d->entrypoint = params["entrypoint"].get<std::string>();
        if (params.contains("blueprint_id") && params["blueprint_id"].is_string()) d->blueprint_id = params["blueprint_id"];
        if (params.contains("blueprint_name") && params["blueprint_name"].is_string())
            d->blueprint_id = "bpt_" + params["blueprint_name"].get<std::string>();
        if (params.contains("snapshot_id") && params["snapshot_id"].is_string()) d->snapshot_id = params["snapshot_id"];
        d->create_time_ms = detail::now_ms();
        set_status_locked(*d, "provisioning");
        d->next_transition = std::chrono::steady_clock::now() + options_.provisioning_delay;
        d->initializing_delay = options_.initializing_delay;
        d->home = root_dir_->path() / d->id;
        std::error_code ec;
        std::filesystem::create_directories(d->home / "workspace", ec);
        if (params.contains("tunnel") && params["tunnel"].is_object()) d->tunnel = make_tunnel(params["tunnel"]);
        devboxes_.push_back(d);
        return d;
    }

    Json make_tunnel(const Json& body) {
        std::string mode = body.value("auth_mode", std::string("open"));
        Json t = {{"tunnel_key", detail::random_token(24)},
                  {"auth_mode", mode},
                  {"create_time_ms", detail::now_ms()},
                  {"http_keep_alive", body.value("http_keep_alive", true)},
                  {"wake_on_http", body.value("wake_on_http", false)}};
        if (mode == "authenticated") {
            t["auth_token"] = detail::random_token(32);
            log_.add_secret(t["auth_token"].get<std::string>());  // a tunnel token never shows in requests()
        }
        return t;
    }

    // Advances every devbox's status by the clock; starts action servers without holding the lock.
    void advance(std::unique_lock<std::mutex>& lock) {
        auto now = std::chrono::steady_clock::now();
        std::vector<std::shared_ptr<Devbox>> to_start;
        std::vector<SandboxServers::Server> to_stop;
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
                if (d->start_failure) {
                    const auto& reason = *d->start_failure;
                    const bool ended = reason == "entrypoint_exit" || reason == "api_shutdown" ||
                                       reason == "keep_alive_timeout" || reason == "idle";
                    terminate_locked(*d, ended ? "shutdown" : "failure", reason.empty() ? "execution_failed" : reason);
                } else if (options_.start_action_servers && !stopping_) {
                    d->starting = true;
                    to_start.push_back(d);
                } else {
                    set_status_locked(*d, "running");
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
        std::vector<SandboxServers::Server> started(plans.size());
        std::vector<std::string> failures(plans.size());
        for (std::size_t i = 0; i < plans.size(); ++i) {
            try {
                started[i] = servers_.start(plans[i].second);
            } catch (const std::exception& e) {
                failures[i] = e.what();
            }
        }
        lock.lock();
        std::vector<SandboxServers::Server> orphans;
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
        std::map<std::string, std::string> env;
        for (const auto& [k, v] : d.env.items())
            if (v.is_string()) env[k] = v.get<std::string>();
        auto o = sandbox_server_options(d.home / "workspace", env);
        if (!env.count("NO_CHANGE_TIMEOUT_SECONDS")) o.no_change_timeout = options_.no_change_timeout;
        return o;
    }

    // ---- request plumbing ----------------------------------------------------------------------

    static const std::regex& tunnel_pattern() {
        static const std::regex re(R"(/tunnel/(\d+)-([a-z0-9]+)(/.*)?)");
        return re;
    }

    void register_routes() override {
        for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
            route(method, ".*", [this](const Req& req, Res& res) { dispatch(req, res); });
    }

    void dispatch(const httplib::Request& req, httplib::Response& res) {
        std::smatch m;
        if (std::regex_match(req.path, m, tunnel_pattern())) {
            std::string rest = m[3].matched && !m[3].str().empty() ? m[3].str() : "/";
            if (auto q = req.target.find('?'); q != std::string::npos) rest += req.target.substr(q);
            return handle_tunnel(req, res, std::stoi(m[1].str()), m[2].str(), rest);
        }
        handle_api(req, res);
    }

    static std::optional<Json> parse_body(const httplib::Request& req, httplib::Response& res) {
        if (req.body.empty()) return Json::object();
        auto j = Json::parse(req.body, nullptr, false);
        if (j.is_discarded() || !j.is_object()) {
            fail(res, 400, "Request body must be a JSON object");
            return std::nullopt;
        }
        return j;
    }

    void handle_api(const httplib::Request& req, httplib::Response& res) {
        static const std::regex devbox_re(R"(/v1/devboxes/([A-Za-z0-9_\-]+)(/.*)?)");
        static const std::regex exec_re(R"(/executions/([A-Za-z0-9_\-]+)(/[a-z_]+)?)");
        const auto& path = req.path;
        if (path == "/v1/devboxes" || path == "/v1/devboxes/") {
            if (req.method == "POST") return api_create(req, res, false);
            if (req.method == "GET") return api_list(req, res);
            return fail(res, 405, "Method not allowed");
        }
        if (path == "/v1/devboxes/create_and_await_running" && req.method == "POST") return api_create(req, res, true);
        std::smatch m;
        if (!std::regex_match(path, m, devbox_re)) return fail(res, 404, "Not found: " + path);
        const std::string id = m[1].str();
        const std::string sub = m[2].str();
        if (sub.empty() || sub == "/") {
            if (req.method == "GET") return api_retrieve(res, id);
            if (req.method == "POST") return api_update(req, res, id);
            return fail(res, 405, "Method not allowed");
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
        fail(res, 404, "Not found: " + path);
    }

    // Runs `fn` on the devbox under the lock; 404 when unknown, 400 when `need_running` and it is not.
    template <class Fn>
    void with_devbox(httplib::Response& res, const std::string& id, bool need_running, Fn&& fn) {
        std::unique_lock<std::mutex> lock(mu_);
        advance(lock);
        auto d = find_locked(id);
        if (!d) return fail(res, 404, "Devbox " + id + " not found");
        if (need_running && d->status != "running")
            return fail(res, 400, "Devbox " + id + " is not running (status " + d->status + ")");
        fn(*d);
    }

    void api_create(const httplib::Request& req, httplib::Response& res, bool await_running) {
        auto body = parse_body(req, res);
        if (!body) return;
        int given = 0;
        for (const char* k : {"blueprint_id", "blueprint_name", "snapshot_id"})
            if (body->contains(k) && !(*body)[k].is_null()) ++given;
        if (given > 1) return fail(res, 400, "Only one of blueprint_id, blueprint_name, snapshot_id may be given");
        const auto failure = start_failure(req);
        std::unique_lock<std::mutex> lock(mu_);
        auto d = create_locked(*body);
        if (failure) d->start_failure = failure->body;
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
                return fail(res, 400, "limit must be an integer");
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
            if (it == order.end()) return fail(res, 400, "starting_after: unknown devbox " + after);
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
            return fail(res, 400, "statuses is required");
        std::vector<std::string> statuses;
        for (const auto& s : (*body)["statuses"])
            if (s.is_string()) statuses.push_back(s.get<std::string>());
        std::unique_lock<std::mutex> lock(mu_);
        auto d = find_locked(id);
        if (!d) return fail(res, 404, "Devbox " + id + " not found");
        auto deadline = std::chrono::steady_clock::now() + options_.long_poll_timeout;
        if (wait_status_locked(lock, *d, statuses, deadline)) return send_json(res, 200, view_locked(*d));
        fail(res, 408, "Timed out waiting for devbox " + id + " to reach a requested status");
    }

    void api_shutdown(httplib::Response& res, const std::string& id) {
        SandboxServers::Server srv;
        Json view;
        {
            std::unique_lock<std::mutex> lock(mu_);
            advance(lock);
            auto d = find_locked(id);
            if (!d) return fail(res, 404, "Devbox " + id + " not found");
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
                return fail(res, 400, "Devbox " + id + " is " + d.status + ", not " + from);
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
        if (mode != "open" && mode != "authenticated") return fail(res, 400, "auth_mode must be open or authenticated");
        with_devbox(res, id, false, [&](Devbox& d) {
            if (d.status == "shutdown" || d.status == "failure")
                return fail(res, 400, "Devbox " + id + " is not active (status " + d.status + ")");
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
            v["stdout"] = detail::last_lines(e.out, last_n, out_cut);
            v["stderr"] = detail::last_lines(e.err, last_n, err_cut);
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
        if (!body->contains("command") || !(*body)["command"].is_string()) return fail(res, 400, "command is required");
        if (mode == "execute" && (!body->contains("command_id") || !(*body)["command_id"].is_string()))
            return fail(res, 400, "command_id is required");
        double optimistic = 25;
        if (body->contains("optimistic_timeout") && (*body)["optimistic_timeout"].is_number())
            optimistic = std::clamp((*body)["optimistic_timeout"].get<double>(), 0.0, 25.0);
        auto last_n = last_n_of(req);
        std::unique_lock<std::mutex> lock(mu_);
        advance(lock);
        auto d = find_locked(id);
        if (!d) return fail(res, 404, "Devbox " + id + " not found");
        if (d->status != "running") return fail(res, 400, "Devbox " + id + " is not running (status " + d->status + ")");
        auto e = std::make_shared<Execution>();
        e->id = "exe_" + detail::random_token(20);
        e->command = (*body)["command"].get<std::string>();
        e->shell_name = body->value("shell_name", std::string());
        d->executions[e->id] = e;
        std::map<std::string, std::string> env;
        for (const auto& [k, v] : d->env.items())
            if (v.is_string()) env[k] = v.get<std::string>();
        try {
            e->shell = shell_.start(e->command, d->home, env, false, [this] {
                std::lock_guard<std::mutex> done_lock(mu_);
                cv_.notify_all();
            });
            e->status = "running";
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
        cv_.wait_until(lock, deadline, [&] { return sync(*e) || stopping_; });
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

    // Copies a finished command's result into its execution; true once completed.
    static bool sync(Execution& e) {
        if (e.status != "completed" && e.shell && e.shell->done()) {
            auto r = e.shell->result();
            e.out = std::move(r.out);
            e.err = std::move(r.err);
            e.exit_status = r.exit_code;
            e.status = "completed";
        }
        return e.status == "completed";
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
        if (!d) return fail(res, 404, "Devbox " + id + " not found");
        auto it = d->executions.find(exec_id);
        if (it == d->executions.end()) return fail(res, 404, "Execution " + exec_id + " not found");
        auto e = it->second;
        sync(*e);
        if (what == "kill") {
            if (e->shell) e->shell->kill();
            cv_.wait_for(lock, std::chrono::seconds(5), [&] { return sync(*e); });
        } else if (what == "wait") {
            std::vector<std::string> statuses;
            if (body->contains("statuses") && (*body)["statuses"].is_array())
                for (const auto& s : (*body)["statuses"])
                    if (s.is_string()) statuses.push_back(s.get<std::string>());
            if (statuses.empty()) return fail(res, 400, "statuses is required");
            auto hold = options_.long_poll_timeout;
            if (body->contains("timeout_seconds") && (*body)["timeout_seconds"].is_number())
                hold = std::min(hold, std::chrono::milliseconds(
                                          static_cast<std::int64_t>((*body)["timeout_seconds"].get<double>() * 1000)));
            auto matches = [&] {
                sync(*e);
                return std::find(statuses.begin(), statuses.end(), e->status) != statuses.end();
            };
            if (!cv_.wait_for(lock, hold, [&] { return matches() || stopping_; }) || !matches()) {
                res.set_header("x-should-retry", "true");
                return fail(res, 408, "Timed out waiting for execution " + exec_id);
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
        if (!body->contains(key) || !(*body)[key].is_string()) return fail(res, 400, std::string(key) + " is required");
        with_devbox(res, id, true, [&](Devbox& d) {
            auto path = resolve(d, (*body)[key].get<std::string>());
            std::ifstream in(path ? *path : std::filesystem::path(), std::ios::binary);
            if (!path || !in) return fail(res, 404, "File not found: " + (*body)[key].get<std::string>());
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
            return fail(res, 400, "file_path and contents are required");
        with_devbox(res, id, true, [&](Devbox& d) {
            auto path = resolve(d, (*body)["file_path"].get<std::string>());
            if (!path) return fail(res, 400, "invalid file_path");
            std::error_code ec;
            std::filesystem::create_directories(path->parent_path(), ec);
            std::ofstream(*path, std::ios::binary) << (*body)["contents"].get<std::string>();
            send_json(res, 200, Json{{"devbox_id", d.id}, {"exit_status", 0}, {"stdout", ""}, {"stderr", ""}});
        });
    }

    void api_upload_file(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        if (!req.has_file("path") || !req.has_file("file")) return fail(res, 400, "multipart fields path and file are required");
        auto target = req.get_file_value("path").content;
        auto content = req.get_file_value("file").content;
        with_devbox(res, id, true, [&](Devbox& d) {
            auto path = resolve(d, target);
            if (!path) return fail(res, 400, "invalid path");
            std::error_code ec;
            std::filesystem::create_directories(path->parent_path(), ec);
            std::ofstream(*path, std::ios::binary) << content;
            send_json(res, 200, Json::object());
        });
    }

    // ---- tunnels ---------------------------------------------------------------------------------

    void handle_tunnel(const httplib::Request& req, httplib::Response& res, int port, const std::string& key,
                       const std::string& rest) {
        int server_port = 0;
        {
            std::unique_lock<std::mutex> lock(mu_);
            advance(lock);
            std::shared_ptr<Devbox> d;
            for (const auto& c : devboxes_)
                if (c->tunnel.is_object() && c->tunnel["tunnel_key"] == key) d = c;
            if (!d) return fail(res, 404, "Tunnel not found");
            if (d->tunnel["auth_mode"] == "authenticated" &&
                !key_matches(req.get_header_value("X-Runloop-Tunnel-Authorization"),
                             "Bearer " + d->tunnel["auth_token"].get<std::string>()))
                return fail(res, 401, "Tunnel authorization required");
            if (d->status != "running" || !d->server || port != options_.server_port)
                return fail(res, 502, "Bad gateway: nothing is serving port " + std::to_string(port));
            server_port = d->server->port();
        }
        if (!forward(req, res, server_port, rest, {"x-runloop-tunnel-authorization"}))
            fail(res, 502, "Bad gateway: the devbox's server did not answer");
    }

    FakeRunloopOptions options_;
    std::unique_ptr<SandboxDir> root_dir_;  // every devbox's home is below it
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    bool stopping_ = false;
    std::vector<std::shared_ptr<Devbox>> devboxes_;
};

}  // namespace runbox::testing
