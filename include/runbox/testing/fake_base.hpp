// runbox/testing/fake_base.hpp - what every provider fake shares, whatever HTTP server it uses.
//
//   FakeRequest     one request as a fake received it (one type for every fake), secrets redacted
//   FakeProvider    the public surface of every fake (start, stop, url, live_sandboxes, inject...)
//   RequestLog      the fakes' request log: redacts credential headers and every known secret
//   FaultList       runbox::Fault rules (transport/testing.hpp) as a fake applies them
//   SandboxServers  the real runbox action servers that back a fake's sandboxes: started in the
//                   sandbox's directory, stopped with the sandbox, all stopped when the fake stops
//   SandboxDir      a sandbox's temporary directory, removed with it
//   key_matches     constant-time check of a presented credential
//
// The HTTP/1.1 server part (lifecycle, routing, auth, reverse proxy) is testing/fake_http.hpp;
// a fake on another server (gRPC over HTTP/2) uses these pieces with its own server class.
#pragma once

#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <random>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/error.hpp"
#include "runbox/server/action_server.hpp"
#include "runbox/testing/detail/fake_shell.hpp"
#include "runbox/transport/testing.hpp"

namespace runbox::testing {

/// One request as a fake received it. Credential header values read "Bearer ***" / "***", and
/// every secret the fake knows is "***" wherever it appears.
struct FakeRequest {
    std::string method;  ///< HTTP method as sent
    std::string path;    ///< without the query, e.g. "/api/sandbox"
    std::string target;  ///< path and query as sent, e.g. "/api/sandbox?limit=50&labels=..."
    std::multimap<std::string, std::string> params;  ///< query (and form) parameters
    std::map<std::string, std::string> headers;      ///< lower-case names
    std::string body;    ///< multipart parts summarised; proxied bodies as "<N bytes>"
    int status = 0;      ///< the status the fake answered (0 = the answer was dropped)
    bool proxied = false;  ///< through the fake's proxy to a sandbox (preview link, tunnel), not its API
    int rpc_status = -1;   ///< gRPC fakes: the grpc-status answered (-1 = none yet, or not gRPC)

    /// The body parsed as JSON, or null when it is not JSON.
    nlohmann::json json() const {
        auto parsed = nlohmann::json::parse(body, nullptr, false);
        return parsed.is_discarded() ? nlohmann::json() : parsed;
    }
    /// The first value of query parameter `name`, or "" when absent.
    std::string param(const std::string& name) const {
        auto it = params.find(name);
        return it == params.end() ? std::string() : it->second;
    }
};

/// What every provider fake offers, whatever server it runs on (FakeHttpServer for REST APIs, or
/// a gRPC server of its own): runbox-fake and users' tests can hold any fake by this interface.
class FakeProvider {
public:
    virtual ~FakeProvider() = default;
    /// Binds (127.0.0.1; the options' port, 0 = any free one) and serves; returns once it accepts.
    virtual void start() = 0;
    /// Ends every sandbox (shell commands, action servers), then stops serving. Idempotent.
    virtual void stop() = 0;
    /// The server's root, e.g. "http://127.0.0.1:43123" (what runbox-fake prints).
    virtual std::string base_url() const = 0;
    /// The API base URL to configure clients with (the provider's api_url / base_url setting).
    virtual std::string url() const = 0;
    /// Sandboxes still alive (created, not ended, not stopped): what a leak check wants at 0.
    virtual std::size_t live_sandboxes() const = 0;
    /// Adds a fault rule (runbox::Fault; each fake documents how it applies each kind).
    virtual void inject(Fault fault) = 0;
    virtual void clear_faults() = 0;  ///< removes every fault rule
    /// Every request received so far, in order, secrets redacted.
    virtual std::vector<FakeRequest> requests() const = 0;
    virtual void clear_requests() = 0;  ///< empties the request log
};

namespace detail {

/// `length` characters of [a-z0-9] for the ids and tokens a fake hands out.
inline std::string random_token(std::size_t length) {
    static constexpr char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";
    thread_local std::mt19937_64 engine{std::random_device{}()};
    std::uniform_int_distribution<std::size_t> pick(0, sizeof(alphabet) - 2);
    std::string out;
    out.reserve(length);
    for (std::size_t i = 0; i < length; ++i) out.push_back(alphabet[pick(engine)]);
    return out;
}

/// `t` as an RFC 3339 UTC timestamp, "2026-12-02T06:11:42Z", or with milliseconds
/// "2026-12-02T06:11:42.123Z" (what the providers' APIs answer).
inline std::string utc_timestamp(std::chrono::system_clock::time_point t, bool millis = false) {
    const auto secs = std::chrono::system_clock::to_time_t(t);
    std::tm tm{};
    ::gmtime_r(&secs, &tm);
    char buf[40];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string out = buf;
    if (millis) {
        const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count() % 1000;
        char frac[8];
        std::snprintf(frac, sizeof frac, ".%03d", static_cast<int>(ms));
        out += frac;
    }
    return out + "Z";
}

/// Milliseconds since the epoch, now.
inline std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

}  // namespace detail

/// Constant-time comparison of a presented credential with the expected one; an empty expected
/// value matches nothing.
inline bool key_matches(std::string_view presented, std::string_view expected) {
    return !expected.empty() && server::detail::secrets_equal(presented, expected);
}

/// The request log of a fake. Thread-safe.
class RequestLog {
public:
    /// Adds a secret to redact from everything logged from now on (API keys, tokens the fake issues).
    void add_secret(std::string secret) {
        if (secret.empty()) return;
        std::lock_guard lock(mutex_);
        if (std::find(secrets_.begin(), secrets_.end(), secret) == secrets_.end()) secrets_.push_back(std::move(secret));
    }
    /// Adds the values of secret-looking variables (names with key, token, secret, password) of
    /// an environment object, e.g. a create request's, before that request is logged.
    void add_secrets_from_env(const nlohmann::json& env) {
        if (!env.is_object()) return;
        for (const auto& [k, v] : env.items()) {
            const auto name = server::detail::ascii_lower(k);
            bool secret = false;
            for (const char* marker : {"key", "token", "secret", "password"}) secret = secret || name.find(marker) != std::string::npos;
            if (secret && v.is_string()) add_secret(v.get<std::string>());
        }
    }
    /// Replaces every known secret in `text` by "***".
    std::string redact(std::string text) const {
        std::lock_guard lock(mutex_);
        return runbox::redact(std::move(text), secrets_);
    }
    /// Redacts `r` (header names lower-cased; a proxied body keeps only its size) and appends it;
    /// returns its index for set_status().
    std::size_t add(FakeRequest r) {
        std::lock_guard lock(mutex_);
        std::map<std::string, std::string> headers;
        for (auto& [name, value] : r.headers) {
            auto lower = server::detail::ascii_lower(name);
            if (runbox::detail::is_credential_header(lower) || lower == "x-runloop-tunnel-authorization" ||
                lower == "e2b-traffic-access-token") {
                const auto space = value.find(' ');
                headers[lower] = space == std::string::npos ? "***" : value.substr(0, space) + " ***";
            } else {
                headers[lower] = runbox::redact(value, secrets_);
            }
        }
        r.headers = std::move(headers);
        r.target = runbox::redact(std::move(r.target), secrets_);
        for (auto& [k, v] : r.params) v = runbox::redact(v, secrets_);
        r.body = r.proxied ? "<" + std::to_string(r.body.size()) + " bytes>" : runbox::redact(std::move(r.body), secrets_);
        requests_.push_back(std::move(r));
        return requests_.size() - 1;
    }
    /// Records the status answered to request `index`.
    void set_status(std::size_t index, int status) {
        std::lock_guard lock(mutex_);
        if (index < requests_.size()) requests_[index].status = status;
    }
    /// Records the gRPC status answered to request `index` (gRPC fakes).
    void set_rpc_status(std::size_t index, int code) {
        std::lock_guard lock(mutex_);
        if (index < requests_.size()) requests_[index].rpc_status = code;
    }
    /// Every request so far, in order.
    std::vector<FakeRequest> all() const {
        std::lock_guard lock(mutex_);
        return requests_;
    }
    /// Empties the log (the known secrets stay).
    void clear() {
        std::lock_guard lock(mutex_);
        requests_.clear();
    }

private:
    mutable std::mutex mutex_;
    std::vector<std::string> secrets_;
    std::vector<FakeRequest> requests_;
};

/// Waits until `pred()` (called without `mu` held) is true or `bound` passes; the fake's state
/// changes notify `cv`, and a check runs at least every 20 ms. True when `pred()` held.
template <class Pred>
bool wait_for_change(std::mutex& mu, std::condition_variable& cv, Pred pred, std::chrono::milliseconds bound) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
        lock.unlock();
        if (pred()) return true;
        lock.lock();
        if (std::chrono::steady_clock::now() >= deadline) return false;
        cv.wait_until(lock, std::min(deadline, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
    }
}

/// The faults injected into a fake. A fake applies a matching rule in place of (reply, drop),
/// before (delay) or after (lose_response) handling the request; `start_failure` rules are taken
/// by the request that creates (or starts) a sandbox. Rules are tried in the order added, and
/// the first live one uses up one of its `times`. Thread-safe.
class FaultList {
public:
    /// Appends a rule.
    void add(Fault fault) {
        std::lock_guard lock(mutex_);
        faults_.push_back(std::move(fault));
    }
    /// Removes every rule.
    void clear() {
        std::lock_guard lock(mutex_);
        faults_.clear();
    }
    /// The first live rule matching `method` + `target` (path and query), used up once; with
    /// `start_failures` only start_failure rules, else every other kind.
    std::optional<Fault> take(const std::string& method, const std::string& target, bool start_failures) {
        Request probe;
        probe.method = method;
        probe.url = target;
        std::lock_guard lock(mutex_);
        for (auto& rule : faults_) {
            if (rule.times == 0 || (rule.kind == Fault::Kind::start_failure) != start_failures || !rule.matches(probe))
                continue;
            if (rule.times > 0) --rule.times;
            return rule;
        }
        return std::nullopt;
    }

private:
    std::mutex mutex_;
    std::vector<Fault> faults_;
};

/// A sandbox's temporary directory ("/tmp/runbox-fake-<what>-XXXXXX"), removed on destruction
/// or remove().
class SandboxDir {
public:
    /// Creates a fresh directory under `root` (the system temp directory when empty); errc::server_error if
    /// it cannot.
    explicit SandboxDir(const std::string& what, const std::filesystem::path& root = {}) {
        auto base = root.empty() ? std::filesystem::temp_directory_path() : root;
        std::error_code ec;
        std::filesystem::create_directories(base, ec);
        std::string tmpl = (base / ("runbox-fake-" + what + "-XXXXXX")).string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw error(errc::server_error, "cannot create a sandbox directory", "fake");
        path_ = tmpl;
    }
    SandboxDir(const SandboxDir&) = delete;
    SandboxDir& operator=(const SandboxDir&) = delete;
    ~SandboxDir() { remove(); }
    const std::filesystem::path& path() const noexcept { return path_; }  ///< the directory (still set after remove())
    /// Removes the directory and everything in it (idempotent).
    void remove() noexcept {
        std::error_code ec;
        if (!path_.empty()) std::filesystem::remove_all(path_, ec);
    }

private:
    std::filesystem::path path_;
};

/// The action-server settings of a sandbox: its directory as working dir, its variables in the
/// shells' environment, except SESSION_API_KEY, which becomes the server's key (the shell never
/// sees it) and NO_CHANGE_TIMEOUT_SECONDS, which also sets the server's no-change timeout.
inline server::ActionServerOptions sandbox_server_options(const std::filesystem::path& working_dir,
                                                          const std::map<std::string, std::string>& env) {
    server::ActionServerOptions o;
    o.host = "127.0.0.1";
    o.port = 0;
    o.working_dir = working_dir.string();
    for (const auto& [k, v] : env) {
        if (k == "SESSION_API_KEY") {
            o.session_api_key = v;
            continue;
        }
        if (k == "NO_CHANGE_TIMEOUT_SECONDS") {
            try {
                o.no_change_timeout = std::chrono::milliseconds(std::stoll(v) * 1000);
            } catch (...) {
            }
        }
        o.env[k] = v;
    }
    return o;
}

/// Whether a sandbox command starts the action server (runbox-server, or OpenHands'
/// action_execution_server): a fake runs a real runbox server in its place.
inline bool is_server_command(std::string_view command) {
    return command.find("action_execution_server") != std::string_view::npos ||
           command.find("runbox-server") != std::string_view::npos;
}

/// The port a server command asks for: "--port N", or the first number after the program;
/// 4444 (OpenHands' default) when it names none.
inline int server_port_of(const std::string& command) {
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

/// The real action servers behind a fake's sandboxes. Every server started here is stopped by
/// stop_all() (the fake's stop()) if nobody stopped it before; after stop_all() nothing starts.
class SandboxServers {
public:
    using Server = std::shared_ptr<server::ActionServer>;  ///< a running action server, shared with the fake's sandbox
    SandboxServers() = default;
    SandboxServers(const SandboxServers&) = delete;
    SandboxServers& operator=(const SandboxServers&) = delete;
    ~SandboxServers() { stop_all(); }

    /// Starts a server (blocking until it listens); errc::sandbox_gone after stop_all().
    Server start(server::ActionServerOptions options) {
        {
            std::lock_guard lock(mutex_);
            if (stopped_) throw error(errc::sandbox_gone, "the fake is stopping", "fake");
        }
        auto srv = std::make_shared<server::ActionServer>(std::move(options));
        srv->start();
        std::lock_guard lock(mutex_);
        std::erase_if(servers_, [](const auto& w) { return w.expired(); });
        servers_.push_back(srv);
        if (stopped_) {  // stop_all() ran while it started
            srv->stop();
            throw error(errc::sandbox_gone, "the fake is stopping", "fake");
        }
        return srv;
    }
    /// Stops `server` (if any) and drops the caller's reference. Call without the fake's lock held.
    static void stop(Server server) {
        if (server) server->stop();
    }
    /// Stops every server still running; later start() calls fail.
    void stop_all() {
        std::vector<Server> live;
        {
            std::lock_guard lock(mutex_);
            stopped_ = true;
            for (const auto& w : servers_)
                if (auto s = w.lock()) live.push_back(std::move(s));
            servers_.clear();
        }
        for (auto& s : live) s->stop();
    }

private:
    std::mutex mutex_;
    std::vector<std::weak_ptr<server::ActionServer>> servers_;
    bool stopped_ = false;
};

}  // namespace runbox::testing
