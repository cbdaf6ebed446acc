/// \file
/// who owns a sandbox, so that nothing runbox creates is left behind.
///
/// Every sandbox a runtime creates carries ownership labels (labels, tags or metadata, as the
/// provider calls them):
///
/// ```
/// runbox=1  runbox_owner=<owner>  runbox_host=<host>  runbox_pid=<pid>
/// runbox_created_ms=<unix ms>  runbox_token=<random, one per create>
/// ```
///
/// The token is what makes a create recoverable: a create whose answer is lost is never sent
/// again (it is not idempotent); the runtime looks for the sandbox carrying its token instead
/// (create_then_dedupe) and so owns exactly what it created. A sandbox is *held* while the
/// runtime that created it lives: in this process the runtime's token is in a registry, in
/// another process on this host the pid is alive. Sweep (sweep.hpp) and the lease file reap
/// what is no longer held.
///
/// The lease file (Config::runbox_lease_file) is a JSON-lines file, changed under flock(2), where
/// each runtime records its create before sending it and removes the entry once the sandbox is
/// released; the next runtime to start (or sweep) reaps the entries whose process is gone.
///
/// A provider that supports sweeping declares (Runtime and sweep.hpp detect them):
/// ```
/// template <class T> std::vector<SandboxRecord> list_sandboxes(ProviderContext<T>&);
///     every sandbox carrying runbox=1 that is not already gone
/// template <class T> void release_sandbox(ProviderContext<T>&, const SandboxRecord&, ReleaseMode);
///     stops or deletes it (throws runbox::error on failure)
/// ```
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/config.hpp"
#include "runbox/error.hpp"

namespace runbox {

/// The label keys runbox puts on every sandbox it creates.
namespace labels {
inline constexpr std::string_view managed = "runbox";  ///< "1"
inline constexpr std::string_view owner = "runbox_owner";            ///< Config::runbox_owner or the host name
inline constexpr std::string_view host = "runbox_host";              ///< the creating host's name
inline constexpr std::string_view pid = "runbox_pid";                ///< the creating process's pid
inline constexpr std::string_view created_ms = "runbox_created_ms";  ///< creation time, Unix milliseconds
inline constexpr std::string_view token = "runbox_token";            ///< random, one per create
}  // namespace labels

namespace detail {

inline std::string this_host() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

inline std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

inline std::int64_t to_int64(const std::string& text, std::int64_t fallback) {
    try {
        std::size_t used = 0;
        const long long value = std::stoll(text, &used);
        return used == text.size() ? static_cast<std::int64_t>(value) : fallback;
    } catch (const std::exception&) {
        return fallback;
    }
}

// The tokens of the runtimes alive in this process: a sandbox whose holder is this process is
// held only while its token is here (a runtime that failed or closed no longer holds it).
struct LiveRegistry {
    std::mutex mutex;
    std::multiset<std::string> tokens;
};
inline LiveRegistry& live_registry() {
    static LiveRegistry registry;
    return registry;
}

}  // namespace detail

/// The ownership of one create: who, where, when, and the token that finds it again.
struct Ownership {
    std::string owner{};          ///< Config::runbox_owner, default: the creating host's name
    std::string host{};           ///< the creating host's name (gethostname)
    long pid = 0;                 ///< the creating process (0: unknown)
    std::int64_t created_ms = 0;  ///< creation time, Unix milliseconds (0: unknown)
    std::string token{};          ///< random, unique to this create

    /// Owner from Config::runbox_owner (default: this host's name), this process, now, and
    /// `token` (random, e.g. detail::random_hex(12)).
    static Ownership make(const Config& config, std::string token) {
        Ownership o;
        o.host = detail::this_host();
        o.owner = config.runbox_owner.value_or(o.host);
        o.pid = static_cast<long>(::getpid());
        o.created_ms = detail::unix_ms_now();
        o.token = std::move(token);
        return o;
    }

    /// The six labels (labels::managed = "1" and the five fields), as the provider stores them.
    std::map<std::string, std::string> labels() const {
        return {{std::string(labels::managed), "1"},
                {std::string(labels::owner), owner},
                {std::string(labels::host), host},
                {std::string(labels::pid), std::to_string(pid)},
                {std::string(labels::created_ms), std::to_string(created_ms)},
                {std::string(labels::token), token}};
    }
};

/// A sandbox as list_sandboxes() reports it, with its ownership labels read back.
struct SandboxRecord {
    std::string provider{};  ///< the provider's name ("daytona", "runloop", ...)
    std::string id{};        ///< the provider's id of the sandbox
    std::string sid{};       ///< the session label, when present
    std::string state{};     ///< the provider's state/status word
    Ownership ownership{};   ///< read back from the labels (missing ones empty or 0)

    /// Reads the ownership labels from a label/metadata map (missing ones stay empty/0).
    static SandboxRecord from_labels(std::string provider, std::string id, std::string state, std::string sid,
                                     const std::map<std::string, std::string>& map) {
        SandboxRecord r{std::move(provider), std::move(id), std::move(sid), std::move(state), {}};
        auto get = [&](std::string_view key) {
            const auto it = map.find(std::string(key));
            return it == map.end() ? std::string() : it->second;
        };
        r.ownership.owner = get(labels::owner);
        r.ownership.host = get(labels::host);
        r.ownership.pid = static_cast<long>(detail::to_int64(get(labels::pid), 0));
        r.ownership.created_ms = detail::to_int64(get(labels::created_ms), 0);
        r.ownership.token = get(labels::token);
        return r;
    }
};

/// Whether a label map marks a sandbox as runbox's.
inline bool is_runbox_managed(const std::map<std::string, std::string>& map) {
    const auto it = map.find(std::string(labels::managed));
    return it != map.end() && it->second == "1";
}

/// A string->string view of a JSON object of labels (non-string values are skipped).
inline std::map<std::string, std::string> label_map(const nlohmann::json& json) {
    std::map<std::string, std::string> out;
    if (!json.is_object()) return out;
    for (const auto& [key, value] : json.items()) {
        if (value.is_string()) out[key] = value.get<std::string>();
    }
    return out;
}

/// A sandbox close() could not release (Runtime::unreleased()).
struct UnreleasedSandbox {
    std::string provider{};  ///< the provider's name
    std::string id{};        ///< the provider's id of the sandbox
    std::string reason{};    ///< why it could not be released (the error's message)
};

/// How a sandbox is released by close() or sweep.
enum class ReleaseMode {
    stop,    ///< stop (the provider may keep it, stopped, until its own retention ends)
    remove,  ///< delete (Runloop: shut down, its only terminal state)
};

/// Keeps a token in this process's registry of live runtimes while it exists.
class LiveHold {
public:
    /// Holds nothing.
    LiveHold() = default;
    /// Registers `token` as live until this hold is reset or destroyed.
    explicit LiveHold(std::string token) : token_(std::move(token)) {
        auto& r = detail::live_registry();
        std::lock_guard lock(r.mutex);
        r.tokens.insert(token_);
    }
    /// Takes over `other`'s token; `other` then holds nothing.
    LiveHold(LiveHold&& other) noexcept : token_(std::exchange(other.token_, {})) {}
    /// Releases this hold's token, then takes over `other`'s.
    LiveHold& operator=(LiveHold&& other) noexcept {
        if (this != &other) {
            reset();
            token_ = std::exchange(other.token_, {});
        }
        return *this;
    }
    LiveHold(const LiveHold&) = delete;
    LiveHold& operator=(const LiveHold&) = delete;
    ~LiveHold() { reset(); }

    /// Removes the token from the registry (once); afterwards the hold holds nothing.
    void reset() noexcept {
        if (token_.empty()) return;
        auto& r = detail::live_registry();
        std::lock_guard lock(r.mutex);
        if (auto it = r.tokens.find(token_); it != r.tokens.end()) r.tokens.erase(it);
        token_.clear();
    }

private:
    std::string token_;
};

/// Whether the runtime that created a sandbox still holds it (holder_of()).
enum class Holder {
    live,     ///< its runtime is alive: leave it alone
    gone,     ///< its process (or, in this process, its runtime) is gone
    unknown,  ///< another host: runbox cannot tell
};

/// Whether the runtime that created a sandbox (as its ownership says) is still alive.
inline Holder holder_of(const Ownership& o) {
    if (o.host != detail::this_host()) return Holder::unknown;
    if (o.pid <= 0) return Holder::unknown;
    if (o.pid == static_cast<long>(::getpid())) {
        auto& r = detail::live_registry();
        std::lock_guard lock(r.mutex);
        return r.tokens.count(o.token) != 0 ? Holder::live : Holder::gone;
    }
    // kill(pid, 0): 0 or EPERM means a process with that pid exists.
    if (::kill(static_cast<pid_t>(o.pid), 0) == 0 || errno == EPERM) return Holder::live;
    return Holder::gone;
}

/// Whether a failed create may nevertheless have been performed by the API: the answer was lost
/// (dropped connection, timeout) or a gateway failed after forwarding it (5xx).
inline bool answer_may_be_lost(const error& e) {
    return e.code() == errc::transport || e.code() == errc::timeout || e.code() == errc::server_error;
}

/// Create then dedupe: `create()` once; when its answer may be lost, `find()` looks the
/// sandbox up by this create's token (an optional); found, it is the created one; not found,
/// the original error stands (nothing was created that the labels cannot find later).
template <class Create, class Find>
auto create_then_dedupe(Create&& create, Find&& find) -> decltype(create()) {
    try {
        return create();
    } catch (const error& e) {
        if (!answer_may_be_lost(e)) throw;
        auto found = find();
        if (found) return std::move(*found);
        throw;
    }
}

// ---------------------------------------------------------------------------
// The lease file

/// One runtime's create, as the lease file records it.
struct LeaseEntry {
    std::string provider{};       ///< the provider's name
    std::string token{};          ///< the create's ownership token (the entry's key)
    std::string sid{};            ///< the runtime's session id
    std::string host{};           ///< the creating host's name
    long pid = 0;                 ///< the creating process
    std::int64_t created_ms = 0;  ///< when the create was recorded, Unix milliseconds
    std::string id{};  ///< empty until the create was answered

    /// One line of the file: a flat object with the seven fields.
    nlohmann::json to_json() const {
        return {{"provider", provider}, {"token", token}, {"sid", sid}, {"host", host},
                {"pid", pid},           {"created_ms", created_ms}, {"id", id}};
    }
    /// Reads a line back; nullopt when it is not an object or lacks provider or token
    /// (fields of the wrong type are left empty or 0).
    static std::optional<LeaseEntry> from_json(const nlohmann::json& j) {
        if (!j.is_object()) return std::nullopt;
        LeaseEntry e;
        auto text = [&](const char* key) { return j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : std::string(); };
        e.provider = text("provider");
        e.token = text("token");
        e.sid = text("sid");
        e.host = text("host");
        e.id = text("id");
        if (j.contains("pid") && j["pid"].is_number_integer()) e.pid = j["pid"].get<long>();
        if (j.contains("created_ms") && j["created_ms"].is_number_integer()) e.created_ms = j["created_ms"].get<std::int64_t>();
        if (e.provider.empty() || e.token.empty()) return std::nullopt;
        return e;
    }
    /// The entry as an Ownership (owner empty), for holder_of().
    Ownership ownership() const { return Ownership{{}, host, pid, created_ms, token}; }
};

/// The lease file: runtimes in several processes can share one (each change is a locked
/// read-modify-write, replaced by rename, so a killed process never leaves a torn file).
class LeaseFile {
public:
    static constexpr std::size_t max_bytes = 4 * 1024 * 1024;  ///< a larger file is refused

    /// Names the file; nothing is opened until the first call. Every call locks `<path>.lock`
    /// (flock) and may throw runbox::error errc::config_invalid when the file or its lock cannot
    /// be opened, read, written or replaced, or the file exceeds max_bytes.
    explicit LeaseFile(std::filesystem::path path) : path_(std::move(path)) {}

    /// The file's path.
    const std::filesystem::path& path() const noexcept { return path_; }

    /// Adds the entry, or replaces the one with the same token.
    void put(const LeaseEntry& entry) {
        update([&](std::vector<LeaseEntry>& all) {
            for (auto& e : all) {
                if (e.token == entry.token) {
                    e = entry;
                    return;
                }
            }
            all.push_back(entry);
        });
    }
    /// Removes the entry with this token (none: no change).
    void remove(const std::string& token) {
        update([&](std::vector<LeaseEntry>& all) { std::erase_if(all, [&](const LeaseEntry& e) { return e.token == token; }); });
    }
    /// Every valid entry, in file order (lines that do not parse are skipped).
    std::vector<LeaseEntry> entries() const {
        std::vector<LeaseEntry> out;
        const_cast<LeaseFile*>(this)->update([&](std::vector<LeaseEntry>& all) { out = all; }, false);
        return out;
    }

private:
    struct Fd {
        int fd = -1;
        ~Fd() {
            if (fd >= 0) ::close(fd);
        }
    };

    // Read-modify-write under an exclusive flock of "<path>.lock"; the new content is written to
    // a temporary file and renamed over the old one, so a process killed at any point leaves
    // either the old or the new file, never a torn one.
    template <class Change>
    void update(Change&& change, bool write = true) {
        const std::string lock_path = path_.string() + ".lock";
        Fd lock;
        lock.fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (lock.fd < 0) throw error(errc::config_invalid, "cannot open the lease lock " + lock_path);
        while (::flock(lock.fd, LOCK_EX) != 0) {
            if (errno != EINTR) throw error(errc::config_invalid, "cannot lock the lease file " + path_.string());
        }
        std::string text;
        {
            Fd in;
            in.fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC);
            char buffer[65536];
            while (in.fd >= 0) {
                const ssize_t n = ::read(in.fd, buffer, sizeof buffer);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) break;
                text.append(buffer, static_cast<std::size_t>(n));
                if (text.size() > max_bytes)
                    throw error(errc::config_invalid, "the lease file " + path_.string() + " is too large");
            }
        }
        std::vector<LeaseEntry> all;
        std::size_t start = 0;
        while (start < text.size()) {
            std::size_t end = text.find('\n', start);
            if (end == std::string::npos) end = text.size();
            // One flat object per line; a line that does not parse is dropped.
            auto j = nlohmann::json::parse(text.begin() + static_cast<std::ptrdiff_t>(start),
                                           text.begin() + static_cast<std::ptrdiff_t>(end), nullptr, false);
            if (auto e = LeaseEntry::from_json(j)) all.push_back(std::move(*e));
            start = end + 1;
        }
        change(all);
        if (!write) return;
        std::string out;
        for (const auto& e : all) out += e.to_json().dump() + "\n";
        const std::string temp = path_.string() + ".tmp" + std::to_string(::getpid());
        {
            Fd f;
            f.fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
            if (f.fd < 0) throw error(errc::config_invalid, "cannot write the lease file " + path_.string());
            std::size_t done = 0;
            while (done < out.size()) {
                const ssize_t n = ::write(f.fd, out.data() + done, out.size() - done);
                if (n < 0 && errno == EINTR) continue;
                if (n <= 0) throw error(errc::config_invalid, "cannot write the lease file " + path_.string());
                done += static_cast<std::size_t>(n);
            }
        }
        if (::rename(temp.c_str(), path_.c_str()) != 0) {
            ::unlink(temp.c_str());
            throw error(errc::config_invalid, "cannot replace the lease file " + path_.string());
        }
    }

    std::filesystem::path path_;
};

}  // namespace runbox
