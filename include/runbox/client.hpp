// runbox/client.hpp - ActionExecutionClient: the host side of the action server protocol.
//
// Every provider that runs an action execution server is driven through this one client
// (reference §2): /alive, /server_info, /execute_action, /upload_file, /download_files,
// /list_files, /vscode/connection_token. One action runs at a time per client; other calls may
// run concurrently. Nothing that is not idempotent is retried: a command is never re-run.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"
#include "runbox/provider.hpp"
#include "runbox/transport/httplib.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

namespace detail {

/// A random hex token of `bytes` random bytes from OpenSSL's CSPRNG (multipart boundaries,
/// session keys, temp names); errc::system when the generator fails.
RUNBOX_DECL std::string random_hex(std::size_t bytes);

// The client's non-template steps (impl/client.ipp), shared by every transport.

/// A multipart/form-data upload of `host_src` (a file, or with `recursive` a directory zipped
/// with its own name): the Content-Type header value and the body. Errors name `provider`.
struct UploadBody {
    std::string content_type;  ///< "multipart/form-data; boundary=..."
    std::string body;          ///< the whole form
};
/// Builds the upload of `host_src` (errc::not_found when it does not exist, errc::config_invalid
/// for a directory without `recursive`).
RUNBOX_DECL UploadBody upload_body(const std::filesystem::path& host_src, bool recursive, const std::string& provider);
/// The JSON body of POST /execute_action for `action`.
RUNBOX_DECL std::string execute_action_body(const Action& action);
/// The errc::timeout of an /execute_action that did not answer within `timeout` seconds.
RUNBOX_DECL error execute_timeout(double timeout, const std::string& provider);
/// A server answer's JSON, parsed within the untrusted-input limits (errc::bad_response naming `what`).
RUNBOX_DECL nlohmann::json parse_server_json(const Response& response, std::string_view what,
                                             const std::string& provider);
/// The observation an /execute_action answer holds, with `cause` = the action's id (and
/// `hidden` carried over from a hidden action); errc::bad_response when it is not one.
RUNBOX_DECL Observation observation_from_answer(const Response& response, const Action& action,
                                                const std::string& provider);
/// The names a /list_files answer holds (errc::bad_response when it is not a list of strings).
RUNBOX_DECL std::vector<std::string> file_names_from_answer(const Response& response, const std::string& provider);
/// A new temporary path for a downloaded archive ("runbox-download-<random>.zip").
RUNBOX_DECL std::filesystem::path download_path();

}  // namespace detail

/// How large a copy_from download may grow on the host's disk by default: the sandbox writes it,
/// so its size is the sandbox's choice (runbox-server's own max_download_bytes is 1 GiB of files).
inline constexpr std::uintmax_t default_max_copy_from_bytes = std::uintmax_t{4} << 30;

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
    /// /execute_action waits the action's own timeout plus this margin, for the whole answer
    /// (a deadline, not only a bound on each read; so does each /alive attempt).
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
                // The deadline, not only the per-read timeout: a server that trickles a byte at a
                // time would otherwise hold one attempt, and connect(), open for ever.
                Request attempt = make("GET", "/alive", std::min(timeouts_.alive, left));
                attempt.deadline = clock::now() + attempt.timeout;
                raise(tagged([&] { return transport_.send(attempt); }));
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
        // to_millis caps it (a year): an action's timeout is the caller's number, any double.
        Request request = make("POST", "/execute_action", detail::to_millis(*timeout * 1000.0) + timeouts_.execute_margin);
        request.idempotent = false;
        request.headers.set("Content-Type", "application/json");
        request.body = detail::execute_action_body(action);

        Response response;
        {
            std::lock_guard<std::mutex> one_action_at_a_time(action_mutex_);
            // The server answers within the action's timeout: the margin covers the rest, and a
            // server trickling its answer cannot stretch the call past it.
            request.deadline = std::chrono::steady_clock::now() + request.timeout;
            try {
                response = send_once(request);
            } catch (const error& e) {
                if (e.code() == errc::timeout) throw detail::execute_timeout(*timeout, provider_);
                throw;
            }
            last_execution_ = std::chrono::steady_clock::now();
        }
        raise(response);
        return detail::observation_from_answer(response, action, provider_);
    }

    /// POST /upload_file. A directory needs recursive=true and is zipped with its own name, so
    /// `copy_to("/tmp/dir", "/workspace", true)` yields /workspace/dir/... in the sandbox.
    void copy_to(const std::filesystem::path& host_src, const std::string& sandbox_dest, bool recursive = false) {
        detail::UploadBody upload = detail::upload_body(host_src, recursive, provider_);
        Request request = make("POST",
                               "/upload_file?" + query_string({{"destination", sandbox_dest},
                                                                 {"recursive", recursive ? "true" : "false"}}),
                               timeouts_.copy_to);
        // Uploading the same bytes to the same place twice leaves the same result.
        request.idempotent = true;
        request.headers.set("Content-Type", upload.content_type);
        request.body = std::move(upload.body);
        raise(send_idempotent(request));
    }

    /// GET /download_files: writes the zip to a new local file and returns its path. Unlike
    /// OpenHands, the status is checked: an error is an error, not a "zip" holding JSON. A
    /// download past `max_bytes` stops there (errc::quota_exceeded); on any failure the local
    /// file is removed.
    std::filesystem::path copy_from(const std::string& sandbox_path, std::uintmax_t max_bytes = default_max_copy_from_bytes) {
        namespace fs = std::filesystem;
        struct RemoveUnlessKept {
            fs::path path;
            bool keep = false;
            ~RemoveUnlessKept() {
                std::error_code ignored;
                if (!keep) fs::remove(path, ignored);
            }
        };
        RemoveUnlessKept local{detail::download_path()};
        std::ofstream out(local.path, std::ios::binary | std::ios::trunc);
        if (!out) throw error(errc::system, "cannot create " + local.path.string(), provider_);
        Request request = make("GET", "/download_files?" + query_string({{"path", sandbox_path}}), timeouts_.copy_from);
        std::uintmax_t received = 0;
        bool too_large = false;
        request.on_body = [&](std::string_view chunk) {
            received += chunk.size();
            if (received > max_bytes) {
                too_large = true;
                return StreamAction::fail;
            }
            out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            return out ? StreamAction::next : StreamAction::fail;
        };
        Response response;
        try {
            response = send_once(request);  // streamed: not retried
        } catch (const error& e) {
            out.close();
            if (too_large) {
                throw error(errc::quota_exceeded,
                            "the download of " + sandbox_path + " is larger than the limit of " + std::to_string(max_bytes) + " bytes",
                            provider_);
            }
            if (e.code() == errc::timeout) throw error(errc::timeout, "Copy operation timed out", provider_);
            throw;
        }
        out.close();
        raise(response);
        if (!out) throw error(errc::system, "cannot write " + local.path.string(), provider_);
        local.keep = true;
        return local.path;
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
        return detail::file_names_from_answer(response, provider_);
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
        if (response.ok()) return;
        raise_for_status(response, provider_, endpoint_.secrets);
        // raise_for_status lets 1xx and 3xx through; an action server never redirects and runbox
        // never follows one, so anything but 2xx is an answer runbox cannot use.
        throw error(errc::bad_response, "the action server answered HTTP " + std::to_string(response.status), provider_,
                    response.status);
    }

    nlohmann::json parse_json(const Response& response, std::string_view what) const {
        return detail::parse_server_json(response, what, provider_);
    }

    Transport& transport_;
    ServerEndpoint endpoint_;
    std::string provider_;
    ClientTimeouts timeouts_;
    std::mutex action_mutex_;
    std::optional<std::string> vscode_token_;
    std::optional<std::chrono::steady_clock::time_point> last_execution_;
};

#if defined(RUNBOX_SEPARATE_COMPILATION)
// Compiled once, in runbox/src.hpp.
extern template class ActionExecutionClient<HttplibTransport>;
#endif

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/client.ipp"
#endif
