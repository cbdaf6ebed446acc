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

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/config.hpp"
#include "runbox/detail/linkage.hpp"
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

/// This host's name (gethostname; "localhost" when it fails).
RUNBOX_DECL std::string this_host();

/// Now, in Unix milliseconds.
RUNBOX_DECL std::int64_t unix_ms_now();

/// `text` as a whole decimal integer, else `fallback`.
RUNBOX_DECL std::int64_t to_int64(const std::string& text, std::int64_t fallback);

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
    static Ownership make(const Config& config, std::string token);

    /// The six labels (labels::managed = "1" and the five fields), as the provider stores them.
    std::map<std::string, std::string> labels() const;

    /// Whether a sandbox's label map names this create (labels::managed and this token). A lookup
    /// by token checks every item it is given: an API that ignores the filter must not hand
    /// runbox someone else's sandbox to adopt and later delete.
    bool matches(const std::map<std::string, std::string>& map) const;
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
                                     const std::map<std::string, std::string>& map);
};

/// Whether a label map marks a sandbox as runbox's.
RUNBOX_DECL bool is_runbox_managed(const std::map<std::string, std::string>& map);

/// A string->string view of a JSON object of labels (non-string values are skipped).
RUNBOX_DECL std::map<std::string, std::string> label_map(const nlohmann::json& json);

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
    explicit LiveHold(std::string token);
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
    void reset() noexcept;

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
RUNBOX_DECL Holder holder_of(const Ownership& o);

/// Whether a failed create may nevertheless have been performed by the API: the answer was lost
/// (dropped connection, timeout), a gateway failed after forwarding it (5xx), or it came back in
/// a form runbox cannot use (bad_response: not JSON, no id, a gRPC answer without its status).
/// A lookup too many costs one list call; one too few leaves a sandbox nobody knows of.
inline bool answer_may_be_lost(const error& e) {
    return e.code() == errc::transport || e.code() == errc::timeout || e.code() == errc::server_error ||
           e.code() == errc::bad_response;
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
    nlohmann::json to_json() const;
    /// Reads a line back; nullopt when it is not an object or lacks provider or token
    /// (fields of the wrong type are left empty or 0).
    static std::optional<LeaseEntry> from_json(const nlohmann::json& j);
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
    void put(const LeaseEntry& entry);
    /// Removes the entry with this token (none: no change).
    void remove(const std::string& token);
    /// Every valid entry, in file order (lines that do not parse are skipped).
    std::vector<LeaseEntry> entries() const;

private:
    struct Fd {
        int fd = -1;
        ~Fd();
    };

    // Read-modify-write under an exclusive flock of "<path>.lock"; the new content is written to
    // a temporary file and renamed over the old one, so a process killed at any point leaves
    // either the old or the new file, never a torn one.
    void update(const std::function<void(std::vector<LeaseEntry>&)>& change, bool write = true);

    std::filesystem::path path_;
};

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/lifecycle.ipp"
#endif
