// runbox/client.hpp - ActionExecutionClient: the host side of the action server protocol.
//
// Every provider that runs an action execution server is driven through this one client
// (reference §2): /alive, /server_info, /execute_action, /upload_file, /download_files,
// /list_files, /vscode/connection_token. One action runs at a time per client; other calls may
// run concurrently. Nothing that is not idempotent is retried: a command is never re-run.
#pragma once

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/rand.h>

#include "runbox/detail/json.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"
#include "runbox/provider.hpp"
#include "runbox/zip.hpp"
#include "runbox/transport/httplib.hpp"  // url_encode
#include "runbox/transport/transport.hpp"

namespace runbox {

namespace detail {


/// A random hex token from OpenSSL's CSPRNG (multipart boundaries, session keys, temp names).
inline std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
        throw error(errc::system, "OpenSSL RAND_bytes failed");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

}  // namespace detail

/// Timeouts of reference §2.2 (seconds there; configurable here).
struct ClientTimeouts {
    std::chrono::milliseconds alive{5000};  ///< one GET /alive attempt
    std::chrono::milliseconds list_files{10000};  ///< POST /list_files
    /// The longest silence of a download: the server sends nothing while it builds the archive
    /// (bounded by its max_download_bytes), then streams it; the body goes to disk, not memory.
    std::chrono::milliseconds copy_from{300000};
    std::chrono::milliseconds copy_to{300000};  ///< POST /upload_file
    std::chrono::milliseconds vscode_token{10000};  ///< GET /vscode/connection_token
    std::chrono::milliseconds other{60000};  ///< every other request (/server_info, ...)
    /// /execute_action waits the action's own timeout plus this margin.
    std::chrono::milliseconds execute_margin{5000};
};

/// The host-side client of one action execution server, over a borrowed `Transport` (a TransportPolicy).
/// Errors are runbox::error: the server's status mapped to an errc, errc::timeout, errc::transport. One
/// action at a time (a concurrent one waits); other calls may run concurrently.
template <class Transport>
class ActionExecutionClient {
public:
    /// Talks to `endpoint` (trailing '/' dropped) through `transport`, which must outlive the client;
    /// `provider` names the source of errors.
    ActionExecutionClient(Transport& transport, ServerEndpoint endpoint, std::string provider = "runtime",
                          ClientTimeouts timeouts = {})
        : transport_(transport), endpoint_(std::move(endpoint)), provider_(std::move(provider)), timeouts_(timeouts) {
        while (!endpoint_.url.empty() && endpoint_.url.back() == '/') endpoint_.url.pop_back();
    }

    const std::string& url() const noexcept { return endpoint_.url; }  ///< the server's base URL, no trailing '/'
    const ServerEndpoint& endpoint() const noexcept { return endpoint_; }  ///< the endpoint it was built with

    /// GET /alive: throws when the server does not answer 2xx within the alive timeout.
    void check_if_alive() {
        Request request = make("GET", "/alive", timeouts_.alive);
        const Response response = send_once(request);
        raise(response);
    }

    /// Waits until /alive answers 2xx. One deadline (endpoint().alive_timeout) bounds the whole
    /// wait: each attempt is a single request whose timeout is capped by what is left, and the
    /// pauses between attempts (alive_poll_interval) end at the deadline; a 502 from a proxy is
    /// one failed attempt, not a retry loop of its own. The endpoint's probe is asked before
    /// every attempt: when it reports that the server exited, that error is thrown at once.
    /// Past the deadline: errc::timeout naming the bound and the last attempt's error.
    void wait_until_alive() {
        using clock = std::chrono::steady_clock;
        const auto bound = endpoint_.alive_timeout;
        const auto end = clock::now() + bound;
        const auto interval = std::max(endpoint_.alive_poll_interval, std::chrono::milliseconds(1));
        std::string last_error = "no attempt";
        bool tried = false;
        for (;;) {
            if (endpoint_.probe) {
                if (auto exited = endpoint_.probe()) throw *exited;
            }
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(end - clock::now());
            if (left <= std::chrono::milliseconds::zero()) break;
            const bool capped = left < timeouts_.alive;
            try {
                raise(tagged([&] { return transport_.send(make("GET", "/alive", std::min(timeouts_.alive, left))); }));
                return;
            } catch (const error& e) {
                // An attempt cut short by the deadline says less than the one before it.
                if (!(capped && e.code() == errc::timeout && tried)) last_error = e.what();
            } catch (const std::exception& e) {
                last_error = e.what();
            }
            tried = true;
            const auto now = clock::now();
            if (now >= end) break;
            std::this_thread::sleep_for(std::min<clock::duration>(interval, end - now));
        }
        throw error(errc::timeout,
                    "the action execution server did not answer /alive within " + std::to_string(bound.count()) +
                        " ms (last error: " + redact(last_error, endpoint_.secrets) + ")",
                    provider_);
    }

    /// check_if_alive() as a bool, for polling loops; the error text is kept for reporting.
    bool is_alive(std::string* why = nullptr) noexcept {
        try {
            check_if_alive();
            return true;
        } catch (const std::exception& e) {
            if (why != nullptr) *why = e.what();
            return false;
        } catch (...) {
            if (why != nullptr) *why = "unknown error";
            return false;
        }
    }

    /// GET /server_info: {"uptime", "idle_time", "resources": {...}}.
    nlohmann::json server_info() {
        const Response response = send_idempotent(make("GET", "/server_info", timeouts_.other));
        raise(response);
        return parse_json(response, "/server_info");
    }

    /// POST /execute_action (reference §2.3 steps 8-10). The action must be runnable and carry a
    /// timeout; Runtime::run_action applies the gates and the default timeout before this.
    Observation execute_action(const Action& action) {
        const auto timeout = timeout_of(action);
        if (!timeout) throw error(errc::config_invalid, "execute_action needs an action with a timeout", provider_);
        Request request = make("POST", "/execute_action",
                               std::chrono::milliseconds(static_cast<std::int64_t>(*timeout * 1000.0)) +
                                   timeouts_.execute_margin);
        request.idempotent = false;
        request.headers.set("Content-Type", "application/json");
        nlohmann::ordered_json body;
        body["action"] = to_json(action);
        request.body = body.dump();

        Response response;
        {
            std::lock_guard<std::mutex> one_action_at_a_time(action_mutex_);
            try {
                response = send_once(request);
            } catch (const error& e) {
                if (e.code() == errc::timeout) {
                    throw error(errc::timeout,
                                "Runtime failed to return execute_action before the requested timeout of " +
                                    detail::python_float(*timeout) + "s",
                                provider_);
                }
                throw;
            }
            last_execution_ = std::chrono::steady_clock::now();
        }
        raise(response);
        auto json = parse_json(response, "/execute_action");
        if (!json.is_object()) {
            throw error(errc::bad_response, "/execute_action answered a body that is not a JSON object", provider_,
                        response.status);
        }
        const bool hidden = std::visit([](const auto& a) {
            if constexpr (requires { a.hidden; }) return static_cast<bool>(a.hidden);
            else return false;
        }, action);
        if (hidden) {
            if (!json.contains("extras") || !json["extras"].is_object()) json["extras"] = nlohmann::json::object();
            json["extras"]["hidden"] = true;
        }
        Observation observation = observation_from_json(json);
        meta(observation).cause = meta(action).id;
        return observation;
    }

    /// POST /upload_file. A directory needs recursive=true and is zipped with its own name, so
    /// `copy_to("/tmp/dir", "/workspace", true)` yields /workspace/dir/... in the sandbox.
    void copy_to(const std::filesystem::path& host_src, const std::string& sandbox_dest, bool recursive = false) {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (!fs::exists(host_src, ec)) {
            throw error(errc::not_found, "Source file " + host_src.string() + " does not exist", provider_);
        }
        std::string filename;
        std::string content;
        if (recursive) {
            const fs::path archive = fs::temp_directory_path() / ("runbox-upload-" + detail::random_hex(8) + ".zip");
            struct Remove {
                fs::path path;
                ~Remove() { std::error_code ignored; fs::remove(path, ignored); }
            } cleanup{archive};
            zip_tree(host_src, archive, {.include_top_dir = true, .include_directories = true});
            filename = archive.filename().string();
            content = read_file(archive);
        } else {
            if (fs::is_directory(host_src, ec)) {
                throw error(errc::config_invalid, host_src.string() + " is a directory: copy it with recursive=true",
                            provider_);
            }
            filename = host_src.filename().string();
            content = read_file(host_src);
        }
        const std::string boundary = "runbox-" + detail::random_hex(12);
        std::string body;
        body.reserve(content.size() + 256);
        body += "--" + boundary + "\r\n";
        body += "Content-Disposition: form-data; name=\"file\"; filename=\"" + escape_quotes(filename) + "\"\r\n";
        body += "Content-Type: application/octet-stream\r\n\r\n";
        body += content;
        body += "\r\n--" + boundary + "--\r\n";

        Request request = make("POST",
                               "/upload_file?" + query_string({{"destination", sandbox_dest},
                                                                 {"recursive", recursive ? "true" : "false"}}),
                               timeouts_.copy_to);
        // Uploading the same bytes to the same place twice leaves the same result.
        request.idempotent = true;
        request.headers.set("Content-Type", "multipart/form-data; boundary=" + boundary);
        request.body = std::move(body);
        raise(send_idempotent(request));
    }

    /// GET /download_files: writes the zip to a new local file and returns its path. Unlike
    /// OpenHands, the status is checked: an error is an error, not a "zip" holding JSON.
    std::filesystem::path copy_from(const std::string& sandbox_path) {
        namespace fs = std::filesystem;
        const fs::path local = fs::temp_directory_path() / ("runbox-download-" + detail::random_hex(8) + ".zip");
        std::ofstream out(local, std::ios::binary | std::ios::trunc);
        if (!out) throw error(errc::system, "cannot create " + local.string(), provider_);
        Request request = make("GET", "/download_files?" + query_string({{"path", sandbox_path}}), timeouts_.copy_from);
        request.on_body = [&out](std::string_view chunk) {
            out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            return out ? StreamAction::next : StreamAction::fail;
        };
        Response response;
        try {
            response = send_once(request);  // streamed: not retried
        } catch (const error& e) {
            out.close();
            std::error_code ignored;
            fs::remove(local, ignored);
            if (e.code() == errc::timeout) throw error(errc::timeout, "Copy operation timed out", provider_);
            throw;
        }
        out.close();
        if (!response.ok()) {
            std::error_code ignored;
            fs::remove(local, ignored);
            raise(response);
        }
        return local;
    }

    /// POST /list_files: names in `path` (the server's working dir when empty), directories
    /// first with a trailing '/'.
    std::vector<std::string> list_files(const std::optional<std::string>& path = std::nullopt) {
        Request request = make("POST", "/list_files", timeouts_.list_files);
        request.idempotent = true;  // a read
        request.headers.set("Content-Type", "application/json");
        nlohmann::json body = nlohmann::json::object();
        if (path) body["path"] = *path;
        request.body = body.dump();
        Response response;
        try {
            response = send_idempotent(request);
        } catch (const error& e) {
            if (e.code() == errc::timeout) throw error(errc::timeout, "List files operation timed out", provider_);
            throw;
        }
        raise(response);
        const nlohmann::json json = parse_json(response, "/list_files");
        if (!json.is_array()) throw error(errc::bad_response, "/list_files did not answer a JSON list", provider_);
        std::vector<std::string> names;
        for (const auto& item : json) {
            if (!item.is_string()) throw error(errc::bad_response, "/list_files answered a non-string entry", provider_);
            names.push_back(item.get<std::string>());
        }
        return names;
    }

    /// GET /vscode/connection_token: the token, or "" when the server has none (null).
    std::string get_vscode_token() {
        if (vscode_token_) return *vscode_token_;
        const Response response = send_idempotent(make("GET", "/vscode/connection_token", timeouts_.vscode_token));
        raise(response);
        const nlohmann::json json = parse_json(response, "/vscode/connection_token");
        if (json.is_object() && json.contains("token") && json["token"].is_string()) {
            vscode_token_ = json["token"].get<std::string>();
            return *vscode_token_;
        }
        return "";
    }

    /// When the last /execute_action returned (or nullopt before the first).
    std::optional<std::chrono::steady_clock::time_point> last_execution_time() const { return last_execution_; }

private:
    Request make(std::string method, const std::string& path, std::chrono::milliseconds timeout) const {
        Request request;
        request.method = std::move(method);
        request.url = endpoint_.url + path;
        request.headers = endpoint_.headers;
        request.timeout = timeout;
        return request;
    }

    Response send_once(const Request& request) {
        if (endpoint_.retry && request.is_idempotent()) return send_idempotent(request);
        return tagged([&] { return transport_.send(request); });
    }

    // Idempotent calls: 429/502/503/504 and dropped connections retried with backoff, or as the
    // endpoint's provider asks (ServerEndpoint::retry: Daytona rides out its proxy's 502s).
    Response send_idempotent(const Request& request) {
        RetryPolicy policy;
        policy.max_attempts = 3;
        policy.initial_backoff = std::chrono::milliseconds(250);
        policy.max_elapsed = std::chrono::milliseconds(15000);
        if (endpoint_.retry) policy = *endpoint_.retry;
        return tagged([&] { return send_with_retry(transport_, request, policy); });
    }

    // The transport tags its errors "transport"; to the user the sandbox behind this client
    // went away, so the error names the provider (same code, same message).
    template <class F>
    Response tagged(F&& send) {
        try {
            return send();
        } catch (const error& e) {
            if (e.provider() == provider_) throw;
            throw error(e.code(), e.detail(), provider_, e.http_status(), e.retry_after(), e.rpc_code());
        }
    }

    void raise(const Response& response) const {
        if (!response.ok()) raise_for_status(response, provider_, endpoint_.secrets);
    }

    nlohmann::json parse_json(const Response& response, std::string_view what) const {
        // Everything a sandbox sends is hostile: depth and size are bounded before any walk.
        detail::json_failure failure{};
        auto json = detail::parse_untrusted_json(response.body, {}, &failure);
        if (json.is_discarded()) {
            throw error(errc::bad_response,
                        std::string(what) + " answered a body that " + detail::json_failure_text(failure), provider_,
                        response.status);
        }
        return json;
    }

    std::string read_file(const std::filesystem::path& path) const {
        std::ifstream in(path, std::ios::binary);
        if (!in) throw error(errc::not_found, "cannot read " + path.string(), provider_);
        return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }

    static std::string escape_quotes(const std::string& text) {
        std::string out;
        for (char c : text) {
            if (c == '"' || c == '\\') out += '\\';
            out += c;
        }
        return out;
    }

    Transport& transport_;
    ServerEndpoint endpoint_;
    std::string provider_;
    ClientTimeouts timeouts_;
    std::mutex action_mutex_;
    std::optional<std::string> vscode_token_;
    std::optional<std::chrono::steady_clock::time_point> last_execution_;
};

}  // namespace runbox
