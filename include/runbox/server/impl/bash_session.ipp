#pragma once

#include "runbox/server/bash_session.hpp"

namespace runbox::server::detail {

RUNBOX_DECL std::string shell_init_line(const std::string& working_dir, std::string_view nonce) {
    std::string line =
        "__runbox_json() { REPLY=${1//\\\\/\\\\\\\\}; REPLY=${REPLY//\\\"/\\\\\\\"}; REPLY=${REPLY//$'\\n'/\\\\n}; "
        "REPLY=${REPLY//$'\\t'/\\\\t}; REPLY=${REPLY//$'\\r'/\\\\r}; REPLY=${REPLY//[$'\\001'-$'\\037']/?}; }; "
        "__runbox_prompt() { __runbox_ec=$? __runbox_bg=${!-}; local __p= __d __r=${PATH-}; "
        "while :; do __d=${__r%%:*}; if [[ -f ${__d:-.}/python && -x ${__d:-.}/python ]]; then __p=${__d:-.}/python; "
        "break; fi; [[ $__r == *:* ]] || break; __r=${__r#*:}; done; "
        "__runbox_json \"${PWD-}\"; __runbox_wd=$REPLY; __runbox_json \"$__p\"; __runbox_py=$REPLY; "
        "PS1='\\n###PS1JSON###" + std::string(nonce) + "\\n{\\\"pid\\\": \\\"${__runbox_bg}\\\", \\\"exit_code\\\": \\\"${__runbox_ec}\\\", "
        "\\\"username\\\": \\\"\\u\\\", \\\"hostname\\\": \\\"\\h\\\", \\\"working_dir\\\": \\\"${__runbox_wd}\\\", "
        "\\\"py_interpreter_path\\\": \\\"${__runbox_py}\\\"}\\n###PS1END###" + std::string(nonce) + "\\n'; PS2=; return 0; }; "
        "PROMPT_COMMAND='{ __runbox_prompt; } 2>/dev/null'; PS2=; set +H; set -o ignoreeof; shopt -s promptvars; unset HISTFILE; history -c";
    if (!working_dir.empty()) line += "; builtin cd -- " + runbox::detail::shell_quote(working_dir);
    line += "\n";
    return line;
}

}  // namespace runbox::server::detail

namespace runbox::server {

RUNBOX_DECL Observation run_static_command(const CmdRunAction& action, const std::string& default_cwd,
                                           const std::string& username,
                                           runbox::detail::EnvironmentBase environment,
                                           const std::map<std::string, std::string>& env) {
    try {
        const std::string command(bash::strip(action.command));
        const std::string dir = action.cwd && !action.cwd->empty() ? *action.cwd : default_cwd;
        if (!dir.empty()) {
            struct stat st {};
            if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
                return ErrorObservation{"Work dir " + dir + " does not exist.", "", {}};
        }
        if (command.empty()) return make_cmd_output("", "", {}, action.hidden);
        detail::SpawnPlan plan;
        plan.argv_storage = {"/bin/bash", "-c", command};
        detail::plan_identity(plan, username, env, environment);
        plan.cwd = dir;
        plan.finish();
        int pipefd[2];
        if (::pipe2(pipefd, O_CLOEXEC) != 0)
            return ErrorObservation{std::string("pipe: ") + std::strerror(errno), "", {}};
        // Whatever the command leaves running dies when it exits (its supervisor kills it).
        detail::Contained proc;
        try {
            proc.start(plan, detail::ChildStdio{-1, pipefd[1], pipefd[1], false}, true);
        } catch (const std::exception& e) {
            ::close(pipefd[0]);
            ::close(pipefd[1]);
            return ErrorObservation{e.what(), "", {}};
        }
        ::close(pipefd[1]);
        const double timeout_s = action.timeout && *action.timeout > 0 ? *action.timeout : 120.0;
        const auto deadline = std::chrono::steady_clock::now() +
                              std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(timeout_s));
        std::string raw;
        bool timed_out = false;
        char buf[65536];
        while (true) {
            const auto now = std::chrono::steady_clock::now();
            if (now >= deadline) {
                timed_out = true;
                break;
            }
            pollfd p{pipefd[0], POLLIN, 0};
            const int r = ::poll(&p, 1, static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(deadline - now).count()));
            if (r <= 0) continue;
            const ssize_t n = ::read(pipefd[0], buf, sizeof buf);
            if (n > 0) raw.append(buf, static_cast<std::size_t>(n));
            else if (n == 0 || errno != EINTR) break;  // every writer closed the pipe
        }
        ::close(pipefd[0]);
        std::optional<int> status;
        if (!timed_out) {
            // the output ended: the command normally exits now; wait for it within the deadline
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
            status = proc.wait_exit(std::max(left, std::chrono::milliseconds(0)));
            timed_out = !status;
        }
        proc.kill_all();  // leftovers too
        CmdOutputMetadata meta;
        meta.working_dir = dir;
        std::string content(bash::rstrip(bash::render_terminal_output(raw)));
        if (timed_out) {
            meta.suffix = bash::hard_timeout_suffix(timeout_s);
        } else {
            meta.exit_code = status ? detail::exit_code_from_status(*status) : -1;
            meta.suffix = bash::completed_suffix(meta.exit_code);
        }
        return make_cmd_output(std::move(content), command, std::move(meta), action.hidden);
    } catch (const std::exception& e) {
        return ErrorObservation{e.what(), "", {}};
    }
}

RUNBOX_DECL void BashSession::initialize() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) throw runbox::error(errc::sandbox_gone, "bash session is closed");
    if (dead_) {
        release_shell_fds();
        start_shell(restart_dir());
    }
}

RUNBOX_DECL Observation BashSession::execute(const CmdRunAction& action) {
    std::lock_guard<std::mutex> lock(mutex_);
    try {
        return execute_locked(action);
    } catch (const std::exception& e) {
        return ErrorObservation{e.what(), "", {}};
    }
}

RUNBOX_DECL void BashSession::close() noexcept {
    if (closed_.exchange(true)) {
        std::lock_guard<std::mutex> lock(mutex_);  // wait for the first close to finish
        return;
    }
    if (wake_fd_ >= 0) {
        const std::uint64_t one = 1;
        (void)!::write(wake_fd_, &one, sizeof one);
    }
    std::lock_guard<std::mutex> lock(mutex_);
    try {
        kill_everything();
    } catch (...) {
    }
    if (wake_fd_ >= 0) ::close(wake_fd_);
    wake_fd_ = -1;
}

RUNBOX_DECL void BashSession::start_shell(const std::string& dir) {
    detail::SpawnPlan plan;
    plan.argv_storage = {"/bin/bash", "--noediting"};
    if (!options_.load_rc_files) {
        plan.argv_storage.push_back("--norc");
        plan.argv_storage.push_back("--noprofile");
    }
    plan.argv_storage.push_back("-i");
    detail::plan_identity(plan, options_.username, options_.env, options_.environment);
    plan.cwd = dir;
    if (!dir.empty()) {
        struct stat st {};
        if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
            throw runbox::error(errc::config_invalid, "working directory '" + dir + "' does not exist");
    }
    plan.finish();

    int master = -1, slave = -1;
    winsize ws{};
    ws.ws_row = 1000;
    ws.ws_col = 1000;
    if (::openpty(&master, &slave, nullptr, nullptr, &ws) != 0)
        throw runbox::error(errc::server_error, std::string("openpty: ") + std::strerror(errno));
    termios tio{};
    if (::tcgetattr(slave, &tio) == 0) {
        tio.c_lflag &= ~static_cast<tcflag_t>(ECHO | ECHOE | ECHOK | ECHONL | ECHOCTL | ECHOKE);
        tio.c_lflag |= ICANON | ISIG;
        tio.c_oflag &= ~static_cast<tcflag_t>(ONLCR);
        tio.c_iflag |= IUTF8;
        ::tcsetattr(slave, TCSANOW, &tio);
    }
    ::fcntl(master, F_SETFD, FD_CLOEXEC);
    auto shell = std::make_unique<detail::Contained>();
    try {
        shell->start(plan, detail::ChildStdio{slave, slave, slave, true}, false);
    } catch (...) {
        ::close(master);
        ::close(slave);
        throw;
    }
    ::close(slave);
    ::fcntl(master, F_SETFL, ::fcntl(master, F_GETFL) | O_NONBLOCK);
    master_ = master;
    shell_pid_ = shell->pid();
    shell_ = std::move(shell);
    eof_ = false;
    dead_ = false;
    const std::string nonce = new_nonce();
    scanner_ = bash::PromptScanner(bash::PromptMarkers::with_nonce(nonce));
    reset_output();
    pending_timeout_ = false;
    write_buf_ = detail::shell_init_line(dir, nonce);

    const auto deadline = std::chrono::steady_clock::now() + options_.startup_timeout;
    while (blocks_ == 0) {
        if (dead_) {
            const std::string text(bash::strip(bash::render_terminal_output(out_)));
            throw runbox::error(errc::server_error, "bash exited during start-up" + (text.empty() ? "" : ": " + text));
        }
        if (closed_) throw runbox::error(errc::sandbox_gone, "bash session is closed");
        const auto now = std::chrono::steady_clock::now();
        if (now >= deadline) throw runbox::error(errc::timeout, "bash did not show its prompt within the start-up timeout");
        pump(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now) + std::chrono::milliseconds(1));
    }
    set_cwd(last_meta_);
    reset_output();
}

RUNBOX_DECL std::string BashSession::restart_dir() const {
    const std::string dir = cwd();
    struct stat st {};
    if (!dir.empty() && ::stat(dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) return dir;
    return options_.working_dir;
}

RUNBOX_DECL void BashSession::set_cwd(const CmdOutputMetadata& m) {
    if (m.working_dir && !m.working_dir->empty()) {
        std::lock_guard<std::mutex> lock(cwd_mutex_);
        cwd_ = *m.working_dir;
    }
}

RUNBOX_DECL std::string BashSession::new_nonce() {
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof raw) != 1) throw runbox::error(errc::server_error, "OpenSSL RAND_bytes failed");
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (const unsigned char b : raw) {
        out += hex[b >> 4];
        out += hex[b & 15];
    }
    return out;
}

RUNBOX_DECL void BashSession::kill_everything() {
    if (shell_) shell_->kill_all();
    shell_.reset();
    for (auto& old : old_shells_) old->kill_all();
    old_shells_.clear();
    shell_pid_ = -1;
    release_shell_fds();
    for (const auto& f : temp_files_) ::unlink(f.c_str());
    temp_files_.clear();
}

RUNBOX_DECL void BashSession::mark_dead() {
    if (dead_) return;
    dead_status_ = 0;
    if (shell_) {
        if (auto status = shell_->wait_exit(std::chrono::milliseconds(5000))) dead_status_ = *status;
        old_shells_.push_back(std::move(shell_));
    }
    dead_ = true;
    shell_pid_ = -1;
}

RUNBOX_DECL void BashSession::reset_output() {
    out_.clear();
    out_lines_ = 0;
    scanner_.reset();
    done_raw_.clear();
    blocks_ = 0;
    truncated_ = false;
    has_prev_ = false;
    strip_echo_ = false;
    echo_text_.clear();
}

RUNBOX_DECL void BashSession::feed(const char* data, std::size_t n) {
    if (skip_newline_ && n > 0) {
        skip_newline_ = false;
        if (data[0] == '\n') {
            ++data;
            --n;
        }
    }
    out_.append(data, n);
    out_lines_ += static_cast<std::size_t>(std::count(data, data + n, '\n'));
    scan_blocks();
    trim_history();
}

RUNBOX_DECL void BashSession::scan_blocks() {
    while (auto block = scanner_.next(out_)) {
        done_raw_.append(out_, 0, block->begin);
        done_raw_ += '\n';
        last_meta_ = std::move(block->metadata);
        ++blocks_;
        std::size_t cut = block->end;
        if (cut < out_.size() && out_[cut] == '\n') ++cut;
        else if (cut == out_.size()) skip_newline_ = true;
        out_lines_ -= static_cast<std::size_t>(std::count(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(cut), '\n'));
        out_.erase(0, cut);
        scanner_.erase_front(cut);
    }
}

RUNBOX_DECL void BashSession::trim_history() {
    // output without newlines (a binary or base64 stream) is bounded by size instead
    constexpr std::size_t max_bytes = std::size_t{16} << 20;
    if (out_.size() > max_bytes) {
        std::size_t pos = out_.size() - max_bytes / 2;
        while (pos < out_.size() && (static_cast<unsigned char>(out_[pos]) & 0xC0) == 0x80) ++pos;  // UTF-8 boundary
        out_lines_ -= static_cast<std::size_t>(std::count(out_.begin(), out_.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
        out_.erase(0, pos);
        scanner_.erase_front(pos);
        truncated_ = true;
    }
    const std::size_t limit = options_.history_limit_lines;
    if (limit == 0 || out_lines_ <= limit + limit / 4 + 64) return;
    std::size_t drop = out_lines_ - limit;
    std::size_t pos = 0;
    while (drop > 0) {
        pos = out_.find('\n', pos);
        if (pos == std::string::npos) return;
        ++pos;
        --drop;
    }
    out_lines_ -= out_lines_ - limit;
    out_.erase(0, pos);
    scanner_.erase_front(pos);
    truncated_ = true;
}

RUNBOX_DECL void BashSession::read_available(std::size_t limit) {
    char buf[65536];
    std::size_t total = 0;
    while (master_ >= 0 && !eof_ && total < limit) {
        const ssize_t n = ::read(master_, buf, sizeof buf);
        if (n > 0) {
            feed(buf, static_cast<std::size_t>(n));
            total += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        eof_ = true;  // 0 or EIO: no process has the terminal open any more
    }
}

RUNBOX_DECL void BashSession::flush_writes() {
    while (!write_buf_.empty() && master_ >= 0) {
        const ssize_t n = ::write(master_, write_buf_.data(), write_buf_.size());
        if (n > 0) {
            write_buf_.erase(0, static_cast<std::size_t>(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        write_buf_.clear();  // the terminal is gone
        return;
    }
}

RUNBOX_DECL void BashSession::pump(std::chrono::milliseconds timeout) {
    flush_writes();
    pollfd fds[3];
    nfds_t n = 0;
    int master_idx = -1, pid_idx = -1;
    if (master_ >= 0 && !eof_) {
        master_idx = static_cast<int>(n);
        fds[n++] = pollfd{master_, static_cast<short>(POLLIN | (write_buf_.empty() ? 0 : POLLOUT)), 0};
    }
    if (shell_ && !dead_) {
        pid_idx = static_cast<int>(n);
        fds[n++] = pollfd{shell_->event_fd(), POLLIN, 0};
    }
    if (wake_fd_ >= 0) fds[n++] = pollfd{wake_fd_, POLLIN, 0};
    const long long ms = std::max<long long>(0, std::min<long long>(timeout.count(), 1 << 30));
    const int r = ::poll(fds, n, static_cast<int>(ms));
    if (r < 0) return;
    if (master_idx >= 0 && fds[master_idx].revents) {
        if (fds[master_idx].revents & (POLLIN | POLLHUP | POLLERR)) read_available();
        if (fds[master_idx].revents & POLLOUT) flush_writes();
    }
    bool exited = pid_idx >= 0 && (fds[pid_idx].revents & POLLIN);
    if (exited && !dead_) {
        read_available(std::size_t{16} << 20);  // what the shell wrote last
        mark_dead();
    }
}

RUNBOX_DECL std::string BashSession::command_line_for(const std::string& command) {
    std::size_t longest = 0, cur = 0;
    for (const char c : command) {
        cur = c == '\n' ? 0 : cur + 1;
        longest = std::max(longest, cur);
    }
    if (longest < 4000) return command + "\n";
    char path[] = "/tmp/runbox-cmd-XXXXXX";
    const int fd = ::mkstemp(path);
    if (fd < 0) return command + "\n";
    std::string body = command + "\n";
    const char* p = body.data();
    std::size_t left = body.size();
    while (left > 0) {
        const ssize_t n = ::write(fd, p, left);
        if (n <= 0) break;
        p += n;
        left -= static_cast<std::size_t>(n);
    }
    if (!options_.username.empty() && ::geteuid() == 0) {
        std::vector<char> buf(16384);
        passwd pw{};
        passwd* result = nullptr;
        if (::getpwnam_r(options_.username.c_str(), &pw, buf.data(), buf.size(), &result) == 0 && result)
            (void)!::fchown(fd, pw.pw_uid, pw.pw_gid);
    }
    ::close(fd);
    temp_files_.emplace_back(path);
    return "source " + runbox::detail::shell_quote(path) + "\n";
}

RUNBOX_DECL bool BashSession::terminal_echoes() const {
    termios tio{};
    if (master_ < 0 || ::tcgetattr(master_, &tio) != 0) return false;
    return (tio.c_lflag & ECHO) || !(tio.c_lflag & ICANON);
}

RUNBOX_DECL std::string BashSession::finish_text(std::string_view raw) {
    std::string text = bash::render_terminal_output(raw);
    std::string_view view = text;
    if (strip_echo_) view = bash::remove_command_prefix(view, echo_text_);
    else view = bash::lstrip(view);
    return std::string(bash::rstrip(view));
}

RUNBOX_DECL Observation BashSession::observe_completed(const std::string& command, bool special, bool hidden) {
    CmdOutputMetadata meta = last_meta_;
    std::string raw = std::move(done_raw_);
    raw += out_;
    // exact history bound
    const std::size_t limit = options_.history_limit_lines;
    bool truncated = truncated_;
    if (limit > 0) {
        std::size_t lines = static_cast<std::size_t>(std::count(raw.begin(), raw.end(), '\n'));
        if (lines > limit) {
            std::size_t pos = 0;
            for (std::size_t drop = lines - limit; drop > 0; --drop) pos = raw.find('\n', pos) + 1;
            raw.erase(0, pos);
            truncated = true;
        }
    }
    const std::string rendered = bash::render_terminal_output(raw);
    if (has_prev_) meta.prefix = "";
    else if (truncated) meta.prefix = bash::truncated_prefix(bash::count_lines(rendered));
    meta.suffix = special ? bash::completed_special_key_suffix(meta.exit_code, bash::strip(command).back())
                          : bash::completed_suffix(meta.exit_code);
    std::string content = finish_text(raw);
    set_cwd(meta);
    reset_output();
    pending_timeout_ = false;
    remove_temp_files();
    return make_cmd_output(std::move(content), command, std::move(meta), hidden);
}

RUNBOX_DECL Observation BashSession::observe_dead(const std::string& command, bool hidden) {
    CmdOutputMetadata meta;
    meta.exit_code = detail::exit_code_from_status(dead_status_);
    meta.working_dir = cwd();
    meta.suffix = bash::completed_suffix(meta.exit_code);
    std::string raw = std::move(done_raw_);
    raw += out_;
    if (has_prev_) meta.prefix = "";
    std::string content = finish_text(raw);
    reset_output();
    pending_timeout_ = false;
    release_shell_fds();
    remove_temp_files();
    return make_cmd_output(std::move(content), command, std::move(meta), hidden);
}

RUNBOX_DECL Observation BashSession::observe_running(const std::string& command, std::string suffix) {
    const std::size_t keep = bash::incomplete_tail(out_, scanner_.markers());
    std::string raw = std::move(done_raw_);
    done_raw_.clear();
    raw.append(out_, 0, out_.size() - keep);
    out_lines_ -= static_cast<std::size_t>(std::count(out_.begin(), out_.end() - static_cast<std::ptrdiff_t>(keep), '\n'));
    const std::size_t taken = out_.size() - keep;
    out_.erase(0, taken);
    scanner_.erase_front(taken);
    blocks_ = 0;
    CmdOutputMetadata meta;
    meta.suffix = std::move(suffix);
    if (has_prev_) meta.prefix = std::string(bash::continue_prefix);
    has_prev_ = has_prev_ || !raw.empty();
    std::string content = finish_text(raw);
    pending_timeout_ = true;
    return make_cmd_output(std::move(content), command, std::move(meta));
}

RUNBOX_DECL Observation BashSession::execute_locked(const CmdRunAction& action) {
    if (closed_) return ErrorObservation{"The bash session is closed.", "", {}};
    pump(std::chrono::milliseconds(0));
    strip_echo_ = false;  // set below when this call types something a program may echo
    echo_text_.clear();

    const std::string command(bash::strip(action.command));
    // The shell is gone but its supervisor has not said so yet (it reaps, then writes): wait for
    // its word now rather than type the command into a dead terminal and report it killed.
    if (!dead_ && shell_ && !detail::process_alive(shell_->pid())) {
        read_available(std::size_t{16} << 20);
        mark_dead();
    }
    // The shell exited (exit, exec, killed): "" after a timeout still reports how the running
    // command ended; anything else goes to a fresh shell in the last working directory.
    if (dead_ && !(pending_timeout_ && command.empty())) {
        release_shell_fds();
        start_shell(restart_dir());
    }
    if (!pending_timeout_) {
        if (command.empty()) return make_cmd_output(std::string(bash::no_previous_logs), "", {});
        if (action.is_input) return make_cmd_output(std::string(bash::no_previous_interact), "", {});
    }
    const auto parts = bash::split_bash_commands(command);
    if (parts.size() > 1) return ErrorObservation{bash::multiple_commands_error(parts), "", {}};

    const bool special = bash::is_special_key(command);
    const bool finished = blocks_ > 0;  // the running command has completed since we last looked
    if (pending_timeout_ && !finished && !action.is_input && !command.empty())
        return observe_running(command, bash::not_executed_suffix(command));

    std::string obs_command = command;
    std::size_t blocks_needed = 1;
    if (!command.empty()) {
        blocks_needed = blocks_ + 1;
        if (!action.is_input) obs_command = bash::escape_bash_special_chars(command);
        strip_echo_ = terminal_echoes();
        echo_text_ = command;
        if (special) send(std::string(1, bash::control_char(command[2])));
        else send(action.is_input ? command + "\n" : command_line_for(command));
    }

    const auto start = std::chrono::steady_clock::now();
    auto last_change = start;
    const bool hard = action.timeout && *action.timeout > 0;
    const auto hard_deadline =
        start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                    std::chrono::duration<double>(hard ? *action.timeout : 0.0));
    while (true) {
        if (blocks_ >= blocks_needed) return observe_completed(obs_command, special, action.hidden);
        if (dead_) return observe_dead(obs_command, action.hidden);
        if (closed_) return ErrorObservation{"The bash session was closed while the command was running.", "", {}};
        const auto now = std::chrono::steady_clock::now();
        if (!action.blocking && now - last_change >= options_.no_change_timeout)
            return observe_running(obs_command, bash::no_change_timeout_suffix(options_.no_change_timeout));
        if (hard && now >= hard_deadline)
            return observe_running(obs_command, bash::hard_timeout_suffix(*action.timeout));
        auto wait = std::chrono::steady_clock::duration::max();
        if (!action.blocking) wait = std::min(wait, last_change + options_.no_change_timeout - now);
        if (hard) wait = std::min(wait, hard_deadline - now);
        auto wait_ms = wait == std::chrono::steady_clock::duration::max()
                           ? std::chrono::milliseconds(1 << 30)
                           : std::chrono::ceil<std::chrono::milliseconds>(wait);
        const std::size_t before = out_.size() + done_raw_.size() + blocks_;
        const std::size_t lines_before = out_lines_;
        pump(wait_ms);
        if (out_.size() + done_raw_.size() + blocks_ != before || out_lines_ != lines_before)
            last_change = std::chrono::steady_clock::now();
    }
}

}  // namespace runbox::server
