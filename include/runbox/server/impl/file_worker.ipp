#pragma once

#include "runbox/server/file_worker.hpp"

namespace runbox::server::detail {

RUNBOX_DECL std::string assume_identity(const FileIdentity& who) {
    if (::syscall(SYS_setgroups, who.groups.size(), who.groups.data()) != 0) {
        return "setgroups failed (" + std::string(std::strerror(errno)) + ")";
    }
    ::syscall(SYS_setfsgid, who.gid);
    // setfsuid/setfsgid report no errors; asking with an invalid id returns the current one.
    if (static_cast<gid_t>(::syscall(SYS_setfsgid, static_cast<gid_t>(-1))) != who.gid) return "setfsgid had no effect";
    ::syscall(SYS_setfsuid, who.uid);
    if (static_cast<uid_t>(::syscall(SYS_setfsuid, static_cast<uid_t>(-1))) != who.uid) return "setfsuid had no effect";
    return {};
}

}  // namespace runbox::server::detail

namespace runbox::server {

RUNBOX_DECL FileWorker::FileWorker(std::optional<FileIdentity> identity) {
    const std::string name = identity ? identity->name : std::string();
    std::promise<std::string> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, identity = std::move(identity), ready = std::move(ready)]() mutable {
        ready.set_value(identity ? detail::assume_identity(*identity) : std::string());
        loop();
    });
    const std::string why = started.get();
    if (!why.empty()) {
        stop();
        throw runbox::error(errc::config_invalid,
                            "cannot act as user '" + name + "' for file actions: " + why +
                                "; refusing to start, file actions would run as root");
    }
}

RUNBOX_DECL void FileWorker::stop() noexcept {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    cond_.notify_all();
    if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

RUNBOX_DECL void FileWorker::loop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        cond_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        lock.unlock();
        job();  // never throws: the job hands its result or exception to its promise
        lock.lock();
    }
}

}  // namespace runbox::server
