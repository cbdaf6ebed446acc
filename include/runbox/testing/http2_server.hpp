// runbox/testing/http2_server.hpp - an HTTP/2 (h2c, prior knowledge) loopback server for tests.
//
// Built on libnghttp2's server session (link runbox::http2_server). One thread
// accepts, one thread per connection runs the nghttp2 session over a loopback
// socket, and each request runs its handler on a thread of its own, so a
// handler can stream a body over time (a server-streaming RPC) while the
// connection keeps serving other streams. Handlers answer through Http2Stream:
// a head, body bytes, then trailers, or a trailers-only answer (gRPC errors).
// Bounded: request header and body caps (the stream is reset past them), an
// idle timeout per connection, and stop() ends every handler's stream and
// joins every thread. HTTP/1.1 is not spoken here.
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nghttp2/nghttp2.h>

#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox::testing {

/// Limits and address of an Http2Server.
struct Http2ServerOptions {
    std::string host = "127.0.0.1";                 ///< "127.0.0.1" or "::1"
    int port = 0;                                    ///< 0 = any free port
    std::size_t max_header_bytes = 64 * 1024;        ///< names + values of one request's headers
    std::size_t max_body_bytes = 16 * 1024 * 1024;   ///< one request's body
    std::chrono::milliseconds idle_timeout{30000};   ///< a connection with no traffic and no open stream closes
};

/// One request as the handler sees it.
struct Http2Request {
    std::string method{};  ///< :method
    std::string path{};       ///< :path, query included
    std::string authority{};  ///< :authority
    Headers headers{};        ///< regular fields (lower-case names), pseudo-headers excluded
    std::string body{};  ///< the whole request body (at most max_body_bytes)
};

namespace detail {
struct Connection;

/// The state one stream shares between its handler thread and its connection thread.
struct StreamState {
    std::int32_t id = 0;
    Http2Request request{};
    std::size_t header_bytes = 0;
    bool started = false;  // the handler thread exists
    // Set by the handler (under Connection::mutex), consumed by the connection thread.
    bool head_requested = false;
    bool head_submitted = false;
    bool trailers_only = false;
    int status = 0;
    Headers head{};
    std::string pending{};
    bool finished = false;
    Headers trailers{};
    bool deferred = false;  // nghttp2 waits for data: resume it when some arrives
    bool closed = false;    // the stream is gone (reset, connection closed, server stopping)
};
}  // namespace detail

/// The handler's side of one stream. Every call is safe while the connection
/// runs; after the stream closed, calls are ignored and cancelled() is true.
class Http2Stream {
public:
    /// Sends status + headers; body bytes and trailers follow.
    void respond(int status, Headers headers = {}) {
        auto lock = guard();
        if (state_->head_requested || state_->closed) return;
        state_->head_requested = true;
        state_->status = status;
        state_->head = std::move(headers);
        wake();
    }
    /// Appends body bytes (sends the head first, status 200, if respond() was not called).
    void write(std::string_view bytes) {
        auto lock = guard();
        if (state_->closed || state_->finished || state_->trailers_only) return;
        if (!state_->head_requested) {
            state_->head_requested = true;
            state_->status = 200;
        }
        state_->pending.append(bytes);
        wake();
    }
    /// Ends the body, then sends `trailers` (none = the stream ends with the last DATA frame).
    void finish(Headers trailers = {}) {
        auto lock = guard();
        if (state_->closed || state_->finished || state_->trailers_only) return;
        if (!state_->head_requested) {
            state_->head_requested = true;
            state_->status = 200;
        }
        state_->finished = true;
        state_->trailers = std::move(trailers);
        wake();
    }
    /// One HEADERS frame that ends the stream (gRPC's trailers-only error answer).
    void trailers_only(int status, Headers headers) {
        auto lock = guard();
        if (state_->closed || state_->head_requested) return;
        state_->head_requested = true;
        state_->trailers_only = true;
        state_->finished = true;
        state_->status = status;
        state_->head = std::move(headers);
        wake();
    }
    /// The client reset the stream, the connection closed, or the server is stopping.
    bool cancelled() const {
        auto lock = guard();
        return state_->closed;
    }
    /// Whether a head was sent (or requested).
    bool responded() const {
        auto lock = guard();
        return state_->head_requested;
    }

    /// Made by Http2Server for each request; `mutex` and `wake_fd` are the connection's and must outlive the
    /// stream.
    Http2Stream(std::shared_ptr<detail::StreamState> state, std::mutex& mutex, int wake_fd)
        : state_(std::move(state)), mutex_(&mutex), wake_fd_(wake_fd) {}

private:
    std::unique_lock<std::mutex> guard() const { return std::unique_lock(*mutex_); }
    void wake() const {
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(wake_fd_, &one, sizeof one);
    }
    std::shared_ptr<detail::StreamState> state_;
    std::mutex* mutex_;
    int wake_fd_;
};

/// An h2c server on a loopback port. The handler runs once per request on a
/// thread of its own; when it returns without finishing, the stream is
/// finished for it (a 500 if it never responded or threw).
class Http2Server {
public:
    using Handler = std::function<void(const Http2Request&, Http2Stream&)>;  ///< answers one request through the stream; runs on a thread of its own

    /// Binds and listens at once (options' host, port 0 = any free one) and accepts on a background thread;
    /// errc::transport if it cannot listen.
    explicit Http2Server(Handler handler, Http2ServerOptions options = {})
        : handler_(std::move(handler)), options_(std::move(options)) {
        const bool v6 = options_.host.find(':') != std::string::npos;
        listener_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (listener_ < 0) throw error(errc::transport, "http2 server: socket failed", "testing");
        const int yes = 1;
        ::setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
        int rc = -1;
        if (v6) {
            sockaddr_in6 address{};
            address.sin6_family = AF_INET6;
            address.sin6_port = htons(static_cast<std::uint16_t>(options_.port));
            ::inet_pton(AF_INET6, options_.host.c_str(), &address.sin6_addr);
            rc = ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        } else {
            sockaddr_in address{};
            address.sin_family = AF_INET;
            address.sin_port = htons(static_cast<std::uint16_t>(options_.port));
            ::inet_pton(AF_INET, options_.host.c_str(), &address.sin_addr);
            rc = ::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address);
        }
        if (rc != 0 || ::listen(listener_, 64) != 0) {
            ::close(listener_);
            throw error(errc::transport, "http2 server: cannot listen on " + options_.host, "testing");
        }
        sockaddr_storage bound{};
        socklen_t length = sizeof bound;
        ::getsockname(listener_, reinterpret_cast<sockaddr*>(&bound), &length);
        port_ = ntohs(v6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                         : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
        stop_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        accept_thread_ = std::thread([this] { accept_loop(); });
    }

    Http2Server(const Http2Server&) = delete;
    Http2Server& operator=(const Http2Server&) = delete;
    ~Http2Server() { stop(); }

    /// Closes the listener and every connection, cancels every stream, joins every thread.
    void stop() {
        if (stopping_.exchange(true)) return;
        const std::uint64_t one = 1;
        [[maybe_unused]] const auto n = ::write(stop_fd_, &one, sizeof one);
        if (accept_thread_.joinable()) accept_thread_.join();
        std::list<std::unique_ptr<Conn>> connections;
        {
            std::lock_guard lock(mutex_);
            connections.swap(connections_);
        }
        for (auto& connection : connections) {
            const std::uint64_t wake = 1;
            [[maybe_unused]] const auto w = ::write(connection->wake_fd, &wake, sizeof wake);
        }
        for (auto& connection : connections) {
            if (connection->thread.joinable()) connection->thread.join();
        }
        connections.clear();
        ::close(listener_);
        ::close(stop_fd_);
    }

    int port() const noexcept { return port_; }  ///< the bound port
    /// http://host:port + path (brackets for IPv6).
    std::string url(std::string_view path = "/") const {
        const bool v6 = options_.host.find(':') != std::string::npos;
        return "http://" + (v6 ? "[" + options_.host + "]" : options_.host) + ":" + std::to_string(port_) +
               std::string(path);
    }
    /// TCP connections accepted so far.
    std::size_t connections_accepted() const noexcept { return accepted_.load(); }
    /// Requests whose handler ran so far.
    std::size_t requests_handled() const noexcept { return requests_.load(); }

private:
    struct Conn {
        int fd = -1;
        int wake_fd = -1;
        std::thread thread;
        std::mutex mutex;  // guards the StreamStates' handler-side fields
        nghttp2_session* session = nullptr;
        std::map<std::int32_t, std::shared_ptr<detail::StreamState>> streams;
        std::vector<std::thread> handlers;
        Http2Server* server = nullptr;
        ~Conn() {
            if (fd >= 0) ::close(fd);
            if (wake_fd >= 0) ::close(wake_fd);
        }
    };

    void accept_loop() {
        for (;;) {
            pollfd fds[2] = {{listener_, POLLIN, 0}, {stop_fd_, POLLIN, 0}};
            if (::poll(fds, 2, -1) < 0) continue;
            if (fds[1].revents != 0 || stopping_) return;
            if ((fds[0].revents & POLLIN) == 0) continue;
            const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            ++accepted_;
            const int yes = 1;
            ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
            auto connection = std::make_unique<Conn>();
            connection->fd = fd;
            connection->wake_fd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
            connection->server = this;
            Conn* raw = connection.get();
            std::lock_guard lock(mutex_);
            if (stopping_) return;
            connections_.push_back(std::move(connection));
            raw->thread = std::thread([this, raw] { serve(*raw); });
        }
    }

    // ---- nghttp2 callbacks (connection thread) ----

    static Conn& conn_of(void* user) { return *static_cast<Conn*>(user); }

    static int on_begin_headers(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) return 0;
        auto state = std::make_shared<detail::StreamState>();
        state->id = frame->hd.stream_id;
        conn_of(user).streams[state->id] = std::move(state);
        return 0;
    }

    static int on_header(nghttp2_session* session, const nghttp2_frame* frame, const std::uint8_t* name,
                         std::size_t name_length, const std::uint8_t* value, std::size_t value_length, std::uint8_t,
                         void* user) {
        auto& conn = conn_of(user);
        auto it = conn.streams.find(frame->hd.stream_id);
        if (it == conn.streams.end()) return 0;
        auto& state = *it->second;
        state.header_bytes += name_length + value_length;
        if (state.header_bytes > conn.server->options_.max_header_bytes) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, state.id, NGHTTP2_ENHANCE_YOUR_CALM);
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        const std::string_view key(reinterpret_cast<const char*>(name), name_length);
        std::string text(reinterpret_cast<const char*>(value), value_length);
        if (key == ":method") state.request.method = std::move(text);
        else if (key == ":path") state.request.path = std::move(text);
        else if (key == ":authority") state.request.authority = std::move(text);
        else if (!key.starts_with(":")) state.request.headers.add(std::string(key), std::move(text));
        return 0;
    }

    static int on_data_chunk(nghttp2_session* session, std::uint8_t, std::int32_t stream_id, const std::uint8_t* data,
                             std::size_t length, void* user) {
        auto& conn = conn_of(user);
        auto it = conn.streams.find(stream_id);
        if (it == conn.streams.end()) return 0;
        auto& body = it->second->request.body;
        if (length > conn.server->options_.max_body_bytes - std::min(body.size(), conn.server->options_.max_body_bytes)) {
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_ENHANCE_YOUR_CALM);
            return 0;
        }
        body.append(reinterpret_cast<const char*>(data), length);
        return 0;
    }

    static int on_frame_recv(nghttp2_session*, const nghttp2_frame* frame, void* user) {
        if ((frame->hd.type != NGHTTP2_HEADERS && frame->hd.type != NGHTTP2_DATA) ||
            (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) == 0) {
            return 0;
        }
        auto& conn = conn_of(user);
        auto it = conn.streams.find(frame->hd.stream_id);
        if (it == conn.streams.end() || it->second->started) return 0;
        it->second->started = true;
        conn.server->start_handler(conn, it->second);
        return 0;
    }

    static int on_stream_close(nghttp2_session*, std::int32_t stream_id, std::uint32_t, void* user) {
        auto& conn = conn_of(user);
        auto it = conn.streams.find(stream_id);
        if (it == conn.streams.end()) return 0;
        {
            std::lock_guard lock(conn.mutex);
            it->second->closed = true;
        }
        conn.streams.erase(it);
        return 0;
    }

    static ssize_t read_body(nghttp2_session* session, std::int32_t, std::uint8_t* buffer, std::size_t length,
                             std::uint32_t* flags, nghttp2_data_source* source, void* user) {
        auto& conn = conn_of(user);
        auto& state = *static_cast<detail::StreamState*>(source->ptr);
        std::lock_guard lock(conn.mutex);
        if (!state.pending.empty()) {
            const std::size_t n = std::min(length, state.pending.size());
            std::memcpy(buffer, state.pending.data(), n);
            state.pending.erase(0, n);
            return static_cast<ssize_t>(n);
        }
        if (!state.finished) {
            state.deferred = true;
            return NGHTTP2_ERR_DEFERRED;
        }
        *flags |= NGHTTP2_DATA_FLAG_EOF;
        if (!state.trailers.empty()) {
            *flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            auto fields = name_values(state.trailers);
            nghttp2_submit_trailer(session, state.id, fields.nva.data(), fields.nva.size());
        }
        return 0;
    }

    struct NameValues {
        std::vector<std::string> storage;
        std::vector<nghttp2_nv> nva;
    };

    /// nghttp2 copies the fields on submit (NGHTTP2_NV_FLAG_NONE), so the storage may go right after.
    static NameValues name_values(const Headers& headers, int status = 0) {
        NameValues out;
        out.storage.reserve(2 * headers.size() + 2);
        if (status != 0) {
            out.storage.emplace_back(":status");
            out.storage.push_back(std::to_string(status));
        }
        for (const auto& [name, value] : headers) {
            std::string lower;
            for (char c : name) lower.push_back(runbox::detail::ascii_lower(c));
            out.storage.push_back(std::move(lower));
            out.storage.push_back(value);
        }
        for (std::size_t i = 0; i + 1 < out.storage.size(); i += 2) {
            auto& n = out.storage[i];
            auto& v = out.storage[i + 1];
            out.nva.push_back(nghttp2_nv{reinterpret_cast<std::uint8_t*>(n.data()),
                                         reinterpret_cast<std::uint8_t*>(v.data()), n.size(), v.size(),
                                         NGHTTP2_NV_FLAG_NONE});
        }
        return out;
    }

    void start_handler(Conn& conn, std::shared_ptr<detail::StreamState> state) {
        ++requests_;
        conn.handlers.emplace_back([this, &conn, state] {
            Http2Stream stream(state, conn.mutex, conn.wake_fd);
            try {
                handler_(state->request, stream);
            } catch (...) {
                if (!stream.responded()) stream.respond(500);
            }
            if (!stream.responded()) stream.respond(500);
            stream.finish();
        });
    }

    /// Submits what the handlers asked for since the last wake-up (connection thread).
    void flush_handlers(Conn& conn) {
        std::vector<std::shared_ptr<detail::StreamState>> resume;
        std::vector<std::shared_ptr<detail::StreamState>> submit;
        {
            std::lock_guard lock(conn.mutex);
            for (auto& [id, state] : conn.streams) {
                if (state->head_requested && !state->head_submitted) {
                    state->head_submitted = true;
                    submit.push_back(state);
                } else if (state->deferred && (!state->pending.empty() || state->finished)) {
                    state->deferred = false;
                    resume.push_back(state);
                }
            }
        }
        for (auto& state : submit) {
            Headers head;
            bool trailers_only = false;
            int status = 0;
            {
                std::lock_guard lock(conn.mutex);
                head = state->head;
                trailers_only = state->trailers_only;
                status = state->status;
            }
            auto fields = name_values(head, status);
            if (trailers_only) {
                nghttp2_submit_response(conn.session, state->id, fields.nva.data(), fields.nva.size(), nullptr);
            } else {
                nghttp2_data_provider provider{};
                provider.source.ptr = state.get();  // alive while the stream is in conn.streams
                provider.read_callback = &Http2Server::read_body;
                nghttp2_submit_response(conn.session, state->id, fields.nva.data(), fields.nva.size(), &provider);
            }
        }
        for (auto& state : resume) nghttp2_session_resume_data(conn.session, state->id);
    }

    static bool send_all(int fd, const std::uint8_t* data, std::size_t size) {
        while (size > 0) {
            pollfd out{fd, POLLOUT, 0};
            if (::poll(&out, 1, 10000) <= 0) return false;  // a client that reads nothing for 10 s is gone
            const ssize_t n = ::send(fd, data, size, MSG_NOSIGNAL);
            if (n <= 0) return false;
            data += n;
            size -= static_cast<std::size_t>(n);
        }
        return true;
    }

    void serve(Conn& conn) {
        nghttp2_session_callbacks* callbacks = nullptr;
        nghttp2_session_callbacks_new(&callbacks);
        nghttp2_session_callbacks_set_on_begin_headers_callback(callbacks, &Http2Server::on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(callbacks, &Http2Server::on_header);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(callbacks, &Http2Server::on_data_chunk);
        nghttp2_session_callbacks_set_on_frame_recv_callback(callbacks, &Http2Server::on_frame_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, &Http2Server::on_stream_close);
        nghttp2_session_server_new(&conn.session, callbacks, &conn);
        nghttp2_session_callbacks_del(callbacks);
        const nghttp2_settings_entry settings[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 100},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, static_cast<std::uint32_t>(options_.max_header_bytes)},
        };
        nghttp2_submit_settings(conn.session, NGHTTP2_FLAG_NONE, settings, 2);

        ::fcntl(conn.fd, F_SETFL, ::fcntl(conn.fd, F_GETFL) | O_NONBLOCK);
        std::vector<std::uint8_t> buffer(16384);
        auto last_traffic = std::chrono::steady_clock::now();
        for (;;) {
            flush_handlers(conn);
            bool ok = true;
            for (;;) {
                const std::uint8_t* out = nullptr;
                const ssize_t n = nghttp2_session_mem_send(conn.session, &out);
                if (n < 0) ok = false;
                if (n <= 0) break;
                if (!send_all(conn.fd, out, static_cast<std::size_t>(n))) {
                    ok = false;
                    break;
                }
            }
            if (!ok || stopping_) break;
            if (!nghttp2_session_want_read(conn.session) && !nghttp2_session_want_write(conn.session)) break;

            pollfd fds[2] = {{conn.fd, POLLIN, 0}, {conn.wake_fd, POLLIN, 0}};
            const auto idle_left = options_.idle_timeout - (std::chrono::steady_clock::now() - last_traffic);
            const int wait = static_cast<int>(std::clamp<std::int64_t>(
                std::chrono::ceil<std::chrono::milliseconds>(idle_left).count(), 0, 1000));
            if (::poll(fds, 2, wait) < 0) continue;
            if (fds[1].revents != 0) {
                std::uint64_t drained = 0;
                [[maybe_unused]] const auto d = ::read(conn.wake_fd, &drained, sizeof drained);
            }
            if (fds[0].revents != 0) {
                const ssize_t got = ::recv(conn.fd, buffer.data(), buffer.size(), 0);
                if (got == 0) break;  // the client closed
                if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) break;
                if (got > 0) {
                    last_traffic = std::chrono::steady_clock::now();
                    if (nghttp2_session_mem_recv(conn.session, buffer.data(), static_cast<std::size_t>(got)) < 0) break;
                }
            }
            if (conn.streams.empty() && std::chrono::steady_clock::now() - last_traffic >= options_.idle_timeout) break;
        }
        // Tear down: every stream is cancelled so streaming handlers return, then they are joined.
        {
            std::lock_guard lock(conn.mutex);
            for (auto& [id, state] : conn.streams) state->closed = true;
        }
        ::shutdown(conn.fd, SHUT_RDWR);
        for (auto& handler : conn.handlers) handler.join();
        conn.streams.clear();
        nghttp2_session_del(conn.session);
        conn.session = nullptr;
    }

    Handler handler_;
    Http2ServerOptions options_;
    int listener_ = -1;
    int stop_fd_ = -1;
    int port_ = 0;
    std::atomic<bool> stopping_{false};
    std::atomic<std::size_t> accepted_{0};
    std::atomic<std::size_t> requests_{0};
    std::mutex mutex_;
    std::list<std::unique_ptr<Conn>> connections_;
    std::thread accept_thread_;
};

}  // namespace runbox::testing
