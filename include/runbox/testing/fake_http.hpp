// runbox/testing/fake_http.hpp - the HTTP/1.1 server every REST fake runs on (cpp-httplib).
//
// FakeHttpServer gives a fake its server lifecycle (start on a port or any free one, stop, URL),
// its request pipeline (log -> injected fault -> API-key check -> handler -> logged status), the
// reverse proxy to a sandbox's action server, and the shared pieces of testing/fake_base.hpp
// (request log, faults, shell commands, action servers). A fake derives from it, registers its
// routes in register_routes() and says how its errors look (send_error).
//
// Every fake on it has the same public surface: start(), stop(), url(), base_url(), port(),
// api_key(), live_sandboxes(), inject(Fault), clear_faults(), requests(), clear_requests().
//
// How a fake applies a runbox::Fault (rules match method and path-with-query):
//   reply          answered in place of the request: `status`, `headers`, and `body` as the error
//                  message in the provider's error body (a body that is a JSON object is sent as is;
//                  an empty one gets the status's usual message)
//   drop           the connection is closed after the status line: the client sees a broken answer
//   delay          the request waits `delay`, then is handled
//   lose_response  the request is handled (its effect happens), then its answer is dropped
//   start_failure  the sandbox this request creates or starts fails to start (reason: `body`)
// Only listens on 127.0.0.1 (or the given host).
#pragma once

#include <httplib.h>

#include <chrono>
#include <functional>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/error.hpp"
#include "runbox/testing/fake_base.hpp"

namespace runbox::testing {

/// Where a fake listens and which key its API accepts.
struct FakeServerSettings {
    std::string name = "fake";      ///< for messages, e.g. "fake-daytona"
    std::string host = "127.0.0.1";  ///< address to bind (loopback by default)
    int port = 0;                   ///< 0 = any free port
    std::string api_key{};          ///< the only credential the API accepts
    std::size_t worker_threads = 32;  ///< long polls and proxied actions each hold one
    std::size_t max_body_bytes = 0;   ///< larger request bodies are 413; 0 = cpp-httplib's default
};

/// Base of the REST fakes. A derived class must call stop() in its own destructor.
class FakeHttpServer : public FakeProvider {
public:
    using Req = httplib::Request;  ///< the request type handlers get
    using Res = httplib::Response;  ///< the response type handlers fill
    using Handler = std::function<void(const Req&, Res&)>;  ///< one route's handler; runs on a worker thread

    FakeHttpServer(const FakeHttpServer&) = delete;
    FakeHttpServer& operator=(const FakeHttpServer&) = delete;
    ~FakeHttpServer() override = default;

    /// Binds and serves on a background thread; returns once it accepts connections.
    void start() override {
        if (thread_.joinable()) return;
        if (!routes_registered_) {
            server_.new_task_queue = [n = settings_.worker_threads] { return new httplib::ThreadPool(n); };
            register_routes();
            // Anything else: the provider's 404, logged, without the API-key check.
            for (const char* method : {"GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"}) {
                route(method, ".*", [this](const Req& req, Res& res) {
                    send_error(req, res, 404, "Cannot " + req.method + " " + req.path);
                }, false);
            }
            server_.set_tcp_nodelay(true);  // no Nagle delay on small JSON answers
            if (settings_.max_body_bytes > 0) server_.set_payload_max_length(settings_.max_body_bytes);
            routes_registered_ = true;
        }
        if (settings_.port == 0) {
            port_ = server_.bind_to_any_port(settings_.host);
        } else {
            port_ = server_.bind_to_port(settings_.host, settings_.port) ? settings_.port : -1;
        }
        if (port_ <= 0)
            throw error(errc::transport, "cannot bind " + settings_.host + ":" + std::to_string(settings_.port), settings_.name);
        thread_ = std::thread([this] { server_.listen_after_bind(); });
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!server_.is_running()) {
            if (std::chrono::steady_clock::now() > deadline) throw error(errc::timeout, "did not start listening", settings_.name);
            std::this_thread::sleep_for(std::chrono::milliseconds(1));  // httplib 0.11 has no wait_until_ready
        }
    }

    /// Ends every shell command and action server, then stops serving. Idempotent.
    void stop() override {
        shell_.kill_all();
        on_stop();
        servers_.stop_all();  // first, so that requests proxied to them end too
        if (thread_.joinable()) {
            server_.stop();
            thread_.join();
        }
    }

    int port() const { return port_; }  ///< the bound port (after start())
    /// The server's root, e.g. "http://127.0.0.1:43123" (what runbox-fake prints).
    std::string base_url() const override { return "http://" + settings_.host + ":" + std::to_string(port_); }
    /// The API base URL to configure clients with (the provider's api_url / base_url setting).
    std::string url() const override { return base_url(); }
    /// The API key the fake accepts.
    const std::string& api_key() const { return settings_.api_key; }

    /// Adds a fault rule (see the header comment for how a fake applies each kind).
    void inject(Fault fault) override { faults_.add(std::move(fault)); }
    void clear_faults() override { faults_.clear(); }  ///< removes every fault rule

    /// Every request received so far, in order (secrets redacted).
    std::vector<FakeRequest> requests() const override { return log_.all(); }
    void clear_requests() override { log_.clear(); }  ///< empties the request log

protected:
    /// Serves with `settings` (once start() runs); the API key is redacted from the log.
    explicit FakeHttpServer(FakeServerSettings settings) : settings_(std::move(settings)) {
        log_.add_secret(settings_.api_key);
    }

    /// Registers the fake's routes with route(); called once, by the first start().
    virtual void register_routes() = 0;
    /// Answers an error in the provider's shape.
    virtual void send_error(const Req& req, Res& res, int status, const std::string& message) const = 0;
    /// True for requests to a sandbox through the fake's proxy: their bodies are logged by size
    /// only, and the API key is not checked (the proxy checks its own token).
    virtual bool is_proxied(const Req&) const { return false; }
    /// The API's credential check; default `Authorization: Bearer <api_key>`.
    virtual bool authorized(const Req& req) const {
        return key_matches(req.get_header_value("Authorization"), "Bearer " + settings_.api_key);
    }
    /// The message of the API's 401 (the provider's own words).
    virtual std::string unauthorized_message() const { return "Unauthorized: missing or invalid API key"; }
    /// Answers a `reply` fault (see the header comment); a fake may add provider headers.
    virtual void reply(const Req& req, Res& res, const Fault& fault) const {
        auto body = nlohmann::json::parse(fault.body, nullptr, false);
        if (body.is_object()) {
            res.status = fault.status;
            res.set_content(fault.body, "application/json");
        } else {
            send_error(req, res, fault.status, fault.body.empty() ? default_message(fault.status) : fault.body);
        }
        for (const auto& [k, v] : fault.headers) res.set_header(k, v);
    }
    /// Called before a request is logged: tell log_ the secrets it carries (e.g. a create's env).
    virtual void learn_secrets(const Req&) {}
    /// Called by stop() before anything stops: end long polls, refuse new work.
    virtual void on_stop() {}

    /// Registers `handler` for `method` ("GET", "POST", ...) and path regex `pattern`, behind the
    /// request pipeline; `check_key` = false skips the API-key check.
    void route(const std::string& method, const std::string& pattern, Handler handler, bool check_key = true) {
        auto wrapped = [this, handler = std::move(handler), check_key](const Req& req, Res& res) {
            serve(handler, req, res, check_key);
        };
        if (method == "GET") server_.Get(pattern, wrapped);
        else if (method == "POST") server_.Post(pattern, wrapped);
        else if (method == "PUT") server_.Put(pattern, wrapped);
        else if (method == "DELETE") server_.Delete(pattern, wrapped);
        else if (method == "PATCH") server_.Patch(pattern, wrapped);
        else if (method == "OPTIONS") server_.Options(pattern, wrapped);
        else throw std::invalid_argument("FakeHttpServer::route: unknown method " + method);
    }

    /// The start_failure fault for this request, if one matches (its reason is `body`).
    std::optional<Fault> start_failure(const Req& req) { return faults_.take(req.method, req.target, true); }

    /// Reverse proxy: sends `req` to the action server on 127.0.0.1:`port` as `target` (path and
    /// query), without hop-by-hop headers and the ones named in `drop` (the proxy's own token),
    /// and copies the answer into `res`. False (and `res` untouched) when the server did not answer.
    static bool forward(const Req& req, Res& res, int port, const std::string& target,
                        std::initializer_list<std::string_view> drop = {}) {
        httplib::Client client("127.0.0.1", port);
        client.set_connection_timeout(std::chrono::seconds(5));
        client.set_read_timeout(std::chrono::minutes(30));  // a proxied action may run that long
        client.set_write_timeout(std::chrono::minutes(5));
        httplib::Headers headers;
        for (const auto& [k, v] : req.headers) {
            const auto name = server::detail::ascii_lower(k);
            bool skip = name == "host" || name == "content-length" || name == "transfer-encoding" || name == "connection" ||
                        name == "keep-alive" || name == "accept-encoding" || name == "remote_addr" ||
                        name == "remote_port" || name == "local_addr" || name == "local_port" ||
                        (name == "content-type" && req.is_multipart_form_data());  // re-encoded below
            for (auto d : drop) skip = skip || name == d;
            if (!skip) headers.emplace(k, v);
        }
        httplib::Result result{nullptr, httplib::Error::Unknown};
        if (req.is_multipart_form_data()) {
            httplib::MultipartFormDataItems items;
            for (const auto& [name, part] : req.files) items.push_back(part);
            result = req.method == "PUT" ? client.Put(target.c_str(), headers, items) : client.Post(target.c_str(), headers, items);
        } else {
            httplib::Request out;
            out.method = req.method;
            out.path = target;
            out.headers = std::move(headers);
            out.body = req.body;
            if (!req.body.empty() && !out.has_header("Content-Type")) out.set_header("Content-Type", "application/octet-stream");
            result = client.send(out);
        }
        if (!result) return false;
        res.status = result->status;
        std::string type = "application/octet-stream";
        for (const auto& [k, v] : result->headers) {
            const auto name = server::detail::ascii_lower(k);
            if (name == "content-type") {
                type = v;
            } else if (name != "content-length" && name != "transfer-encoding" && name != "connection" &&
                       name != "content-encoding" && name != "keep-alive") {
                res.set_header(k, v);
            }
        }
        res.set_content(result->body, type);
        return true;
    }

    /// The usual message of an error status, for faults that give none.
    static std::string default_message(int status) {
        switch (status) {
            case 429: return "Rate limit exceeded";
            case 502: return "Bad Gateway";
            case 503: return "Service Unavailable";
            default: return "injected failure";
        }
    }

    const FakeServerSettings& settings() const noexcept { return settings_; }  ///< the settings it was built with

    RequestLog log_;  ///< every request received (thread-safe)
    FaultList faults_;  ///< injected faults (thread-safe)
    ShellRunner shell_;  ///< shell commands run for sandboxes; killed by stop()
    SandboxServers servers_;  ///< the sandboxes' action servers; stopped by stop()

private:
    // The request pipeline: log, fault, key check, handler, logged status.
    void serve(const Handler& handler, const Req& req, Res& res, bool check_key) {
        learn_secrets(req);
        FakeRequest r;
        r.method = req.method;
        r.path = req.path;
        r.target = req.target.empty() ? req.path : req.target;
        for (const auto& [k, v] : req.params) r.params.emplace(k, v);
        for (const auto& [k, v] : req.headers) {
            if (k != "REMOTE_ADDR" && k != "REMOTE_PORT" && k != "LOCAL_ADDR" && k != "LOCAL_PORT") r.headers[k] = v;
        }
        r.proxied = is_proxied(req);
        if (req.is_multipart_form_data() && !r.proxied) {
            nlohmann::json parts = nlohmann::json::array();
            for (const auto& [name, part] : req.files)
                parts.push_back({{"name", name}, {"filename", part.filename}, {"size", part.content.size()}});
            r.body = parts.dump();
        } else {
            r.body = req.body;
        }
        const auto index = log_.add(std::move(r));
        bool dropped = false;
        const auto fault = faults_.take(req.method, req.target.empty() ? req.path : req.target, false);
        if (fault && fault->kind == Fault::Kind::delay) std::this_thread::sleep_for(fault->delay);  // the fault itself
        if (fault && fault->kind == Fault::Kind::reply) {
            reply(req, res, *fault);
        } else if (fault && fault->kind == Fault::Kind::drop) {
            dropped = true;
            break_answer(res);
        } else if (check_key && !is_proxied(req) && !authorized(req)) {
            send_error(req, res, 401, unauthorized_message());
        } else {
            try {
                handler(req, res);
            } catch (const std::exception& e) {
                send_error(req, res, 500, settings_.name + ": " + e.what());
            }
            if (fault && fault->kind == Fault::Kind::lose_response) {
                dropped = true;
                break_answer(res);
            }
        }
        log_.set_status(index, dropped ? 0 : res.status);
    }

    // The status line goes out, then the connection closes: the client gets no answer it can use.
    static void break_answer(Res& res) {
        res.status = 200;
        res.body.clear();
        res.set_content_provider(1, "application/octet-stream", [](std::size_t, std::size_t, httplib::DataSink&) { return false; });
    }

    FakeServerSettings settings_;
    httplib::Server server_;
    std::thread thread_;
    int port_ = -1;
    bool routes_registered_ = false;
};

}  // namespace runbox::testing
