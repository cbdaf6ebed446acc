// runbox/testing/fake_daytona.hpp - an in-process fake of Daytona's API, toolbox and preview proxy.
//
// Use it in your own tests to run code written against Daytona (runbox::DaytonaRuntime, the
// official SDKs, curl) without network access or an account:
//
//     runbox::testing::FakeDaytona fake({.api_key = "dtn_test"});
//     fake.start();                                   // 127.0.0.1, any free port
//     cfg.providers["daytona"] = {{"api_key", "dtn_test"}, {"api_url", fake.url()}};
//     ...                                             // run the code under test
//     REQUIRE(fake.live_sandboxes() == 0);            // nothing leaked
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
// transition lasting `state_delay`.
//
// Faults are runbox::Fault rules (inject(); testing/fake_http.hpp says how each kind applies).
// Daytona specifics: a 429 reply gets Daytona's per-throttler headers (X-RateLimit-*-<throttler>,
// Retry-After-<throttler>) from the fault's `Retry-After` header; a start_failure on the create
// request moves the new sandbox creating -> error (pending_build -> build_failed when the create
// asked for a declarative build, `buildInfo`) with `errorReason` = the fault's body.
// Only listens on 127.0.0.1. Secrets never appear in requests().
#pragma once

#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdint>
#include <cstdio>
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
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/testing/fake_http.hpp"

namespace runbox::testing {

/// Settings of a FakeDaytona (designated initializers: `{.api_key = "k", .state_delay = 10ms}`).
struct FakeDaytonaOptions {
    std::string api_key = "dtn_test";  ///< the only Bearer token accepted
    int port = 0;                      ///< 0 = any free port
    std::string organization_id = "org-fake";  ///< the organization the API reports
    std::string default_target = "us";  ///< target of a sandbox created without one
    /// How long each transitional state (stopping, starting, destroying...) lasts.
    std::chrono::milliseconds state_delay{50};
    /// Slow start: a created sandbox stays `creating` this long (create answers `creating`).
    std::chrono::milliseconds create_delay{0};
    /// Slow start: extra time a start request stays `starting` on top of state_delay.
    std::chrono::milliseconds start_delay{0};
    /// Largest page the list endpoint returns, whatever `limit` asks (to exercise pagination).
    int max_page_size = 200;
    /// The action server a sandbox runs gets these plugins.
    std::vector<std::string> server_plugins{};
};

/// A snapshot of one sandbox.
struct FakeSandbox {
    std::string id;  ///< sandbox id
    std::string name;  ///< sandbox name
    std::string state;  ///< current state ("creating", "started", "stopped", "destroyed", "error"...)
    std::string desired_state;  ///< the state the last request asked for
    std::string error_reason;  ///< why it is in `error` (an injected start failure's reason); empty otherwise
    std::string snapshot;  ///< the snapshot it was created from
    std::string target;  ///< its target (region)
    std::map<std::string, std::string> labels;  ///< its labels (OpenHands_SID, runbox's ownership labels)
    std::map<std::string, std::string> env;  ///< the environment it was created with (secrets included: test use only)
    bool is_public = false;  ///< created with public = true
    int auto_stop_interval = 15;  ///< auto-stop interval, minutes (0 = never)
    bool server_running = false;  ///< an action server is running in it
    std::string server_url;         ///< the action server's direct URL when running
    std::string server_command;     ///< the command that started it
    std::filesystem::path directory;  ///< the sandbox's temporary directory
    nlohmann::json dto;             ///< the JSON the API returns for it
};


/// The Daytona fake (see the header comment). Public surface as every fake (FakeHttpServer),
/// plus Daytona's sandboxes, states and toolbox.
class FakeDaytona : public FakeHttpServer {
public:
    using Options = FakeDaytonaOptions;  ///< the options type

    /// A stopped fake with `options`; call start() to serve.
    explicit FakeDaytona(FakeDaytonaOptions options = {})
        : FakeHttpServer({.name = "fake-daytona", .port = options.port, .api_key = options.api_key}),
          options_(std::move(options)) {}
    ~FakeDaytona() override { stop(); }

    /// The API base URL to configure clients with (DAYTONA_API_URL / apiUrl).
    std::string url() const override { return base_url() + "/api"; }
    std::string toolbox_url() const { return base_url() + "/toolbox"; }  ///< the toolbox proxy's base URL

    /// Changes options (delays, page size) while running.
    void configure(const std::function<void(FakeDaytonaOptions&)>& change) {
        std::lock_guard lock(mutex_);
        change(options_);
    }

    /// Sandboxes that are running or on their way to it (desired state `started`, not failed or
    /// destroyed). A stop or delete request takes a sandbox out of this count at once.
    std::size_t live_sandboxes() const override {
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

    /// Snapshot of sandbox `id`, or nullopt if it never existed.
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
        SandboxServers::stop(std::move(server));
    }

private:
    struct Command {
        std::string id;
        std::string command;
        std::optional<int> exit_code;
        std::string out;
        std::string err;
        std::shared_ptr<ShellCommand> shell;  // an async command while it runs
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
        std::shared_ptr<SandboxDir> dir;  // removed when destroyed
        std::filesystem::path directory;
        std::shared_ptr<runbox::server::ActionServer> server;
        int server_port = 4444;
        std::string server_command;
        std::map<std::string, Session> sessions;
    };

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
        sb.created_at = sb.updated_at = detail::utc_timestamp(std::chrono::system_clock::now(), true);
        sb.preview_token = random_hex(32);
        log_.add_secret(sb.preview_token);
        sb.dir = std::make_shared<SandboxDir>("daytona");
        sb.directory = sb.dir->path();
        return sb;
    }

    void schedule(Sandbox& sb, std::string next, std::chrono::milliseconds delay) {
        sb.next_state = std::move(next);
        sb.transition_at = std::chrono::steady_clock::now() + delay;
        advance(sb);
    }

    void advance(Sandbox& sb) const {
        if (sb.next_state.empty() || std::chrono::steady_clock::now() < sb.transition_at) return;
        sb.state = std::exchange(sb.next_state, {});
        sb.updated_at = detail::utc_timestamp(std::chrono::system_clock::now(), true);
        if (sb.state == "destroyed" && sb.dir) sb.dir->remove();
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
        return {.id = sb.id, .name = sb.name, .state = sb.state, .desired_state = sb.desired_state,
                .error_reason = sb.error_reason, .snapshot = sb.snapshot, .target = sb.target, .labels = sb.labels,
                .env = sb.env, .is_public = sb.is_public, .auto_stop_interval = sb.auto_stop_interval,
                .server_running = static_cast<bool>(sb.server), .server_url = sb.server ? sb.server->url() : std::string(),
                .server_command = sb.server_command, .directory = sb.directory, .dto = dto(sb)};
    }

    static void send_json(Res& res, int status, const nlohmann::json& body) {
        res.status = status;
        res.set_content(body.dump(), "application/json");
    }

    // Daytona's API error body (NestJS exception filter).
    void send_error(const Req& req, Res& res, int status, const std::string& message) const override {
        static const std::map<int, std::string> reasons = {
            {400, "Bad Request"}, {401, "Unauthorized"}, {403, "Forbidden"}, {404, "Not Found"},
            {408, "Request Timeout"}, {409, "Conflict"}, {429, "Too Many Requests"},
            {500, "Internal Server Error"}, {502, "Bad Gateway"}};
        auto it = reasons.find(status);
        if (is_proxied(req)) return send_json(res, status, {{"statusCode", status}, {"message", message}, {"source", "DAYTONA_PROXY"}});
        send_json(res, status,
                  {{"path", req.path}, {"timestamp", detail::utc_timestamp(std::chrono::system_clock::now(), true)}, {"statusCode", status},
                   {"error", it == reasons.end() ? "Error" : it->second}, {"message", message}});
    }

    static std::string throttler_for(const Req& req) {
        if (req.method == "POST" && req.path == "/api/sandbox") return "sandbox-create";
        static const std::regex lifecycle(R"(/api/sandbox/[^/]+(/(start|stop|archive))?)");
        if ((req.method == "POST" || req.method == "DELETE") && std::regex_match(req.path, lifecycle)) return "sandbox-lifecycle";
        return "authenticated";
    }

    // A create's SESSION_API_KEY (and other secret-looking variables) stays out of the log.
    void learn_secrets(const Req& req) override {
        if (req.method != "POST" || req.path != "/api/sandbox") return;
        auto body = nlohmann::json::parse(req.body, nullptr, false);
        if (body.is_object() && body.contains("env")) log_.add_secrets_from_env(body["env"]);
    }

    bool is_proxied(const Req& req) const override { return req.path.rfind("/preview/", 0) == 0; }
    std::string unauthorized_message() const override { return "Invalid credentials"; }

    // A 429 fault carries Daytona's per-throttler headers, from the fault's Retry-After.
    void reply(const Req& req, Res& res, const Fault& fault) const override {
        FakeHttpServer::reply(req, res, fault);
        if (fault.status != 429) return;
        const std::string t = throttler_for(req);
        const std::string seconds = fault.headers.get("Retry-After").value_or("1");
        res.set_header("X-RateLimit-Limit-" + t, "10");
        res.set_header("X-RateLimit-Remaining-" + t, "0");
        res.set_header("X-RateLimit-Reset-" + t, seconds);
        res.set_header("Retry-After-" + t, seconds);
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

    void register_routes() override {
        namespace fs = std::filesystem;

        route("POST", "/api/sandbox", [this](const Req& req, Res& res) { create(req, res); });
        route("GET", "/api/sandbox", [this](const Req& req, Res& res) { list(req, res); });
        route("GET", R"(/api/sandbox/([^/]+))", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (Sandbox* sb = find(req, res, req.matches[1])) send_json(res, 200, dto(*sb));
              });
        route("DELETE", R"(/api/sandbox/([^/]+))", [this](const Req& req, Res& res) { remove(req, res); });
        route("POST", R"(/api/sandbox/([^/]+)/start)", [this](const Req& req, Res& res) { start_sandbox(req, res); });
        route("POST", R"(/api/sandbox/([^/]+)/stop)", [this](const Req& req, Res& res) { stop_sandbox(req, res, "stopped"); });
        route("POST", R"(/api/sandbox/([^/]+)/archive)", [this](const Req& req, Res& res) { stop_sandbox(req, res, "archived"); });
        route("POST", R"(/api/sandbox/([^/]+)/(autostop|autoarchive|autodelete)/(-?\d+))", [this](const Req& req, Res& res) {
                   std::lock_guard lock(mutex_);
                   if (Sandbox* sb = find(req, res, req.matches[1])) {
                       const int minutes = std::stoi(req.matches[3]);
                       const std::string what = req.matches[2];
                       (what == "autostop" ? sb->auto_stop_interval
                                           : what == "autoarchive" ? sb->auto_archive_interval : sb->auto_delete_interval) = minutes;
                       res.status = 200;
                   }
               });
        route("PUT", R"(/api/sandbox/([^/]+)/labels)", [this](const Req& req, Res& res) {
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
              });
        route("GET", R"(/api/sandbox/([^/]+)/ports/(\d+)/preview-url)", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (Sandbox* sb = find(req, res, req.matches[1])) {
                      const std::string port = req.matches[2];
                      send_json(res, 200, {{"sandboxId", sb->id},
                                           {"url", base_url() + "/preview/" + sb->id + "/" + port},
                                           {"token", sb->preview_token}});
                  }
              });
        route("GET", R"(/api/sandbox/([^/]+)/toolbox-proxy-url)", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (find(req, res, req.matches[1])) send_json(res, 200, {{"url", toolbox_url()}});
              });

        // Toolbox: process.
        route("POST", R"(/toolbox/([^/]+)/process/execute)", [this](const Req& req, Res& res) { execute(req, res); });
        route("POST", R"(/toolbox/([^/]+)/process/session)", [this](const Req& req, Res& res) {
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
               });
        route("GET", R"(/toolbox/([^/]+)/process/session)", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  Sandbox* sb = find_started(req, res, req.matches[1]);
                  if (!sb) return;
                  nlohmann::json out = nlohmann::json::array();
                  for (const auto& [id, session] : sb->sessions) out.push_back(session_json(session));
                  send_json(res, 200, out);
              });
        route("GET", R"(/toolbox/([^/]+)/process/session/([^/]+))", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  Sandbox* sb = find_started(req, res, req.matches[1]);
                  if (!sb) return;
                  auto it = sb->sessions.find(req.matches[2]);
                  if (it == sb->sessions.end()) return send_error(req, res, 404, "session not found");
                  send_json(res, 200, session_json(it->second));
              });
        route("DELETE", R"(/toolbox/([^/]+)/process/session/([^/]+))", [this](const Req& req, Res& res) {
                     std::lock_guard lock(mutex_);
                     Sandbox* sb = find_started(req, res, req.matches[1]);
                     if (!sb) return;
                     if (!sb->sessions.erase(req.matches[2])) return send_error(req, res, 404, "session not found");
                     res.status = 204;
                 });
        route("POST", R"(/toolbox/([^/]+)/process/session/([^/]+)/exec)", [this](const Req& req, Res& res) { session_exec(req, res); });
        route("GET", R"(/toolbox/([^/]+)/process/session/([^/]+)/command/([^/]+))", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  auto cmd = find_command(req, res);
                  if (!cmd) return;
                  nlohmann::json j = {{"id", cmd->id}, {"command", cmd->command}};
                  if (cmd->exit_code) j["exitCode"] = *cmd->exit_code;
                  send_json(res, 200, j);
              });
        route("GET", R"(/toolbox/([^/]+)/process/session/([^/]+)/command/([^/]+)/logs)", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  auto cmd = find_command(req, res);
                  if (!cmd) return;
                  send_json(res, 200, {{"output", cmd->out + cmd->err}, {"stdout", cmd->out}, {"stderr", cmd->err}});
              });

        // Toolbox: files (paths are inside the sandbox directory; relative = from the home dir).
        route("GET", R"(/toolbox/([^/]+)/user-home-dir)", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (find_started(req, res, req.matches[1])) send_json(res, 200, {{"dir", "/home/daytona"}});
              });
        route("GET", R"(/toolbox/([^/]+)/work-dir)", [this](const Req& req, Res& res) {
                  std::lock_guard lock(mutex_);
                  if (find_started(req, res, req.matches[1])) send_json(res, 200, {{"dir", "/home/daytona"}});
              });
        route("GET", R"(/toolbox/([^/]+)/files)", [this](const Req& req, Res& res) {
                  auto path = file_path(req, res, req.get_param_value("path"));
                  if (!path) return;
                  std::error_code ec;
                  if (!fs::is_directory(*path, ec)) return send_error(req, res, 404, "directory not found");
                  nlohmann::json out = nlohmann::json::array();
                  for (const auto& entry : fs::directory_iterator(*path, ec)) out.push_back(file_info(entry.path()));
                  send_json(res, 200, out);
              });
        route("GET", R"(/toolbox/([^/]+)/files/info)", [this](const Req& req, Res& res) {
                  auto path = file_path(req, res, req.get_param_value("path"));
                  if (!path) return;
                  std::error_code ec;
                  if (!fs::exists(*path, ec)) return send_error(req, res, 404, "file not found");
                  send_json(res, 200, file_info(*path));
              });
        route("GET", R"(/toolbox/([^/]+)/files/download)", [this](const Req& req, Res& res) {
                  auto path = file_path(req, res, req.get_param_value("path"));
                  if (!path) return;
                  std::ifstream in(*path, std::ios::binary);
                  if (!in) return send_error(req, res, 404, "file not found");
                  std::stringstream ss;
                  ss << in.rdbuf();
                  res.set_content(ss.str(), "application/octet-stream");
              });
        route("POST", R"(/toolbox/([^/]+)/files/folder)", [this](const Req& req, Res& res) {
                   auto path = file_path(req, res, req.get_param_value("path"));
                   if (!path) return;
                   std::error_code ec;
                   fs::create_directories(*path, ec);
                   res.status = ec ? 400 : 201;
               });
        route("DELETE", R"(/toolbox/([^/]+)/files)", [this](const Req& req, Res& res) {
                     auto path = file_path(req, res, req.get_param_value("path"));
                     if (!path) return;
                     std::error_code ec;
                     if (!fs::exists(*path, ec)) return send_error(req, res, 404, "file not found");
                     fs::remove_all(*path, ec);
                     res.status = 204;
                 });
        auto upload_one = [this](const Req& req, Res& res) {
            auto path = file_path(req, res, req.get_param_value("path"));
            if (!path) return;
            if (!req.has_file("file")) return send_error(req, res, 400, "file is required");
            write_file(*path, req.get_file_value("file").content);
            res.status = 200;
        };
        route("POST", R"(/toolbox/([^/]+)/files/upload)", upload_one);
        route("POST", R"(/toolbox/([^/]+)/files/upload-v2)", upload_one);
        route("POST", R"(/toolbox/([^/]+)/files/bulk-upload)", [this](const Req& req, Res& res) {
                   for (int i = 0;; ++i) {
                       const std::string key = "files[" + std::to_string(i) + "]";
                       if (!req.has_file(key + ".path") || !req.has_file(key + ".file")) break;
                       auto path = file_path(req, res, req.get_file_value(key + ".path").content);
                       if (!path) return;
                       write_file(*path, req.get_file_value(key + ".file").content);
                   }
                   res.status = 200;
               });
        route("POST", R"(/toolbox/([^/]+)/files/bulk-download)", [this](const Req& req, Res& res) {
                   auto body = nlohmann::json::parse(req.body, nullptr, false);
                   if (body.is_discarded() || !body.contains("paths") || !body["paths"].is_array())
                       return send_error(req, res, 400, "paths is required");
                   const std::string boundary = "runbox-fake-" + std::to_string(port());
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
               });

        // Preview proxy: /preview/{id}/{port}/rest -> the sandbox's action server.
        const std::string preview = R"(/preview/([^/]+)/(\d+)(/.*)?)";
        for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})
            route(method, preview, [this](const Req& req, Res& res) { proxy(req, res); });
    }

    void create(const Req& req, Res& res) {
        std::lock_guard lock(mutex_);
        auto body = nlohmann::json::parse(req.body, nullptr, false);
        if (body.is_discarded() || !body.is_object()) return send_error(req, res, 400, "Invalid request body");
        if (body.contains("snapshot") && (body.contains("cpu") || body.contains("memory") || body.contains("disk") || body.contains("gpu")))
            return send_error(req, res, 400, "Cannot specify Sandbox resources when using a snapshot");
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
            if (auto failure = start_failure(req)) {
                const bool build = body.contains("buildInfo");
                sb.state = build ? "pending_build" : "creating";
                sb.error_reason = failure->body.empty() ? "injected failure" : failure->body;
                schedule(sb, build ? "build_failed" : "error", options_.state_delay);
            } else {
                sb.state = "creating";
                schedule(sb, "started", options_.create_delay);
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
            log_.add_secret(sb->preview_token);
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
            if (c->id != req.matches[3].str()) continue;
            if (c->shell && c->shell->done()) {  // an async command ended: its result is final
                auto r = c->shell->result();
                c->out = std::move(r.out);
                c->err = std::move(r.err);
                c->exit_code = r.exit_code;
                c->shell.reset();
            }
            return c;
        }
        send_error(req, res, 404, "command not found");
        return nullptr;
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
        auto env = sb.env;
        env["HOME"] = sb.directory.string();
        auto so = sandbox_server_options(sb.directory, env);
        so.plugins = options_.server_plugins;
        sb.server = servers_.start(std::move(so));
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
            cmd->shell = shell_.start(cmd->command, dir, env, false);
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
        if (r.timed_out) {
            return send_json(res, 408, {{"statusCode", 408}, {"message", "command execution timeout"}, {"code", "REQUEST_TIMEOUT"},
                                        {"timestamp", detail::utc_timestamp(std::chrono::system_clock::now(), true)}, {"path", "/process/execute"},
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
                {"owner", "daytona"}, {"group", "daytona"}, {"modTime", detail::utc_timestamp(std::chrono::system_clock::now(), true)},
                {"modifiedAt", detail::utc_timestamp(std::chrono::system_clock::now(), true)}};
    }

    void proxy(const Req& req, Res& res) {
        int port = 0;
        {
            std::lock_guard lock(mutex_);
            auto it = sandboxes_.find(req.matches[1]);
            if (it == sandboxes_.end()) return send_error(req, res, 404, "sandbox not found");
            Sandbox& sb = it->second;
            advance(sb);
            if (!sb.is_public && !key_matches(req.get_header_value("X-Daytona-Preview-Token"), sb.preview_token) &&
                !key_matches(req.get_param_value("DAYTONA_SANDBOX_AUTH_KEY"), sb.preview_token))
                return send_error(req, res, 401, "Unauthorized: missing or invalid preview token");
            if (sb.state != "started" || !sb.server || std::to_string(sb.server_port) != req.matches[2].str())
                return send_error(req, res, 502, "Bad Gateway: no service on port " + req.matches[2].str());
            port = sb.server->port();
        }
        std::string path = req.matches[3].str();
        if (path.empty()) path = "/";
        if (auto q = req.target.find('?'); q != std::string::npos) path += req.target.substr(q);
        if (!forward(req, res, port, path, {"x-daytona-preview-token"}))
            send_error(req, res, 502, "Bad Gateway: the sandbox's server did not answer");
    }

    FakeDaytonaOptions options_;
    mutable std::mutex mutex_;
    mutable std::map<std::string, Sandbox> sandboxes_;  // advance() moves states on reads too
    std::uint64_t seq_ = 0;
    std::mt19937_64 rng_{std::random_device{}()};
};

}  // namespace runbox::testing
