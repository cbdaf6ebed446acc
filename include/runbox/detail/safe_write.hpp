/// \file
/// writing uploads without following symbolic links.
///
/// An upload may only write where it was told: a symbolic link already sitting at the target
/// (or at a directory inside an archive's destination) could point anywhere, so every
/// component below the destination is opened with openat(O_NOFOLLOW) from the directory above
/// it, and files are opened O_NOFOLLOW|O_NONBLOCK and must be regular (a FIFO would block).
#pragma once

#include "runbox/error.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <string_view>
#include <system_error>

namespace runbox::detail {

/// An owned file descriptor.
class UniqueFd {
public:
    UniqueFd() = default;
    /// Takes ownership of `fd` (-1: none).
    explicit UniqueFd(int fd) noexcept : fd_(fd) {}
    /// Takes over `other`'s descriptor.
    UniqueFd(UniqueFd&& other) noexcept : fd_(other.release()) {}
    /// Closes this descriptor, then takes over `other`'s.
    UniqueFd& operator=(UniqueFd&& other) noexcept {
        if (this != &other) {
            reset();
            fd_ = other.release();
        }
        return *this;
    }
    UniqueFd(const UniqueFd&) = delete;
    UniqueFd& operator=(const UniqueFd&) = delete;
    ~UniqueFd() { reset(); }
    /// The descriptor (-1: none); still owned.
    int get() const noexcept { return fd_; }
    /// Gives up ownership and returns the descriptor.
    int release() noexcept {
        const int fd = fd_;
        fd_ = -1;
        return fd;
    }
    /// Closes the descriptor, if any.
    void reset() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

private:
    int fd_ = -1;
};

[[noreturn]] inline void safe_write_fail(int err, const std::filesystem::path& path, const char* what) {
    if (err == ELOOP) {
        throw runbox::error(errc::conflict, "refusing to write through the symbolic link " + path.string());
    }
    throw std::filesystem::filesystem_error(what, path, std::error_code(err, std::generic_category()));
}

/// Opens the existing directory `path`, refusing it when its last component is a symbolic link.
inline UniqueFd open_directory_nofollow(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) safe_write_fail(errno == ENOTDIR && std::filesystem::is_symlink(path) ? ELOOP : errno, path, "open");
    return UniqueFd(fd);
}

/// Opens (creating when missing) the directory `name` inside `parent`, never through a link.
/// `created` is set when this call made it.
inline UniqueFd open_subdirectory(int parent, const std::string& name, const std::filesystem::path& shown,
                                  bool* created = nullptr) {
    if (::mkdirat(parent, name.c_str(), 0777) == 0) {
        if (created != nullptr) *created = true;
    } else if (errno != EEXIST) {
        safe_write_fail(errno, shown, "mkdir");
    }
    const int fd = ::openat(parent, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        struct stat st {};
        const bool link = ::fstatat(parent, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
        safe_write_fail(link ? ELOOP : errno, shown, "open");
    }
    return UniqueFd(fd);
}

/// Creates or truncates the regular file `name` inside `dir` and returns it open for writing.
/// A symbolic link there is refused (or, with `replace_links`, removed first: never followed);
/// a FIFO, device or socket is refused untouched.
inline UniqueFd create_file_at(int dir, const std::string& name, const std::filesystem::path& shown,
                               bool replace_links = false, mode_t mode = 0666) {
    struct stat st {};
    if (replace_links && ::fstatat(dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode)) {
        if (::unlinkat(dir, name.c_str(), 0) != 0) safe_write_fail(errno, shown, "unlink");
    }
    const int fd = ::openat(dir, name.c_str(), O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, mode);
    if (fd < 0) {
        if (errno == ENXIO) {  // a FIFO without a reader
            throw runbox::error(errc::conflict, "refusing to write " + shown.string() + ": not a regular file");
        }
        safe_write_fail(errno, shown, "open");
    }
    UniqueFd file(fd);
    if (::fstat(fd, &st) != 0) safe_write_fail(errno, shown, "stat");
    if (!S_ISREG(st.st_mode)) {
        throw runbox::error(errc::conflict, "refusing to write " + shown.string() + ": not a regular file");
    }
    if (::ftruncate(fd, 0) != 0) safe_write_fail(errno, shown, "truncate");
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return file;
}

/// Writes all of `data` to `fd`.
inline void write_all(int fd, std::string_view data, const std::filesystem::path& shown) {
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) safe_write_fail(errno, shown, "write");
        done += static_cast<std::size_t>(n);
    }
}

}  // namespace runbox::detail
