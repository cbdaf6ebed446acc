/// \file
/// the action execution server that runs inside a sandbox.
///
/// The OpenHands action_execution_server protocol (reference §1) on cpp-httplib: GET /alive,
/// GET /server_info, POST /execute_action, POST /upload_file, GET /download_files,
/// POST /list_files, GET /vscode/connection_token, POST /update_mcp_server. Errors are
/// `{"detail": ...}` JSON with the same statuses and the same quirks (§1.3: handlers of
/// execute/upload/download wrap their own 400/404 into a 500 "<status>: <detail>").
///
/// One action executes at a time (a mutex around the executor); every other request is served
/// concurrently by httplib's workers, so /alive answers while a command runs. File work (file
/// actions, uploads, downloads, /list_files) runs on one FileWorker thread with the shell user's
/// filesystem identity. Limits on everything a client controls are in ActionServerOptions
/// (docs/design.md, "Limits and what runs concurrently").
///
/// Note for embedding programs: constructing an httplib::Server sets SIGPIPE to SIG_IGN for the
/// whole process (cpp-httplib does that); the shells and the Python kernel reset all signal
/// dispositions when they start.
#pragma once

#include "runbox/detail/json.hpp"
#include "runbox/detail/linkage.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/environment.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"
#include "runbox/server/bash_session.hpp"
#include "runbox/server/file_editor.hpp"
#include "runbox/server/file_worker.hpp"
#include "runbox/server/ipython_driver.hpp"
#include "runbox/server/run_as.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace runbox::server {

/// How an ActionServer listens, what it runs and the limits it enforces (runbox-server's flags).
struct ActionServerOptions {
    std::string host = "127.0.0.1";  ///< address to bind ("0.0.0.0", "::" for all)
    int port = 0;  ///< 0 = any free port
    std::string working_dir;  ///< the shell's starting directory; empty = the current directory
    std::string session_api_key;  ///< the X-Session-API-Key clients must send; empty = no auth
    /// User the shell and the Python kernel run as; empty = the current user. Honoured only
    /// when the server runs as root (the user must exist; runbox-server creates it); otherwise
    /// the shells run as the current user.
    std::string username;
    /// OpenHands plugin names: "jupyter" enables run_ipython; "agent_skills" and "vscode" are
    /// accepted (no VSCode server is started: /vscode/connection_token answers null).
    std::vector<std::string> plugins;
    bool enable_browser = false;  ///< there is no browser: browse actions always get the "disabled" error
    /// A command with no new output for this long returns (exit code -1) and can be continued.
    std::chrono::milliseconds no_change_timeout{10000};
    std::map<std::string, std::string> env;  ///< extra environment for the shells
    /// What the shells' and the Python REPL's environment starts from: this process's own
    /// (runbox-server in a sandbox) or only the allow-listed host variables (the local provider's
    /// thread mode); see runbox/environment.hpp. SESSION_API_KEY is never passed on.
    runbox::detail::EnvironmentBase environment = runbox::detail::EnvironmentBase::inherit;

    // ---- limits: each bounds what a client (or code in the sandbox) can make the server spend.
    /// Request body (uploads included): Content-Length is checked before the body is read and
    /// the count while reading; larger is 413. Compressed or chunked request bodies are refused.
    std::size_t max_body_bytes = std::size_t{512} << 20;
    /// A request without the session key is answered 403 before its body is read when the
    /// body is larger than this (a small one is read first, keeping keep-alive in step).
    std::size_t max_unauthenticated_body_bytes = std::size_t{64} << 10;
    /// Nesting depth of request JSON (and of Python literals inside actions).
    std::size_t max_json_depth = runbox::detail::max_nesting_depth;
    /// Values in one request's JSON: the parsed tree is up to 25 times its text (JsonLimits).
    std::size_t max_json_values = runbox::detail::JsonLimits{}.max_values;
    /// `read` returns at most this many bytes of a file and says it cut.
    std::size_t max_read_bytes = std::size_t{10} << 20;
    /// /download_files refuses (413) a tree whose files add up to more than this.
    std::uintmax_t max_download_bytes = std::uintmax_t{1} << 30;
    /// An uploaded zip may extract to at most this many bytes and entries (413; a small archive
    /// can declare gigabytes of zeros). The declared sizes are checked before anything is written.
    std::uintmax_t max_extracted_bytes = std::uintmax_t{4} << 30;
    std::uintmax_t max_extracted_entries = 1'000'000;  ///< files and directories of one uploaded zip
    /// How long a file action may take when the action names no timeout.
    std::chrono::milliseconds file_action_timeout{120000};
    /// Connections served at once; more are closed on accept.
    std::size_t max_connections = 128;
    /// From accept (or the previous response) to the end of the next request's headers.
    std::chrono::milliseconds header_timeout{20000};
    /// Per recv()/send() on a connection, and the idle wait between keep-alive requests.
    std::chrono::milliseconds read_timeout{10000};
    std::chrono::milliseconds write_timeout{30000};  ///< per send() of a response
    std::chrono::milliseconds keep_alive_timeout{5000};  ///< how long an idle keep-alive connection stays open
};

namespace detail {

using json = nlohmann::json;

/// An HTTP error raised by a handler; what() is Starlette's string form "<status>: <detail>",
/// which is what the wrapping handlers put into their 500 detail.
class HttpError : public std::runtime_error {
public:
    HttpError(int status, const std::string& detail)
        : std::runtime_error(std::to_string(status) + ": " + detail), status_(status), detail_(detail) {}
    int status() const noexcept { return status_; }
    const std::string& detail() const noexcept { return detail_; }

private:
    int status_;
    std::string detail_;
};

RUNBOX_DECL void send_json(httplib::Response& res, int status, const json& body);

RUNBOX_DECL void send_detail(httplib::Response& res, int status, const std::string& detail);

/// `send_detail`, then the connection ends: for a request refused before its body was read.
/// httplib 0.11 keeps a connection open whatever the response says and parses the unread body
/// as the next request, a line at a time into an unbounded string (a 200 MB body without a
/// line break cost 256 MB and seconds of CPU). A content provider that returns false after
/// writing is httplib's way to cancel a response: it then stops reading and closes the socket.
RUNBOX_DECL void send_detail_and_close(httplib::Response& res, int status, const std::string& detail);

/// 422 the way FastAPI reports request validation failures. `errors` is a Python-style
/// rendering of the error list (OpenHands sends str(exc.errors())).
RUNBOX_DECL void send_validation_error(httplib::Response& res, std::string_view type, std::string_view loc,
                                       std::string_view msg);

/// Python's str(OSError): "[Errno 13] Permission denied: '/x'".
RUNBOX_DECL std::string os_error_text(const std::filesystem::filesystem_error& e);

/// The text of a failure inside a wrapping handler (what Python's str(e) would give).
RUNBOX_DECL std::string exception_text(std::exception_ptr ep);

/// FastAPI's bool query parsing.
RUNBOX_DECL std::optional<bool> parse_bool(std::string value);


/// Constant-time comparison of two secrets of any length: compare their SHA-256 digests.
RUNBOX_DECL bool secrets_equal(std::string_view a, std::string_view b);

RUNBOX_DECL std::string ascii_lower(std::string s);

/// /list_files: immediate children, directories (with "/") first, each group sorted
/// case-insensitively, hidden entries included; a missing path or any error gives [].
RUNBOX_DECL std::vector<std::string> list_directory(const std::filesystem::path& path);

/// Starlette's FileResponse Content-Disposition for a download name.
RUNBOX_DECL std::string content_disposition(const std::string& filename);

}  // namespace detail

/// OpenHands' action execution server (/alive, /execute_action, /upload_file, ...) on
/// cpp-httplib, as runbox-server and the local provider run it. start() and stop() may be
/// called from any thread; requests are served on the server's own threads.
class ActionServer {
public:
    /// Checks the options (an unknown plugin is errc::config_invalid); nothing starts yet.
    explicit ActionServer(ActionServerOptions options) : options_(std::move(options)) {
        if (options_.working_dir.empty()) options_.working_dir = std::filesystem::current_path().string();
        for (const auto& plugin : options_.plugins) {
            if (plugin != "jupyter" && plugin != "agent_skills" && plugin != "vscode") {
                throw runbox::error(errc::config_invalid, "Plugin " + plugin + " not found");
            }
        }
    }
    ActionServer(const ActionServer&) = delete;
    ActionServer& operator=(const ActionServer&) = delete;
    ~ActionServer() { stop(); }

    /// Initialises the executor (working dir, shell) and then binds and serves on a background
    /// thread; returns once the socket is listening. Throws when the port cannot be bound.
    void start();

    /// The bound port (after start(); a chosen one when the options said 0).
    int port() const noexcept { return port_; }

    /// Base URL for clients on this machine ("0.0.0.0" is reached through 127.0.0.1).
    std::string url() const;

    /// Stops listening, kills the shell and everything it started, and reaps them. Idempotent.
    void stop() {
        std::lock_guard lifecycle(lifecycle_mutex_);
        lock_free_stop();
    }

private:
    using json = nlohmann::json;
    using clock = std::chrono::steady_clock;

    // ---- executor -------------------------------------------------------------------------

    void initialise_executor();

    void shutdown_executor() noexcept;

    void lock_free_stop() noexcept;

    // ---- HTTP -----------------------------------------------------------------------------

    /// The request carries the session key (or the server has none).
    bool has_key(const httplib::Request& req) const;

    bool authorized(const httplib::Request& req) const {
        if (req.path == "/alive" || req.path == "/server_info") return true;
        return has_key(req);
    }

    /// Wraps a route: the auth middleware first, then the handler; anything it throws becomes
    /// the generic 500 (wrapping handlers catch their own errors first).
    httplib::Server::Handler guarded(void (ActionServer::*handler)(const httplib::Request&, httplib::Response&));

    runbox::detail::JsonLimits json_limits() const {
        return {options_.max_json_depth, options_.max_body_bytes, options_.max_json_values};
    }

    /// A JSON request body within the limits; a syntax error throws (the generic 500, as in
    /// the reference), a too-deep or too-large body is answered 422 here (then discarded).
    json parse_body(const httplib::Request& req, httplib::Response& res) const;

    /// The declared body size; nullopt when there is none, max() when it cannot be known.
    static std::optional<std::uint64_t> declared_body_size(const httplib::Request& req);

    /// Refuses a request from its head alone (runs before httplib reads the body): no key and
    /// more than a small body, a body over the limit, or a body httplib would inflate without
    /// bound (Content-Encoding) or read without a length (chunked). The connection is closed
    /// afterwards, since the unread body would be taken for the next request.
    bool refuse_before_body(const httplib::Request& req, httplib::Response& res) const;

    static std::string ascii_lower_copy(std::string text) { return detail::ascii_lower(std::move(text)); }

    void setup_routes();

    static bool is_known_path(const std::string& path);

    void handle_alive(const httplib::Request&, httplib::Response& res);

    void handle_server_info(const httplib::Request&, httplib::Response& res);

    void handle_execute_action(const httplib::Request& req, httplib::Response& res);

    void handle_upload_file(const httplib::Request& req, httplib::Response& res);

    /// The file work of an upload, on the file worker (as the shell's user). Nothing is
    /// written through a symbolic link already there (see safe_write.hpp).
    void store_upload(const std::filesystem::path& dest, const std::string& filename, const std::string& content,
                      bool is_zip) const;

    void handle_download_files(const httplib::Request& req, httplib::Response& res);

    void handle_list_files(const httplib::Request& req, httplib::Response& res);

    void handle_vscode_token(const httplib::Request&, httplib::Response& res);

    void handle_update_mcp_server(const httplib::Request& req, httplib::Response& res);

    /// Uploaded files belong to the shell's user, like files it creates itself.
    void chown_to_run_as(const std::vector<std::filesystem::path>& paths) const;

    // File actions run on the file worker. Defined before run_action, whose generic lambda
    // instantiates run_file_action: clang 14 warns (-Wundefined-inline) when the definition comes later.
    FileOpsContext file_context() const;
    /// A file action on the file worker, waited for at most the action's timeout. The job owns
    /// copies of what it reads (it may outlive the wait).
    template <class A>
    Observation run_file_action(const A& action) {
        const auto ctx = file_context();
        auto timeout = options_.file_action_timeout;
        if (action.timeout && *action.timeout > 0) {
            timeout = std::chrono::milliseconds(static_cast<std::int64_t>(std::min(*action.timeout, 1e9) * 1000.0));
        }
        try {
            FileEditor* editor = editor_.get();
            return worker_->run(
                [action, ctx, editor]() -> Observation {
                    (void)editor;  // used by edits only (clang: -Wunused-lambda-capture)
                    if constexpr (std::is_same_v<A, FileReadAction>) return read_file(action, ctx);
                    else if constexpr (std::is_same_v<A, FileWriteAction>) return write_file(action, ctx);
                    else return editor->edit(action, ctx);
                },
                timeout);
        } catch (const runbox::error& e) {
            if (e.code() != errc::timeout) throw;
            return ErrorObservation{"The file operation on " + action.path + " did not finish within its timeout (" +
                                        runbox::detail::python_float(static_cast<double>(timeout.count()) / 1000.0) +
                                        " seconds); later file operations wait for it.",
                                    "", {}};
        }
    }

    // ---- actions --------------------------------------------------------------------------

    Observation run_action(Action& action);

    Observation run_ipython(const IPythonRunCellAction& action);

    // ---- shell and editor ------------------------------------------------------------------

    void start_bash();

    void stop_bash() noexcept {
        if (bash_) bash_->close();
    }

    std::string bash_cwd() const {
        std::string cwd = bash_ ? bash_->cwd() : std::string();
        return cwd.empty() ? options_.working_dir : cwd;
    }

    Observation run_command(const CmdRunAction& action);

    ActionServerOptions options_;
    std::optional<detail::RunAs> run_as_;
    std::map<std::string, std::string> shell_env_;
    std::unique_ptr<httplib::Server> server_;
    std::thread listener_;
    int port_ = -1;
    std::mutex lifecycle_mutex_;
    bool started_ = false;
    bool stopped_ = false;
    std::atomic<bool> initialised_{false};
    std::mutex action_mutex_;  // one action at a time
    clock::time_point start_time_{};
    std::atomic<clock::rep> last_execution_{0};
    bool has_jupyter_ = false;
    std::unique_ptr<detail::PythonRepl> python_;
    std::string python_synced_cwd_;
    std::uint64_t python_init_generation_ = 0;
    std::uint64_t python_synced_generation_ = 0;
    std::unique_ptr<BashSession> bash_;
    std::unique_ptr<FileEditor> editor_;
    std::unique_ptr<FileWorker> worker_;  // after editor_: stopped (joined) before it goes
};

}  // namespace runbox::server

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/action_server.ipp"
#endif
