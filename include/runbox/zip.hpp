/// \file
/// zip archives for /upload_file and /download_files (libzip).
///
/// Used on both sides of the wire: the action server extracts uploaded archives and zips
/// directories for download; the client zips a directory for a recursive copy_to, and a
/// program may extract what copy_from returns (an archive its sandbox wrote: hence the
/// bounds of ExtractOptions).
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

/// Bounds on what extracting one archive may write: a few kilobytes of deflated zeros can
/// declare gigabytes. Past a bound is errc::quota_exceeded.
struct ExtractOptions {
    /// The entries' uncompressed sizes may add up to at most this. Checked against the sizes the
    /// archive declares before anything is written, and against the bytes inflated while
    /// writing (a declared size can lie: then what was written before the bound stays).
    std::uintmax_t max_total_bytes = std::uintmax_t{4} << 30;
    /// At most this many entries (files and directories), checked before anything is written.
    std::uintmax_t max_entries = 1'000'000;
};

/// Entry names of an archive, in archive order.
RUNBOX_DECL std::vector<std::string> zip_entry_names(const std::filesystem::path& archive_path);

/// Extracts `archive_path` into `destination` (created if missing). The whole archive is
/// checked first: an absolute entry name or one with a ".." component rejects it before
/// anything is written. Symlink entries are written as regular files holding the link text
/// (never as links), so an archive cannot plant a link that points outside `destination`.
/// Nothing is written through a link already there: `destination` itself must not be one,
/// every directory below it is opened with O_NOFOLLOW (a link is refused), and a link where a
/// file goes is replaced by the file. `options` bounds the number of entries and the bytes
/// written (errc::quota_exceeded).
RUNBOX_DECL void extract_zip(const std::filesystem::path& archive_path, const std::filesystem::path& destination,
                             ExtractOptions options = {});

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/zip.ipp"
#endif
