#pragma once

#include "runbox/server/connection_guard.hpp"

namespace runbox::server {

RUNBOX_DECL void ConnectionGuard::enqueue(std::function<void()> fn) {
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

RUNBOX_DECL void ConnectionGuard::shutdown() {
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

RUNBOX_DECL void ConnectionGuard::raise_listen_backlog(int port, int backlog) {
    for (int fd = 0; fd < 1024; ++fd) {
        struct stat st {};
        if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
        int accepting = 0;
        socklen_t size = sizeof accepting;
        if (::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &accepting, &size) != 0 || accepting == 0) continue;
        if (local_port(fd) == port) ::listen(fd, backlog);
    }
}

RUNBOX_DECL void ConnectionGuard::response_sent() noexcept {
    if (current_ != nullptr) {
        current_->since = std::chrono::steady_clock::now().time_since_epoch().count();
        current_->waiting = true;
    }
}

RUNBOX_DECL void ConnectionGuard::run_job(Job job) {
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

RUNBOX_DECL void ConnectionGuard::work() {
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

RUNBOX_DECL int ConnectionGuard::local_port(int fd) {
    sockaddr_storage local{};
    socklen_t len = sizeof local;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return -1;
    if (local.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&local)->sin_port);
    if (local.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&local)->sin6_port);
    return -1;
}

RUNBOX_DECL bool ConnectionGuard::is_new_server_socket(int fd, ino_t& inode) const {
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISSOCK(st.st_mode) || conns_.count(st.st_ino) != 0) return false;
    if (local_port(fd) != port_) return false;
    sockaddr_storage peer{};
    socklen_t len = sizeof peer;
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return false;
    inode = st.st_ino;
    return true;
}

RUNBOX_DECL auto ConnectionGuard::track(int fd, ino_t inode) -> std::shared_ptr<Conn> {
    auto conn = std::make_shared<Conn>();
    conn->fd = fd;
    conn->inode = inode;
    conn->since = std::chrono::steady_clock::now().time_since_epoch().count();
    conns_[inode] = conn;
    highest_fd_ = std::max(highest_fd_, fd);
    return conn;
}

RUNBOX_DECL auto ConnectionGuard::identify_new_socket() -> std::shared_ptr<Conn> {
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

RUNBOX_DECL void ConnectionGuard::watch() {
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

}  // namespace runbox::server
