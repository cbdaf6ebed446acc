/// \file
/// Definitions of runbox/lifecycle.hpp (included by the header when header-only; by
/// runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/lifecycle.hpp"

#include "runbox/detail/json.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <mutex>
#include <string_view>
#include <set>

namespace runbox {

namespace detail {

RUNBOX_DECL std::string this_host() {
    char name[256] = {};
    if (::gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

RUNBOX_DECL std::int64_t unix_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

RUNBOX_DECL std::int64_t to_int64(const std::string& text, std::int64_t fallback) {
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

RUNBOX_DECL Ownership Ownership::make(const Config& config, std::string token) {
    Ownership o;
    o.host = detail::this_host();
    o.owner = config.runbox_owner.value_or(o.host);
    o.pid = static_cast<long>(::getpid());
    o.created_ms = detail::unix_ms_now();
    o.token = std::move(token);
    return o;
}

RUNBOX_DECL std::map<std::string, std::string> Ownership::labels() const {
    return {{std::string(labels::managed), "1"},
            {std::string(labels::owner), owner},
            {std::string(labels::host), host},
            {std::string(labels::pid), std::to_string(pid)},
            {std::string(labels::created_ms), std::to_string(created_ms)},
            {std::string(labels::token), token}};
}

RUNBOX_DECL SandboxRecord SandboxRecord::from_labels(std::string provider, std::string id, std::string state, std::string sid,
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

RUNBOX_DECL bool is_runbox_managed(const std::map<std::string, std::string>& map) {
    const auto it = map.find(std::string(labels::managed));
    return it != map.end() && it->second == "1";
}

RUNBOX_DECL bool Ownership::matches(const std::map<std::string, std::string>& map) const {
    const auto it = map.find(std::string(labels::token));
    return !token.empty() && it != map.end() && it->second == token && is_runbox_managed(map);
}

RUNBOX_DECL std::map<std::string, std::string> label_map(const nlohmann::json& json) {
    std::map<std::string, std::string> out;
    if (!json.is_object()) return out;
    for (const auto& [key, value] : json.items()) {
        if (value.is_string()) out[key] = value.get<std::string>();
    }
    return out;
}

RUNBOX_DECL LiveHold::LiveHold(std::string token) : token_(std::move(token)) {
    auto& r = detail::live_registry();
    std::lock_guard lock(r.mutex);
    r.tokens.insert(token_);
}

RUNBOX_DECL void LiveHold::reset() noexcept {
    if (token_.empty()) return;
    auto& r = detail::live_registry();
    std::lock_guard lock(r.mutex);
    if (auto it = r.tokens.find(token_); it != r.tokens.end()) r.tokens.erase(it);
    token_.clear();
}

RUNBOX_DECL Holder holder_of(const Ownership& o) {
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

RUNBOX_DECL nlohmann::json LeaseEntry::to_json() const {
    return {{"provider", provider}, {"token", token}, {"sid", sid}, {"host", host},
            {"pid", pid},           {"created_ms", created_ms}, {"id", id}};
}

RUNBOX_DECL std::optional<LeaseEntry> LeaseEntry::from_json(const nlohmann::json& j) {
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

RUNBOX_DECL void LeaseFile::put(const LeaseEntry& entry) {
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

RUNBOX_DECL void LeaseFile::remove(const std::string& token) {
    update([&](std::vector<LeaseEntry>& all) { std::erase_if(all, [&](const LeaseEntry& e) { return e.token == token; }); });
}

RUNBOX_DECL std::vector<LeaseEntry> LeaseFile::entries() const {
    std::vector<LeaseEntry> out;
    const_cast<LeaseFile*>(this)->update([&](std::vector<LeaseEntry>& all) { out = all; }, false);
    return out;
}

RUNBOX_DECL void LeaseFile::update(const std::function<void(std::vector<LeaseEntry>&)>& change, bool write) {
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
        auto j = detail::parse_untrusted_json(std::string_view(text).substr(start, end - start));
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
            if (n <= 0) {
                ::unlink(temp.c_str());  // a full disk leaves no temporary file behind
                throw error(errc::config_invalid, "cannot write the lease file " + path_.string());
            }
            done += static_cast<std::size_t>(n);
        }
    }
    if (::rename(temp.c_str(), path_.c_str()) != 0) {
        ::unlink(temp.c_str());
        throw error(errc::config_invalid, "cannot replace the lease file " + path_.string());
    }
}

RUNBOX_DECL LeaseFile::Fd::~Fd() {
    if (fd >= 0) ::close(fd);
}

}  // namespace runbox
