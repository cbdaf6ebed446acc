#pragma once

#include "runbox/server/action_server.hpp"

#include "runbox/detail/safe_write.hpp"
#include "runbox/server/connection_guard.hpp"
#include "runbox/server/system_stats.hpp"
#include "runbox/zip.hpp"

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
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <limits>
#include <system_error>

namespace runbox::server::detail {

RUNBOX_DECL void send_json(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace), "application/json");
}

RUNBOX_DECL void send_detail(httplib::Response& res, int status, const std::string& detail) {
    send_json(res, status, json{{"detail", detail}});
}

RUNBOX_DECL std::string os_error_text(const std::filesystem::filesystem_error& e) {
    if (!e.path1().empty()) return os_error_text(e.code().value(), e.path1().string());  // file_editor.hpp's
    return "[Errno " + std::to_string(e.code().value()) + "] " + e.code().message();
}

RUNBOX_DECL std::string ascii_lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

RUNBOX_DECL void send_detail_and_close(httplib::Response& res, int status, const std::string& detail) {
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

RUNBOX_DECL void send_validation_error(httplib::Response& res, std::string_view type, std::string_view loc,
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

RUNBOX_DECL std::string exception_text(std::exception_ptr ep) {
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

RUNBOX_DECL std::optional<bool> parse_bool(std::string value) {
    for (auto& c : value) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (value == "true" || value == "1" || value == "yes" || value == "on" || value == "t" || value == "y") return true;
    if (value == "false" || value == "0" || value == "no" || value == "off" || value == "f" || value == "n") return false;
    return std::nullopt;
}

RUNBOX_DECL bool secrets_equal(std::string_view a, std::string_view b) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> da{}, db{};
    unsigned int la = 0, lb = 0;
    if (EVP_Digest(a.data(), a.size(), da.data(), &la, EVP_sha256(), nullptr) != 1) return false;
    if (EVP_Digest(b.data(), b.size(), db.data(), &lb, EVP_sha256(), nullptr) != 1) return false;
    return la == lb && CRYPTO_memcmp(da.data(), db.data(), la) == 0;
}

RUNBOX_DECL std::vector<std::string> list_directory(const std::filesystem::path& path) {
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

RUNBOX_DECL std::string content_disposition(const std::string& filename) {
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

}  // namespace runbox::server::detail

namespace runbox::server {

RUNBOX_DECL void ActionServer::start() {
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

RUNBOX_DECL std::string ActionServer::url() const {
    std::string host = options_.host;
    if (host.empty() || host == "0.0.0.0") host = "127.0.0.1";
    if (host == "::") host = "::1";
    if (host.find(':') != std::string::npos) host = "[" + host + "]";
    return "http://" + host + ":" + std::to_string(port_);
}

RUNBOX_DECL void ActionServer::initialise_executor() {
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

RUNBOX_DECL void ActionServer::shutdown_executor() noexcept {
    if (python_) python_->kill();
    stop_bash();
    if (python_) python_->reap();
}

RUNBOX_DECL void ActionServer::lock_free_stop() noexcept {
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

RUNBOX_DECL bool ActionServer::has_key(const httplib::Request& req) const {
    if (options_.session_api_key.empty()) return true;
    if (!req.has_header("X-Session-API-Key")) return false;
    return detail::secrets_equal(req.get_header_value("X-Session-API-Key"), options_.session_api_key);
}

RUNBOX_DECL httplib::Server::Handler ActionServer::guarded(void (ActionServer::*handler)(const httplib::Request&, httplib::Response&)) {
    return [this, handler](const httplib::Request& req, httplib::Response& res) {
        if (!authorized(req)) return detail::send_detail(res, 403, "Invalid API Key");
        try {
            (this->*handler)(req, res);
        } catch (...) {
            detail::send_detail(res, 500, "An unexpected error occurred. Please try again later.");
        }
    };
}

RUNBOX_DECL auto ActionServer::parse_body(const httplib::Request& req, httplib::Response& res) const -> json {
    runbox::detail::json_failure failure{};
    json body = runbox::detail::parse_untrusted_json(req.body, json_limits(), &failure);
    if (failure == runbox::detail::json_failure::syntax) throw std::invalid_argument("the body is not JSON");
    if (body.is_discarded()) {
        detail::send_validation_error(res, "json_invalid", "'body', 0",
                                             "JSON " + runbox::detail::json_failure_text(failure, json_limits()));
    }
    return body;
}

RUNBOX_DECL std::optional<std::uint64_t> ActionServer::declared_body_size(const httplib::Request& req) {
    if (req.has_header("Transfer-Encoding")) return std::numeric_limits<std::uint64_t>::max();
    if (!req.has_header("Content-Length")) return std::nullopt;
    const std::string text = req.get_header_value("Content-Length");
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || end != text.data() + text.size()) return std::numeric_limits<std::uint64_t>::max();
    return value;
}

RUNBOX_DECL bool ActionServer::refuse_before_body(const httplib::Request& req, httplib::Response& res) const {
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

RUNBOX_DECL void ActionServer::setup_routes() {
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

RUNBOX_DECL bool ActionServer::is_known_path(const std::string& path) {
    static const std::array<std::string_view, 8> paths{"/alive",          "/server_info", "/execute_action",
                                                       "/upload_file",    "/download_files", "/list_files",
                                                       "/vscode/connection_token", "/update_mcp_server"};
    return std::find(paths.begin(), paths.end(), path) != paths.end();
}

RUNBOX_DECL void ActionServer::handle_server_info(const httplib::Request&, httplib::Response& res) {
    const auto now = clock::now();
    const std::chrono::duration<double> uptime = now - start_time_;
    const auto last = clock::time_point(clock::duration(last_execution_.load()));
    const std::chrono::duration<double> idle = now - last;
    detail::send_json(res, 200, json{{"uptime", uptime.count()}, {"idle_time", idle.count()}, {"resources", system_stats()}});
}

RUNBOX_DECL void ActionServer::handle_execute_action(const httplib::Request& req, httplib::Response& res) {
    runbox::detail::json_failure failure{};
    json body = runbox::detail::parse_untrusted_json(req.body, json_limits(), &failure);
    if (failure == runbox::detail::json_failure::too_deep || failure == runbox::detail::json_failure::too_large ||
        failure == runbox::detail::json_failure::too_many_values) {
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

RUNBOX_DECL void ActionServer::handle_upload_file(const httplib::Request& req, httplib::Response& res) {
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
    } catch (const runbox::error& e) {
        // Over max_extracted_*: a 413 the client can tell from a failure, as for downloads.
        detail::send_detail(res, e.code() == errc::quota_exceeded ? 413 : 500, e.detail());
    } catch (...) {
        detail::send_detail(res, 500, detail::exception_text(std::current_exception()));
    }
}

RUNBOX_DECL void ActionServer::store_upload(const std::filesystem::path& dest, const std::string& filename, const std::string& content,
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
            extract_zip(target, dest,
                        {.max_total_bytes = options_.max_extracted_bytes, .max_entries = options_.max_extracted_entries});
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

RUNBOX_DECL void ActionServer::handle_download_files(const httplib::Request& req, httplib::Response& res) {
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

RUNBOX_DECL void ActionServer::handle_list_files(const httplib::Request& req, httplib::Response& res) {
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

RUNBOX_DECL void ActionServer::handle_update_mcp_server(const httplib::Request& req, httplib::Response& res) {
    const json body = parse_body(req, res);
    if (body.is_discarded()) return;
    if (!body.is_array()) return detail::send_detail(res, 400, "Request must be a list of MCP tools to sync");
    // runbox-server has no MCP proxy; the reference answers this when its manager is missing.
    detail::send_detail(res, 500, "MCP Proxy Manager is not initialized");
}

RUNBOX_DECL void ActionServer::chown_to_run_as(const std::vector<std::filesystem::path>& paths) const {
    if (!run_as_) return;
    for (const auto& path : paths) {
        if (::lchown(path.c_str(), run_as_->uid, run_as_->gid) != 0) {
            // best effort: a file the user cannot own stays readable as before
        }
    }
}

RUNBOX_DECL FileOpsContext ActionServer::file_context() const {
    FileOpsContext context;
    context.workspace_root = options_.working_dir;
    context.bash_cwd = bash_cwd();
    context.server_cwd = options_.working_dir;
    context.user_id = run_as_ ? static_cast<int>(run_as_->uid) : -1;
    context.max_read_bytes = options_.max_read_bytes;
    return context;
}

RUNBOX_DECL Observation ActionServer::run_action(Action& action) {
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

RUNBOX_DECL Observation ActionServer::run_ipython(const IPythonRunCellAction& action) {
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

RUNBOX_DECL void ActionServer::start_bash() {
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

RUNBOX_DECL Observation ActionServer::run_command(const CmdRunAction& action) {
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

RUNBOX_DECL void ActionServer::handle_alive(const httplib::Request&, httplib::Response& res) {
    detail::send_json(res, 200, json{{"status", initialised_.load() ? "ok" : "not initialized"}});
}

RUNBOX_DECL void ActionServer::handle_vscode_token(const httplib::Request&, httplib::Response& res) {
    detail::send_json(res, 200, json{{"token", nullptr}});
}

}  // namespace runbox::server
