/// \file
/// zip archives for /upload_file and /download_files (libzip).
///
/// Used on both sides of the wire: the action server extracts uploaded archives and zips
/// directories for download; the client zips a directory for a recursive copy_to and
/// extracts what copy_from returns.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"

namespace runbox {

/// How a directory is zipped.
struct ZipOptions {
    /// false: archive names are relative to the zipped directory (what /download_files sends);
    /// true: names start with the directory's own name ("dir/a.txt"), so extracting into a
    /// destination recreates the directory there (what a recursive copy_to uploads).
    bool include_top_dir = false;
    /// Also store directory entries ("sub/"), so empty directories survive the round trip.
    /// OpenHands' download walks files only, so the server leaves this off.
    bool include_directories = false;
    /// The files' total size may not exceed this (errc::quota_exceeded before anything is
    /// written): the archive is built in a temp file first, which must stay bounded.
    std::uintmax_t max_total_bytes = static_cast<std::uintmax_t>(-1);
};

/// Writes a zip of `source` to `archive_path` (overwriting it). Regular files (and symlinks to
/// regular files, stored as their content) are stored; symlinked directories are not followed;
/// other file types are skipped. A regular file as `source` yields an empty archive unless
/// `include_top_dir` is set (then it is stored under its own name), matching a directory walk.
RUNBOX_DECL void zip_tree(const std::filesystem::path& source, const std::filesystem::path& archive_path,
                          ZipOptions options = {});

/// Entry names of an archive, in archive order.
RUNBOX_DECL std::vector<std::string> zip_entry_names(const std::filesystem::path& archive_path);

/// Extracts `archive_path` into `destination` (created if missing). The whole archive is
/// checked first: an absolute entry name or one with a ".." component rejects it before
/// anything is written. Symlink entries are written as regular files holding the link text
/// (never as links), so an archive cannot plant a link that points outside `destination`.
/// Nothing is written through a link already there: `destination` itself must not be one,
/// every directory below it is opened with O_NOFOLLOW (a link is refused), and a link where a
/// file goes is replaced by the file.
RUNBOX_DECL void extract_zip(const std::filesystem::path& archive_path, const std::filesystem::path& destination);

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/zip.ipp"
#endif
