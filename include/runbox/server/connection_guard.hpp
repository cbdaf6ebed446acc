/// \file
/// connection limits for the action server's httplib::Server.
///
/// cpp-httplib 0.11 bounds each recv() by its read timeout but not a whole request head: a
/// client sending one header byte every few seconds holds a worker thread for hours, and 32 such
/// clients starve /alive. ConnectionGuard is the server's task queue (Server::new_task_queue,
/// public API) and adds, over what httplib exposes:
/// - a worker per connection, up to `max_connections`; a connection past the bound is closed
///   at once (its task runs on the accepting thread and sees end-of-file);
/// - a head deadline: from accept (or from the previous response) to the end of the next
///   request's headers at most `header_timeout`; a watchdog shuts the socket down when it
///   passes, which wakes httplib's blocked read with end-of-file, and httplib closes it.
/// httplib does not hand the accepted socket to the queue, so enqueue() (called on the
/// accepting thread right after accept) finds it: the one socket of this process bound to the
/// server's port, connected, and not yet known (sockets are told apart by inode). The request
/// phase comes from the pre-routing handler and the logger, which httplib calls on the
/// connection's worker thread (request_started() / response_sent()).
#pragma once

#include "runbox/detail/linkage.hpp"

#include <httplib.h>

#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace runbox::server {

/// The bounds a ConnectionGuard enforces (from ActionServerOptions).
struct ConnectionLimits {
    std::size_t max_connections = 128;                   ///< connections served at once
    std::chrono::milliseconds header_timeout{20000};    ///< idle + request head, per request
    int listen_backlog = 128;                            ///< connections waiting for accept()
};

/// cpp-httplib's task queue for the action server: at most max_connections served at once
/// (more are closed at once), and a connection whose request head does not arrive within
/// header_timeout is shut down. Thread-safe, as httplib requires.
class ConnectionGuard final : public httplib::TaskQueue {
public:
    /// Starts the watchdog thread. `port` is the listening port: the guard finds the accepted
    /// sockets by it.
    ConnectionGuard(ConnectionLimits limits, int port) : limits_(limits), port_(port) {
        watchdog_ = std::thread([this] { watch(); });
    }
    ConnectionGuard(const ConnectionGuard&) = delete;
    ConnectionGuard& operator=(const ConnectionGuard&) = delete;
    ~ConnectionGuard() override { shutdown(); }

    // The overrides are declared RUNBOX_DECL (inline when header-only): a virtual function
    // declared plain here and defined inline later makes GCC emit the vtable, and so the whole
    // guard, in every unit that includes this header.

    /// Serves a new connection on a worker thread, or closes it when the bound is reached.
    RUNBOX_DECL void enqueue(std::function<void()> fn) override;

    /// Lets the queued connections finish and joins every thread. Idempotent.
    RUNBOX_DECL void shutdown() override;

    /// Debian's libcpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed
    /// when the library was built): 50 clients connecting at once overflowed it, and the
    /// dropped handshakes surfaced as failed first requests. listen() again on the listening
    /// socket (ours: `port`, accepting) sets a new backlog. Called right after bind, on the
    /// thread that bound (not from the task queue, which httplib builds on the listener thread
    /// after is_running() is already true: a caller could connect before the raise).
    static void raise_listen_backlog(int port, int backlog);

    /// From the pre-routing handler: the head of a request has been read.
    static void request_started() noexcept {
        if (current_ != nullptr) current_->waiting = false;
    }
    /// From the logger: a response went out; the next head has `header_timeout` again.
    static void response_sent() noexcept;

    /// Connections closed by the bound or the deadline (for tests and diagnostics).
    ///@{
    std::size_t refused() const noexcept { return refused_.load(); }
    std::size_t timed_out() const noexcept { return timed_out_.load(); }
    ///@}

private:
    struct Conn {
        int fd = -1;
        ino_t inode = 0;
        std::atomic<bool> waiting{true};
        std::atomic<std::chrono::steady_clock::rep> since{0};
    };
    struct Job {
        std::function<void()> fn;
        std::shared_ptr<Conn> conn;
    };

    static inline thread_local Conn* current_ = nullptr;

    void run_job(Job job);

    void work();

    static int local_port(int fd);

    /// A connected socket on our port not tracked yet (the listener has no peer).
    bool is_new_server_socket(int fd, ino_t& inode) const;

    std::shared_ptr<Conn> track(int fd, ino_t inode);

    /// The socket accept() just returned: connected, on our port, not tracked yet.
    std::shared_ptr<Conn> identify_new_socket();

    void watch();

    ConnectionLimits limits_;
    int port_;
    std::mutex mutex_;
    std::condition_variable cond_;
    std::condition_variable watch_cond_;
    std::deque<Job> jobs_;
    std::vector<std::thread> threads_;
    std::map<ino_t, std::shared_ptr<Conn>> conns_;
    std::size_t idle_ = 0;
    std::size_t busy_ = 0;
    int highest_fd_ = -1;  // of a connection identified so far
    bool shut_down_ = false;
    std::atomic<std::size_t> refused_{0};
    std::atomic<std::size_t> timed_out_{0};
    std::thread watchdog_;
};

}  // namespace runbox::server

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/connection_guard.ipp"
#endif
