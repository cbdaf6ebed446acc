/// \file
/// Definitions of runbox/zip.hpp: everything that touches libzip (included by the header when
/// header-only; by runbox/src.hpp in compiled mode, so zip.h stays out of the users' units).
#pragma once

#include "runbox/zip.hpp"

#include <zip.h>

#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string_view>
#include <system_error>
#include <utility>

#include "runbox/detail/safe_write.hpp"

namespace runbox {

namespace detail {

struct ZipCloser {
    void operator()(zip_t* archive) const noexcept { zip_discard(archive); }
};
struct ZipFileCloser {
    void operator()(zip_file_t* file) const noexcept { zip_fclose(file); }
};
using ZipHandle = std::unique_ptr<zip_t, ZipCloser>;
using ZipFileHandle = std::unique_ptr<zip_file_t, ZipFileCloser>;

inline std::string libzip_error_text(int code) {
    zip_error_t err;
    zip_error_init_with_code(&err, code);
    std::string text = zip_error_strerror(&err);
    zip_error_fini(&err);
    return text;
}

inline ZipHandle open_archive(const std::filesystem::path& path, int flags) {
    int code = 0;
    zip_t* archive = zip_open(path.c_str(), flags, &code);
    if (archive == nullptr) {
        throw runbox::error(errc::bad_response,
                            "cannot open zip archive " + path.string() + ": " + libzip_error_text(code));
    }
    return ZipHandle(archive);
}

/// True when an archive entry name could land outside the extraction directory:
/// absolute names, drive letters, and any ".." component (with either slash).
inline bool unsafe_entry_name(std::string_view name) {
    if (name.empty()) return false;
    if (name.front() == '/' || name.front() == '\\') return true;
    if (name.size() >= 2 && name[1] == ':') return true;  // "C:..." written on Windows
    std::size_t start = 0;
    while (start <= name.size()) {
        const auto end = name.find_first_of("/\\", start);
        const auto part = name.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
        if (part == "..") return true;
        if (end == std::string_view::npos) break;
        start = end + 1;
    }
    return false;
}

// libzip refuses to write an archive without entries (zip_close removes the file), yet an
// empty directory download must still be a valid zip: the 22-byte end-of-central-directory
// record alone is one.
inline void write_empty_zip(const std::filesystem::path& path) {
    static constexpr char eocd[22] = {'P', 'K', 5, 6};
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(eocd, sizeof eocd);
    if (!out) throw runbox::error(errc::bad_response, "cannot write zip archive " + path.string());
}

inline void add_file_entry(zip_t* archive, const std::filesystem::path& file, const std::string& name) {
    zip_error_t err;
    zip_error_init(&err);
    zip_source_t* source = zip_source_file_create(file.c_str(), 0, -1, &err);
    if (source == nullptr) {
        std::string text = zip_error_strerror(&err);
        zip_error_fini(&err);
        throw runbox::error(errc::bad_response, "cannot read " + file.string() + ": " + text);
    }
    zip_error_fini(&err);
    const zip_int64_t index = zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8 | ZIP_FL_OVERWRITE);
    if (index < 0) {
        zip_source_free(source);
        throw runbox::error(errc::bad_response, "cannot add " + name + " to zip: " + zip_strerror(archive));
    }
    // Keep the permission bits (executables stay executable after extraction).
    struct stat st {};
    if (::stat(file.c_str(), &st) == 0) {
        const auto mode = static_cast<zip_uint32_t>((st.st_mode & 07777) | S_IFREG);
        zip_file_set_external_attributes(archive, static_cast<zip_uint64_t>(index), 0, ZIP_OPSYS_UNIX, mode << 16);
    }
}

}  // namespace detail

RUNBOX_DECL void zip_tree(const std::filesystem::path& source, const std::filesystem::path& archive_path,
                          ZipOptions options) {
    namespace fs = std::filesystem;
    std::error_code ec;
    const auto status = fs::status(source, ec);
    if (ec || !fs::exists(status)) {
        throw runbox::error(errc::not_found, "no such file or directory: " + source.string());
    }
    const std::string top = source.lexically_normal().filename().empty()
                                ? source.lexically_normal().parent_path().filename().string()
                                : source.lexically_normal().filename().string();
    const std::string prefix = options.include_top_dir && !top.empty() ? top + "/" : std::string();

    std::vector<std::pair<fs::path, std::string>> files;  // (disk path, archive name)
    std::vector<std::string> dirs;
    if (fs::is_regular_file(status)) {
        if (options.include_top_dir) files.emplace_back(source, top);
    } else if (fs::is_directory(status)) {
        if (options.include_directories && !prefix.empty()) dirs.push_back(prefix);
        fs::recursive_directory_iterator it(source, fs::directory_options::skip_permission_denied, ec);
        if (ec) throw fs::filesystem_error("cannot list directory", source, ec);
        for (const fs::recursive_directory_iterator end; it != end; it.increment(ec)) {
            if (ec) throw fs::filesystem_error("cannot list directory", source, ec);
            const auto name = prefix + it->path().lexically_relative(source).generic_string();
            std::error_code entry_ec;
            if (it->is_directory(entry_ec)) {
                if (it->is_symlink(entry_ec)) {
                    it.disable_recursion_pending();  // never follow a link out of the tree
                    continue;
                }
                if (options.include_directories) dirs.push_back(name + "/");
            } else if (it->is_regular_file(entry_ec)) {
                files.emplace_back(it->path(), name);
            }
        }
    } else {
        throw runbox::error(errc::not_found, "not a file or directory: " + source.string());
    }

    std::uintmax_t total = 0;
    for (const auto& [path, name] : files) {
        std::error_code size_ec;
        const auto size = fs::file_size(path, size_ec);
        if (!size_ec) total += size;
        if (total > options.max_total_bytes) {
            throw runbox::error(errc::quota_exceeded, "the files under " + source.string() + " are larger than the limit of " +
                                                          std::to_string(options.max_total_bytes) + " bytes");
        }
    }
    if (files.empty() && dirs.empty()) {
        detail::write_empty_zip(archive_path);
        return;
    }
    std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
    std::sort(dirs.begin(), dirs.end());
    auto archive = detail::open_archive(archive_path, ZIP_CREATE | ZIP_TRUNCATE);
    for (const auto& dir : dirs) {
        if (zip_dir_add(archive.get(), dir.c_str(), ZIP_FL_ENC_UTF_8) < 0) {
            throw runbox::error(errc::bad_response, "cannot add " + dir + " to zip: " + zip_strerror(archive.get()));
        }
    }
    for (const auto& [path, name] : files) detail::add_file_entry(archive.get(), path, name);
    if (zip_close(archive.get()) != 0) {
        throw runbox::error(errc::bad_response,
                            "cannot write zip archive " + archive_path.string() + ": " + zip_strerror(archive.get()));
    }
    (void)archive.release();  // zip_close freed it
}

RUNBOX_DECL std::vector<std::string> zip_entry_names(const std::filesystem::path& archive_path) {
    auto archive = detail::open_archive(archive_path, ZIP_RDONLY);
    const zip_int64_t count = zip_get_num_entries(archive.get(), 0);
    std::vector<std::string> names;
    for (zip_int64_t i = 0; i < count; ++i) {
        const char* name = zip_get_name(archive.get(), static_cast<zip_uint64_t>(i), ZIP_FL_ENC_GUESS);
        if (name != nullptr) names.emplace_back(name);
    }
    return names;
}

RUNBOX_DECL void extract_zip(const std::filesystem::path& archive_path, const std::filesystem::path& destination,
                             ExtractOptions options) {
    namespace fs = std::filesystem;
    auto archive = detail::open_archive(archive_path, ZIP_RDONLY);
    const zip_int64_t count = std::max<zip_int64_t>(zip_get_num_entries(archive.get(), 0), 0);
    const auto too_large = [&] {
        return runbox::error(errc::quota_exceeded, "the zip archive " + archive_path.filename().string() +
                                                       " extracts to more than the limit of " +
                                                       std::to_string(options.max_total_bytes) + " bytes");
    };
    if (static_cast<std::uintmax_t>(count) > options.max_entries) {
        throw runbox::error(errc::quota_exceeded, "the zip archive " + archive_path.filename().string() + " has " +
                                                      std::to_string(count) + " entries, more than the limit of " +
                                                      std::to_string(options.max_entries));
    }
    std::vector<std::string> names;
    names.reserve(static_cast<std::size_t>(count));
    std::uintmax_t declared = 0;
    for (zip_int64_t i = 0; i < count; ++i) {
        const char* name = zip_get_name(archive.get(), static_cast<zip_uint64_t>(i), ZIP_FL_ENC_GUESS);
        if (name == nullptr) throw runbox::error(errc::bad_response, "unreadable entry name in zip archive");
        if (detail::unsafe_entry_name(name)) {
            throw runbox::error(errc::bad_response, std::string("unsafe entry name in zip archive: ") + name);
        }
        zip_stat_t st;
        zip_stat_init(&st);
        if (zip_stat_index(archive.get(), static_cast<zip_uint64_t>(i), 0, &st) == 0 && (st.valid & ZIP_STAT_SIZE) != 0) {
            declared += std::min<std::uintmax_t>(st.size, options.max_total_bytes);  // no wrap-around
            if (declared > options.max_total_bytes) throw too_large();
        }
        names.emplace_back(name);
    }
    std::uintmax_t written = 0;
    fs::create_directories(destination);
    const detail::UniqueFd root = detail::open_directory_nofollow(destination);
    std::vector<char> buffer(64 * 1024);
    for (zip_int64_t i = 0; i < count; ++i) {
        const auto& name = names[static_cast<std::size_t>(i)];
        if (name.empty()) continue;
        const bool is_dir = name.back() == '/' || name.back() == '\\';
        // Walk the components with openat from the destination, never following a link.
        std::vector<std::string> parts;
        for (const auto& part : fs::path(name).relative_path()) {
            const auto text = part.string();
            if (!text.empty() && text != ".") parts.push_back(text);
        }
        if (parts.empty()) continue;
        const fs::path target = destination / fs::path(name).relative_path();
        detail::UniqueFd dir;
        int at = root.get();
        fs::path walked = destination;
        const std::size_t dir_parts = is_dir ? parts.size() : parts.size() - 1;
        for (std::size_t k = 0; k < dir_parts; ++k) {
            walked /= parts[k];
            dir = detail::open_subdirectory(at, parts[k], walked);
            at = dir.get();
        }
        if (is_dir) continue;
        detail::ZipFileHandle entry(zip_fopen_index(archive.get(), static_cast<zip_uint64_t>(i), 0));
        if (!entry) {
            throw runbox::error(errc::bad_response, "cannot read " + name + " from zip: " + zip_strerror(archive.get()));
        }
        const detail::UniqueFd out = detail::create_file_at(at, parts.back(), target, /*replace_links=*/true);
        for (;;) {
            const zip_int64_t n = zip_fread(entry.get(), buffer.data(), buffer.size());
            if (n < 0) throw runbox::error(errc::bad_response, "corrupt zip entry " + name);
            if (n == 0) break;
            written += static_cast<std::uintmax_t>(n);
            if (written > options.max_total_bytes) throw too_large();
            detail::write_all(out.get(), std::string_view(buffer.data(), static_cast<std::size_t>(n)), target);
        }
        zip_uint8_t opsys = 0;
        zip_uint32_t attributes = 0;
        if (zip_file_get_external_attributes(archive.get(), static_cast<zip_uint64_t>(i), 0, &opsys, &attributes) == 0 &&
            opsys == ZIP_OPSYS_UNIX) {
            const auto mode = static_cast<mode_t>(attributes >> 16);
            if (S_ISREG(mode) && (mode & 0777) != 0) ::fchmod(out.get(), mode & 0777);  // setuid bits never
        }
    }
}

}  // namespace runbox
