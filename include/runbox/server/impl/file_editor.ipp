#pragma once

#include "runbox/server/file_editor.hpp"

#include "runbox/detail/base64.hpp"
#include "runbox/detail/python.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <limits>
#include <system_error>
#include <unordered_map>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

namespace runbox::server::detail {

RUNBOX_DECL bool path_exists(const std::string& p) noexcept {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
}

RUNBOX_DECL bool path_is_dir(const std::string& p) noexcept {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

RUNBOX_DECL bool path_is_file(const std::string& p) noexcept {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

RUNBOX_DECL std::string maybe_truncate(std::string content, std::string_view notice, std::size_t limit) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < content.size(); ++i) {
        if ((static_cast<unsigned char>(content[i]) & 0xC0) == 0x80) continue;
        if (seen == limit) {
            content.resize(i);
            content += notice;
            return content;
        }
        ++seen;
    }
    return content;
}

RUNBOX_DECL std::string py_path(std::string_view p) {
    std::string root;
    if (p.size() >= 2 && p[0] == '/' && p[1] == '/' && (p.size() == 2 || p[2] != '/')) {
        root = "//";
    } else if (!p.empty() && p[0] == '/') {
        root = "/";
    }
    std::string out = root;
    bool first = true;
    for (const auto& part : split(p, '/')) {
        if (part.empty() || part == ".") continue;
        if (!first) out.push_back('/');
        out += part;
        first = false;
    }
    if (out.empty()) return ".";
    return out;
}

RUNBOX_DECL std::string join_path(std::string_view base, std::string_view rel) {
    if (is_absolute(rel) || base.empty()) return py_path(rel);
    std::string joined(base);
    joined += '/';
    joined += rel;
    return py_path(joined);
}

RUNBOX_DECL std::string dirname(std::string_view p) {
    const auto pos = p.rfind('/');
    if (pos == std::string_view::npos) return {};
    std::string head(p.substr(0, pos + 1));
    // Strip trailing slashes unless the head is all slashes.
    if (head.find_first_not_of('/') != std::string::npos) {
        while (!head.empty() && head.back() == '/') head.pop_back();
    }
    return head;
}

RUNBOX_DECL std::string suffix_lower(std::string_view p) {
    const auto slash = p.rfind('/');
    const auto name = slash == std::string_view::npos ? p : p.substr(slash + 1);
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0 || dot + 1 == name.size()) return {};
    std::string ext(name.substr(dot));
    for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return ext;
}

RUNBOX_DECL int open_regular(const std::string& path, int flags, int& err, mode_t mode) {
    const int fd = ::open(path.c_str(), flags | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, mode);
    if (fd < 0) {
        err = errno == ENXIO ? not_a_regular_file : errno;  // ENXIO: a FIFO without a reader
        return -1;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        err = errno;
        ::close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        err = S_ISDIR(st.st_mode) ? EISDIR : not_a_regular_file;
        ::close(fd);
        return -1;
    }
    ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    return fd;
}

RUNBOX_DECL int read_bytes(const std::string& path, std::string& out,
                           std::size_t limit) {
    out.clear();
    int open_err = 0;
    const int fd = open_regular(path, O_RDONLY, open_err);
    if (fd < 0) return open_err;
    char buf[65536];
    while (out.size() < limit) {
        const std::size_t want = std::min(sizeof buf, limit - out.size());
        const ssize_t got = ::read(fd, buf, want);
        if (got < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            return err;
        }
        if (got == 0) break;
        out.append(buf, static_cast<std::size_t>(got));
    }
    ::close(fd);
    return 0;
}

RUNBOX_DECL int write_bytes(const std::string& path, std::string_view data, bool create, mode_t create_mode) {
    // Opened before truncating, so a FIFO or device is refused untouched.
    int open_err = 0;
    const int fd = open_regular(path, O_WRONLY | (create ? O_CREAT : 0), open_err, create_mode);
    if (fd < 0) return open_err;
    if (::ftruncate(fd, 0) != 0) {
        const int err = errno;
        ::close(fd);
        return err;
    }
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t put = ::write(fd, data.data() + done, data.size() - done);
        if (put < 0) {
            if (errno == EINTR) continue;
            const int err = errno;
            ::close(fd);
            return err;
        }
        done += static_cast<std::size_t>(put);
    }
    if (::close(fd) != 0) return errno;
    return 0;
}

RUNBOX_DECL std::string utf8_error_text(const runbox::detail::Utf8Error& e) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "0x%02x", e.byte);
    return "'utf-8' codec can't decode byte " + std::string(buf) + " in position " + std::to_string(e.position) +
           ": " + e.reason;
}

RUNBOX_DECL bool looks_binary(std::string_view chunk) {
    if (chunk.empty()) return false;
    std::size_t not_printable = 0, below_127 = 0, multibyte = 0;
    bool nul_or_ff = false;
    for (const char ch : chunk) {
        const auto c = static_cast<unsigned char>(ch);
        const bool control_ok = c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == '\b';
        const bool printable = control_ok || (c >= 32 && c < 127);
        if (!printable) ++not_printable;
        if (c < 127) ++below_127;
        if (c >= 0xC0) ++multibyte;
        if (c == 0x00 || c == 0xFF) nul_or_ff = true;
    }
    const double n = static_cast<double>(chunk.size());
    const double ratio1 = static_cast<double>(not_printable) / n;  // control chars + high bytes
    const double ratio2 = static_cast<double>(below_127) / n;      // binaryornot's "high_chars" ratio
    if (ratio1 > 0.90 && ratio2 > 0.90) return true;
    const bool likely_binary = (ratio1 > 0.3 && ratio2 < 0.05) || (ratio1 > 0.8 && ratio2 > 0.8);
    const bool decodable = multibyte >= 4 && !runbox::detail::utf8_error(chunk, true);
    if (likely_binary) return !decodable;
    if (decodable) return false;
    return nul_or_ff;
}

RUNBOX_DECL std::string guess_mime(std::string_view path, std::string_view fallback) {
    static const std::map<std::string, std::string, std::less<>> table = {
        {".png", "image/png"},   {".jpg", "image/jpeg"}, {".jpeg", "image/jpeg"}, {".bmp", "image/bmp"},
        {".gif", "image/gif"},   {".pdf", "application/pdf"}, {".mp4", "video/mp4"}, {".webm", "video/webm"},
        {".ogg", "audio/ogg"},
    };
    const auto it = table.find(suffix_lower(path));
    return it == table.end() ? std::string(fallback) : it->second;
}

RUNBOX_DECL std::vector<std::string> read_lines_window(const std::vector<std::string>& lines, long long start, long long end) {
    const auto n = static_cast<long long>(lines.size());
    start = std::clamp(start, 0LL, n);
    if (end != -1) end = std::min(std::max(end, 0LL), n);
    if (end == -1) return {lines.begin() + start, lines.end()};
    const long long begin = std::max(0LL, std::min(start, n - 2));
    const long long stop = std::min(std::max(begin + 1, end), n);
    if (begin >= stop) return {};
    return {lines.begin() + begin, lines.begin() + stop};
}

RUNBOX_DECL std::string splice_lines(const std::vector<std::string>& original, const std::vector<std::string>& pieces,
                                     long long start, long long end) {
    std::string out;
    if (start != 0) {
        const auto stop = py_index(start, original.size());
        for (std::size_t i = 0; i < stop; ++i) out += original[i];
    }
    for (const auto& piece : pieces) {
        out += piece;
        out += '\n';
    }
    if (end != -1) {
        for (std::size_t i = py_index(end, original.size()); i < original.size(); ++i) out += original[i];
    }
    return out;
}

RUNBOX_DECL std::string cat_n(std::string snippet, std::string_view description, long long start_line) {
    snippet = maybe_truncate(std::move(snippet), text_file_truncated_notice);
    std::string out = "Here's the result of running `cat -n` on ";
    out += description;
    out += ":\n";
    long long number = start_line;
    std::size_t begin = 0;
    char buf[32];
    for (;;) {
        const auto pos = snippet.find('\n', begin);
        std::snprintf(buf, sizeof buf, "%6lld\t", number++);
        out += buf;
        if (pos == std::string::npos) {
            out.append(snippet, begin, std::string::npos);
            break;
        }
        out.append(snippet, begin, pos - begin);
        out += '\n';
        begin = pos + 1;
    }
    out += '\n';
    return out;
}

RUNBOX_DECL std::vector<std::size_t> find_occurrences(std::string_view hay, std::string_view needle) {
    std::vector<std::size_t> out;
    if (needle.empty()) {
        // Only code-point boundaries count (Python indexes str by code point).
        for (std::size_t i = 0; i <= hay.size(); ++i) {
            if (i == hay.size() || (static_cast<unsigned char>(hay[i]) & 0xC0) != 0x80) out.push_back(i);
        }
        return out;
    }
    for (auto pos = hay.find(needle); pos != std::string_view::npos; pos = hay.find(needle, pos + needle.size())) {
        out.push_back(pos);
    }
    return out;
}

RUNBOX_DECL bool file_is_binary(const std::string& path) {
    if (!path_is_file(path)) return false;
    std::string chunk;
    if (read_bytes(path, chunk, binary_sniff_bytes) != 0) return false;
    return looks_binary(chunk);
}

}  // namespace runbox::server::detail

namespace runbox::server {

RUNBOX_DECL runbox::Observation FileEditor::edit(const runbox::FileEditAction& action, const FileOpsContext& ctx) {
    if (action.impl_source != runbox::FileEditSource::oh_aci) {
        // OpenHands asserts here (HTTP 500): LLM-based edits are done client-side.
        throw runbox::error(runbox::errc::unsupported,
                            "the action server runs only OH-ACI edits; llm_based_edit is performed client-side",
                            "server");
    }
    std::optional<long long> insert_line;
    if (action.insert_line) insert_line = *action.insert_line;
    const auto root = ctx.workspace_root.empty() ? workspace_root_ : ctx.workspace_root;
    auto result = execute(action.command, action.path, action.file_text, std::nullopt, action.old_str,
                          action.new_str, insert_line, root);
    return make_edit_observation(action.path, action.old_str, action.new_str, std::move(result));
}

RUNBOX_DECL std::string FileEditor::view(const std::string& path, std::optional<std::pair<int, int>> view_range) {
    std::optional<std::vector<int>> range;
    if (view_range) range = std::vector<int>{view_range->first, view_range->second};
    return view_list(path, range);
}

RUNBOX_DECL runbox::FileEditObservation FileEditor::make_edit_observation(const std::string& path,
                                                                          const std::optional<std::string>& old_str,
                                                                          const std::optional<std::string>& new_str,
                                                                          Outcome result) {
    runbox::FileEditObservation obs;
    obs.path = path;
    obs.prev_exist = false;  // OpenHands never sets it for OH-ACI edits
    obs.old_content = old_str;
    obs.new_content = new_str;
    obs.impl_source = runbox::FileEditSource::oh_aci;
    obs.diff = detail::unified_diff(result.old_content.value_or(""), result.new_content.value_or(""), path);
    obs.content = std::move(result.content);
    return obs;
}

RUNBOX_DECL auto FileEditor::invalid(std::string_view parameter, std::string_view value, std::string_view hint) -> ToolError {
    std::string msg = "Invalid `" + std::string(parameter) + "` parameter: " + std::string(value) + ".";
    if (!hint.empty()) msg += " " + std::string(hint);
    return {msg};
}

RUNBOX_DECL bool FileEditor::is_supported_binary(std::string_view path) {
    static constexpr std::string_view exts[] = {".docx", ".xlsx", ".pptx", ".pdf", ".mp3", ".wav", ".m4a", ".flac"};
    const auto ext = detail::suffix_lower(path);
    return std::find(std::begin(exts), std::end(exts), ext) != std::end(exts);
}

RUNBOX_DECL auto FileEditor::execute(const std::string& command, const std::string& path, const std::optional<std::string>& file_text,
                                     const std::optional<std::vector<int>>& view_range, const std::optional<std::string>& old_str,
                                     const std::optional<std::string>& new_str, std::optional<long long> insert_line,
                                     const std::string& root) -> Outcome {
    CliResult result;
    try {
        result = run(command, path, file_text, view_range, old_str, new_str, insert_line, root);
    } catch (const ToolError& e) {
        result = CliResult{};
        result.error = e.message;
    }
    if (!result.error.empty()) return {"ERROR:\n" + result.error, std::nullopt, std::nullopt};
    if (result.output.empty()) return {"", std::nullopt, std::nullopt};
    return {std::move(result.output), std::move(result.old_content), std::move(result.new_content)};
}

RUNBOX_DECL auto FileEditor::run(const std::string& command, const std::string& raw_path, const std::optional<std::string>& file_text,
                                 const std::optional<std::vector<int>>& view_range, const std::optional<std::string>& old_str,
                                 const std::optional<std::string>& new_str, std::optional<long long> insert_line,
                                 const std::string& root) -> CliResult {
    const std::string path = detail::py_path(raw_path);
    validate_path(command, path, root);
    if (command == "view") return view_impl(path, view_range);
    if (command == "create") {
        if (!file_text) throw missing(command, "file_text");
        write_text(path, *file_text);
        add_history(path, *file_text);
        CliResult r;
        r.output = "File created successfully at: " + path;
        r.new_content = *file_text;
        return r;
    }
    if (command == "str_replace") {
        if (!old_str) throw missing(command, "old_str");
        if (new_str == old_str) {
            throw invalid("new_str", *new_str, "No replacement was performed. `new_str` and `old_str` must be different.");
        }
        return str_replace(path, *old_str, new_str.value_or(""));
    }
    if (command == "insert") {
        if (!insert_line) throw missing(command, "insert_line");
        if (!new_str) throw missing(command, "new_str");
        return insert(path, *insert_line, *new_str);
    }
    if (command == "undo_edit") return undo_edit(path);
    throw ToolError{"Unrecognized command " + command +
                    ". The allowed commands for the oh_editor tool are: view, create, str_replace, insert, undo_edit"};
}

RUNBOX_DECL void FileEditor::validate_path(const std::string& command, const std::string& path, const std::string& root) {
    using namespace detail;
    if (!is_absolute(path)) {
        std::string hint = "The path should be an absolute path, starting with `/`.";
        if (!root.empty()) {
            const auto suggested = join_path(root, path);
            if (path_exists(suggested)) hint += " Maybe you meant " + suggested + "?";
        }
        throw invalid("path", path, hint);
    }
    const bool exists = path_exists(path);
    if (command == "create" && exists) {
        throw invalid("path", path,
                      "File already exists at: " + path + ". Cannot overwrite files using command `create`.");
    }
    if (command != "create" && !exists) {
        throw invalid("path", path, "The path " + path + " does not exist. Please provide a valid path.");
    }
    if (command != "view") {
        if (path_is_dir(path)) {
            throw invalid("path", path,
                          "The path " + path + " is a directory and only the `view` command can be used on directories.");
        }
        if (is_supported_binary(path)) {
            throw invalid("path", path,
                          "The path " + path + " points to a binary file (" + suffix_of(path) +
                              ") and only the `view` command can be used on supported binary files.");
        }
    }
}

RUNBOX_DECL std::string FileEditor::suffix_of(std::string_view path) {
    const auto slash = path.rfind('/');
    const auto name = slash == std::string_view::npos ? path : path.substr(slash + 1);
    const auto dot = name.rfind('.');
    if (dot == std::string_view::npos || dot == 0) return {};
    return std::string(name.substr(dot));
}

RUNBOX_DECL void FileEditor::validate_file(const std::string& path) {
    using namespace detail;
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return;
    const auto size = static_cast<std::uintmax_t>(st.st_size);
    if (size > max_file_size_bytes) {
        char buf[128];
        std::snprintf(buf, sizeof buf, "File is too large (%.1fMB). Maximum allowed size is %dMB.",
                      static_cast<double>(size) / 1024.0 / 1024.0,
                      static_cast<int>(max_file_size_bytes / 1024 / 1024));
        throw validation(path, buf);
    }
    if (is_supported_binary(path)) return;
    if (file_is_binary(path)) {
        throw validation(path, "File appears to be binary and this file type cannot be read or edited by this tool.");
    }
}

RUNBOX_DECL std::string FileEditor::read_text(const std::string& path) {
    using namespace detail;
    validate_file(path);
    std::string raw;
    if (const int err = read_bytes(path, raw, max_file_size_bytes + 1); err != 0) {
        if (err == not_a_regular_file) throw ToolError{not_regular_text("read", path)};
        throw ToolError{"Ran into " + os_error_text(err, path) + " while trying to read " + path};
    }
    if (raw.size() > max_file_size_bytes) {  // grew after validate_file, or a /proc-like file
        throw validation(path, "File is too large. Maximum allowed size is " +
                                   std::to_string(max_file_size_bytes / 1024 / 1024) + "MB.");
    }
    if (const auto bad = runbox::detail::utf8_error(raw)) {
        throw ToolError{"Ran into " + utf8_error_text(*bad) + " while trying to read " + path};
    }
    return translate_newlines(raw);
}

RUNBOX_DECL std::string FileEditor::read_text_range(const std::string& path, long long first, long long last) {
    const auto lines = detail::split_keepends(read_text(path));
    std::string out;
    for (long long i = std::max(first, 1LL); i <= last && i <= static_cast<long long>(lines.size()); ++i) {
        out += lines[static_cast<std::size_t>(i - 1)];
    }
    return out;
}

RUNBOX_DECL void FileEditor::write_text(const std::string& path, std::string_view text) {
    using namespace detail;
    validate_file(path);
    if (const int err = write_bytes(path, text, true); err != 0) {
        throw ToolError{"Ran into " + os_error_text(err, path) + " while trying to write to " + path};
    }
}

RUNBOX_DECL void FileEditor::add_history(const std::string& path, std::string content) {
    auto& entries = history_[path];
    entries.push_back(std::move(content));
    while (entries.size() > detail::max_history_per_file) entries.pop_front();
}

RUNBOX_DECL auto FileEditor::view_impl(const std::string& path, const std::optional<std::vector<int>>& view_range) -> CliResult {
    using namespace detail;
    if (path_is_dir(path)) {
        if (view_range && !view_range->empty()) {
            throw invalid("view_range", py_int_list({view_range->begin(), view_range->end()}),
                          "The `view_range` parameter is not allowed when `path` points to a directory.");
        }
        return view_directory(path);
    }
    validate_file(path);
    if (is_supported_binary(path)) {
        // OH-ACI converts these with markitdown; not available here.
        throw ToolError{"Error in converting file to Markdown: conversion of " + suffix_of(path) +
                        " files is not supported by this runtime. Please use Python code to read " + path};
    }
    const std::string content = read_text(path);
    const long long num_lines = count_lines(content);
    CliResult r;
    if (!view_range || view_range->empty()) {
        r.output = cat_n(content, path, 1);
        return r;
    }
    const std::vector<long long> shown(view_range->begin(), view_range->end());
    if (view_range->size() != 2) throw invalid("view_range", py_int_list(shown), "It should be a list of two integers.");
    const long long first = (*view_range)[0];
    long long last = (*view_range)[1];
    if (first < 1 || first > num_lines) {
        throw invalid("view_range", py_int_list(shown),
                      "Its first element `" + std::to_string(first) +
                          "` should be within the range of lines of the file: " + py_int_list({1, num_lines}) + ".");
    }
    std::string warning;
    if (last == -1) {
        last = num_lines;
    } else if (last > num_lines) {
        warning = "We only show up to " + std::to_string(num_lines) + " since there're only " +
                  std::to_string(num_lines) + " lines in this file.";
        last = num_lines;
    }
    if (last < first) {
        throw invalid("view_range", py_int_list(shown),
                      "Its second element `" + std::to_string(last) +
                          "` should be greater than or equal to the first element `" + std::to_string(first) + "`.");
    }
    const std::string slice = read_text_range(path, first, last);
    r.output = cat_n(join(splitlines(slice), "\n"), path, first);
    if (!warning.empty()) r.output = "NOTE: " + warning + "\n" + r.output;
    return r;
}

RUNBOX_DECL auto FileEditor::view_directory(const std::string& path) -> CliResult {
    using namespace detail;
    namespace fs = std::filesystem;
    std::vector<std::string> found{path};
    std::string errors;
    std::size_t hidden = 0;
    const auto list = [&](const std::string& dir, int depth, auto& self) -> void {
        std::error_code ec;
        fs::directory_iterator it(dir, ec);
        if (ec) {
            errors += "find: " + runbox::detail::python_str_repr(dir) + ": " + ec.message() + "\n";
            return;
        }
        for (; it != fs::directory_iterator(); it.increment(ec)) {
            const std::string name = it->path().filename().string();
            if (!name.empty() && name.front() == '.') {
                if (depth == 1) ++hidden;
                continue;
            }
            const std::string child = (path == "/" && depth == 1 ? "" : dir) + "/" + name;
            found.push_back(child);
            if (depth < 2 && path_is_dir(child)) self(child, depth + 1, self);
        }
        if (ec) errors += "find: " + runbox::detail::python_str_repr(dir) + ": " + ec.message() + "\n";
    };
    list(path, 1, list);
    std::sort(found.begin(), found.end());
    std::string stdout_text;
    for (const auto& f : found) stdout_text += f + "\n";
    stdout_text = maybe_truncate(std::move(stdout_text), directory_truncated_notice);
    CliResult r;
    r.error = errors;
    if (!errors.empty()) {
        r.output = stdout_text;
        return r;
    }
    const std::string stripped(strip(stdout_text));
    std::vector<std::string> formatted;
    if (!stripped.empty()) {
        for (auto& p : split(stripped, '\n')) formatted.push_back(path_is_dir(p) ? p + "/" : p);
    }
    r.output = "Here's the files and directories up to 2 levels deep in " + path + ", excluding hidden items:\n" +
               join(formatted, "\n");
    if (hidden > 0) {
        r.output += "\n\n" + std::to_string(hidden) +
                    " hidden files/directories in this directory are excluded. You can use 'ls -la " + path +
                    "' to see them.";
    }
    return r;
}

RUNBOX_DECL auto FileEditor::str_replace(const std::string& path, std::string old_str, std::string new_str) -> CliResult {
    using namespace detail;
    validate_file(path);
    const std::string content = read_text(path);
    auto hits = find_occurrences(content, old_str);
    if (hits.empty()) {
        // OH-ACI retries without surrounding whitespace on both strings.
        old_str = std::string(strip(old_str));
        new_str = std::string(strip(new_str));
        hits = find_occurrences(content, old_str);
        if (hits.empty()) {
            throw ToolError{"No replacement was performed, old_str `" + old_str + "` did not appear verbatim in " +
                            path + "."};
        }
    }
    if (hits.size() > 1) {
        std::vector<long long> lines;
        std::size_t scanned = 0;
        long long line = 1;
        for (const auto pos : hits) {  // hits are ascending: count newlines incrementally
            line += static_cast<long long>(std::count(content.begin() + static_cast<std::ptrdiff_t>(scanned),
                                                      content.begin() + static_cast<std::ptrdiff_t>(pos), '\n'));
            scanned = pos;
            if (lines.empty() || lines.back() != line) lines.push_back(line);
        }
        throw ToolError{"No replacement was performed. Multiple occurrences of old_str `" + old_str + "` in lines " +
                        py_int_list(lines) + ". Please ensure it is unique."};
    }
    const std::size_t idx = hits.front();
    const long long replacement_line = line_of(content, idx);
    std::string new_content = content.substr(0, idx) + new_str + content.substr(idx + old_str.size());
    write_text(path, new_content);
    add_history(path, content);

    const long long start_line = std::max(0LL, replacement_line - snippet_context_window);
    const long long end_line = replacement_line + snippet_context_window +
                               static_cast<long long>(std::count(new_str.begin(), new_str.end(), '\n'));
    const std::string snippet = read_text_range(path, start_line + 1, end_line);
    CliResult r;
    r.output = "The file " + path + " has been edited. " + cat_n(snippet, "a snippet of " + path, start_line + 1) +
               "Review the changes and make sure they are as expected. Edit the file again if necessary.";
    r.old_content = content;
    r.new_content = std::move(new_content);
    return r;
}

RUNBOX_DECL auto FileEditor::insert(const std::string& path, long long insert_line, const std::string& new_str) -> CliResult {
    using namespace detail;
    validate_file(path);
    const std::string content = read_text(path);
    const long long num_lines = count_lines(content);
    if (insert_line < 0 || insert_line > num_lines) {
        throw invalid("insert_line", std::to_string(insert_line),
                      "It should be within the range of allowed values: " + py_int_list({0, num_lines}));
    }
    const auto lines = split_keepends(content);
    const auto new_lines = split(new_str, '\n');
    std::string updated;
    for (long long i = 0; i < insert_line; ++i) updated += lines[static_cast<std::size_t>(i)];
    for (const auto& l : new_lines) updated += l + "\n";
    for (auto i = static_cast<std::size_t>(insert_line); i < lines.size(); ++i) updated += lines[i];
    write_text(path, updated);

    const auto added = static_cast<long long>(new_lines.size());
    const long long start_line = std::max(0LL, insert_line - snippet_context_window);
    const long long end_line = std::min(num_lines + added, insert_line + snippet_context_window + added);
    const std::string snippet = read_text_range(path, start_line + 1, end_line);
    add_history(path, content);
    std::string new_content = read_text(path);

    CliResult r;
    r.output = "The file " + path + " has been edited. " +
               cat_n(snippet, "a snippet of the edited file", std::max(1LL, insert_line - snippet_context_window + 1)) +
               "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, "
               "etc). Edit the file again if necessary.";
    r.old_content = content;
    r.new_content = std::move(new_content);
    return r;
}

RUNBOX_DECL auto FileEditor::undo_edit(const std::string& path) -> CliResult {
    std::string current = read_text(path);
    const auto it = history_.find(path);
    if (it == history_.end() || it->second.empty()) throw ToolError{"No edit history found for " + path + "."};
    std::string previous = std::move(it->second.back());
    it->second.pop_back();
    write_text(path, previous);
    CliResult r;
    r.output = "Last edit to " + path + " undone successfully. " + detail::cat_n(previous, path);
    r.old_content = std::move(current);
    r.new_content = std::move(previous);
    return r;
}

RUNBOX_DECL runbox::Observation read_file(const runbox::FileReadAction& action, const FileOpsContext& ctx) {
    using namespace detail;
    // Quirk 6: the binary sniff resolves relative paths against the server process's cwd.
    std::string sniffed = action.path;
    if (!is_absolute(sniffed) && !ctx.server_cwd.empty()) sniffed = join_path(ctx.server_cwd, sniffed);
    if (file_is_binary(sniffed)) return error_observation("ERROR_BINARY_FILE");

    if (action.impl_source == runbox::FileReadSource::oh_aci) {
        FileEditor editor(ctx.workspace_root);
        runbox::FileReadObservation obs;
        obs.content = editor.view_list(action.path, action.view_range);
        obs.path = action.path;
        obs.impl_source = runbox::FileReadSource::oh_aci;
        return obs;
    }

    const std::string filepath = is_absolute(action.path) ? py_path(action.path) : join_path(ctx.bash_cwd, action.path);
    const auto error = [](std::string text) { return error_observation(std::move(text)); };
    const auto os_failure = [&](int err) -> runbox::Observation {
        if (err == ENOENT || err == ENOTDIR) {
            return error("File not found: " + filepath + ". Your current working directory is " + ctx.bash_cwd + ".");
        }
        if (err == EISDIR) return error("Path is a directory: " + filepath + ". You can only read files");
        if (err == not_a_regular_file) return error(not_regular_text("read", filepath));
        fail_os(err, filepath);
    };

    std::string lower = filepath;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    const auto ends_with_any = [&](std::initializer_list<std::string_view> exts) {
        return std::any_of(exts.begin(), exts.end(), [&](std::string_view e) { return lower.ends_with(e); });
    };
    std::string fallback_mime;
    if (ends_with_any({".png", ".jpg", ".jpeg", ".bmp", ".gif"})) {
        fallback_mime = "image/png";
    } else if (ends_with_any({".pdf"})) {
        fallback_mime = "application/pdf";
    } else if (ends_with_any({".mp4", ".webm", ".ogg"})) {
        fallback_mime = "video/mp4";
    }
    std::string raw;
    if (const int err = read_bytes(filepath, raw, ctx.max_read_bytes + 1); err != 0) return os_failure(err);
    const bool truncated = raw.size() > ctx.max_read_bytes;
    runbox::FileReadObservation obs;
    obs.path = filepath;
    if (truncated && !fallback_mime.empty()) {
        return error("File is too large to read: " + filepath + " is larger than " + std::to_string(ctx.max_read_bytes) +
                     " bytes.");
    }
    if (truncated) {
        raw.resize(ctx.max_read_bytes);
        // Cut back to a whole UTF-8 sequence so the kept part still decodes.
        std::size_t back = 0;
        while (back < 3 && back < raw.size() && (static_cast<unsigned char>(raw[raw.size() - 1 - back]) & 0xC0) == 0x80) ++back;
        if (back < raw.size() && (static_cast<unsigned char>(raw[raw.size() - 1 - back]) & 0x80) != 0) raw.resize(raw.size() - 1 - back);
    }
    if (!fallback_mime.empty()) {
        const std::string mime = fallback_mime == "application/pdf" ? fallback_mime : guess_mime(filepath, fallback_mime);
        obs.content = "data:" + mime + ";base64," + runbox::detail::base64_encode(raw);
        return obs;
    }
    if (runbox::detail::utf8_error(raw)) return error("File could not be decoded as utf-8: " + filepath + ".");
    obs.content = join(read_lines_window(split_keepends(translate_newlines(raw)), action.start, action.end), "");
    if (truncated) {
        obs.content += "\n<response clipped><NOTE>Only the first " + std::to_string(ctx.max_read_bytes) +
                       " bytes of this file were read (the read limit). Use `grep -n`, `sed -n` or `head -c` in the "
                       "shell to see the rest.</NOTE>";
    }
    return obs;
}

RUNBOX_DECL runbox::Observation write_file(const runbox::FileWriteAction& action, const FileOpsContext& ctx) {
    using namespace detail;
    const std::string filepath = is_absolute(action.path) ? py_path(action.path) : join_path(ctx.bash_cwd, action.path);
    const auto error = [](std::string text) { return error_observation(std::move(text)); };
    const std::string parent = dirname(filepath);
    if (!parent.empty() && !path_exists(parent)) {
        std::error_code ec;
        std::filesystem::create_directories(parent, ec);
        if (ec) fail_os(ec.value(), parent);
    }
    struct stat original {};
    const bool existed = ::stat(filepath.c_str(), &original) == 0;
    const auto pieces = split(action.content, '\n');
    const auto os_failure = [&](int err) -> runbox::Observation {
        if (err == ENOENT) return error("File not found: " + filepath);
        if (err == EISDIR) return error("Path is a directory: " + filepath + ". You can only write to files");
        if (err == not_a_regular_file) return error(not_regular_text("write", filepath));
        fail_os(err, filepath);
    };

    std::string text;
    if (!existed) {
        for (const auto& piece : pieces) text += piece + "\n";
    } else {
        if (S_ISDIR(original.st_mode)) return os_failure(EISDIR);
        std::string raw;
        if (const int err = read_bytes(filepath, raw); err != 0) return os_failure(err);
        if (runbox::detail::utf8_error(raw)) return error("File could not be decoded as utf-8: " + filepath);
        text = splice_lines(split_keepends(translate_newlines(raw)), pieces, action.start, action.end);
    }
    if (const int err = write_bytes(filepath, text, !existed); err != 0) return os_failure(err);

    // Restore mode/owner of an existing file; new files get 0664 and uid:uid.
    int rc = 0;
    if (existed) {
        rc = ::chmod(filepath.c_str(), original.st_mode & 07777);
        if (rc == 0) rc = ::chown(filepath.c_str(), original.st_uid, original.st_gid);
    } else {
        rc = ::chmod(filepath.c_str(), 0664);
        if (rc == 0) {
            const uid_t uid = ctx.user_id >= 0 ? static_cast<uid_t>(ctx.user_id) : ::geteuid();
            const gid_t gid = ctx.user_id >= 0 ? static_cast<gid_t>(ctx.user_id) : ::getegid();
            rc = ::chown(filepath.c_str(), uid, gid);
        }
    }
    if (rc != 0) {
        const int err = errno;
        if (err != EPERM && err != EACCES) fail_os(err, filepath);
        return error("File " + filepath + " written, but failed to change ownership and permissions: " +
                     os_error_text(err, filepath));
    }
    runbox::FileWriteObservation obs;
    obs.path = filepath;
    return obs;
}

RUNBOX_DECL std::optional<runbox::Observation> coerce_insert_line(nlohmann::json& action_json) {
    if (!action_json.is_object() || !action_json.contains("args") || !action_json["args"].is_object()) return std::nullopt;
    auto& args = action_json["args"];
    if (!args.contains("insert_line") || !args["insert_line"].is_string()) return std::nullopt;
    const std::string text = args["insert_line"].get<std::string>();
    if (const auto value = detail::parse_py_int(text)) {
        args["insert_line"] = *value;
        return std::nullopt;
    }
    const auto opt_string = [&](const char* key) -> std::optional<std::string> {
        if (args.contains(key) && args[key].is_string()) return args[key].get<std::string>();
        return std::nullopt;
    };
    const std::string path = args.contains("path") && args["path"].is_string() ? args["path"].get<std::string>() : "";
    return FileEditor::make_edit_observation(
        path, opt_string("old_str"), opt_string("new_str"),
        {"ERROR:\nInvalid insert_line value: '" + text + "'. Expected an integer.", std::nullopt,
         std::nullopt});
}

}  // namespace runbox::server
