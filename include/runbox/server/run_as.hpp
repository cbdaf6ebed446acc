/// \file
/// who the sandbox's processes run as: the user database lookup, whether that user may execute
/// a file, and the PATH lookup (like execvp, but done before fork and for that user).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "runbox/detail/linkage.hpp"

namespace runbox::server::detail {

/// Who the shells run as when the server (root) was told to switch user.
struct RunAs {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string home;
    std::vector<gid_t> groups;
};

/// The account `username` from the user database (uid, gid, home, supplementary groups), or
/// nullopt when there is none.
RUNBOX_DECL std::optional<RunAs> lookup_user(const std::string& username);

/// Resolves `username` when a switch is possible and needed: root asked to run as another
/// user. Throws when that user does not exist.
RUNBOX_DECL std::optional<RunAs> resolve_run_as(const std::string& username);

/// Whether `user` may execute `path`: search permission on every directory leading to it (and
/// to its symlink target) and read+execute on the file. access() cannot answer this for another
/// user while we are root (e.g. a pyenv python under /root is useless to "openhands").
RUNBOX_DECL bool can_execute_as(const std::string& path, const RunAs& user);

/// PATH lookup like execvp, done before fork (the child may only make async-signal-safe calls).
/// With `user`, only candidates that user can execute count.
RUNBOX_DECL std::optional<std::string> find_executable(const std::string& name, const std::string& path_value,
                                                       const std::optional<RunAs>& user = std::nullopt);

}  // namespace runbox::server::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/run_as.ipp"
#endif
