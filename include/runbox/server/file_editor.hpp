/// \file
/// the action server's file actions: read, write and the
/// OH-ACI `str_replace_editor` (view/create/str_replace/insert/undo_edit).
///
/// Behaviour follows reference §6.1-6.3 and the openhands-aci OHEditor it names. Python
/// semantics the wire text depends on are reproduced on purpose: `str.split('\n')` line
/// lists (a trailing newline yields a last empty line), universal-newline reads (CRLF and
/// CR become LF when a file is read as text), pathlib normalisation of paths in messages
/// ("/w//a/" -> "/w/a"), Python list/repr formatting in messages, and difflib-style
/// unified diffs with zero context lines.
///
/// Known, documented differences from the Python server:
///  * Text files must be UTF-8 (OH-ACI guesses other encodings with charset_normalizer).
///  * The binary sniff approximates binaryornot: chardet's verdict is replaced by "valid
///  UTF-8 with at least 4 multi-byte characters" (chardet's UTF-8 confidence > 0.9).
///  * Markdown conversion of .pdf/.docx/.xlsx/.pptx/audio files is not available; `view`
///  of such a file answers an OH-ACI style "Error in converting file to Markdown" error.
///  * The diff is a Myers minimal diff, not difflib's longest-block matcher: both give the
///  same hunks for one contiguous change; with repeated lines at a hunk edge the hunk may
///  sit one line apart. Above diff_max_edit_distance edits the changed middle is shown as
///  one replace hunk (keeps time and memory bounded).
///  * `insert` rewrites the file in place (OH-ACI moves a 0600 temp file over it, which
///  silently changes the file's mode); everything else about `insert` is kept, including
///  inserting at EOF of a file without a final newline gluing the new text to the last line.
///  * A path below a regular file (ENOTDIR) reads as "File not found" (Python: HTTP 500).
///
/// Not thread-safe: the server runs one action at a time (as OpenHands does with its lock).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <sys/types.h>

#include <nlohmann/json.hpp>

#include "runbox/detail/linkage.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/detail/utf8.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"
#include "runbox/server/python_text.hpp"
#include "runbox/server/unified_diff.hpp"

namespace runbox::server {

/// Where file actions run. Relative paths of read/write resolve against `bash_cwd`; the
/// binary sniff of `read` resolves them against `server_cwd` (reference §14 quirk 6; an
/// empty server_cwd means the process cwd). `workspace_root` is the server's --working-dir
/// (the editor suggests `<root>/<path>` for relative paths).
struct FileOpsContext {
    std::string workspace_root;  ///< the server's --working-dir
    std::string bash_cwd;        ///< the shell's current directory
    std::string server_cwd;      ///< the server process's cwd (empty: the process cwd)
    /// Owner given to files `write` creates (uid:uid like OpenHands' --user-id);
    /// -1 = the process's effective uid and gid.
    int user_id = -1;
    /// `read` returns at most this many bytes of a file and says so when it cut.
    std::size_t max_read_bytes = std::size_t{10} << 20;
};

namespace detail {

inline constexpr std::size_t max_response_chars = 16000;  // OH-ACI MAX_RESPONSE_LEN_CHAR
inline constexpr long long snippet_context_window = 4;    // OH-ACI SNIPPET_CONTEXT_WINDOW
inline constexpr std::uintmax_t max_file_size_bytes = 10u * 1024u * 1024u;
inline constexpr std::size_t max_history_per_file = 10;
inline constexpr std::size_t binary_sniff_bytes = 1024;

// OH-ACI prompts.py wording (the test asserts only the first sentence).
inline constexpr std::string_view text_file_truncated_notice =
    "<response clipped><NOTE>Due to the max output limit, only part of this file has been shown to you. "
    "You should retry this tool after you have searched inside the file with `grep -n` in order to find "
    "the line numbers of what you are looking for.</NOTE>";
inline constexpr std::string_view directory_truncated_notice =
    "<response clipped><NOTE>Due to the max output limit, only part of this directory has been shown to "
    "you. You should use `ls -la` instead to view large directories incrementally.</NOTE>";

/// OH-ACI maybe_truncate: keep the first `limit` code points and append `notice`.
RUNBOX_DECL std::string maybe_truncate(std::string content, std::string_view notice, std::size_t limit = max_response_chars);

// ---------------------------------------------------------------------------
// Paths

/// str(pathlib.PurePosixPath(p)): collapse '//' and '/./', drop a trailing '/', "" -> ".".
/// Exactly two leading slashes are kept (POSIX leaves their meaning open; pathlib keeps them).
RUNBOX_DECL std::string py_path(std::string_view p);

inline bool is_absolute(std::string_view p) noexcept { return !p.empty() && p.front() == '/'; }

/// Path(base) / rel, normalised; an absolute `rel` wins like pathlib's join.
RUNBOX_DECL std::string join_path(std::string_view base, std::string_view rel);

/// os.path.dirname.
RUNBOX_DECL std::string dirname(std::string_view p);

/// Returned instead of an errno for a device, FIFO or socket: file actions refuse those (a
/// FIFO blocks for ever, /dev/zero never ends).
inline constexpr int not_a_regular_file = -1;

/// Python's OSError text: "[Errno 2] No such file or directory: '/x'".
inline std::string os_error_text(int err, std::string_view path) {
    if (err == not_a_regular_file) return "not a regular file (a device, FIFO or socket): " + runbox::detail::python_str_repr(path);
    return "[Errno " + std::to_string(err) + "] " + std::strerror(err) + ": " + runbox::detail::python_str_repr(path);
}

RUNBOX_DECL bool path_exists(const std::string& p) noexcept;

RUNBOX_DECL bool path_is_dir(const std::string& p) noexcept;

RUNBOX_DECL bool path_is_file(const std::string& p) noexcept;

/// Lower-cased extension including the dot ("" when none), like PurePath.suffix.lower().
RUNBOX_DECL std::string suffix_lower(std::string_view p);

// ---------------------------------------------------------------------------
// Raw file I/O with errno (messages need Python's exception classes)


/// "Refusing to read /dev/zero: it is not a regular file (a device, FIFO or socket)."
inline std::string not_regular_text(std::string_view verb, std::string_view path) {
    return "Refusing to " + std::string(verb) + " " + std::string(path) +
           ": it is not a regular file (a device, FIFO or socket).";
}

/// Opens without blocking (a FIFO's open waits for a writer) and keeps only regular files;
/// returns the fd, or -1 with `err` set (an errno, EISDIR, or not_a_regular_file).
RUNBOX_DECL int open_regular(const std::string& path, int flags, int& err, mode_t mode = 0);

/// Reads up to `limit` bytes; returns 0 or an errno (EISDIR for directories,
/// not_a_regular_file for anything else that is not a regular file).
RUNBOX_DECL int read_bytes(const std::string& path, std::string& out,
                           std::size_t limit = std::numeric_limits<std::size_t>::max());

/// Writes `data` (creating with `create_mode` subject to umask); returns 0 or an errno.
RUNBOX_DECL int write_bytes(const std::string& path, std::string_view data, bool create, mode_t create_mode = 0666);

// ---------------------------------------------------------------------------
// UTF-8, binary sniffing, base64

/// Python's UnicodeDecodeError text for the 'utf-8' codec.
RUNBOX_DECL std::string utf8_error_text(const runbox::detail::Utf8Error& e);

/// binaryornot.is_binary_string on the first KiB of a file (see the header comment).
RUNBOX_DECL bool looks_binary(std::string_view chunk);

/// mimetypes.guess_type for the media extensions `read` serves; `fallback` otherwise.
RUNBOX_DECL std::string guess_mime(std::string_view path, std::string_view fallback);

// ---------------------------------------------------------------------------
// Line windows (reference §6.1 / §6.2)

/// Python list slice bounds for lst[begin:end] with negative indices.
inline std::size_t py_index(long long i, std::size_t n) {
    const auto sn = static_cast<long long>(n);
    if (i < 0) i += sn;
    return static_cast<std::size_t>(std::clamp(i, 0LL, sn));
}

/// `read`'s line window: 0-based, end-exclusive, -1 = EOF; a window always has >= 1 line
/// when the file has any (begin is pulled back to n-2 and end pushed to begin+1).
RUNBOX_DECL std::vector<std::string> read_lines_window(const std::vector<std::string>& lines, long long start, long long end);

/// `write`'s splice: original[:start] (nothing if start == 0) + each piece + "\n" +
/// original[end:] (nothing if end == -1), with Python slice semantics.
RUNBOX_DECL std::string splice_lines(const std::vector<std::string>& original, const std::vector<std::string>& pieces,
                                     long long start, long long end);

// ---------------------------------------------------------------------------
// Editor text rendering

/// OH-ACI _make_output: truncate, number every '\n'-separated line "%6d\t", end with '\n'.
RUNBOX_DECL std::string cat_n(std::string snippet, std::string_view description, long long start_line = 1);

/// Start offsets of the non-overlapping left-to-right matches of `needle` (re.finditer of
/// the escaped text): an empty needle matches at every offset 0..size.
RUNBOX_DECL std::vector<std::size_t> find_occurrences(std::string_view hay, std::string_view needle);

inline long long line_of(std::string_view text, std::size_t offset) {
    return 1 + static_cast<long long>(std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(offset), '\n'));
}

/// A Python-visible failure of a file operation (maps to an HTTP 500 on the real server).
[[noreturn]] inline void fail_os(int err, std::string_view path) {
    throw runbox::error(runbox::errc::server_error, os_error_text(err, path), "server");
}

inline runbox::Observation error_observation(std::string content) {
    runbox::ErrorObservation obs;
    obs.content = std::move(content);
    return obs;
}

/// True when the file at `path` exists, is readable and sniffs as binary.
RUNBOX_DECL bool file_is_binary(const std::string& path);

}  // namespace detail

// ---------------------------------------------------------------------------
// The OH-ACI editor

/// OH-ACI `str_replace_editor` semantics with per-file undo history (last 10 edits per file).
class FileEditor {
public:
    /// `workspace_root`: used for "Maybe you meant <root>/<path>?" when a FileOpsContext
    /// does not name one.
    explicit FileEditor(std::string workspace_root = {}) : workspace_root_(std::move(workspace_root)) {}

    /// Runs an OH-ACI edit (view/create/str_replace/insert/undo_edit). Editor errors are the
    /// content `"ERROR:\n<message>"` of the returned FileEditObservation.
    runbox::Observation edit(const runbox::FileEditAction& action, const FileOpsContext& ctx);

    /// `view` with an optional [first, last] line range; returns the observation content
    /// (editor errors as `"ERROR:\n<message>"`).
    std::string view(const std::string& path, std::optional<std::pair<int, int>> view_range);

    /// `view` taking the wire form of view_range (a list that must hold two integers).
    std::string view_list(const std::string& path, const std::optional<std::vector<int>>& view_range) {
        return execute("view", path, std::nullopt, view_range, std::nullopt, std::nullopt, std::nullopt, workspace_root_)
            .content;
    }

    /// What an editor command produced.
    struct Outcome {
        std::string content;  ///< the editor's report (the observation's content)
        /// Whole-file texts before and after, for the diff.
        ///@{
        std::optional<std::string> old_content, new_content;
        ///@}
    };
    /// Builds the FileEditObservation OpenHands returns for an edit (used for errors that
    /// happen before the editor runs, like a non-numeric insert_line).
    static runbox::FileEditObservation make_edit_observation(const std::string& path,
                                                             const std::optional<std::string>& old_str,
                                                             const std::optional<std::string>& new_str,
                                                             Outcome result);

private:
    struct ToolError {
        std::string message;
    };
    struct CliResult {
        std::string output;
        std::string error;
        std::optional<std::string> old_content, new_content;
    };

    // OH-ACI exception texts.
    static ToolError missing(std::string_view command, std::string_view parameter) {
        return {"Parameter `" + std::string(parameter) + "` is required for command: " + std::string(command) + "."};
    }
    static ToolError invalid(std::string_view parameter, std::string_view value, std::string_view hint);
    static ToolError validation(std::string_view path, std::string_view reason) {
        return {"File validation failed for " + std::string(path) + ": " + std::string(reason)};
    }

    static bool is_supported_binary(std::string_view path);

    /// _execute_file_editor: run, then wrap errors as `"ERROR:\n<message>"`.
    Outcome execute(const std::string& command, const std::string& path, const std::optional<std::string>& file_text,
                    const std::optional<std::vector<int>>& view_range, const std::optional<std::string>& old_str,
                    const std::optional<std::string>& new_str, std::optional<long long> insert_line,
                    const std::string& root);

    CliResult run(const std::string& command, const std::string& raw_path, const std::optional<std::string>& file_text,
                  const std::optional<std::vector<int>>& view_range, const std::optional<std::string>& old_str,
                  const std::optional<std::string>& new_str, std::optional<long long> insert_line,
                  const std::string& root);

    static void validate_path(const std::string& command, const std::string& path, const std::string& root);

    static std::string suffix_of(std::string_view path);

    static void validate_file(const std::string& path);

    /// The whole file as Python reads it in text mode (UTF-8, universal newlines).
    static std::string read_text(const std::string& path);

    /// Lines first..last (1-based, inclusive) with their newlines, joined.
    static std::string read_text_range(const std::string& path, long long first, long long last);

    static void write_text(const std::string& path, std::string_view text);

    void add_history(const std::string& path, std::string content);

    CliResult view_impl(const std::string& path, const std::optional<std::vector<int>>& view_range);

    /// `find -L <p> -maxdepth 2` without hidden entries, sorted bytewise (C locale), dirs
    /// suffixed with '/', plus the count of hidden entries directly in <p>.
    static CliResult view_directory(const std::string& path);

    CliResult str_replace(const std::string& path, std::string old_str, std::string new_str);

    CliResult insert(const std::string& path, long long insert_line, const std::string& new_str);

    CliResult undo_edit(const std::string& path);

    std::string workspace_root_;
    std::map<std::string, std::deque<std::string>> history_;
};

// ---------------------------------------------------------------------------
// read / write / browse

/// `read` (reference §6.1).
RUNBOX_DECL runbox::Observation read_file(const runbox::FileReadAction& action, const FileOpsContext& ctx);

/// `write` (reference §6.2).
RUNBOX_DECL runbox::Observation write_file(const runbox::FileWriteAction& action, const FileOpsContext& ctx);

/// `browse` / `browse_interactive` when no browser is running (reference §6.5).
inline runbox::Observation browse_unsupported() {
    return detail::error_observation("Browser functionality is not supported or disabled.");
}

/// OpenHands accepts `insert_line` as a string on the wire ("185" -> 185). For an `edit`
/// action JSON ({"action":"edit","args":{...}}) this rewrites a numeric string to an integer
/// in place, and for a non-numeric one returns the observation the server answers
/// (`"ERROR:\nInvalid insert_line value: '<v>'. Expected an integer."` - the raw text in
/// single quotes, not a repr). Call it before action_from_json.
RUNBOX_DECL std::optional<runbox::Observation> coerce_insert_line(nlohmann::json& action_json);

}  // namespace runbox::server

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/file_editor.ipp"
#endif
