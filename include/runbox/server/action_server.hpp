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
#include "runbox/detail/python.hpp"
#include "runbox/environment.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"
#include "runbox/server/bash_session.hpp"
#include "runbox/server/connection_guard.hpp"
#include "runbox/server/file_editor.hpp"
#include "runbox/server/file_worker.hpp"
#include "runbox/detail/safe_write.hpp"
#include "runbox/server/system_stats.hpp"
#include "runbox/zip.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
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
    /// `read` returns at most this many bytes of a file and says it cut.
    std::size_t max_read_bytes = std::size_t{10} << 20;
    /// /download_files refuses (413) a tree whose files add up to more than this.
    std::uintmax_t max_download_bytes = std::uintmax_t{1} << 30;
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

inline void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

inline void send_detail(httplib::Response& res, int status, const std::string& detail) {
    send_json(res, status, json{{"detail", detail}});
}

/// `send_detail`, then the connection ends: for a request refused before its body was read.
/// httplib 0.11 keeps a connection open whatever the response says and parses the unread body
/// as the next request, a line at a time into an unbounded string (a 200 MB body without a
/// line break cost 256 MB and seconds of CPU). A content provider that returns false after
/// writing is httplib's way to cancel a response: it then stops reading and closes the socket.
inline void send_detail_and_close(httplib::Response& res, int status, const std::string& detail) {
    res.status = status;
    res.set_header("Connection", "close");
    const auto text = std::make_shared<std::string>(json{{"detail", detail}}.dump());
    res.set_content_provider(text->size(), "application/json",
                             [text](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                                 if (offset < text->size()) {
                                     sink.write(text->data() + offset, std::min(length, text->size() - offset));
                                 }
                                 return false;  // written; now end the connection
                             });
}

/// 422 the way FastAPI reports request validation failures. `errors` is a Python-style
/// rendering of the error list (OpenHands sends str(exc.errors())).
inline void send_validation_error(httplib::Response& res, std::string_view type, std::string_view loc,
                                  std::string_view msg) {
    std::string errors = "[{'type': '";
    errors += type;
    errors += "', 'loc': (";
    errors += loc;
    errors += "), 'msg': '";
    errors += msg;
    errors += "'}]";
    send_json(res, 422, json{{"detail", "Invalid request parameters"}, {"errors", errors}});
}

/// Python's str(OSError): "[Errno 13] Permission denied: '/x'".
inline std::string os_error_text(const std::filesystem::filesystem_error& e) {
    if (!e.path1().empty()) return os_error_text(e.code().value(), e.path1().string());  // file_editor.hpp's
    return "[Errno " + std::to_string(e.code().value()) + "] " + e.code().message();
}

/// The text of a failure inside a wrapping handler (what Python's str(e) would give).
inline std::string exception_text(std::exception_ptr ep) {
    try {
        std::rethrow_exception(ep);
    } catch (const std::filesystem::filesystem_error& e) {
        return os_error_text(e);
    } catch (const runbox::error& e) {
        return e.detail();
    } catch (const std::exception& e) {
        return e.what();
    } catch (...) {
        return "unknown error";
    }
}

/// FastAPI's bool query parsing.
inline std::optional<bool> parse_bool(std::string value) {
    for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (value == "true" || value == "1" || value == "yes" || value == "on" || value == "t" || value == "y") return true;
    if (value == "false" || value == "0" || value == "no" || value == "off" || value == "f" || value == "n") return false;
    return std::nullopt;
}


/// Constant-time comparison of two secrets of any length: compare their SHA-256 digests.
inline bool secrets_equal(std::string_view a, std::string_view b) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> da{}, db{};
    unsigned int la = 0, lb = 0;
    if (EVP_Digest(a.data(), a.size(), da.data(), &la, EVP_sha256(), nullptr) != 1) return false;
    if (EVP_Digest(b.data(), b.size(), db.data(), &lb, EVP_sha256(), nullptr) != 1) return false;
    return la == lb && CRYPTO_memcmp(da.data(), db.data(), la) == 0;
}

inline std::string ascii_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

/// /list_files: immediate children, directories (with "/") first, each group sorted
/// case-insensitively, hidden entries included; a missing path or any error gives [].
inline std::vector<std::string> list_directory(const std::filesystem::path& path) {
    namespace fs = std::filesystem;
    std::vector<std::string> dirs, files;
    std::error_code ec;
    if (!fs::is_directory(path, ec)) return {};
    fs::directory_iterator it(path, ec);
    if (ec) return {};
    for (const fs::directory_iterator end; it != end; it.increment(ec)) {
        if (ec) return {};
        std::error_code type_ec;
        const auto name = it->path().filename().string();
        if (fs::is_directory(it->path(), type_ec)) {  // follows links, like os.path.isdir
            dirs.push_back(name + "/");
        } else {
            files.push_back(name);
        }
    }
    const auto by_lower = [](const std::string& a, const std::string& b) {
        const auto la = ascii_lower(a), lb = ascii_lower(b);
        return la != lb ? la < lb : a < b;
    };
    std::sort(dirs.begin(), dirs.end(), by_lower);
    std::sort(files.begin(), files.end(), by_lower);
    dirs.insert(dirs.end(), files.begin(), files.end());
    return dirs;
}

/// Starlette's FileResponse Content-Disposition for a download name.
inline std::string content_disposition(const std::string& filename) {
    const bool plain = std::all_of(filename.begin(), filename.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= 0x20 && u < 0x7f && c != '"' && c != '\\';
    });
    if (plain) return "attachment; filename=\"" + filename + "\"";
    std::string encoded;
    static constexpr char hex[] = "0123456789ABCDEF";
    for (const char c : filename) {
        const auto u = static_cast<unsigned char>(c);
        if (std::isalnum(u) || std::strchr("-._~", c) != nullptr) {
            encoded += c;
        } else {
            encoded += '%';
            encoded += hex[u >> 4];
            encoded += hex[u & 15];
        }
    }
    return "attachment; filename*=utf-8''" + encoded;
}

/// Who the shells run as when the server (root) was told to switch user.
struct RunAs {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
    std::vector<gid_t> groups;
};

/// Resolves `username` when a switch is possible and needed: root asked to run as another
/// user. Throws when that user does not exist.
inline std::optional<RunAs> resolve_run_as(const std::string& username) {
    if (username.empty() || ::geteuid() != 0) return std::nullopt;
    std::vector<char> buffer(16384);
    struct passwd pw {};
    struct passwd* found = nullptr;
    if (::getpwnam_r(username.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        throw runbox::error(errc::config_invalid, "user '" + username + "' does not exist");
    }
    if (pw.pw_uid == 0) return std::nullopt;
    RunAs user{username, pw.pw_uid, pw.pw_gid, pw.pw_dir != nullptr ? pw.pw_dir : "/", {}};
    int count = 64;
    user.groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(username.c_str(), pw.pw_gid, user.groups.data(), &count) < 0) {
        user.groups.resize(static_cast<std::size_t>(count));
        ::getgrouplist(username.c_str(), pw.pw_gid, user.groups.data(), &count);
    }
    user.groups.resize(static_cast<std::size_t>(std::max(count, 0)));
    return user;
}

/// Whether `user` may execute `path`: search permission on every directory leading to it (and
/// to its symlink target) and read+execute on the file. access() cannot answer this for another
/// user while we are root (e.g. a pyenv python under /root is useless to "openhands").
inline bool can_execute_as(const std::string& path, const RunAs& user) {
    const auto allowed = [&](const struct stat& st, mode_t need_owner, mode_t need_group, mode_t need_other) {
        if (st.st_uid == user.uid) return (st.st_mode & need_owner) == need_owner;
        const bool in_group = st.st_gid == user.gid ||
                              std::find(user.groups.begin(), user.groups.end(), st.st_gid) != user.groups.end();
        if (in_group) return (st.st_mode & need_group) == need_group;
        return (st.st_mode & need_other) == need_other;
    };
    const auto chain_ok = [&](const std::filesystem::path& file) {
        std::filesystem::path dir;
        for (auto it = file.begin(); it != file.end(); ++it) {
            dir /= *it;
            if (dir == file) break;
            struct stat st {};
            if (::stat(dir.c_str(), &st) != 0 || !allowed(st, S_IXUSR, S_IXGRP, S_IXOTH)) return false;
        }
        struct stat st {};
        return ::stat(file.c_str(), &st) == 0 && allowed(st, S_IRUSR | S_IXUSR, S_IRGRP | S_IXGRP, S_IROTH | S_IXOTH);
    };
    std::error_code ec;
    const auto target = std::filesystem::canonical(path, ec);
    return !ec && chain_ok(std::filesystem::absolute(path)) && chain_ok(target);
}

/// PATH lookup like execvp, done before fork (the child may only make async-signal-safe calls).
/// With `user`, only candidates that user can execute count.
inline std::optional<std::string> find_executable(const std::string& name, const std::string& path_value,
                                                  const std::optional<RunAs>& user = std::nullopt) {
    const auto usable = [&](const std::string& candidate) {
        return ::access(candidate.c_str(), X_OK) == 0 && (!user || can_execute_as(candidate, *user));
    };
    if (name.find('/') != std::string::npos) return usable(name) ? std::optional(name) : std::nullopt;
    std::size_t start = 0;
    while (start <= path_value.size()) {
        const auto end = path_value.find(':', start);
        std::string dir = path_value.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + name;
        if (usable(candidate)) return candidate;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return std::nullopt;
}

// The Python side of run_ipython: one persistent interpreter reading one JSON request per
// line on stdin ({"code", "cwd"}) and answering one JSON line on stdout ({"output"}). During a
// cell, fds 1 and 2 point at a temp file so output of child processes is captured as well, and
// fd 0 is /dev/null so input() cannot eat the protocol. The last expression's repr is printed
// like a notebook; `!cmd`, `%pip ...` and `%cd` lines are rewritten to plain Python.
inline constexpr std::string_view python_driver_source = R"PY(
import ast, json, linecache, os, shlex, subprocess, sys, tempfile, traceback
_rb_requests = os.fdopen(os.dup(0), 'r', encoding='utf-8', errors='replace')
_rb_replies = os.fdopen(os.dup(1), 'w', encoding='utf-8')
_rb_null = os.open(os.devnull, os.O_RDONLY)
os.dup2(_rb_null, 0)
os.close(_rb_null)
_rb_ns = {'__name__': '__main__', '__builtins__': __builtins__}
_rb_cells = [0]

def _rb_shell(command):
    sys.stdout.flush()
    sys.stderr.flush()
    subprocess.run(command, shell=True)

def _rb_transform(code):
    out = []
    for line in code.split('\n'):
        body = line.lstrip()
        indent = line[:len(line) - len(body)]
        if body.startswith('!'):
            line = indent + '_rb_shell(' + repr(body[1:]) + ')'
        elif body == '%pip' or body.startswith('%pip '):
            line = indent + '_rb_shell(' + repr(shlex.quote(sys.executable) + ' -m pip ' + body[4:].strip()) + ')'
        elif body.startswith('%cd '):
            line = indent + '__import__("os").chdir(' + repr(os.path.expanduser(body[4:].strip())) + ')'
        out.append(line)
    return '\n'.join(out)

def _rb_run(code, name):
    source = _rb_transform(code)
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    tree = ast.parse(source, name, 'exec')
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Expression(tree.body.pop().value)
    exec(compile(tree, name, 'exec'), _rb_ns)
    if last is not None:
        value = eval(compile(last, name, 'eval'), _rb_ns)
        if value is not None:
            print(repr(value))

def _rb_report(error, name):
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != name:
        tb = tb.tb_next
    if isinstance(error, SyntaxError) or tb is None:
        sys.stderr.write(''.join(traceback.format_exception_only(type(error), error)))
    else:
        traceback.print_exception(type(error), error, tb)

_rb_ns['_rb_shell'] = _rb_shell
_rb_replies.write(json.dumps({'executable': sys.executable}) + '\n')
_rb_replies.flush()
while True:
    try:
        _rb_line = _rb_requests.readline()
        if not _rb_line:
            break
        _rb_request = json.loads(_rb_line)
        _rb_cells[0] += 1
        _rb_name = '<cell-%d>' % _rb_cells[0]
        _rb_capture = tempfile.TemporaryFile()
        _rb_saved = (os.dup(1), os.dup(2))
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(_rb_capture.fileno(), 1)
            os.dup2(_rb_capture.fileno(), 2)
            try:
                if _rb_request.get('cwd'):
                    os.chdir(_rb_request['cwd'])
                _rb_run(_rb_request['code'], _rb_name)
            except BaseException as _rb_error:
                _rb_report(_rb_error, _rb_name)
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            except BaseException:
                pass
            os.dup2(_rb_saved[0], 1)
            os.dup2(_rb_saved[1], 2)
            os.close(_rb_saved[0])
            os.close(_rb_saved[1])
        _rb_capture.seek(0)
        _rb_output = _rb_capture.read().decode('utf-8', 'replace')
        _rb_capture.close()
        _rb_replies.write(json.dumps({'output': _rb_output}) + '\n')
        _rb_replies.flush()
    except KeyboardInterrupt:
        _rb_replies.write(json.dumps({'output': '', 'interrupted': True}) + '\n')
        _rb_replies.flush()
)PY";

/// A persistent Python interpreter for run_ipython (the reference uses a Jupyter kernel).
class PythonRepl {
public:
    struct Result {
        std::string output;
        bool timed_out = false;
        bool died = false;
    };

    PythonRepl(std::string python, std::string working_dir, std::vector<std::string> envp, std::optional<RunAs> user)
        : python_(std::move(python)), working_dir_(std::move(working_dir)), envp_(std::move(envp)), user_(std::move(user)) {}
    PythonRepl(const PythonRepl&) = delete;
    PythonRepl& operator=(const PythonRepl&) = delete;
    ~PythonRepl() {
        kill();
        reap();
    }


    /// sys.executable of the interpreter (after the first successful start).
    const std::string& executable() const noexcept { return executable_; }

    /// Counts interpreter starts: a change means the namespace is new.
    std::uint64_t generation() const noexcept { return generation_; }

    /// Starts the interpreter now if it is not running (run_cell would do it anyway).
    void ensure_started() {
        if (!running()) start();
    }

    /// Runs one cell. `cwd` (if set) is chdir'd to first. Not thread-safe (the server's
    /// action mutex serialises calls); kill() may be called concurrently.
    Result run_cell(const std::string& code, const std::optional<std::string>& cwd, std::optional<double> timeout_s) {
        if (!running()) start();
        json request{{"code", code}};
        if (cwd) request["cwd"] = *cwd;
        if (!send_line(request.dump(-1, ' ', false, json::error_handler_t::replace))) return died();
        std::optional<std::chrono::steady_clock::time_point> deadline;
        if (timeout_s && *timeout_s > 0) {
            deadline = std::chrono::steady_clock::now() +
                       std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(*timeout_s));
        }
        auto line = read_line(deadline);
        if (!line && !eof_) {
            // Timed out: interrupt the cell like a Jupyter kernel interrupt, wait for its reply.
            signal_group(SIGINT);
            line = read_line(std::chrono::steady_clock::now() + std::chrono::seconds(5));
            if (!line) reap();
            return Result{{}, true, false};
        }
        if (!line) return died();
        try {
            const auto reply = runbox::detail::parse_untrusted_json(*line);  // a cell can write to the protocol fd
            if (!reply.is_object()) return died();
            return Result{reply.value("output", std::string()), false, false};
        } catch (const json::exception&) {
            return died();
        }
    }

    /// Shuts the interpreter down for good: kills it and everything it started (its
    /// supervisor, server/process.hpp), and no cell starts a new one afterwards. Safe from any
    /// thread (the server's stop()).
    void kill() noexcept {
        closed_ = true;
        kill_all();
    }

    /// Closes the pipe and reaps the interpreter (after kill()).
    void reap() noexcept {
        kill_all();
        std::lock_guard lock(mutex_);
        if (fd_ >= 0) {
            ::close(fd_);
            fd_ = -1;
        }
        proc_.reset();
    }

private:
    bool running() {
        std::lock_guard lock(mutex_);
        return proc_ && !proc_->exited() && fd_ >= 0 && !eof_;
    }

    Result died() {
        reap();
        return Result{{}, false, true};
    }

    void kill_all() noexcept {
        std::lock_guard lock(mutex_);
        if (proc_) proc_->kill_all();
    }

    void start() {
        reap();
        if (closed_) throw runbox::error(errc::sandbox_gone, "the action server is stopping");
        int fds[2];
        if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) {
            throw std::system_error(errno, std::generic_category(), "socketpair");
        }
        // The driver arrives as the first line on stdin (keeps `ps` output short).
        server::detail::SpawnPlan plan;
        plan.argv_storage = {python_, "-u", "-c", "import json, sys; exec(json.loads(sys.stdin.readline()))  # runbox"};
        plan.env_storage = envp_;
        plan.cwd = working_dir_;
        plan.cwd_fallback_root = true;
        if (user_) {
            plan.switch_user = true;
            plan.uid = user_->uid;
            plan.gid = user_->gid;
            plan.groups = user_->groups;
        }
        plan.finish();
        auto proc = std::make_unique<server::detail::Contained>();
        try {
            proc->start(plan, server::detail::ChildStdio{fds[1], fds[1], STDERR_FILENO, false}, false);
        } catch (...) {
            ::close(fds[0]);
            ::close(fds[1]);
            throw;
        }
        ::close(fds[1]);
        {
            std::lock_guard lock(mutex_);
            proc_ = std::move(proc);
            fd_ = fds[0];
            eof_ = false;
            buffer_.clear();
            if (closed_) proc_->kill_all();  // stop() ran while we were spawning
        }
        std::optional<std::string> hello;
        if (send_line(json(std::string(python_driver_source)).dump())) {
            hello = read_line(std::chrono::steady_clock::now() + std::chrono::seconds(30));
        }
        if (!hello) {
            reap();
            throw runbox::error(errc::server_error, "the Python interpreter " + python_ + " did not start");
        }
        executable_ = json::parse(*hello).value("executable", python_);
        ++generation_;
    }

    void signal_group(int sig) noexcept {
        std::lock_guard lock(mutex_);
        if (proc_) proc_->signal_group(sig);
    }

    bool send_line(const std::string& line) {
        std::string data = line + "\n";
        std::size_t sent = 0;
        while (sent < data.size()) {
            const auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            sent += static_cast<std::size_t>(n);
        }
        return true;
    }

    /// One reply line, or nullopt on deadline/EOF (eof_ tells which).
    std::optional<std::string> read_line(std::optional<std::chrono::steady_clock::time_point> deadline) {
        for (;;) {
            if (const auto nl = buffer_.find('\n'); nl != std::string::npos) {
                std::string line = buffer_.substr(0, nl);
                buffer_.erase(0, nl + 1);
                return line;
            }
            if (eof_) return std::nullopt;
            int wait_ms = 1000;
            if (deadline) {
                const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - std::chrono::steady_clock::now());
                if (left.count() <= 0) return std::nullopt;
                wait_ms = static_cast<int>(std::min<long long>(left.count(), 1000));
            }
            pollfd pfd{fd_, POLLIN, 0};
            const int ready = ::poll(&pfd, 1, wait_ms);
            if (ready < 0 && errno != EINTR) {
                eof_ = true;
                continue;
            }
            if (ready <= 0) continue;
            char chunk[65536];
            const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) {
                eof_ = true;
                continue;
            }
            buffer_.append(chunk, static_cast<std::size_t>(n));
        }
    }

    std::string python_;
    std::string working_dir_;
    std::vector<std::string> envp_;
    std::optional<RunAs> user_;
    std::string executable_;
    std::uint64_t generation_ = 0;
    std::mutex mutex_;  // guards proc_/fd_ against kill() from another thread
    std::atomic<bool> closed_{false};
    std::unique_ptr<server::detail::Contained> proc_;
    int fd_ = -1;
    bool eof_ = false;
    std::string buffer_;
};

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
    void start() {
        std::lock_guard lifecycle(lifecycle_mutex_);
        if (started_) throw runbox::error(errc::conflict, "the action server was already started");
        started_ = true;
        initialise_executor();
        server_ = std::make_unique<httplib::Server>();
        setup_routes();
        if (options_.port == 0) {
            port_ = server_->bind_to_any_port(options_.host);
        } else {
            port_ = server_->bind_to_port(options_.host, options_.port) ? options_.port : -1;
        }
        if (port_ <= 0) {
            shutdown_executor();
            throw runbox::error(errc::transport, "cannot listen on " + options_.host + ":" + std::to_string(options_.port));
        }
        ConnectionGuard::raise_listen_backlog(port_, ConnectionLimits{}.listen_backlog);
        listener_ = std::thread([this] { server_->listen_after_bind(); });
        // listen_after_bind sets is_running() before it starts accepting; bounded wait.
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!server_->is_running() && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        if (!server_->is_running()) {
            lock_free_stop();
            throw runbox::error(errc::transport, "the action server did not start listening");
        }
    }

    /// The bound port (after start(); a chosen one when the options said 0).
    int port() const noexcept { return port_; }

    /// Base URL for clients on this machine ("0.0.0.0" is reached through 127.0.0.1).
    std::string url() const {
        std::string host = options_.host;
        if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
        if (host == "::") host = "::1";
        if (host.find(':') != std::string::npos) host = "[" + host + "]";
        return "http://" + host + ":" + std::to_string(port_);
    }

    /// Stops listening, kills the shell and everything it started, and reaps them. Idempotent.
    void stop() {
        std::lock_guard lifecycle(lifecycle_mutex_);
        lock_free_stop();
    }

private:
    using json = nlohmann::json;
    using clock = std::chrono::steady_clock;

    // ---- executor -------------------------------------------------------------------------

    void initialise_executor() {
        namespace fs = std::filesystem;
        fs::create_directories(options_.working_dir);
        run_as_ = detail::resolve_run_as(options_.username);
        // File work takes the shell user's identity, or the server does not start (it would
        // otherwise read and write as root).
        std::optional<FileIdentity> identity;
        if (run_as_) identity = FileIdentity{run_as_->name, run_as_->uid, run_as_->gid, run_as_->groups};
        worker_ = std::make_unique<FileWorker>(std::move(identity));
        if (run_as_ && ::chown(options_.working_dir.c_str(), run_as_->uid, static_cast<gid_t>(-1)) != 0) {
            // not fatal: on a read-only mount the shell still starts
        }
        shell_env_ = options_.env;
        if (run_as_) {
            shell_env_["USER"] = run_as_->name;
            shell_env_["LOGNAME"] = run_as_->name;
            shell_env_["HOME"] = run_as_->home;
        }
        start_time_ = clock::now();
        last_execution_ = start_time_.time_since_epoch().count();
        start_bash();
        has_jupyter_ = std::find(options_.plugins.begin(), options_.plugins.end(), "jupyter") != options_.plugins.end();
        if (has_jupyter_) {
            const auto env = runbox::detail::sandbox_environment(options_.environment, shell_env_);
            const auto path = env.find("PATH");
            const std::string path_value = path != env.end() ? path->second : std::string();
            if (const auto python = detail::find_executable("python3", path_value, run_as_)) {
                python_ = std::make_unique<detail::PythonRepl>(*python, options_.working_dir,
                                                                      runbox::detail::environment_strings(env), run_as_);
            }
        }
    }

    void shutdown_executor() noexcept {
        if (python_) python_->kill();
        stop_bash();
        if (python_) python_->reap();
    }

    void lock_free_stop() noexcept {
        if (stopped_ || !started_) return;
        stopped_ = true;
        if (server_) server_->stop();
        // A running action blocks its handler thread; killing the shells ends it, then the
        // listener thread can join its pool. The interpreter's pipe is closed only after that,
        // when no handler can be reading it any more.
        if (python_) python_->kill();
        stop_bash();
        if (listener_.joinable()) listener_.join();
        if (python_) python_->reap();
        server_.reset();
    }

    // ---- HTTP -----------------------------------------------------------------------------

    /// The request carries the session key (or the server has none).
    bool has_key(const httplib::Request& req) const {
        if (options_.session_api_key.empty()) return true;
        if (!req.has_header("X-Session-API-Key")) return false;
        return detail::secrets_equal(req.get_header_value("X-Session-API-Key"), options_.session_api_key);
    }

    bool authorized(const httplib::Request& req) const {
        if (req.path == "/alive" || req.path == "/server_info") return true;
        return has_key(req);
    }

    /// Wraps a route: the auth middleware first, then the handler; anything it throws becomes
    /// the generic 500 (wrapping handlers catch their own errors first).
    httplib::Server::Handler guarded(void (ActionServer::*handler)(const httplib::Request&, httplib::Response&)) {
        return [this, handler](const httplib::Request& req, httplib::Response& res) {
            if (!authorized(req)) return detail::send_detail(res, 403, "Invalid API Key");
            try {
                (this->*handler)(req, res);
            } catch (...) {
                detail::send_detail(res, 500, "An unexpected error occurred. Please try again later.");
            }
        };
    }

    runbox::detail::JsonLimits json_limits() const { return {options_.max_json_depth, options_.max_body_bytes}; }

    /// A JSON request body within the limits; a syntax error throws (the generic 500, as in
    /// the reference), a too-deep or too-large body is answered 422 here (then discarded).
    json parse_body(const httplib::Request& req, httplib::Response& res) const {
        runbox::detail::json_failure failure{};
        json body = runbox::detail::parse_untrusted_json(req.body, json_limits(), &failure);
        if (failure == runbox::detail::json_failure::syntax) throw std::invalid_argument("the body is not JSON");
        if (body.is_discarded()) {
            detail::send_validation_error(res, "json_invalid", "'body', 0",
                                                 "JSON " + runbox::detail::json_failure_text(failure, json_limits()));
        }
        return body;
    }

    /// The declared body size; nullopt when there is none, max() when it cannot be known.
    static std::optional<std::uint64_t> declared_body_size(const httplib::Request& req) {
        if (req.has_header("Transfer-Encoding")) return std::numeric_limits<std::uint64_t>::max();
        if (!req.has_header("Content-Length")) return std::nullopt;
        const std::string text = req.get_header_value("Content-Length");
        std::uint64_t value = 0;
        const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
        if (ec != std::errc() || end != text.data() + text.size()) return std::numeric_limits<std::uint64_t>::max();
        return value;
    }

    /// Refuses a request from its head alone (runs before httplib reads the body): no key and
    /// more than a small body, a body over the limit, or a body httplib would inflate without
    /// bound (Content-Encoding) or read without a length (chunked). The connection is closed
    /// afterwards, since the unread body would be taken for the next request.
    bool refuse_before_body(const httplib::Request& req, httplib::Response& res) const {
        const auto size = declared_body_size(req);
        const auto refuse = [&](int status, const std::string& detail) {
            if (size && *size > 0) {
                detail::send_detail_and_close(res, status, detail);  // the body stays unread
            } else {
                detail::send_detail(res, status, detail);
            }
            return true;
        };
        // Without the key only a small body is read, on the public routes too (/alive and
        // /server_info take none; httplib would read one into memory before answering 404).
        if (!has_key(req) && size && *size > options_.max_unauthenticated_body_bytes) {
            return authorized(req) ? refuse(413, "Request body too large without the session key")
                                   : refuse(403, "Invalid API Key");
        }
        if (!authorized(req)) return false;  // read the small body, then the route's 403 (keep-alive stays in step)
        if (req.has_header("Content-Encoding") && ascii_lower_copy(req.get_header_value("Content-Encoding")) != "identity") {
            return refuse(415, "Compressed request bodies are not accepted");
        }
        if (req.has_header("Transfer-Encoding")) return refuse(411, "A request body needs a Content-Length");
        if (size && *size > options_.max_body_bytes) {
            return refuse(413, "Request body too large: the limit is " + std::to_string(options_.max_body_bytes) + " bytes");
        }
        return false;
    }

    static std::string ascii_lower_copy(std::string text) { return detail::ascii_lower(std::move(text)); }

    void setup_routes() {
        auto& s = *server_;
        const ConnectionLimits limits{options_.max_connections, options_.header_timeout};
        s.new_task_queue = [this, limits] { return new ConnectionGuard(limits, port_); };
        // Small responses must leave at once: with Nagle on, every round trip waited ~40 ms for
        // the client's delayed ACK (measured by bench/run.sh).
        s.set_tcp_nodelay(true);
        s.set_read_timeout(options_.read_timeout);
        s.set_write_timeout(options_.write_timeout);
        s.set_keep_alive_timeout(std::max<time_t>(1, static_cast<time_t>(options_.keep_alive_timeout.count() / 1000)));
        s.set_payload_max_length(options_.max_body_bytes);  // also enforced while reading
        // httplib 0.11 calls the pre-routing handler after the head and before the body is read
        // (Server::routing); "Expect: 100-continue" is answered before that, so it gets the
        // same checks.
        s.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            ConnectionGuard::request_started();
            return refuse_before_body(req, res) ? httplib::Server::HandlerResponse::Handled
                                                : httplib::Server::HandlerResponse::Unhandled;
        });
        s.set_expect_100_continue_handler([this](const httplib::Request& req, httplib::Response& res) {
            ConnectionGuard::request_started();
            return refuse_before_body(req, res) ? res.status : 100;
        });
        s.set_logger([](const httplib::Request&, const httplib::Response&) { ConnectionGuard::response_sent(); });
        // A small body without the key is read first and refused by the route (or the 404
        // path): rejecting it unread would desynchronise a keep-alive connection.
        s.Get("/alive", guarded(&ActionServer::handle_alive));
        s.Get("/server_info", guarded(&ActionServer::handle_server_info));
        s.Post("/execute_action", guarded(&ActionServer::handle_execute_action));
        s.Post("/upload_file", guarded(&ActionServer::handle_upload_file));
        s.Get("/download_files", guarded(&ActionServer::handle_download_files));
        s.Post("/list_files", guarded(&ActionServer::handle_list_files));
        s.Get("/vscode/connection_token", guarded(&ActionServer::handle_vscode_token));
        s.Post("/update_mcp_server", guarded(&ActionServer::handle_update_mcp_server));
        s.set_error_handler(httplib::Server::HandlerWithResponse([this](const httplib::Request& req, httplib::Response& res) {
            // A response already made (a refusal that ends the connection has no body yet).
            if (!res.body.empty() || res.get_header_value("Connection") == "close") {
                return httplib::Server::HandlerResponse::Unhandled;
            }
            if (!authorized(req)) {
                detail::send_detail(res, 403, "Invalid API Key");
            } else if (res.status == 404 && is_known_path(req.path)) {
                detail::send_detail(res, 405, "Method Not Allowed");
            } else if (res.status == 404) {
                detail::send_detail(res, 404, "Not Found");
            } else if (res.status == 400) {
                detail::send_detail(res, 400, "Bad Request");
            } else if (res.status == 413) {
                detail::send_detail(res, 413, "Request body too large");
            } else if (res.status >= 500) {
                detail::send_detail(res, 500, "An unexpected error occurred. Please try again later.");
            } else {
                detail::send_detail(res, res.status, "Error");
            }
            return httplib::Server::HandlerResponse::Handled;
        }));
        s.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
            detail::send_detail(res, 500, "An unexpected error occurred. Please try again later.");
        });
    }

    static bool is_known_path(const std::string& path) {
        static const std::array<std::string_view, 8> paths{"/alive",          "/server_info", "/execute_action",
                                                           "/upload_file",    "/download_files", "/list_files",
                                                           "/vscode/connection_token", "/update_mcp_server"};
        return std::find(paths.begin(), paths.end(), path) != paths.end();
    }

    void handle_alive(const httplib::Request&, httplib::Response& res) {
        detail::send_json(res, 200, json{{"status", initialised_.load() ? "ok" : "not initialized"}});
    }

    void handle_server_info(const httplib::Request&, httplib::Response& res) {
        const auto now = clock::now();
        const std::chrono::duration<double> uptime = now - start_time_;
        const auto last = clock::time_point(clock::duration(last_execution_.load()));
        const std::chrono::duration<double> idle = now - last;
        detail::send_json(res, 200, json{{"uptime", uptime.count()}, {"idle_time", idle.count()}, {"resources", system_stats()}});
    }

    void handle_execute_action(const httplib::Request& req, httplib::Response& res) {
        runbox::detail::json_failure failure{};
        json body = runbox::detail::parse_untrusted_json(req.body, json_limits(), &failure);
        if (failure == runbox::detail::json_failure::too_deep || failure == runbox::detail::json_failure::too_large) {
            return detail::send_validation_error(
                res, "json_invalid", "'body', 0", "JSON " + runbox::detail::json_failure_text(failure, json_limits()));
        }
        if (body.is_discarded()) {
            return detail::send_validation_error(res, "json_invalid", "'body', 0", "JSON decode error");
        }
        if (!body.is_object() || !body.contains("action")) {
            return detail::send_validation_error(res, "missing", "'body', 'action'", "Field required");
        }
        if (!body["action"].is_object()) {
            return detail::send_validation_error(res, "dict_type", "'body', 'action'", "Input should be a valid dictionary");
        }
        try {
            const auto& event = body["action"];
            if (!event.contains("action") && event.contains("observation")) {
                throw detail::HttpError(400, "Invalid action type");
            }
            json event_copy = event;
            // A string insert_line is converted (or answered with the editor's error) first.
            if (auto early = event_copy.value("action", json()) == "edit" ? coerce_insert_line(event_copy) : std::nullopt) {
                last_execution_ = clock::now().time_since_epoch().count();
                res.status = 200;
                res.set_content(to_wire(*early), "application/json");
                return;
            }
            Action action = action_from_json(event_copy);
            last_execution_ = clock::now().time_since_epoch().count();
            Observation observation = [&] {
                std::lock_guard lock(action_mutex_);
                return run_action(action);
            }();
            res.status = 200;
            res.set_content(to_wire(observation), "application/json");
        } catch (...) {
            detail::send_detail(res, 500, "Internal server error: " + detail::exception_text(std::current_exception()));
        }
    }

    void handle_upload_file(const httplib::Request& req, httplib::Response& res) {
        if (!req.is_multipart_form_data() || !req.has_file("file")) {
            return detail::send_validation_error(res, "missing", "'body', 'file'", "Field required");
        }
        bool recursive = false;
        if (req.has_param("recursive")) {
            const auto parsed = detail::parse_bool(req.get_param_value("recursive"));
            if (!parsed) {
                return detail::send_validation_error(res, "bool_parsing", "'query', 'recursive'",
                                                     "Input should be a valid boolean, unable to interpret input");
            }
            recursive = *parsed;
        }
        const std::string destination = req.has_param("destination") ? req.get_param_value("destination") : "/";
        const auto file = req.get_file_value("file");
        try {
            namespace fs = std::filesystem;
            if (!fs::path(destination).is_absolute()) throw detail::HttpError(400, "Destination must be an absolute path");
            // The filename is a name, never a path: refuse anything that would leave `destination`.
            if (file.filename.empty() || file.filename == "." || file.filename == ".." ||
                file.filename.find('/') != std::string::npos) {
                throw detail::HttpError(400, "Invalid filename");
            }
            const bool is_zip = file.filename.size() >= 4 && file.filename.compare(file.filename.size() - 4, 4, ".zip") == 0;
            if (recursive && !is_zip) throw detail::HttpError(400, "Recursive uploads must be zip files");
            // No timeout: the job uses the request's data in place, so the handler waits for it.
            worker_->run([&] { store_upload(fs::path(destination), file.filename, file.content, is_zip); }, std::nullopt);
            detail::send_json(res, 200, json{{"filename", file.filename}, {"destination", destination}, {"recursive", recursive}});
        } catch (...) {
            detail::send_detail(res, 500, detail::exception_text(std::current_exception()));
        }
    }

    /// The file work of an upload, on the file worker (as the shell's user). Nothing is
    /// written through a symbolic link already there (see safe_write.hpp).
    void store_upload(const std::filesystem::path& dest, const std::string& filename, const std::string& content,
                      bool is_zip) const {
        namespace fs = std::filesystem;
        std::error_code ec;
        if (fs::is_symlink(fs::symlink_status(dest, ec))) {
            throw runbox::error(errc::conflict, "refusing to write through the symbolic link " + dest.string());
        }
        std::vector<fs::path> created;  // what this upload creates, for chown_to_run_as
        for (fs::path p = dest; !p.empty() && p != p.root_path() && !fs::exists(fs::symlink_status(p, ec)); p = p.parent_path()) {
            created.push_back(p);
        }
        if (!fs::exists(dest)) fs::create_directories(dest);
        const runbox::detail::UniqueFd dir = runbox::detail::open_directory_nofollow(dest);
        const fs::path target = dest / filename;
        {
            const runbox::detail::UniqueFd out = runbox::detail::create_file_at(dir.get(), filename, target);
            runbox::detail::write_all(out.get(), content, target);
        }
        if (is_zip) {
            try {
                for (const auto& name : zip_entry_names(target)) {
                    for (fs::path p = fs::path(name).relative_path(); !p.empty(); p = p.parent_path()) {
                        created.push_back(dest / p);
                    }
                }
                extract_zip(target, dest);
            } catch (...) {
                ::unlinkat(dir.get(), filename.c_str(), 0);
                throw;
            }
            ::unlinkat(dir.get(), filename.c_str(), 0);
        } else {
            created.push_back(target);
        }
        chown_to_run_as(created);
    }

    void handle_download_files(const httplib::Request& req, httplib::Response& res) {
        if (!req.has_param("path")) {
            return detail::send_validation_error(res, "missing", "'query', 'path'", "Field required");
        }
        const std::string path = req.get_param_value("path");
        try {
            namespace fs = std::filesystem;
            if (!fs::path(path).is_absolute()) throw detail::HttpError(400, "Path must be an absolute path");
            // The archive is built in a temp file bounded by max_download_bytes (libzip writes
            // an archive at close), then streamed; over the bound is a 413 before any byte.
            const fs::path archive = worker_->run(
                [&] {
                    std::error_code ec;
                    if (!fs::exists(path, ec)) throw detail::HttpError(404, "File not found");
                    std::string tmpl = (fs::temp_directory_path() / "runbox-download-XXXXXX.zip").string();
                    const int fd = ::mkstemps(tmpl.data(), 4);
                    if (fd < 0) throw fs::filesystem_error("mkstemps", fs::path(tmpl), std::error_code(errno, std::generic_category()));
                    ::close(fd);
                    try {
                        zip_tree(path, tmpl, {.max_total_bytes = options_.max_download_bytes});
                    } catch (...) {
                        fs::remove(tmpl, ec);
                        throw;
                    }
                    return fs::path(tmpl);
                },
                std::nullopt);
            std::error_code ec;
            const auto size = fs::file_size(archive, ec);
            auto stream = std::make_shared<std::ifstream>(archive, std::ios::binary);
            const auto slash = path.find_last_of('/');
            res.status = 200;
            res.set_header("Content-Disposition", detail::content_disposition(path.substr(slash + 1) + ".zip"));
            res.set_content_provider(
                static_cast<std::size_t>(size), "application/zip",
                [stream](std::size_t offset, std::size_t length, httplib::DataSink& sink) {
                    std::array<char, 65536> chunk{};
                    stream->clear();
                    stream->seekg(static_cast<std::streamoff>(offset));
                    const auto n = std::min(length, chunk.size());
                    stream->read(chunk.data(), static_cast<std::streamsize>(n));
                    const auto got = stream->gcount();
                    if (got <= 0) return false;
                    return sink.write(chunk.data(), static_cast<std::size_t>(got));
                },
                [stream, archive](bool) {
                    stream->close();
                    std::error_code remove_ec;
                    std::filesystem::remove(archive, remove_ec);  // the temp zip goes once sent
                });
        } catch (const runbox::error& e) {
            if (e.code() != errc::quota_exceeded) {
                return detail::send_detail(res, 500, detail::exception_text(std::current_exception()));
            }
            // Not wrapped into a 500: the client must be able to tell "too large" by its status.
            detail::send_detail(res, 413, e.detail());
        } catch (...) {
            detail::send_detail(res, 500, detail::exception_text(std::current_exception()));
        }
    }

    void handle_list_files(const httplib::Request& req, httplib::Response& res) {
        const json body = parse_body(req, res);  // a non-JSON body is the generic 500
        if (body.is_discarded()) return;
        namespace fs = std::filesystem;
        // Like the reference, a body that is not an object or a non-string path is the generic 500.
        if (!body.is_object()) throw std::invalid_argument("list_files body must be a JSON object");
        fs::path path = options_.working_dir;
        if (body.contains("path") && !body["path"].is_null()) {
            const fs::path given = body["path"].get<std::string>();
            path = given.is_absolute() ? given : fs::path(options_.working_dir) / given;
        }
        detail::send_json(res, 200, worker_->run([&] { return detail::list_directory(path); }, std::nullopt));
    }

    void handle_vscode_token(const httplib::Request&, httplib::Response& res) {
        detail::send_json(res, 200, json{{"token", nullptr}});
    }

    void handle_update_mcp_server(const httplib::Request& req, httplib::Response& res) {
        const json body = parse_body(req, res);
        if (body.is_discarded()) return;
        if (!body.is_array()) return detail::send_detail(res, 400, "Request must be a list of MCP tools to sync");
        // runbox-server has no MCP proxy; the reference answers this when its manager is missing.
        detail::send_detail(res, 500, "MCP Proxy Manager is not initialized");
    }

    /// Uploaded files belong to the shell's user, like files it creates itself.
    void chown_to_run_as(const std::vector<std::filesystem::path>& paths) const {
        if (!run_as_) return;
        for (const auto& path : paths) {
            if (::lchown(path.c_str(), run_as_->uid, run_as_->gid) != 0) {
                // best effort: a file the user cannot own stays readable as before
            }
        }
    }

    // File actions run on the file worker. Defined before run_action, whose generic lambda
    // instantiates run_file_action: clang 14 warns (-Wundefined-inline) when the definition comes later.
    FileOpsContext file_context() const {
        FileOpsContext context;
        context.workspace_root = options_.working_dir;
        context.bash_cwd = bash_cwd();
        context.server_cwd = options_.working_dir;
        context.user_id = run_as_ ? static_cast<int>(run_as_->uid) : -1;
        context.max_read_bytes = options_.max_read_bytes;
        return context;
    }
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

    Observation run_action(Action& action) {
        return std::visit(
            [&](auto& a) -> Observation {
                using A = std::decay_t<decltype(a)>;
                if constexpr (std::is_same_v<A, CmdRunAction>) {
                    return run_command(a);
                } else if constexpr (std::is_same_v<A, IPythonRunCellAction>) {
                    return run_ipython(a);
                } else if constexpr (std::is_same_v<A, FileReadAction> || std::is_same_v<A, FileWriteAction> ||
                                     std::is_same_v<A, FileEditAction>) {
                    return run_file_action(a);
                } else if constexpr (std::is_same_v<A, BrowseURLAction> || std::is_same_v<A, BrowseInteractiveAction>) {
                    return ErrorObservation{"Browser functionality is not supported or disabled.", "", {}};
                } else {
                    // The reference dispatches on the action type name; a type without an
                    // executor method fails with Python's AttributeError text.
                    throw std::runtime_error("'ActionExecutor' object has no attribute '" + std::string(A::type) + "'");
                }
            },
            action);
    }

    Observation run_ipython(const IPythonRunCellAction& action) {
        if (!has_jupyter_) throw std::runtime_error("JupyterRequirement not found. Unable to run IPython action.");
        if (!python_) return ErrorObservation{"IPython is not available: no python3 on PATH that the shell user can run.", "", {}};
        const std::string cwd = bash_cwd();
        python_->ensure_started();
        const auto generation = python_->generation();
        if (!action.kernel_init_code.empty() && python_init_generation_ != generation) {
            // Once per interpreter (again after a restart), before the cell; its output is dropped.
            python_init_generation_ = generation;
            python_->run_cell(action.kernel_init_code, std::nullopt, action.timeout);
        }
        // Follow the shell's cwd when it moved (or the interpreter is new); a cell's own
        // os.chdir() otherwise sticks, as in the reference.
        std::optional<std::string> chdir_to;
        if (cwd != python_synced_cwd_ || python_synced_generation_ != generation) chdir_to = cwd;
        auto result = python_->run_cell(action.code, chdir_to, action.timeout);
        if (result.died) {
            return ErrorObservation{"The IPython kernel exited unexpectedly; the next cell starts a new one.", "", {}};
        }
        if (chdir_to) {
            python_synced_cwd_ = *chdir_to;
            python_synced_generation_ = generation;
        }
        std::string content;
        if (result.timed_out) {
            content = "[Execution timed out (" + runbox::detail::python_float(action.timeout.value_or(0)) + " seconds).]";
        } else {
            content = std::move(result.output);
            while (!content.empty() && std::isspace(static_cast<unsigned char>(content.back()))) content.pop_back();
            if (content.empty()) content = "[Code executed successfully with no output]";
        }
        if (action.include_extra) {
            content += "\n[Jupyter current working directory: " + cwd + "]";
            content += "\n[Jupyter Python interpreter: " + python_->executable() + "]";
        }
        IPythonRunCellObservation obs;
        obs.content = std::move(content);
        obs.code = action.code;
        return obs;
    }

    // ---- shell and editor ------------------------------------------------------------------

    void start_bash() {
        BashSessionOptions bash_options;
        bash_options.working_dir = options_.working_dir;
        bash_options.username = run_as_ ? run_as_->name : std::string();
        bash_options.no_change_timeout = options_.no_change_timeout;
        bash_options.env = shell_env_;
        bash_options.environment = options_.environment;
        bash_ = std::make_unique<BashSession>(std::move(bash_options));
        bash_->initialize();
        editor_ = std::make_unique<FileEditor>(options_.working_dir);
        initialised_ = true;
    }

    void stop_bash() noexcept {
        if (bash_) bash_->close();
    }

    std::string bash_cwd() const {
        std::string cwd = bash_ ? bash_->cwd() : std::string();
        return cwd.empty() ? options_.working_dir : cwd;
    }

    Observation run_command(const CmdRunAction& action) {
        if (action.is_static)
            return run_static_command(action, options_.working_dir, run_as_ ? run_as_->name : std::string(),
                                      options_.environment, shell_env_);
        try {
            bash_->initialize();  // restarts the shell if a previous command ended it (`exit`)
        } catch (const std::exception& e) {
            return ErrorObservation{e.what(), "", {}};
        }
        return bash_->execute(action);
    }

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
