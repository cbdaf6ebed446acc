#pragma once

#include "runbox/server/run_as.hpp"

#include "runbox/error.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <system_error>

namespace runbox::server::detail {

RUNBOX_DECL std::optional<RunAs> lookup_user(const std::string& username) {
    std::vector<char> buffer(16384);
    struct passwd pw {};
    struct passwd* found = nullptr;
    if (::getpwnam_r(username.c_str(), &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr) {
        return std::nullopt;
    }
    RunAs user{username, pw.pw_uid, pw.pw_gid, pw.pw_dir != nullptr ? pw.pw_dir : "/", {}};
    int count = 64;
    user.groups.resize(static_cast<std::size_t>(count));
    if (::getgrouplist(username.c_str(), pw.pw_gid, user.groups.data(), &count) < 0) {
        user.groups.resize(static_cast<std::size_t>(count));
        ::getgrouplist(username.c_str(), pw.pw_gid, user.groups.data(), &count);
    }
    user.groups.resize(static_cast<std::size_t>(std::max(count, 0)));
    return user;
}

RUNBOX_DECL std::optional<RunAs> resolve_run_as(const std::string& username) {
    if (username.empty() || ::geteuid() != 0) return std::nullopt;
    auto user = lookup_user(username);
    if (!user) throw runbox::error(errc::config_invalid, "user '" + username + "' does not exist");
    if (user->uid == 0) return std::nullopt;
    return user;
}

RUNBOX_DECL bool can_execute_as(const std::string& path, const RunAs& user) {
    const auto allowed = [&](const struct stat& st, mode_t need_owner, mode_t need_group, mode_t need_other) {
        if (st.st_uid == user.uid) return (st.st_mode & need_owner) == need_owner;
        const bool in_group = st.st_gid == user.gid ||
                              std::find(user.groups.begin(), user.groups.end(), st.st_gid) != user.groups.end();
        if (in_group) return (st.st_mode & need_group) == need_group;
        return (st.st_mode & need_other) == need_other;
    };
    const auto chain_ok = [&](const std::filesystem::path& file) {
        std::filesystem::path dir;
        for (auto it = file.begin(); it != file.end(); ++it) {
            dir /= *it;
            if (dir == file) break;
            struct stat st {};
            if (::stat(dir.c_str(), &st) != 0 || !allowed(st, S_IXUSR, S_IXGRP, S_IXOTH)) return false;
        }
        struct stat st {};
        return ::stat(file.c_str(), &st) == 0 && allowed(st, S_IRUSR | S_IXUSR, S_IRGRP | S_IXGRP, S_IROTH | S_IXOTH);
    };
    std::error_code ec;
    const auto target = std::filesystem::canonical(path, ec);
    return !ec && chain_ok(std::filesystem::absolute(path)) && chain_ok(target);
}

RUNBOX_DECL std::optional<std::string> find_executable(const std::string& name, const std::string& path_value,
                                                       const std::optional<RunAs>& user) {
    const auto usable = [&](const std::string& candidate) {
        return ::access(candidate.c_str(), X_OK) == 0 && (!user || can_execute_as(candidate, *user));
    };
    if (name.find('/') != std::string::npos) return usable(name) ? std::optional(name) : std::nullopt;
    std::size_t start = 0;
    while (start <= path_value.size()) {
        const auto end = path_value.find(':', start);
        std::string dir = path_value.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dir.empty()) dir = ".";
        const std::string candidate = dir + "/" + name;
        if (usable(candidate)) return candidate;
        if (end == std::string::npos) break;
        start = end + 1;
    }
    return std::nullopt;
}

}  // namespace runbox::server::detail
