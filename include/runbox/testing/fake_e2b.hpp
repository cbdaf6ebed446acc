// runbox/testing/fake_e2b.hpp - an in-process fake of E2B (control plane + envd) for offline tests.
//
// FakeE2B serves, on ONE 127.0.0.1 port, what E2B's localhost mode needs (provider-apis.md §2.6,
// §6.3): the control plane of https://api.e2b.app and the envd daemon of every sandbox. Point the
// official SDK at it with E2B_API_URL=E2B_SANDBOX_URL=url() (or runbox's E2BRuntime with
// api_url/sandbox_url); envd calls are told apart by their `E2b-Sandbox-Id` header, which the SDK
// always sends (so `/health` without that header is the API's, with it a sandbox's envd).
//
//   control plane  POST /v2/sandboxes, GET /v2/sandboxes (metadata/state filters, limit,
//                  nextToken + X-Next-Token), GET/DELETE /sandboxes/{id}, POST /sandboxes/{id}/
//                  timeout|refreshes|pause|resume, POST /v2/sandboxes/{id}/connect, GET /health.
//                  X-API-Key required; errors are {"code": <status>, "message"} (the SDK decides
//                  "not found" from that code).
//   envd           Connect RPC over HTTP/1.1 (JSON): process.Process/Start and /Connect
//                  (server-streaming, 5-byte envelopes: start, data, end, keepalive events),
//                  /List, /SendSignal; filesystem.Filesystem/Stat, /ListDir, /MakeDir, /Move,
//                  /Remove; plain HTTP GET/POST /files (multipart or raw), GET /health, GET /envs.
//                  X-Access-Token required (the sandbox's envdAccessToken).
//   ports          {port_url(id, port)} = http://127.0.0.1:P/ports/{port}-{id}/... stands for
//                  https://{port}-{id}.e2b.app: a reverse proxy to the sandbox's action server,
//                  which requires `e2b-traffic-access-token` when the sandbox is not public.
//
// A sandbox is a fresh temporary directory (its root "/"; the user's home is /home/user inside it).
// Process/Start really runs the command (the SDK sends /bin/bash -l -c CMD) on this machine with
// the sandbox's env, HOME inside the sandbox and the cwd mapped into it, and streams its output
// while it runs. A command that starts the action server (it names `runbox-server` or
// `action_execution_server`) starts a REAL runbox::server::ActionServer in-process instead,
// reachable through the port proxy at the port the command asks for; it "runs" until signalled or
// the sandbox is killed, then its stream sends `end`.
// Pause stops the sandbox's processes (SIGSTOP) and its port proxy answers 502; connect/resume
// continues them. A sandbox past its timeout is killed (or paused with autoPause), checked lazily on
// every request and accessor. Built on the fakes' base (testing/fake_http.hpp): the same surface
// as every fake, runbox::Fault faults (start_failure: the server command fails at once with the
// fault's body on stderr), the shared request log (secrets never appear in requests(); a Connect
// stream request's body is its envelope, see stream_json()) and shell runner.
#pragma once

#include <signal.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "runbox/detail/base64.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/error.hpp"
#include "runbox/server/action_server.hpp"
#include "runbox/testing/fake_http.hpp"
#include "runbox/transport/envelope.hpp"

namespace runbox::testing {

/// How a FakeE2B is built; every member has a default (designated initializers work).
struct FakeE2BOptions {
    std::string api_key = "e2b_test";  ///< the only X-API-Key accepted
    std::string host = "127.0.0.1";    ///< the loopback address it listens on
    int port = 0;                       ///< 0 = any free port
    std::string envd_version = "0.5.8";  ///< what create/connect report (the SDK refuses < 0.1.0)
    int default_timeout_seconds = 300;   ///< a create without `timeout`
    int max_timeout_seconds = 3600;      ///< larger timeouts are 400 (the hobby tier's 1 h)
    /// Upper bound for the keepalive interval a stream asks for (`Keepalive-Ping-Interval`, s).
    std::chrono::milliseconds max_keepalive_interval{50000};
    std::size_t max_body_bytes = std::size_t{64} << 20;    ///< larger request bodies are 413
    std::size_t max_output_bytes = std::size_t{16} << 20;  ///< output kept per process; more is dropped
    std::size_t max_json_depth = 64;                       ///< request JSON nesting
    std::size_t worker_threads = 48;  ///< every open stream and proxied request holds one
    std::string temp_root{};          ///< where sandbox directories go; empty = the system temp dir
    std::chrono::milliseconds no_change_timeout{10000};  ///< passed to each ActionServer
    std::vector<std::string> server_plugins{};           ///< plugins of the action servers started
};

/// A snapshot of one sandbox (a copy; safe to keep).
struct FakeE2BSandbox {
    std::string id;           ///< sandboxID
    std::string template_id;  ///< templateID of the create
    std::string state;  ///< "running" or "paused"
    nlohmann::json metadata = nlohmann::json::object();  ///< the create's metadata
    nlohmann::json env_vars = nlohmann::json::object();  ///< secret-looking values redacted
    int timeout_seconds = 0;  ///< the last timeout applied
    std::chrono::system_clock::time_point end_at{};  ///< when the TTL kills (or pauses) it
    bool allow_public_traffic = true;  ///< network.allowPublicTraffic (false = the traffic token is required)
    bool auto_pause = false;           ///< autoPause: the TTL pauses instead of killing
    std::filesystem::path root;   ///< the directory standing for "/"
    std::size_t running_processes = 0;  ///< processes started by Process/Start that have not ended
    std::vector<std::string> commands;  ///< every command line Process/Start ran, in order (redacted)
    std::string server_url;             ///< the backing action server while it runs, else empty
    int server_port = 0;                ///< the sandbox port it stands for
};

/// The E2B fake (see the header comment). Public surface as every fake (FakeHttpServer), plus
/// E2B's sandboxes, processes and port URLs.
class FakeE2B : public FakeHttpServer {
public:
    using Options = FakeE2BOptions;  ///< the options type (runbox-fake's table uses it)

    /// Builds the fake; start() serves it.
    explicit FakeE2B(FakeE2BOptions options = {})
        : FakeHttpServer({.name = "fake-e2b", .host = options.host, .port = options.port, .api_key = options.api_key,
                          .worker_threads = options.worker_threads, .max_body_bytes = options.max_body_bytes}),
          options_(std::move(options)),
          root_dir_(std::make_unique<SandboxDir>("e2b", options_.temp_root)) {}
    ~FakeE2B() override { stop(); }

    /// The options it was built with.
    const FakeE2BOptions& options() const { return options_; }

    /// Ends every stream and process, stops every action server, stops serving. Idempotent.
    void stop() override {
        FakeHttpServer::stop();  // on_stop() first: streams end, sandboxes are killed
        flush_stops();
    }

    /// Template for a sandbox port's URL, with `{port}` and `{id}` placeholders (stands for
    /// https://{port}-{id}.{domain}).
    std::string port_url_template() const { return base_url() + "/ports/{port}-{id}"; }
    /// The URL of port `port` of sandbox `id`.
    std::string port_url(const std::string& id, int port) const {
        return base_url() + "/ports/" + std::to_string(port) + "-" + id;
    }

    /// Sandboxes that exist (running or paused): what a leak check wants to be 0.
    std::size_t live_sandboxes() const override {
        std::lock_guard<std::mutex> lock(mu_);
        const_cast<FakeE2B*>(this)->expire_locked();
        return sandboxes_.size();
    }
    /// Sandboxes in state `running`.
    std::size_t running_sandboxes() const {
        std::lock_guard<std::mutex> lock(mu_);
        const_cast<FakeE2B*>(this)->expire_locked();
        return static_cast<std::size_t>(std::count_if(sandboxes_.begin(), sandboxes_.end(),
                                                      [](const auto& kv) { return kv.second->state == "running"; }));
    }
    /// Processes started by Process/Start that have not ended yet, in any sandbox, killed ones
    /// included (a killed process counts until it is reaped): what a leak check wants to be 0.
    std::size_t running_processes() const {
        std::lock_guard<std::mutex> lock(mu_);
        return static_cast<std::size_t>(
            std::count_if(all_procs_.begin(), all_procs_.end(), [](const auto& p) { return !p->ended; }));
    }

    /// A snapshot of every sandbox that exists (running or paused).
    std::vector<FakeE2BSandbox> sandboxes() const {
        std::lock_guard<std::mutex> lock(mu_);
        const_cast<FakeE2B*>(this)->expire_locked();
        std::vector<FakeE2BSandbox> out;
        for (const auto& [id, sb] : sandboxes_) out.push_back(snapshot_locked(*sb));
        return out;
    }
    /// A snapshot of sandbox `id`, if it exists.
    std::optional<FakeE2BSandbox> sandbox(const std::string& id) const {
        std::lock_guard<std::mutex> lock(mu_);
        const_cast<FakeE2B*>(this)->expire_locked();
        auto it = sandboxes_.find(id);
        if (it == sandboxes_.end()) return std::nullopt;
        return snapshot_locked(*it->second);
    }

    /// Creates a sandbox as POST /v2/sandboxes would (no request is logged); returns its id.
    std::string create_sandbox(const nlohmann::json& body = {{"templateID", "base"}}) {
        std::lock_guard<std::mutex> lock(mu_);
        return create_locked(body)->id;
    }

    /// The sandbox's timeout runs out now (as the platform's TTL would): killed, or paused with autoPause.
    void expire(const std::string& id) {
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto it = sandboxes_.find(id);
            if (it == sandboxes_.end()) return;
            it->second->end_at = std::chrono::system_clock::now() - std::chrono::seconds(1);
            expire_locked();
        }
        flush_stops();
    }

    /// Blocks until `pred()` holds or `bound` passes; true when it held.
    template <class Pred>
    bool wait_until(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(10)) const {
        return wait_for_change(mu_, cv_, std::move(pred), bound);
    }

    /// The JSON of a logged Connect stream request (its body is one envelope: 5 header bytes,
    /// then the message), or null. The log redacts secrets inside it, so the header's length
    /// may no longer match: only the message is read.
    static nlohmann::json stream_json(const FakeRequest& r) {
        if (r.body.size() < 5) return nullptr;
        auto parsed = nlohmann::json::parse(r.body.substr(5), nullptr, false);
        return parsed.is_discarded() ? nlohmann::json() : parsed;
    }
    /// True for a request that reached a sandbox's envd (it names the sandbox in E2b-Sandbox-Id).
    static bool is_envd(const FakeRequest& r) { return r.headers.count("e2b-sandbox-id") == 1 && !r.proxied; }

private:
    using Json = nlohmann::json;
    using Clock = std::chrono::steady_clock;

    struct Proc {
        std::uint32_t pid = 0;
        std::string tag;
        Json config = Json::object();  ///< the ProcessConfig (envs redacted in List answers)
        std::vector<Json> events;      ///< ProcessEvent values, `start` first
        std::size_t output_bytes = 0;
        bool ended = false;
        int signalled = 0;                        ///< the signal SendSignal/kill sent, if any
        std::shared_ptr<ShellCommand> command;    ///< a real process
        std::shared_ptr<server::ActionServer> server;  ///< an in-process action server
        int server_port = 0;
    };

    struct Sandbox {
        std::string id;
        std::string template_id;
        std::string client_id;
        std::string envd_token;
        std::string traffic_token;  ///< empty = public
        std::string state = "running";
        Json metadata = Json::object();
        Json env_vars = Json::object();
        std::int64_t seq = 0;  ///< creation order (list order and cursor)
        std::chrono::system_clock::time_point started_at{};
        std::chrono::system_clock::time_point end_at{};
        int timeout_seconds = 0;
        bool auto_pause = false;
        std::unique_ptr<SandboxDir> dir;
        std::filesystem::path root;
        std::map<std::uint32_t, std::shared_ptr<Proc>> procs;
        std::vector<std::string> commands;
    };

    // ---- FakeHttpServer hooks --------------------------------------------------------------------

    void register_routes() override {
        for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH"})
            route(method, ".*", [this](const Req& req, Res& res) { dispatch(req, res); });
    }

    /// The control plane's and envd HTTP's error body is `{"code": <status>, "message"}`; a
    /// Connect RPC's is `{"code": "<name>", "message"}`.
    void send_error(const Req& req, Res& res, int status, const std::string& message) const override {
        if (req.path.find('.') != std::string::npos && req.path.rfind("/ports/", 0) != 0)
            return send_connect_error(res, connect_code_of(status), message);
        send_json(res, status, Json{{"code", status}, {"message", message}});
    }

    /// The API needs X-API-Key; envd (E2b-Sandbox-Id) checks its own token, /health needs nothing.
    bool authorized(const Req& req) const override {
        if (req.has_header("E2b-Sandbox-Id") || (req.path == "/health" && req.method == "GET")) return true;
        return key_matches(req.get_header_value("X-API-Key"), api_key());
    }
    std::string unauthorized_message() const override { return "Invalid API key, it must start with 'e2b_' prefix"; }
    bool is_proxied(const Req& req) const override { return req.path.rfind("/ports/", 0) == 0; }

    // Secret-looking env values of a create or a Start stay out of the log and snapshots.
    void learn_secrets(const Req& req) override {
        if (is_proxied(req)) return;
        if (req.body.find("envVars") != std::string::npos)
            if (auto j = parse_json(req.body); j && j->contains("envVars")) log_.add_secrets_from_env((*j)["envVars"]);
        if (req.body.find("envs") != std::string::npos && req.body.size() > 5)
            if (auto j = parse_json(req.body.substr(5)); j && j->contains("process") && (*j)["process"].is_object() &&
                                                         (*j)["process"].contains("envs"))
                log_.add_secrets_from_env((*j)["process"]["envs"]);
    }

    void on_stop() override {
        {
            std::lock_guard<std::mutex> lock(mu_);
            stopping_ = true;
            std::vector<std::string> ids;
            for (const auto& [id, sb] : sandboxes_) ids.push_back(id);
            for (const auto& id : ids) kill_locked(id);
        }
        cv_.notify_all();
        flush_stops();
    }

    // ---- small helpers ---------------------------------------------------------------------------

    static std::string lower(std::string s) { return server::detail::ascii_lower(std::move(s)); }

    static void send_json(httplib::Response& res, int status, const Json& body) {
        res.status = status;
        res.set_content(body.dump(), "application/json");
    }
    /// The control plane's and envd HTTP's error: `{"code": <status>, "message"}`.
    static void fail(httplib::Response& res, int status, const std::string& message) {
        send_json(res, status, Json{{"code", status}, {"message", message}});
    }
    /// A Connect unary error: the HTTP status of the code, {"code": "<name>", "message"}.
    static void send_connect_error(httplib::Response& res, const std::string& code, const std::string& message) {
        send_json(res, connect_http_status(code), Json{{"code", code}, {"message", message}});
    }
    // Connect's code -> HTTP status table (connectrpc.com/docs/protocol).
    static const std::map<std::string, int>& connect_table() {
        static const std::map<std::string, int> table = {
            {"canceled", 499},          {"unknown", 500},            {"invalid_argument", 400},
            {"deadline_exceeded", 504}, {"not_found", 404},          {"already_exists", 409},
            {"permission_denied", 403}, {"resource_exhausted", 429}, {"failed_precondition", 400},
            {"aborted", 409},           {"out_of_range", 400},       {"unimplemented", 501},
            {"internal", 500},          {"unavailable", 503},        {"data_loss", 500},
            {"unauthenticated", 401}};
        return table;
    }
    static int connect_http_status(const std::string& code) {
        auto it = connect_table().find(code);
        return it == connect_table().end() ? 500 : it->second;
    }
    static std::string connect_code_of(int status) {
        switch (status) {
            case 400: return "invalid_argument";
            case 401: return "unauthenticated";
            case 403: return "permission_denied";
            case 404: return "not_found";
            case 409: return "already_exists";
            case 429: return "resource_exhausted";
            case 501: return "unimplemented";
            case 503: return "unavailable";
            case 504: return "deadline_exceeded";
            default: return status >= 500 ? "internal" : "unknown";
        }
    }

    std::optional<Json> parse_json(const std::string& text) const {
        runbox::detail::JsonLimits limits;
        limits.max_depth = options_.max_json_depth;
        limits.max_bytes = options_.max_body_bytes;
        auto j = runbox::detail::parse_untrusted_json(text, limits);
        if (j.is_discarded() || !j.is_object()) return std::nullopt;
        return j;
    }

    static std::string quote(const std::string& s) {
        std::string out = "'";
        for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
        return out + "'";
    }

    Json redacted(const Json& j) const {
        auto parsed = Json::parse(log_.redact(j.dump()), nullptr, false);
        return parsed.is_discarded() ? Json() : parsed;
    }

    std::shared_ptr<Sandbox> find_locked(const std::string& id) const {
        auto it = sandboxes_.find(id);
        return it == sandboxes_.end() ? nullptr : it->second;
    }

    FakeE2BSandbox snapshot_locked(const Sandbox& sb) const {
        FakeE2BSandbox s;
        s.id = sb.id;
        s.template_id = sb.template_id;
        s.state = sb.state;
        s.metadata = sb.metadata;
        s.env_vars = redacted(sb.env_vars);
        s.timeout_seconds = sb.timeout_seconds;
        s.end_at = sb.end_at;
        s.allow_public_traffic = sb.traffic_token.empty();
        s.auto_pause = sb.auto_pause;
        s.root = sb.root;
        for (const auto& c : sb.commands) s.commands.push_back(log_.redact(c));
        for (const auto& [pid, p] : sb.procs) {
            if (p->ended) continue;
            ++s.running_processes;
            if (p->server) {
                s.server_url = p->server->url();
                s.server_port = p->server_port;
            }
        }
        return s;
    }

    // ---- sandbox lifecycle -----------------------------------------------------------------------

    std::shared_ptr<Sandbox> create_locked(const Json& body) {
        auto sb = std::make_shared<Sandbox>();
        sb->id = "i" + detail::random_token(19);
        sb->template_id = body.value("templateID", std::string("base"));
        sb->client_id = "fakeclient";
        sb->envd_token = "ea_" + detail::random_token(32);
        log_.add_secret(sb->envd_token);
        if (body.contains("metadata") && body["metadata"].is_object())
            for (const auto& [k, v] : body["metadata"].items())
                if (v.is_string()) sb->metadata[k] = v;
        if (body.contains("envVars") && body["envVars"].is_object())
            for (const auto& [k, v] : body["envVars"].items())
                if (v.is_string()) sb->env_vars[k] = v;
        log_.add_secrets_from_env(sb->env_vars);
        const bool is_public = !(body.contains("network") && body["network"].is_object() &&
                                 body["network"].value("allowPublicTraffic", true) == false);
        if (!is_public) {
            sb->traffic_token = "tt_" + detail::random_token(32);
            log_.add_secret(sb->traffic_token);
        }
        sb->auto_pause = body.value("autoPause", false);
        sb->timeout_seconds = body.contains("timeout") && body["timeout"].is_number_integer()
                                  ? body["timeout"].get<int>()
                                  : options_.default_timeout_seconds;
        sb->started_at = std::chrono::system_clock::now();
        sb->end_at = sb->started_at + std::chrono::seconds(sb->timeout_seconds);
        sb->seq = ++seq_;
        sb->dir = std::make_unique<SandboxDir>("sbx", root_dir_->path());
        sb->root = sb->dir->path();
        std::error_code ec;
        std::filesystem::create_directories(sb->root / "home" / "user", ec);
        std::filesystem::create_directories(sb->root / "tmp", ec);
        sandboxes_[sb->id] = sb;
        return sb;
    }

    /// Sandbox JSON as create and connect answer it (`Sandbox`).
    Json sandbox_view(const Sandbox& sb) const {
        return Json{{"sandboxID", sb.id},
                    {"templateID", sb.template_id},
                    {"alias", sb.template_id},
                    {"clientID", sb.client_id},
                    {"envdVersion", options_.envd_version},
                    {"envdAccessToken", sb.envd_token},
                    {"trafficAccessToken", sb.traffic_token.empty() ? Json(nullptr) : Json(sb.traffic_token)},
                    {"domain", nullptr}};
    }

    /// `ListedSandbox` (list) and, with detail, `SandboxDetail` (get info).
    Json listed_view(const Sandbox& sb, bool detail) const {
        Json v = {{"sandboxID", sb.id},
                  {"templateID", sb.template_id},
                  {"alias", sb.template_id},
                  {"clientID", sb.client_id},
                  {"startedAt", detail::utc_timestamp(sb.started_at)},
                  {"endAt", detail::utc_timestamp(sb.end_at)},
                  {"state", sb.state},
                  {"cpuCount", 2},
                  {"memoryMB", 512},
                  {"diskSizeMB", 10240},
                  {"envdVersion", options_.envd_version},
                  {"metadata", sb.metadata}};
        if (detail) {
            v["domain"] = nullptr;
            v["envdAccessToken"] = sb.envd_token;
            v["allowInternetAccess"] = true;
            v["network"] = {{"allowPublicTraffic", sb.traffic_token.empty()}};
            v["lifecycle"] = {{"onTimeout", sb.auto_pause ? "pause" : "kill"}, {"autoResume", false}};
        }
        return v;
    }

    static void signal_processes_locked(Sandbox& sb, int sig) {
        for (auto& [pid, p] : sb.procs)
            if (!p->ended && p->command) p->command->signal(sig);
    }

    /// Ends an in-process server's "process": the end event, the server queued to stop unlocked.
    void end_server_locked(Proc& p, const char* status) {
        if (p.ended) return;
        p.events.push_back(Json{{"end", {{"exitCode", -1}, {"exited", true}, {"status", status}}}});
        p.ended = true;
        if (p.server) to_stop_.push_back(std::move(p.server));
        cv_.notify_all();
    }

    /// Removes the sandbox: processes killed, servers queued to stop, its directory goes with it.
    void kill_locked(const std::string& id) {
        auto sb = find_locked(id);
        if (!sb) return;
        for (auto& [pid, p] : sb->procs) {
            if (p->ended) continue;
            if (p->command) {
                p->signalled = SIGKILL;
                p->command->signal(SIGCONT);  // a paused process must run to die
                p->command->kill();
            } else {
                end_server_locked(*p, "signal: killed");
            }
        }
        if (sb->dir) dirs_to_remove_.push_back(std::move(sb->dir));
        sandboxes_.erase(id);
        cv_.notify_all();
    }

    void pause_locked(Sandbox& sb) {
        sb.state = "paused";
        signal_processes_locked(sb, SIGSTOP);
    }

    void resume_locked(Sandbox& sb, int timeout) {
        sb.state = "running";
        signal_processes_locked(sb, SIGCONT);
        sb.timeout_seconds = timeout;
        sb.end_at = std::chrono::system_clock::now() + std::chrono::seconds(timeout);
    }

    /// The TTL backstop: a sandbox past end_at is killed, or paused when it has autoPause.
    void expire_locked() {
        const auto now = std::chrono::system_clock::now();
        std::vector<std::string> dead;
        for (auto& [id, sb] : sandboxes_) {
            if (sb->state != "running" || now < sb->end_at) continue;
            if (sb->auto_pause) {
                pause_locked(*sb);
            } else {
                dead.push_back(id);
            }
        }
        for (const auto& id : dead) kill_locked(id);
    }

    /// Stops queued action servers and removes queued directories (never with mu_ held).
    void flush_stops() {
        std::vector<std::shared_ptr<server::ActionServer>> servers;
        std::vector<std::unique_ptr<SandboxDir>> dirs;
        {
            std::lock_guard<std::mutex> lock(mu_);
            servers.swap(to_stop_);
            dirs.swap(dirs_to_remove_);
        }
        for (auto& srv : servers) SandboxServers::stop(std::move(srv));
        dirs.clear();  // each SandboxDir removes its tree
    }

    // ---- paths inside a sandbox ------------------------------------------------------------------

    /// A sandbox path (absolute, or relative to /home/user) as the normalised absolute sandbox path.
    static std::string sandbox_path(const std::string& p) {
        std::filesystem::path path = p.empty() ? std::filesystem::path("/home/user") : std::filesystem::path(p);
        if (!path.is_absolute()) path = std::filesystem::path("/home/user") / path;
        auto normal = path.lexically_normal().string();  // "/.." normalises to "/": no escape
        while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
        return normal;
    }
    static std::filesystem::path host_path(const Sandbox& sb, const std::string& p) {
        return sb.root / std::filesystem::path(sandbox_path(p)).relative_path();
    }
    static std::string to_sandbox(const Sandbox& sb, const std::filesystem::path& host) {
        auto rel = host.lexically_relative(sb.root).string();
        return rel == "." || rel.empty() ? "/" : "/" + rel;
    }

    static std::string permissions_text(mode_t mode) {
        std::string s = S_ISDIR(mode) ? "d" : S_ISLNK(mode) ? "L" : "-";
        const char* rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; ++i) s += (mode & (0400 >> i)) ? rwx[i] : '-';
        return s;
    }

    /// EntryInfo of a host path (lstat: a symlink is reported as one), or nullopt when absent.
    static std::optional<Json> entry_info(const Sandbox& sb, const std::filesystem::path& host) {
        struct stat st {};
        if (::lstat(host.c_str(), &st) != 0) return std::nullopt;
        const char* type = S_ISDIR(st.st_mode) ? "FILE_TYPE_DIRECTORY" : S_ISLNK(st.st_mode) ? "FILE_TYPE_SYMLINK"
                                                                                             : "FILE_TYPE_FILE";
        Json e = {{"name", host.filename().string()},
                  {"type", type},
                  {"path", to_sandbox(sb, host)},
                  {"size", std::to_string(static_cast<long long>(st.st_size))},
                  {"mode", static_cast<std::uint32_t>(st.st_mode & 07777)},
                  {"permissions", permissions_text(st.st_mode)},
                  {"owner", "user"},
                  {"group", "user"},
                  {"modifiedTime", detail::utc_timestamp(std::chrono::system_clock::from_time_t(st.st_mtime))}};
        if (S_ISLNK(st.st_mode)) {
            std::error_code ec;
            e["symlinkTarget"] = std::filesystem::read_symlink(host, ec).string();
        }
        return e;
    }

    // ---- request routing -------------------------------------------------------------------------

    void dispatch(const Req& req, Res& res) {
        static const std::string ports_prefix = "/ports/";
        {
            std::lock_guard<std::mutex> lock(mu_);
            expire_locked();
        }
        flush_stops();
        if (req.path.rfind(ports_prefix, 0) == 0) {
            auto name_end = req.path.find('/', ports_prefix.size());
            auto name = req.path.substr(ports_prefix.size(), name_end == std::string::npos ? std::string::npos
                                                                                          : name_end - ports_prefix.size());
            auto dash = name.find('-');
            int port = 0;
            try {
                port = dash == std::string::npos ? 0 : std::stoi(name.substr(0, dash));
            } catch (...) {
                port = 0;
            }
            handle_port(req, res, dash == std::string::npos ? std::string() : name.substr(dash + 1), port,
                        name_end == std::string::npos ? "/" : req.path.substr(name_end));
        } else if (req.has_header("E2b-Sandbox-Id")) {
            handle_envd(req, res, req.get_header_value("E2b-Sandbox-Id"));
        } else {
            handle_api(req, res);
        }
        flush_stops();
    }

    // ---- control plane ---------------------------------------------------------------------------

    void handle_api(const httplib::Request& req, httplib::Response& res) {
        const auto& path = req.path;
        if (path == "/health" && req.method == "GET") {
            res.status = 204;
            return;
        }
        static const std::regex v1_re(R"(/sandboxes/([A-Za-z0-9_\-]+)(/[a-z]+)?)");
        static const std::regex v2_re(R"(/v2/sandboxes/([A-Za-z0-9_\-]+)/connect)");
        std::smatch m;
        if (path == "/v2/sandboxes" || path == "/sandboxes") {
            if (req.method == "POST") return api_create(req, res);
            if (req.method == "GET") return api_list(req, res);
            return fail(res, 405, "Method not allowed");
        }
        if (std::regex_match(path, m, v2_re) && req.method == "POST") return api_connect(req, res, m[1].str(), true);
        if (!std::regex_match(path, m, v1_re)) return fail(res, 404, "Not found: " + path);
        const std::string id = m[1].str();
        const std::string sub = m[2].str();
        if (sub.empty()) {
            if (req.method == "GET") return api_get(res, id);
            if (req.method == "DELETE") return api_kill(res, id);
            return fail(res, 405, "Method not allowed");
        }
        if (req.method != "POST") return fail(res, 405, "Method not allowed");
        if (sub == "/timeout") return api_timeout(req, res, id, "timeout");
        if (sub == "/refreshes") return api_timeout(req, res, id, "duration");
        if (sub == "/pause") return api_pause(res, id);
        if (sub == "/resume") return api_connect(req, res, id, false);
        fail(res, 404, "Not found: " + path);
    }

    std::optional<Json> api_body(const httplib::Request& req, httplib::Response& res) const {
        if (req.body.empty()) return Json::object();
        auto j = parse_json(req.body);
        if (!j) fail(res, 400, "Request body must be a JSON object within the fake's limits");
        return j;
    }

    bool valid_timeout(const Json& body, const char* key, httplib::Response& res) const {
        if (!body.contains(key)) return true;
        if (!body[key].is_number_integer() || body[key].get<long long>() < 0) {
            fail(res, 400, std::string(key) + " must be a non-negative integer (seconds)");
            return false;
        }
        if (body[key].get<long long>() > options_.max_timeout_seconds) {
            fail(res, 400, "Timeout cannot be greater than " + std::to_string(options_.max_timeout_seconds / 3600) + " hours");
            return false;
        }
        return true;
    }

    void api_create(const httplib::Request& req, httplib::Response& res) {
        auto body = api_body(req, res);
        if (!body) return;
        if (!body->contains("templateID") || !(*body)["templateID"].is_string() ||
            (*body)["templateID"].get<std::string>().empty())
            return fail(res, 400, "templateID is required");
        if (!valid_timeout(*body, "timeout", res)) return;
        for (const char* k : {"metadata", "envVars"})
            if (body->contains(k) && !(*body)[k].is_object() && !(*body)[k].is_null())
                return fail(res, 400, std::string(k) + " must be an object of strings");
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) return fail(res, 503, "the fake is stopping");
        auto sb = create_locked(*body);
        send_json(res, 201, sandbox_view(*sb));
    }

    void api_get(httplib::Response& res, const std::string& id) {
        std::lock_guard<std::mutex> lock(mu_);
        auto sb = find_locked(id);
        if (!sb) return fail(res, 404, "sandbox \"" + id + "\" doesn't exist or you don't have access to it");
        send_json(res, 200, listed_view(*sb, true));
    }

    void api_kill(httplib::Response& res, const std::string& id) {
        std::lock_guard<std::mutex> lock(mu_);
        if (!find_locked(id)) return fail(res, 404, "sandbox \"" + id + "\" doesn't exist or you don't have access to it");
        kill_locked(id);
        res.status = 204;
    }

    void api_timeout(const httplib::Request& req, httplib::Response& res, const std::string& id, const char* key) {
        auto body = api_body(req, res);
        if (!body) return;
        if (!body->contains(key)) return fail(res, 400, std::string(key) + " is required");
        if (!valid_timeout(*body, key, res)) return;
        std::lock_guard<std::mutex> lock(mu_);
        auto sb = find_locked(id);
        if (!sb) return fail(res, 404, "sandbox \"" + id + "\" doesn't exist or you don't have access to it");
        const int seconds = (*body)[key].get<int>();
        if (std::string(key) == "timeout") {
            sb->timeout_seconds = seconds;
            sb->end_at = std::chrono::system_clock::now() + std::chrono::seconds(seconds);
        } else {
            sb->end_at = std::max(sb->end_at, std::chrono::system_clock::now() + std::chrono::seconds(seconds));
        }
        res.status = 204;
    }

    void api_pause(httplib::Response& res, const std::string& id) {
        std::lock_guard<std::mutex> lock(mu_);
        auto sb = find_locked(id);
        if (!sb) return fail(res, 404, "sandbox \"" + id + "\" doesn't exist or you don't have access to it");
        if (sb->state == "paused") return fail(res, 409, "sandbox \"" + id + "\" is already paused");
        pause_locked(*sb);
        res.status = 204;
    }

    // connect (v2): 200 when it was running (the timeout is only extended), 201 when resumed;
    // resume (deprecated): 201, 409 when it is not paused.
    void api_connect(const httplib::Request& req, httplib::Response& res, const std::string& id, bool v2) {
        auto body = api_body(req, res);
        if (!body) return;
        if (!valid_timeout(*body, "timeout", res)) return;
        std::lock_guard<std::mutex> lock(mu_);
        auto sb = find_locked(id);
        if (!sb) return fail(res, 404, "sandbox \"" + id + "\" doesn't exist or you don't have access to it");
        const int timeout = body->contains("timeout") ? (*body)["timeout"].get<int>() : options_.default_timeout_seconds;
        if (sb->state == "paused") {
            resume_locked(*sb, timeout);
            return send_json(res, 201, sandbox_view(*sb));
        }
        if (!v2) return fail(res, 409, "sandbox \"" + id + "\" is already running");
        auto wanted = std::chrono::system_clock::now() + std::chrono::seconds(timeout);
        if (wanted > sb->end_at) {
            sb->end_at = wanted;
            sb->timeout_seconds = timeout;
        }
        send_json(res, 200, sandbox_view(*sb));
    }

    // The metadata filter is itself a query string (k=v&k2=v2, keys and values URL-encoded once
    // more by the SDK): every pair must match.
    static std::optional<std::map<std::string, std::string>> metadata_filter(const std::string& text) {
        std::map<std::string, std::string> out;
        if (text.empty()) return out;
        std::stringstream in(text);
        for (std::string pair; std::getline(in, pair, '&');) {
            if (pair.empty()) continue;
            auto eq = pair.find('=');
            if (eq == std::string::npos) return std::nullopt;
            auto key = httplib::detail::decode_url(httplib::detail::decode_url(pair.substr(0, eq), true), false);
            auto value = httplib::detail::decode_url(httplib::detail::decode_url(pair.substr(eq + 1), true), false);
            out[key] = value;
        }
        return out;
    }

    void api_list(const httplib::Request& req, httplib::Response& res) {
        auto filter = metadata_filter(req.get_param_value("metadata"));
        if (!filter) return fail(res, 400, "metadata must be a query string of key=value pairs");
        std::vector<std::string> states;
        std::stringstream st(req.has_param("state") ? req.get_param_value("state") : std::string("running,paused"));
        for (std::string s; std::getline(st, s, ',');) {
            if (s != "running" && s != "paused") return fail(res, 400, "state must be running or paused");
            states.push_back(s);
        }
        long limit = 100;
        if (req.has_param("limit")) {
            try {
                limit = std::stol(req.get_param_value("limit"));
            } catch (...) {
                limit = -1;
            }
            if (limit < 1 || limit > 100) return fail(res, 400, "limit must be between 1 and 100");
        }
        const bool ascending = req.get_param_value("order") == "asc";
        std::int64_t cursor = 0;
        if (req.has_param("nextToken")) {
            try {
                cursor = std::stoll(req.get_param_value("nextToken"));
            } catch (...) {
                return fail(res, 400, "invalid nextToken");
            }
        }
        std::lock_guard<std::mutex> lock(mu_);
        std::vector<std::shared_ptr<Sandbox>> order;
        for (const auto& [id, sb] : sandboxes_) order.push_back(sb);
        std::sort(order.begin(), order.end(),
                  [&](const auto& a, const auto& b) { return ascending ? a->seq < b->seq : a->seq > b->seq; });
        Json items = Json::array();
        std::int64_t next = 0;
        std::size_t running = 0;
        for (const auto& sb : order) {
            running += sb->state == "running" ? 1 : 0;
            if (std::find(states.begin(), states.end(), sb->state) == states.end()) continue;
            bool match = true;
            for (const auto& [k, v] : *filter)
                match = match && sb->metadata.contains(k) && sb->metadata[k] == v;
            if (!match) continue;
            if (cursor != 0 && (ascending ? sb->seq <= cursor : sb->seq >= cursor)) continue;
            if (static_cast<long>(items.size()) == limit) {
                next = items.back().value("_seq", std::int64_t{0});
                break;
            }
            auto v = listed_view(*sb, false);
            v["_seq"] = sb->seq;
            items.push_back(std::move(v));
        }
        for (auto& v : items) v.erase("_seq");
        if (next != 0) res.set_header("X-Next-Token", std::to_string(next));
        res.set_header("X-Total-Running", std::to_string(running));
        send_json(res, 200, items);
    }

    // ---- envd ------------------------------------------------------------------------------------

    void handle_envd(const httplib::Request& req, httplib::Response& res, const std::string& id) {
        std::shared_ptr<Sandbox> sb;
        {
            std::lock_guard<std::mutex> lock(mu_);
            sb = find_locked(id);
            // The edge proxy: a gone or paused sandbox is 502 (the SDK reads that as "not running").
            if (!sb || sb->state != "running")
                return send_json(res, 502, Json{{"sandboxId", id}, {"message", "The sandbox was not found"}, {"code", 502}});
        }
        if (req.path == "/health" && req.method == "GET") {
            res.status = 204;
            return;
        }
        if (!key_matches(req.get_header_value("X-Access-Token"), sb->envd_token)) {
            if (req.path.find('.') != std::string::npos)  // a Connect RPC path
                return send_connect_error(res, "unauthenticated", "invalid access token");
            return fail(res, 401, "unauthorized access, please provide a valid access token");
        }
        if (req.path == "/files") {
            if (req.method == "GET") return files_download(req, res, *sb);
            if (req.method == "POST") return files_upload(req, res, *sb);
            return fail(res, 405, "Method not allowed");
        }
        if (req.path == "/envs" && req.method == "GET") {
            std::lock_guard<std::mutex> lock(mu_);
            return send_json(res, 200, sb->env_vars);
        }
        if (req.method != "POST") return fail(res, 404, "Not found: " + req.path);
        if (req.path == "/process.Process/Start") return process_stream(req, res, sb, true);
        if (req.path == "/process.Process/Connect") return process_stream(req, res, sb, false);
        auto body_ok = [&]() -> std::optional<Json> {
            if (lower(req.get_header_value("Content-Type")).rfind("application/json", 0) != 0) {
                send_connect_error(res, "unimplemented", "the fake speaks Connect with JSON only");
                return std::nullopt;
            }
            auto j = req.body.empty() ? std::optional<Json>(Json::object()) : parse_json(req.body);
            if (!j) send_connect_error(res, "invalid_argument", "the request is not a JSON object within limits");
            return j;
        };
        const std::string& p = req.path;
        if (p == "/process.Process/List") {
            if (!body_ok()) return;
            return process_list(res, *sb);
        }
        if (p == "/process.Process/SendSignal") {
            auto body = body_ok();
            if (!body) return;
            return process_signal(res, *sb, *body);
        }
        if (p.rfind("/process.Process/", 0) == 0)
            return send_connect_error(res, "unimplemented", p.substr(1) + " is not implemented by the fake");
        if (p.rfind("/filesystem.Filesystem/", 0) == 0) {
            auto body = body_ok();
            if (!body) return;
            return filesystem_rpc(res, *sb, p.substr(std::string("/filesystem.Filesystem/").size()), *body);
        }
        fail(res, 404, "Not found: " + p);
    }

    // GET /files?path=  ->  the bytes, or {"code","message"} JSON.
    void files_download(const httplib::Request& req, httplib::Response& res, const Sandbox& sb) const {
        if (!req.has_param("path")) return fail(res, 400, "path is required");
        const auto spath = sandbox_path(req.get_param_value("path"));
        const auto host = host_path(sb, spath);
        std::error_code ec;
        if (std::filesystem::is_directory(host, ec)) return fail(res, 400, "path '" + spath + "' is a directory");
        std::ifstream in(host, std::ios::binary);
        if (!in) return fail(res, 404, "path '" + spath + "' does not exist");
        std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        res.status = 200;
        res.set_content(content, "application/octet-stream");
    }

    static bool write_file(const std::filesystem::path& host, const std::string& content) {
        std::error_code ec;
        std::filesystem::create_directories(host.parent_path(), ec);
        std::ofstream out(host, std::ios::binary | std::ios::trunc);
        out << content;
        return static_cast<bool>(out);
    }

    // POST /files?path=  multipart parts named "file" (the part's filename is the target when
    // there is no path) or a raw body; answers [{"name","path","type":"file"}].
    void files_upload(const httplib::Request& req, httplib::Response& res, const Sandbox& sb) const {
        Json out = Json::array();
        const bool has_path = req.has_param("path") && !req.get_param_value("path").empty();
        if (req.is_multipart_form_data()) {
            for (const auto& [name, part] : req.files) {
                if (name != "file") continue;
                if (!has_path && part.filename.empty()) return fail(res, 400, "a file part needs a filename or path");
                const auto spath = sandbox_path(has_path ? req.get_param_value("path") : part.filename);
                const auto host = host_path(sb, spath);
                std::error_code ec;
                if (std::filesystem::is_directory(host, ec)) return fail(res, 400, "path '" + spath + "' is a directory");
                if (!write_file(host, part.content)) return fail(res, 500, "could not write '" + spath + "'");
                out.push_back({{"name", host.filename().string()}, {"path", spath}, {"type", "file"}});
            }
            if (out.empty()) return fail(res, 400, "no part named 'file'");
        } else {
            if (!has_path) return fail(res, 400, "path is required for a raw upload");
            const auto spath = sandbox_path(req.get_param_value("path"));
            const auto host = host_path(sb, spath);
            std::error_code ec;
            if (std::filesystem::is_directory(host, ec)) return fail(res, 400, "path '" + spath + "' is a directory");
            if (!write_file(host, req.body)) return fail(res, 500, "could not write '" + spath + "'");
            out.push_back({{"name", host.filename().string()}, {"path", spath}, {"type", "file"}});
        }
        send_json(res, 200, out);
    }

    void filesystem_rpc(httplib::Response& res, const Sandbox& sb, const std::string& method, const Json& body) {
        auto text = [&](const char* key) {
            return body.contains(key) && body[key].is_string() ? body[key].get<std::string>() : std::string();
        };
        namespace fs = std::filesystem;
        std::error_code ec;
        if (method == "Stat") {
            auto spath = sandbox_path(text("path"));
            auto e = entry_info(sb, host_path(sb, spath));
            if (!e) return send_connect_error(res, "not_found", "file not found: '" + spath + "'");
            return send_json(res, 200, Json{{"entry", *e}});
        }
        if (method == "ListDir") {
            auto spath = sandbox_path(text("path"));
            auto host = host_path(sb, spath);
            if (!fs::exists(host, ec)) return send_connect_error(res, "not_found", "directory not found: '" + spath + "'");
            if (!fs::is_directory(host, ec)) return send_connect_error(res, "invalid_argument", "path '" + spath + "' is not a directory");
            long depth = body.contains("depth") && body["depth"].is_number_integer() ? body["depth"].get<long>() : 1;
            if (depth < 1) depth = 1;
            depth = std::min<long>(depth, 32);
            Json entries = Json::array();
            constexpr std::size_t max_entries = 100000;
            std::vector<std::pair<fs::path, long>> todo{{host, 1}};
            while (!todo.empty() && entries.size() < max_entries) {
                auto [dir, level] = todo.back();
                todo.pop_back();
                std::vector<fs::path> children;
                for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) children.push_back(it->path());
                std::sort(children.begin(), children.end());
                for (const auto& child : children) {
                    auto e = entry_info(sb, child);
                    if (!e) continue;
                    entries.push_back(*e);
                    if (level < depth && (*e)["type"] == "FILE_TYPE_DIRECTORY") todo.emplace_back(child, level + 1);
                }
            }
            return send_json(res, 200, Json{{"entries", entries}});
        }
        if (method == "MakeDir") {
            auto spath = sandbox_path(text("path"));
            auto host = host_path(sb, spath);
            if (fs::exists(host, ec)) return send_connect_error(res, "already_exists", "path '" + spath + "' already exists");
            fs::create_directories(host, ec);
            auto e = entry_info(sb, host);
            if (ec || !e) return send_connect_error(res, "internal", "could not create '" + spath + "'");
            return send_json(res, 200, Json{{"entry", *e}});
        }
        if (method == "Remove") {
            auto spath = sandbox_path(text("path"));
            if (spath == "/") return send_connect_error(res, "invalid_argument", "refusing to remove '/'");
            auto host = host_path(sb, spath);
            if (!fs::exists(fs::symlink_status(host, ec))) return send_connect_error(res, "not_found", "path '" + spath + "' does not exist");
            fs::remove_all(host, ec);
            if (ec) return send_connect_error(res, "internal", "could not remove '" + spath + "'");
            return send_json(res, 200, Json::object());
        }
        if (method == "Move") {
            auto from = sandbox_path(text("source"));
            auto to = sandbox_path(text("destination"));
            auto host_from = host_path(sb, from);
            auto host_to = host_path(sb, to);
            if (!fs::exists(fs::symlink_status(host_from, ec))) return send_connect_error(res, "not_found", "path '" + from + "' does not exist");
            fs::create_directories(host_to.parent_path(), ec);
            fs::rename(host_from, host_to, ec);
            auto e = entry_info(sb, host_to);
            if (ec || !e) return send_connect_error(res, "internal", "could not move '" + from + "' to '" + to + "'");
            return send_json(res, 200, Json{{"entry", *e}});
        }
        send_connect_error(res, "unimplemented", "filesystem.Filesystem/" + method + " is not implemented by the fake");
    }

    void process_list(httplib::Response& res, const Sandbox& sb) {
        std::lock_guard<std::mutex> lock(mu_);
        Json list = Json::array();
        for (const auto& [pid, p] : sb.procs) {
            if (p->ended) continue;
            Json item = {{"config", redacted(p->config)}, {"pid", pid}};
            if (!p->tag.empty()) item["tag"] = p->tag;
            list.push_back(std::move(item));
        }
        send_json(res, 200, Json{{"processes", list}});
    }

    std::shared_ptr<Proc> select_locked(const Sandbox& sb, const Json& selector) const {
        if (!selector.is_object()) return nullptr;
        if (selector.contains("pid") && selector["pid"].is_number_unsigned()) {
            auto it = sb.procs.find(selector["pid"].get<std::uint32_t>());
            return it == sb.procs.end() || it->second->ended ? nullptr : it->second;
        }
        if (selector.contains("tag") && selector["tag"].is_string())
            for (const auto& [pid, p] : sb.procs)
                if (!p->ended && p->tag == selector["tag"].get<std::string>()) return p;
        return nullptr;
    }

    void process_signal(httplib::Response& res, Sandbox& sb, const Json& body) {
        const std::string sig = body.value("signal", std::string());
        if (sig != "SIGNAL_SIGKILL" && sig != "SIGNAL_SIGTERM")
            return send_connect_error(res, "invalid_argument", "signal must be SIGNAL_SIGKILL or SIGNAL_SIGTERM");
        std::lock_guard<std::mutex> lock(mu_);
        auto p = select_locked(sb, body.contains("process") ? body["process"] : Json());
        if (!p) return send_connect_error(res, "not_found", "process not found");
        if (p->command) {
            p->signalled = sig == "SIGNAL_SIGKILL" ? SIGKILL : SIGTERM;
            p->command->signal(SIGCONT);
            p->command->signal(p->signalled);
        } else {
            end_server_locked(*p, sig == "SIGNAL_SIGKILL" ? "signal: killed" : "signal: terminated");
        }
        send_json(res, 200, Json::object());
    }

    /// The word after `flag` in a command line, with one level of single quotes removed.
    static std::optional<std::string> flag_value(const std::string& line, const std::string& flag) {
        std::istringstream in(line);
        std::vector<std::string> words;
        for (std::string w; in >> w;) words.push_back(w);
        for (std::size_t i = 0; i + 1 < words.size(); ++i) {
            if (words[i] != flag) continue;
            std::string v = words[i + 1];
            if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
            return v;
        }
        return std::nullopt;
    }

    /// A Start's or Connect's stream body: exactly one envelope with a JSON request.
    std::optional<Json> stream_request(const httplib::Request& req, std::string& why) const {
        if (lower(req.get_header_value("Content-Type")) != "application/connect+json") {
            why = "a streaming call must be application/connect+json";
            return std::nullopt;
        }
        FrameReader reader(options_.max_body_bytes);
        std::optional<Frame> frame;
        try {
            reader.feed(req.body);
            frame = reader.next();
        } catch (const error&) {
            why = "the request envelope is too large";
            return std::nullopt;
        }
        if (!frame || !reader.idle() || reader.next() || frame->compressed()) {
            why = "a streaming request must be one uncompressed envelope";
            return std::nullopt;
        }
        auto j = parse_json(frame->payload);
        if (!j) why = "the request is not a JSON object within limits";
        return j;
    }

    /// The stream's response: `first` (when not null), the events of `p`'s log from `cursor`
    /// as they come, keepalives, then the end-stream message. Without `p` the stream is only the
    /// end-stream message `error_body`. The process outlives the stream (envd's behaviour).
    void stream_events(const httplib::Request& req, httplib::Response& res, std::shared_ptr<Proc> p, std::size_t cursor,
                       Json error_body = nullptr, Json first = nullptr) {
        auto keepalive = options_.max_keepalive_interval;
        if (req.has_header("Keepalive-Ping-Interval")) {
            try {
                keepalive = std::min(keepalive, std::chrono::milliseconds(
                                                    std::stoll(req.get_header_value("Keepalive-Ping-Interval")) * 1000));
            } catch (...) {
            }
        }
        if (keepalive < std::chrono::milliseconds(10)) keepalive = std::chrono::milliseconds(10);
        std::optional<Clock::time_point> deadline;
        if (req.has_header("Connect-Timeout-Ms")) {
            try {
                auto ms = std::stoll(req.get_header_value("Connect-Timeout-Ms"));
                if (ms > 0) deadline = Clock::now() + std::chrono::milliseconds(ms);
            } catch (...) {
            }
        }
        struct State {
            std::shared_ptr<Proc> proc;
            std::size_t cursor = 0;
            Clock::time_point next_keepalive;
            std::optional<Clock::time_point> deadline;
            Json error_body;
            Json first;
        };
        auto state = std::make_shared<State>(State{std::move(p), cursor, Clock::now() + keepalive, deadline,
                                                   std::move(error_body), std::move(first)});
        res.status = 200;
        res.set_chunked_content_provider("application/connect+json", [this, state, keepalive](std::size_t,
                                                                                               httplib::DataSink& sink) {
            std::string out;
            bool finish = false;
            Json end = Json::object();
            if (!state->first.is_null()) {
                out += encode_frame(Json{{"event", state->first}}.dump());
                state->first = nullptr;
            }
            {
                std::unique_lock<std::mutex> lock(mu_);
                auto ready = [&] {
                    return stopping_ || !state->proc || state->cursor < state->proc->events.size() ||
                           state->proc->ended;
                };
                auto wake = state->next_keepalive;
                if (state->deadline) wake = std::min(wake, *state->deadline);
                if (out.empty()) cv_.wait_until(lock, wake, ready);
                if (!state->proc) {
                    finish = true;
                    end = state->error_body;
                } else {
                    auto& events = state->proc->events;
                    for (; state->cursor < events.size(); ++state->cursor)
                        out += encode_frame(Json{{"event", events[state->cursor]}}.dump());
                    if (state->proc->ended) {
                        finish = true;
                    } else if (stopping_) {
                        finish = true;
                        end = {{"error", {{"code", "unavailable"}, {"message", "the sandbox is shutting down"}}}};
                    } else if (state->deadline && Clock::now() >= *state->deadline) {
                        finish = true;
                        end = {{"error", {{"code", "deadline_exceeded"}, {"message", "the stream's timeout passed"}}}};
                    } else if (Clock::now() >= state->next_keepalive) {
                        out += encode_frame(Json{{"event", {{"keepalive", Json::object()}}}}.dump());
                        state->next_keepalive = Clock::now() + keepalive;
                    }
                }
            }
            if (finish) out += encode_frame(end.dump(), frame_end_stream);
            if (!out.empty() && !sink.write(out.data(), out.size())) return false;  // the client went away
            if (finish) sink.done();
            return true;
        });
    }

    void process_stream(const httplib::Request& req, httplib::Response& res, std::shared_ptr<Sandbox> sb, bool start) {
        std::string why;
        auto body = stream_request(req, why);
        if (!body) return send_connect_error(res, "invalid_argument", why);
        auto fail = [&](const char* code, const std::string& message) {
            stream_events(req, res, nullptr, 0, Json{{"error", {{"code", code}, {"message", message}}}});
        };
        if (!start) {
            // Connect: a start event of its own, then what the process does from now on.
            std::lock_guard<std::mutex> lock(mu_);
            auto p = select_locked(*sb, body->contains("process") ? (*body)["process"] : Json());
            if (!p) return fail("not_found", "process not found");
            return stream_events(req, res, p, p->events.size(), nullptr, Json{{"start", {{"pid", p->pid}}}});
        }
        if (!body->contains("process") || !(*body)["process"].is_object() || !(*body)["process"].contains("cmd") ||
            !(*body)["process"]["cmd"].is_string())
            return fail("invalid_argument", "process.cmd is required");
        if (body->contains("pty") && !(*body)["pty"].is_null()) return fail("unimplemented", "the fake has no PTY");
        const Json& config = (*body)["process"];
        std::vector<std::string> argv{config["cmd"].get<std::string>()};
        if (config.contains("args") && config["args"].is_array())
            for (const auto& a : config["args"])
                if (a.is_string()) argv.push_back(a.get<std::string>());
        std::string line;
        for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
        std::map<std::string, std::string> env;
        {
            std::lock_guard<std::mutex> lock(mu_);
            for (const auto& [k, v] : sb->env_vars.items())
                if (v.is_string()) env[k] = v.get<std::string>();
            sb->commands.push_back(line);
        }
        if (config.contains("envs") && config["envs"].is_object())
            for (const auto& [k, v] : config["envs"].items())
                if (v.is_string()) env[k] = v.get<std::string>();
        const std::string cwd = sandbox_path(config.value("cwd", std::string("/home/user")));
        const auto host_cwd = host_path(*sb, cwd);
        std::error_code ec;
        if (!std::filesystem::is_directory(host_cwd, ec)) return fail("invalid_argument", "cwd '" + cwd + "' does not exist");
        auto p = std::make_shared<Proc>();
        p->config = config;
        p->tag = body->value("tag", std::string());
        try {
            if (is_server_command(line)) {
                if (auto failure = start_failure(req)) {
                    // A start_failure fault: the server "fails at once", its reason on stderr.
                    start_real_process(*sb, p, {"/bin/sh", "-c", "printf '%s\\n' \"$0\" >&2; exit 1", failure->body},
                                       std::move(env), host_cwd);
                } else {
                    start_server_process(*sb, p, line, std::move(env));
                }
            } else {
                start_real_process(*sb, p, argv, std::move(env), host_cwd);
            }
        } catch (const std::exception& e) {
            return fail("internal", std::string("could not start the process: ") + e.what());
        }
        stream_events(req, res, p, 0);
    }

    // The command names the action server: a real runbox ActionServer in-process stands for it,
    // serving the sandbox port the command asks for, with HOME and working dir inside the sandbox.
    void start_server_process(Sandbox& sb, const std::shared_ptr<Proc>& p, const std::string& line,
                              std::map<std::string, std::string> env) {
        env["HOME"] = (sb.root / "home" / "user").string();
        // `--working-dir DIR` of the command, inside the sandbox (created, as the server would).
        const auto working_dir = host_path(sb, flag_value(line, "--working-dir").value_or("/home/user"));
        std::error_code ec;
        std::filesystem::create_directories(working_dir, ec);
        auto so = sandbox_server_options(working_dir, env);  // SESSION_API_KEY becomes the server's key
        so.plugins = options_.server_plugins;
        so.no_change_timeout = options_.no_change_timeout;
        auto srv = servers_.start(std::move(so));
        std::lock_guard<std::mutex> lock(mu_);
        p->pid = ++next_pid_;
        p->server = std::move(srv);
        p->server_port = server_port_of(line);
        p->events.push_back(Json{{"start", {{"pid", p->pid}}}});
        track_locked(p);
        if (!find_locked(sb.id)) {  // killed while the server started
            end_server_locked(*p, "signal: killed");
            return;
        }
        sb.procs[p->pid] = p;
    }

    void track_locked(const std::shared_ptr<Proc>& p) {
        std::erase_if(all_procs_, [](const auto& q) { return q->ended; });
        all_procs_.push_back(p);
    }

    // A real process: `argv` (the SDK's /bin/bash -l -c CMD) in a clean environment (env -i:
    // nothing of the fake's own environment reaches the sandbox), its output streamed as events.
    void start_real_process(Sandbox& sb, const std::shared_ptr<Proc>& p, const std::vector<std::string>& argv,
                            std::map<std::string, std::string> env, const std::filesystem::path& cwd) {
        env["HOME"] = (sb.root / "home" / "user").string();
        env["USER"] = "user";
        if (!env.count("PATH")) env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
        std::string command = "exec env -i";
        for (const auto& [k, v] : env) command += " " + quote(k + "=" + v);
        for (const auto& a : argv) command += " " + quote(a);
        {
            std::lock_guard<std::mutex> lock(mu_);
            p->pid = ++next_pid_;
            p->events.push_back(Json{{"start", {{"pid", p->pid}}}});
            track_locked(p);
        }
        std::weak_ptr<Proc> weak = p;
        auto on_output = [this, weak](bool stderr_side, std::string_view bytes) {
            auto proc = weak.lock();
            if (!proc) return;
            std::lock_guard<std::mutex> lock(mu_);
            if (proc->output_bytes >= options_.max_output_bytes) return;  // bounded: the rest is dropped
            bytes = bytes.substr(0, options_.max_output_bytes - proc->output_bytes);
            proc->output_bytes += bytes.size();
            proc->events.push_back(
                Json{{"data", {{stderr_side ? "stderr" : "stdout", runbox::detail::base64_encode(bytes)}}}});
            cv_.notify_all();
        };
        auto on_exit = [this, weak] {
            auto proc = weak.lock();
            if (!proc) return;
            std::lock_guard<std::mutex> lock(mu_);
            const int code = proc->command ? proc->command->result().exit_code : -1;
            Json end = {{"exited", true}};
            if (proc->signalled != 0 && code == 128 + proc->signalled) {
                end["exitCode"] = -1;  // what envd reports for a signalled process
                end["status"] = proc->signalled == SIGKILL ? "signal: killed" : "signal: terminated";
            } else {
                if (code != 0) end["exitCode"] = code;  // proto3 JSON omits the default 0
                end["status"] = "exit status " + std::to_string(code);
            }
            proc->events.push_back(Json{{"end", end}});
            proc->ended = true;
            cv_.notify_all();
        };
        std::lock_guard<std::mutex> lock(mu_);  // on_exit waits for p->command to be set
        p->command = shell_.start(command, cwd, {}, false, on_exit, on_output);
        if (!find_locked(sb.id)) {
            p->signalled = SIGKILL;
            p->command->kill();
        } else if (sb.state == "paused") {
            p->command->signal(SIGSTOP);
        }
        sb.procs[p->pid] = p;
    }

    // ---- ports -----------------------------------------------------------------------------------

    void handle_port(const httplib::Request& req, httplib::Response& res, const std::string& id, int port,
                     const std::string& rest) {
        int backend = 0;
        {
            std::lock_guard<std::mutex> lock(mu_);
            auto sb = find_locked(id);
            if (!sb || sb->state != "running")
                return send_json(res, 502, Json{{"sandboxId", id}, {"message", "The sandbox was not found"}, {"code", 502}});
            if (!sb->traffic_token.empty() &&
                !key_matches(req.get_header_value("e2b-traffic-access-token"), sb->traffic_token))
                return send_json(res, 403, Json{{"sandboxId", id},
                                                {"message", "Sandbox is secured with traffic access token. Token header "
                                                            "'e2b-traffic-access-token' is missing"},
                                                {"code", 403}});
            for (const auto& [pid, p] : sb->procs)
                if (!p->ended && p->server && p->server_port == port) backend = p->server->port();
            if (backend == 0)
                return send_json(res, 502, Json{{"sandboxId", id},
                                                {"message", "The sandbox is running but port is not open"},
                                                {"port", port},
                                                {"code", 502}});
        }
        std::string target = rest;
        if (auto q = req.target.find('?'); q != std::string::npos) target += req.target.substr(q);
        if (!forward(req, res, backend, target, {"e2b-traffic-access-token"}))
            send_json(res, 502, Json{{"message", "the sandbox's server did not answer"}, {"code", 502}});
    }

    FakeE2BOptions options_;
    std::unique_ptr<SandboxDir> root_dir_;
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    bool stopping_ = false;
    std::int64_t seq_ = 0;
    std::uint32_t next_pid_ = 1000;
    std::map<std::string, std::shared_ptr<Sandbox>> sandboxes_;
    std::vector<std::shared_ptr<Proc>> all_procs_;  ///< every process not known to have ended
    std::vector<std::shared_ptr<server::ActionServer>> to_stop_;
    std::vector<std::unique_ptr<SandboxDir>> dirs_to_remove_;
};

}  // namespace runbox::testing
