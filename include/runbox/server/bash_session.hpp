/// \file
/// one persistent bash on a real PTY with the OpenHands command
/// semantics (reference §4): prompt-marker completion detection, soft (no new output) and hard
/// timeouts, continuation with "", input to a running process, special keys, exit codes, cwd.
///
/// Design: bash runs without readline (--noediting) on a PTY whose echo is off, so the output is
/// exactly what the programs write; a PROMPT_COMMAND function sets PS1 to a JSON marker block that
/// ends every command. Output is read as soon as it arrives (poll on the PTY, no polling interval).
/// The markers carry a random nonce drawn for each shell, so program output that prints a prompt
/// block (a file, a web page, a hostile tool) cannot end a command early or forge its exit code
/// and cwd; the scan for them looks at each byte once. Every shell runs under a subreaper
/// supervisor (server/process.hpp): close() kills everything it started, setsid and double
/// forks included.
#pragma once

#include "runbox/detail/linkage.hpp"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pty.h>
#include <pwd.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/rand.h>

#include "runbox/detail/shell.hpp"
#include "runbox/environment.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"
#include "runbox/server/bash_parse.hpp"
#include "runbox/server/process.hpp"

namespace runbox::server {

/// How a BashSession starts its shell.
struct BashSessionOptions {
    std::string working_dir;  ///< empty = the server's current directory
    std::string username;     ///< empty = current user; as root with another name the shell runs as that user
    std::chrono::milliseconds no_change_timeout{10000};  ///< NO_CHANGE_TIMEOUT_SECONDS
    std::map<std::string, std::string> env;               ///< added to the shell's environment
    /// What the shell's environment starts from (runbox/environment.hpp); never SESSION_API_KEY.
    runbox::detail::EnvironmentBase environment = runbox::detail::EnvironmentBase::inherit;
    bool load_rc_files = false;  ///< read /etc/bash.bashrc and ~/.bashrc (slow with pyenv-style rc files)
    /// Lines of output kept for one command (tmux in the reference: 10 000 history + 1 000 visible rows).
    std::size_t history_limit_lines = 11000;
    std::chrono::milliseconds startup_timeout{30000};  ///< bound on the shell's first prompt
};

namespace detail {

/// The one line typed into a new shell: the prompt function (pure builtins, no forks), PS1/PS2,
/// no history expansion, Ctrl-D at the prompt does not end the shell, no history file written
/// (the user's ~/.bash_history stays untouched), and the working directory. The prompt function
/// survives `set -u`, and its `set -x` trace goes to /dev/null instead of the command's output.
RUNBOX_DECL std::string shell_init_line(const std::string& working_dir, std::string_view nonce = {});

}  // namespace detail

/// One persistent bash. Thread-safe: execute() calls are serialised; close() may be called from
/// any thread and interrupts a running execute().
class BashSession {
public:
    /// Starts bash on a new PTY and waits for its first prompt. Throws runbox::error:
    /// errc::config_invalid for a missing working directory, errc::timeout when no prompt came
    /// within startup_timeout, errc::server_error when the PTY or the shell failed.
    explicit BashSession(BashSessionOptions options) : options_(std::move(options)) {
        wake_fd_ = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd_ < 0) throw runbox::error(errc::server_error, std::string("eventfd: ") + std::strerror(errno));
        try {
            start_shell(options_.working_dir);
        } catch (...) {
            close();
            throw;
        }
    }
    ~BashSession() { close(); }
    BashSession(const BashSession&) = delete;
    BashSession& operator=(const BashSession&) = delete;

    /// The constructor already starts the shell; this restarts it if it has exited.
    void initialize();

    /// Working directory reported by the last prompt.
    std::string cwd() const {
        std::lock_guard<std::mutex> lock(cwd_mutex_);
        return cwd_;
    }

    /// PID of the bash process (-1 when none).
    pid_t shell_pid() const noexcept { return shell_pid_.load(); }

    /// Runs a command, input or continuation with OpenHands' timeout rules: a CmdOutputObservation
    /// (exit code -1 while it still runs), or an ErrorObservation; never throws.
    Observation execute(const CmdRunAction& action);

    /// Idempotent. Kills the shell and everything it started, then reaps it.
    void close() noexcept;

private:
    BashSessionOptions options_;
    mutable std::mutex mutex_;
    mutable std::mutex cwd_mutex_;
    std::atomic<bool> closed_{false};
    std::atomic<pid_t> shell_pid_{-1};
    std::unique_ptr<detail::Contained> shell_;                // the running shell under its supervisor
    std::vector<std::unique_ptr<detail::Contained>> old_shells_;  // shells that exited (their jobs may live on)
    int master_ = -1;
    int wake_fd_ = -1;
    bool eof_ = false;   // the PTY reported EOF/EIO
    bool dead_ = false;  // the shell exited
    int dead_status_ = 0;
    std::string cwd_;
    std::string write_buf_;
    std::vector<std::string> temp_files_;

    // ---- output state of the current command ----
    std::string out_;        // received, not yet returned/consumed
    std::size_t out_lines_ = 0;
    bash::PromptScanner scanner_;  // this shell's markers; remembers how far out_ was scanned
    bool skip_newline_ = false;
    std::string done_raw_;   // text before completed prompt blocks, each followed by "\n"
    std::size_t blocks_ = 0; // prompt blocks seen since the last completion
    CmdOutputMetadata last_meta_;
    bool truncated_ = false;
    bool has_prev_ = false;        // part of this command's output was already returned
    bool pending_timeout_ = false; // the last observation was a timeout / refusal (a command is running)
    bool strip_echo_ = false;
    std::string echo_text_;

    // ---- shell lifecycle ----

    void start_shell(const std::string& dir);

    /// Where a replacement shell starts: the last known cwd if it still exists, else the initial one.
    std::string restart_dir() const;

    void set_cwd(const CmdOutputMetadata& m);

    /// 16 random bytes from OpenSSL, as hex: the marker nonce of one shell.
    static std::string new_nonce();

    void release_shell_fds() {
        if (master_ >= 0) ::close(master_);
        master_ = -1;
    }

    void kill_everything();

    /// The shell exited on its own (exit, exec, crash): keep its supervisor (and its jobs) for close().
    void mark_dead();

    // ---- I/O ----

    void reset_output();

    void feed(const char* data, std::size_t n);

    void scan_blocks();

    /// Keeps memory bounded like the reference's pane history: older lines scroll away.
    void trim_history();

    /// Reads what is available now, up to `limit` bytes (so a program that writes without pause
    /// cannot keep the caller from its deadlines); notices EOF.
    void read_available(std::size_t limit = std::size_t{1} << 20);

    void flush_writes();

    /// Waits up to `timeout` for output, shell exit, a close() request or room to write.
    void pump(std::chrono::milliseconds timeout);

    void send(std::string text) {
        write_buf_ += std::move(text);
        flush_writes();
    }

    /// Lines longer than the terminal's canonical line limit (4095 bytes) would be cut by the
    /// kernel: such a command is written to a file and sourced instead.
    std::string command_line_for(const std::string& command);

    void remove_temp_files() {
        for (const auto& f : temp_files_) ::unlink(f.c_str());
        temp_files_.clear();
    }

    /// Whether the program reading the terminal echoes input (echo on, or raw mode like readline).
    bool terminal_echoes() const;

    // ---- observations ----

    std::string finish_text(std::string_view raw);

    Observation observe_completed(const std::string& command, bool special, bool hidden);

    Observation observe_dead(const std::string& command, bool hidden);

    /// Output so far of a command that keeps running (timeouts, refused commands).
    Observation observe_running(const std::string& command, std::string suffix);

    Observation execute_locked(const CmdRunAction& action);
};

/// Runs `action.command` in a fresh non-interactive bash in `action.cwd` (or `default_cwd`),
/// independent of any session (reference §4.3 `is_static`). stdout and stderr are merged.
RUNBOX_DECL Observation run_static_command(const CmdRunAction& action, const std::string& default_cwd,
                                           const std::string& username = {},
                                           runbox::detail::EnvironmentBase environment = runbox::detail::EnvironmentBase::inherit,
                                           const std::map<std::string, std::string>& env = {});

}  // namespace runbox::server

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/bash_session.ipp"
#endif
