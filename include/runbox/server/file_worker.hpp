/// \file
/// the thread that does the action server's file work.
///
/// read/write/edit, uploads, downloads and /list_files run here, one at a time, never on an
/// HTTP thread. When the server (root) was told to act as another user, this thread takes that
/// user's filesystem identity before its first job: fsuid, fsgid and supplementary groups, set
/// with raw syscalls, which on Linux change the calling thread only (glibc's setgroups() would
/// change every thread of the process). The kernel then checks every open, mkdir, chmod...
/// of this thread against that user, and clears the thread's filesystem capabilities
/// (CAP_DAC_OVERRIDE, CAP_CHOWN, ...): root's files stay root's. The rest of the server keeps
/// its own identity (it must still kill and reap the shells).
///
/// A caller waits for its job at most its timeout; a job that overstays is left to finish (it
/// owns copies of everything it uses), and later jobs wait behind it.
#pragma once

#include "runbox/detail/linkage.hpp"

#include "runbox/error.hpp"

#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace runbox::server {

/// The identity file work runs with.
struct FileIdentity {
    std::string name;           ///< the user's name (for messages)
    uid_t uid = 0;              ///< filesystem uid
    gid_t gid = 0;              ///< filesystem gid
    std::vector<gid_t> groups;  ///< supplementary groups
};

namespace detail {

/// Switches the calling thread's filesystem identity; "" on success, else why not.
RUNBOX_DECL std::string assume_identity(const FileIdentity& who);

}  // namespace detail

/// The one thread that runs the action server's file jobs in order (see the top of this header).
class FileWorker {
public:
    /// Starts the thread. With `identity`, throws errc::config_invalid when the thread cannot
    /// take it (then file actions would run as root: the server must not start).
    explicit FileWorker(std::optional<FileIdentity> identity);
    FileWorker(const FileWorker&) = delete;
    FileWorker& operator=(const FileWorker&) = delete;
    ~FileWorker() { stop(); }

    /// Runs `job` on the worker and returns its result (or rethrows what it threw). `job` must
    /// own what it uses: after `timeout` the caller gets errc::timeout and the job runs on.
    template <class F>
    std::invoke_result_t<F> run(F job, std::optional<std::chrono::milliseconds> timeout) {
        using R = std::invoke_result_t<F>;
        // A promise and a std::function, not std::packaged_task: GCC emits a packaged_task's
        // vtable, and so the job and everything it calls, in every unit that merely includes
        // this header (the whole server in every header-only unit that includes local.hpp).
        auto promise = std::make_shared<std::promise<R>>();
        auto result = promise->get_future();
        {
            std::lock_guard lock(mutex_);
            if (stopping_) throw runbox::error(errc::sandbox_gone, "the action server is stopping");
            jobs_.push_back([promise, job = std::move(job)]() mutable {
                try {
                    if constexpr (std::is_void_v<R>) {
                        job();
                        promise->set_value();
                    } else {
                        promise->set_value(job());
                    }
                } catch (...) {
                    promise->set_exception(std::current_exception());
                }
            });
        }
        cond_.notify_one();
        if (timeout && result.wait_for(*timeout) != std::future_status::ready) {
            throw runbox::error(errc::timeout, "the file operation did not finish within " +
                                                   std::to_string(timeout->count()) + " ms");
        }
        return result.get();
    }

    /// Lets the queued jobs finish, then joins the thread (a job still running is waited for).
    /// Later run() calls throw errc::sandbox_gone. Idempotent.
    void stop() noexcept;

private:
    void loop();

    std::mutex mutex_;
    std::condition_variable cond_;
    std::deque<std::function<void()>> jobs_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace runbox::server

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/file_worker.ipp"
#endif
