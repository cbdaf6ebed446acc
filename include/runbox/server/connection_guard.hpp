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

    /// Serves a new connection on a worker thread, or closes it when the bound is reached.
    void enqueue(std::function<void()> fn) override {
        auto conn = identify_new_socket();
        std::unique_lock lock(mutex_);
        if (busy_ + jobs_.size() >= limits_.max_connections) {
            lock.unlock();
            // Over the bound: end the connection now; httplib's task then reads EOF and closes.
            if (conn) ::shutdown(conn->fd, SHUT_RDWR);
            ++refused_;
            run_job(Job{std::move(fn), conn});
            return;
        }
        jobs_.push_back(Job{std::move(fn), conn});
        if (idle_ == 0 && threads_.size() < limits_.max_connections) {
            threads_.emplace_back([this] { work(); });
        }
        lock.unlock();
        cond_.notify_one();
    }

    /// Lets the queued connections finish and joins every thread. Idempotent.
    void shutdown() override {
        {
            std::lock_guard lock(mutex_);
            if (shut_down_) return;
            shut_down_ = true;
        }
        cond_.notify_all();
        watch_cond_.notify_all();
        for (auto& t : threads_) {
            if (t.joinable()) t.join();
        }
        if (watchdog_.joinable()) watchdog_.join();
    }

    /// Debian's libcpp-httplib listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, fixed
    /// when the library was built): 50 clients connecting at once overflowed it, and the
    /// dropped handshakes surfaced as failed first requests. listen() again on the listening
    /// socket (ours: `port`, accepting) sets a new backlog. Called right after bind, on the
    /// thread that bound (not from the task queue, which httplib builds on the listener thread
    /// after is_running() is already true: a caller could connect before the raise).
    static void raise_listen_backlog(int port, int backlog) {
        for (int fd = 0; fd < 1024; ++fd) {
            struct stat st {};
            if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
            int accepting = 0;
            socklen_t size = sizeof accepting;
            if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) != 0 || accepting == 0) continue;
            if (local_port(fd) == port) ::listen(fd, backlog);
        }
    }

    /// From the pre-routing handler: the head of a request has been read.
    static void request_started() noexcept {
        if (current_ != nullptr) current_->waiting = false;
    }
    /// From the logger: a response went out; the next head has `header_timeout` again.
    static void response_sent() noexcept {
        if (current_ != nullptr) {
            current_->since = std::chrono::steady_clock::now().time_since_epoch().count();
            current_->waiting = true;
        }
    }

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

    void run_job(Job job) {
        current_ = job.conn.get();
        try {
            job.fn();
        } catch (...) {
            // httplib's task does not throw; nothing may escape a worker either way
        }
        current_ = nullptr;
        if (job.conn) {
            std::lock_guard lock(mutex_);
            conns_.erase(job.conn->inode);
        }
    }

    void work() {
        std::unique_lock lock(mutex_);
        for (;;) {
            ++idle_;
            cond_.wait(lock, [this] { return shut_down_ || !jobs_.empty(); });
            --idle_;
            if (jobs_.empty()) return;  // shut down and drained
            Job job = std::move(jobs_.front());
            jobs_.pop_front();
            ++busy_;
            lock.unlock();
            run_job(std::move(job));
            lock.lock();
            --busy_;
        }
    }

    static int local_port(int fd) {
        sockaddr_storage local{};
        socklen_t len = sizeof local;
        if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return -1;
        if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
        if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
        return -1;
    }

    /// A connected socket on our port not tracked yet (the listener has no peer).
    bool is_new_server_socket(int fd, ino_t& inode) const {
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || conns_.count(st.st_ino) != 0) return false;
        if (local_port(fd) != port_) return false;
        sockaddr_storage peer{};
        socklen_t len = sizeof peer;
        if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;
        inode = st.st_ino;
        return true;
    }

    std::shared_ptr<Conn> track(int fd, ino_t inode) {
        auto conn = std::make_shared<Conn>();
        conn->fd = fd;
        conn->inode = inode;
        conn->since = std::chrono::steady_clock::now().time_since_epoch().count();
        conns_[inode] = conn;
        highest_fd_ = std::max(highest_fd_, fd);
        return conn;
    }

    /// The socket accept() just returned: connected, on our port, not tracked yet.
    std::shared_ptr<Conn> identify_new_socket() {
        std::lock_guard lock(mutex_);
        // accept() returns the lowest free descriptor, so an ascending walk meets it right after
        // the ones open before it, one fstat() each (under a connection flood, listing
        // /proc/self/fd per accept was a quarter of the server's CPU).
        const int bound = std::max(highest_fd_ + 64, 256);
        ino_t inode = 0;
        for (int fd = 0; fd < bound; ++fd) {
            if (is_new_server_socket(fd, inode)) return track(fd, inode);
        }
        // Not below the bound (a burst of other descriptors): every open descriptor.
        std::vector<int> fds;
        if (DIR* dir = ::opendir("/proc/self/fd")) {
            while (const dirent* entry = ::readdir(dir)) {
                if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
                const int fd = std::atoi(entry->d_name);
                if (fd >= bound) fds.push_back(fd);
            }
            ::closedir(dir);
        }
        std::sort(fds.begin(), fds.end());
        for (const int fd : fds) {
            if (is_new_server_socket(fd, inode)) return track(fd, inode);
        }
        return nullptr;
    }

    void watch() {
        const auto tick = std::clamp(limits_.header_timeout / 4, std::chrono::milliseconds(20), std::chrono::milliseconds(250));
        std::unique_lock lock(mutex_);
        while (!shut_down_) {
            watch_cond_.wait_for(lock, tick);
            const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
            const auto limit = std::chrono::duration_cast<std::chrono::steady_clock::duration>(limits_.header_timeout).count();
            for (auto& [inode, conn] : conns_) {
                if (!conn->waiting || now - conn->since.load() < limit) continue;
                struct stat st {};
                // The fd is still this connection's (httplib closes it only after its task
                // ends, and the task is untracked after that); the inode check is a second guard.
                if (::fstat(conn->fd, &st) == 0 && st.st_ino == inode) {
                    ::shutdown(conn->fd, SHUT_RDWR);
                    ++timed_out_;
                }
                conn->since = now;  // once per deadline
            }
        }
    }

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
