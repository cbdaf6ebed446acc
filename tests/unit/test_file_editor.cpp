// Server file actions: read/write rules (reference §6.1-6.2), the OH-ACI editor (§6.3,
// rows 46, 51-53 of §13.3 with the workspace replaced by a fresh temp dir) and the
// zero-context unified diff.
#include "runbox/server/file_editor.hpp"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <variant>
#include <vector>

#include <sys/stat.h>
#include <unistd.h>

#include "catch.hpp"

namespace test_file_editor {  // several files share a unit (tests/CMakeLists.txt)

namespace {

namespace fs = std::filesystem;
using runbox::server::FileEditor;
using runbox::server::FileOpsContext;
namespace ed = runbox::server::detail;

struct TempDir {
    std::string path;
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "runbox-editor-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const std::string& rel) const { return path + "/" + rel; }
};

void put(const std::string& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    REQUIRE(out.good());
    out << bytes;
}

std::string get(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    REQUIRE(in.good());
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

FileOpsContext ctx_for(const TempDir& dir) { return FileOpsContext{dir.path, dir.path, dir.path, -1}; }

template <class T>
T as(const runbox::Observation& obs) {
    REQUIRE(std::holds_alternative<T>(obs));
    return std::get<T>(obs);
}

runbox::FileEditAction edit_action(std::string command, std::string path) {
    runbox::FileEditAction a;
    a.command = std::move(command);
    a.path = std::move(path);
    return a;
}

runbox::FileEditObservation run_edit(FileEditor& editor, const FileOpsContext& ctx, const runbox::FileEditAction& a) {
    return as<runbox::FileEditObservation>(editor.edit(a, ctx));
}

runbox::FileEditObservation create(FileEditor& editor, const FileOpsContext& ctx, const std::string& path,
                                   std::optional<std::string> text) {
    auto a = edit_action("create", path);
    a.file_text = std::move(text);
    return run_edit(editor, ctx, a);
}

runbox::FileEditObservation replace(FileEditor& editor, const FileOpsContext& ctx, const std::string& path,
                                    std::optional<std::string> old_str, std::optional<std::string> new_str) {
    auto a = edit_action("str_replace", path);
    a.old_str = std::move(old_str);
    a.new_str = std::move(new_str);
    return run_edit(editor, ctx, a);
}

runbox::FileEditObservation insert(FileEditor& editor, const FileOpsContext& ctx, const std::string& path,
                                   std::optional<int> line, std::optional<std::string> new_str) {
    auto a = edit_action("insert", path);
    a.insert_line = line;
    a.new_str = std::move(new_str);
    return run_edit(editor, ctx, a);
}

runbox::Observation write_action(const FileOpsContext& ctx, std::string path, std::string content, int start = 0,
                                  int end = -1) {
    runbox::FileWriteAction a;
    a.path = std::move(path);
    a.content = std::move(content);
    a.start = start;
    a.end = end;
    return runbox::server::write_file(a, ctx);
}

runbox::Observation read_action(const FileOpsContext& ctx, std::string path, int start = 0, int end = -1) {
    runbox::FileReadAction a;
    a.path = std::move(path);
    a.start = start;
    a.end = end;
    return runbox::server::read_file(a, ctx);
}

const std::string review = "Review the changes and make sure they are as expected. Edit the file again if necessary.";
const std::string review_insert =
    "Review the changes and make sure they are as expected (correct indentation, no duplicate lines, etc). Edit the "
    "file again if necessary.";

mode_t mode_of(const std::string& path) {
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    return st.st_mode & 07777;
}

// Applies a zero-context unified diff to `old_text` (test oracle for unified_diff).
std::string apply_diff(const std::string& old_text, const std::string& diff) {
    if (diff.empty()) return old_text;
    const auto a = ed::split(old_text, '\n');
    const auto lines = ed::split(diff, '\n');
    std::vector<std::string> out;
    std::size_t next = 0;  // next unconsumed old line (0-based)
    std::size_t i = 2;     // skip headers
    const auto parse_range = [](const std::string& r, std::size_t& start, std::size_t& len) {
        const auto comma = r.find(',');
        start = std::stoul(r.substr(0, comma));
        len = comma == std::string::npos ? 1 : std::stoul(r.substr(comma + 1));
    };
    while (i < lines.size()) {
        const auto& h = lines[i++];
        REQUIRE(h.rfind("@@ -", 0) == 0);
        const auto plus = h.find(" +");
        std::size_t old_start = 0, old_len = 0, new_start = 0, new_len = 0;
        parse_range(h.substr(4, plus - 4), old_start, old_len);
        parse_range(h.substr(plus + 2, h.size() - plus - 5), new_start, new_len);
        const std::size_t first = old_len == 0 ? old_start : old_start - 1;  // 0-based first removed line
        while (next < first) out.push_back(a[next++]);
        next += old_len;
        while (i < lines.size() && lines[i].rfind("@@", 0) != 0) {
            if (lines[i][0] == '+') out.push_back(lines[i].substr(1));
            ++i;
        }
    }
    while (next < a.size()) out.push_back(a[next++]);
    return ed::join(out, "\n");
}

}  // namespace

// ---------------------------------------------------------------------------
// read

TEST_CASE("read: line window clamps and keeps at least one line", "[file_editor][read]") {
    std::vector<std::string> lines;
    for (int i = 0; i < 10; ++i) lines.push_back(std::to_string(i) + "\n");
    const auto window = [&](long long s, long long e) { return ed::join(ed::read_lines_window(lines, s, e), ""); };
    CHECK(window(0, -1) == "0\n1\n2\n3\n4\n5\n6\n7\n8\n9\n");
    CHECK(window(2, 5) == "2\n3\n4\n");
    CHECK(window(7, -1) == "7\n8\n9\n");
    CHECK(window(-5, 2) == "0\n1\n");        // start clamped to 0
    CHECK(window(3, 100) == "3\n4\n5\n6\n7\n8\n9\n");  // end clamped to n
    CHECK(window(9, 3) == "8\n");             // begin pulled to n-2, end pushed to begin+1
    CHECK(window(5, 5) == "5\n");
    CHECK(window(20, -1).empty());            // start clamped to n
    CHECK(window(0, -7) == "0\n");            // negative end other than -1 clamps to 0
    CHECK(ed::read_lines_window({}, 0, 3).empty());
}

TEST_CASE("read: text, relative paths, newline translation and window", "[file_editor][read]") {
    TempDir dir;
    TempDir other;
    FileOpsContext ctx{dir.path, dir / "sub", other.path, -1};
    fs::create_directory(dir / "sub");
    put(dir / "sub/a.txt", "zero\r\none\rtwo\nthree");

    const auto obs = as<runbox::FileReadObservation>(read_action(ctx, "a.txt"));
    CHECK(obs.path == dir / "sub/a.txt");
    CHECK(obs.content == "zero\none\ntwo\nthree");
    CHECK(obs.impl_source == runbox::FileReadSource::default_);

    CHECK(as<runbox::FileReadObservation>(read_action(ctx, "a.txt", 1, 3)).content == "one\ntwo\n");
    CHECK(as<runbox::FileReadObservation>(read_action(ctx, dir.path + "//sub/./a.txt", 3)).path == dir / "sub/a.txt");
}

TEST_CASE("read: error messages", "[file_editor][read]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    SECTION("missing file names the cwd") {
        const auto err = as<runbox::ErrorObservation>(read_action(ctx, "nope.txt"));
        CHECK(err.content == "File not found: " + (dir / "nope.txt") + ". Your current working directory is " +
                                 dir.path + ".");
        CHECK(err.error_id.empty());
    }
    SECTION("directory") {
        fs::create_directory(dir / "d");
        CHECK(as<runbox::ErrorObservation>(read_action(ctx, "d")).content ==
              "Path is a directory: " + (dir / "d") + ". You can only read files");
    }
    SECTION("not utf-8") {
        put(dir / "latin1.txt", "caf\xe9 au lait\n");
        CHECK(as<runbox::ErrorObservation>(read_action(ctx, "latin1.txt")).content ==
              "File could not be decoded as utf-8: " + (dir / "latin1.txt") + ".");
    }
}

TEST_CASE("read: binary files and media data URLs", "[file_editor][read]") {
    TempDir dir;
    TempDir server_cwd;
    FileOpsContext ctx{dir.path, dir.path, server_cwd.path, -1};
    const std::string png("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89",
                          33);
    put(dir / "pic.png", png);

    SECTION("relative path: sniffed against the server cwd (missing there), served as a data URL") {
        const auto obs = as<runbox::FileReadObservation>(read_action(ctx, "pic.png"));
        CHECK(obs.content == "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJ");
        CHECK(obs.path == dir / "pic.png");
    }
    SECTION("absolute path: rejected as binary before the media branch (quirk 6)") {
        const auto err = as<runbox::ErrorObservation>(read_action(ctx, dir / "pic.png"));
        CHECK(err.content == "ERROR_BINARY_FILE");
    }
    SECTION("binary file without a media extension") {
        std::string bytes;
        for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
        put(dir / "blob.dat", bytes);
        CHECK(as<runbox::ErrorObservation>(read_action(ctx, dir / "blob.dat")).content == "ERROR_BINARY_FILE");
    }
    SECTION("mime types by extension, case-insensitive") {
        const std::string gif("GIF89a\x01\x00", 8);
        put(dir / "A.GIF", gif);
        CHECK(as<runbox::FileReadObservation>(read_action(ctx, "A.GIF")).content == "data:image/gif;base64,R0lGODlhAQA=");
        put(dir / "b.JPG", gif);
        CHECK(as<runbox::FileReadObservation>(read_action(ctx, "b.JPG")).content.rfind("data:image/jpeg;base64,", 0) == 0);
        put(dir / "c.pdf", gif);
        CHECK(as<runbox::FileReadObservation>(read_action(ctx, "c.pdf")).content ==
              "data:application/pdf;base64,R0lGODlhAQA=");
        put(dir / "d.ogg", gif);
        CHECK(as<runbox::FileReadObservation>(read_action(ctx, "d.ogg")).content == "data:audio/ogg;base64,R0lGODlhAQA=");
        put(dir / "e.mp4", gif);
        CHECK(as<runbox::FileReadObservation>(read_action(ctx, "e.mp4")).content == "data:video/mp4;base64,R0lGODlhAQA=");
    }
    SECTION("missing media file") {
        CHECK(as<runbox::ErrorObservation>(read_action(ctx, "gone.png")).content.rfind("File not found: ", 0) == 0);
    }
}

TEST_CASE("read: binary sniff heuristics", "[file_editor][read]") {
    CHECK_FALSE(ed::looks_binary(""));
    CHECK_FALSE(ed::looks_binary("plain text\nwith lines\n"));
    CHECK_FALSE(ed::looks_binary("gr\xc3\xbc\xc3\x9f \xc3\xa9t\xc3\xa9 \xe2\x82\xac"));  // UTF-8 text
    CHECK_FALSE(ed::looks_binary("\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82"));  // Cyrillic, all high bytes
    CHECK(ed::looks_binary(std::string("text\0with nul", 13)));
    CHECK(ed::looks_binary("\x01\x02\x03\x04\x05\x06\x07"));
}

TEST_CASE("read: oh_aci impl_source goes through the editor view", "[file_editor][read][row51]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    put(dir / "f.txt", "Line 1\nLine 2\nLine 3\n");
    runbox::FileReadAction a;
    a.path = dir / "f.txt";
    a.impl_source = runbox::FileReadSource::oh_aci;
    a.view_range = std::vector<int>{2, 3};
    auto obs = as<runbox::FileReadObservation>(runbox::server::read_file(a, ctx));
    CHECK(obs.impl_source == runbox::FileReadSource::oh_aci);
    CHECK(obs.path == a.path);
    CHECK(obs.content == "Here's the result of running `cat -n` on " + a.path + ":\n     2\tLine 2\n     3\tLine 3\n");

    a.view_range = std::vector<int>{2, 10};
    obs = as<runbox::FileReadObservation>(runbox::server::read_file(a, ctx));
    CHECK(obs.content == "NOTE: We only show up to 3 since there're only 3 lines in this file.\n"
                         "Here's the result of running `cat -n` on " + a.path + ":\n     2\tLine 2\n     3\tLine 3\n");

    a.view_range = std::vector<int>{0, 2};
    obs = as<runbox::FileReadObservation>(runbox::server::read_file(a, ctx));
    CHECK(obs.content == "ERROR:\nInvalid `view_range` parameter: [0, 2]. Its first element `0` should be within the "
                         "range of lines of the file: [1, 3].");

    a.view_range = std::vector<int>{3, 2};
    obs = as<runbox::FileReadObservation>(runbox::server::read_file(a, ctx));
    CHECK(obs.content == "ERROR:\nInvalid `view_range` parameter: [3, 2]. Its second element `2` should be greater "
                         "than or equal to the first element `3`.");

    a.view_range = std::vector<int>{1, 2, 3};
    obs = as<runbox::FileReadObservation>(runbox::server::read_file(a, ctx));
    CHECK(obs.content == "ERROR:\nInvalid `view_range` parameter: [1, 2, 3]. It should be a list of two integers.");

    FileEditor editor(dir.path);
    CHECK(editor.view(dir / "f.txt", std::pair{1, -1}) ==
          "Here's the result of running `cat -n` on " + (dir / "f.txt") + ":\n     1\tLine 1\n     2\tLine 2\n     3\tLine 3\n");
}

// ---------------------------------------------------------------------------
// write

TEST_CASE("write: new files get one newline per piece", "[file_editor][write]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    const auto obs = as<runbox::FileWriteObservation>(write_action(ctx, "a.txt", "a\nb"));
    CHECK(obs.path == dir / "a.txt");
    CHECK(obs.content.empty());
    CHECK(get(dir / "a.txt") == "a\nb\n");

    as<runbox::FileWriteObservation>(write_action(ctx, "empty.txt", ""));
    CHECK(get(dir / "empty.txt") == "\n");
    as<runbox::FileWriteObservation>(write_action(ctx, "nl.txt", "x\n"));
    CHECK(get(dir / "nl.txt") == "x\n\n");
}

TEST_CASE("write: parent directories, mode and owner", "[file_editor][write]") {
    TempDir dir;
    auto ctx = ctx_for(dir);
    const bool root = ::geteuid() == 0;
    if (root) ctx.user_id = 4242;
    const auto obs = as<runbox::FileWriteObservation>(write_action(ctx, "deep/er/f.txt", "hi"));
    CHECK(obs.path == dir / "deep/er/f.txt");
    CHECK(get(dir / "deep/er/f.txt") == "hi\n");
    CHECK(mode_of(dir / "deep/er/f.txt") == 0664);
    struct stat st {};
    REQUIRE(::stat((dir / "deep/er/f.txt").c_str(), &st) == 0);
    if (root) {
        CHECK(st.st_uid == 4242u);  // uid:uid, like OpenHands' --user-id
        CHECK(st.st_gid == 4242u);
    } else {
        CHECK(st.st_uid == ::geteuid());
    }

    // An existing file keeps its mode.
    put(dir / "keep.txt", "old\n");
    REQUIRE(::chmod((dir / "keep.txt").c_str(), 0640) == 0);
    as<runbox::FileWriteObservation>(write_action(ctx, dir / "keep.txt", "new"));
    CHECK(get(dir / "keep.txt") == "new\n");
    CHECK(mode_of(dir / "keep.txt") == 0640);
}

TEST_CASE("write: splice into an existing file", "[file_editor][write]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    const std::string original = "l0\nl1\nl2\nl3\n";
    const auto splice = [&](int start, int end) {
        put(dir / "s.txt", original);
        as<runbox::FileWriteObservation>(write_action(ctx, "s.txt", "X", start, end));
        return get(dir / "s.txt");
    };
    CHECK(splice(0, -1) == "X\n");
    CHECK(splice(1, 3) == "l0\nX\nl3\n");
    CHECK(splice(2, -1) == "l0\nl1\nX\n");
    CHECK(splice(0, 2) == "X\nl2\nl3\n");
    CHECK(splice(4, 4) == "l0\nl1\nl2\nl3\nX\n");
    CHECK(splice(-1, -1) == "l0\nl1\nl2\nX\n");  // Python slice semantics: original[:-1]

    // CRLF lines are read with universal newlines and written back as LF.
    put(dir / "crlf.txt", "a\r\nb\r\n");
    as<runbox::FileWriteObservation>(write_action(ctx, "crlf.txt", "B", 1, 2));
    CHECK(get(dir / "crlf.txt") == "a\nB\n");
}

TEST_CASE("write: errors", "[file_editor][write]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    fs::create_directory(dir / "d");
    CHECK(as<runbox::ErrorObservation>(write_action(ctx, "d", "x")).content ==
          "Path is a directory: " + (dir / "d") + ". You can only write to files");
    put(dir / "bad.txt", "caf\xe9\n");
    CHECK(as<runbox::ErrorObservation>(write_action(ctx, "bad.txt", "x")).content ==
          "File could not be decoded as utf-8: " + (dir / "bad.txt"));
    CHECK(get(dir / "bad.txt") == "caf\xe9\n");
}

TEST_CASE("row 46: file ops next to IPython", "[file_editor][row46]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    const auto missing = as<runbox::ErrorObservation>(read_action(ctx, "hello.sh"));
    CHECK(missing.content.find("File not found") != std::string::npos);
    const auto wrote = as<runbox::FileWriteObservation>(write_action(ctx, "hello.sh", "echo \"Hello, World!\""));
    CHECK(wrote.path == dir / "hello.sh");
    CHECK(wrote.content.empty());
    CHECK(as<runbox::FileReadObservation>(read_action(ctx, "hello.sh")).content == "echo \"Hello, World!\"\n");
}

// ---------------------------------------------------------------------------
// editor: view / create (row 51)

TEST_CASE("row 51: view a file", "[file_editor][row51]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    write_action(ctx, "test.txt", "This is a test file.\nThis file is for testing purposes.");
    const auto obs = run_edit(editor, ctx, edit_action("view", dir / "test.txt"));
    CHECK(obs.content == "Here's the result of running `cat -n` on " + (dir / "test.txt") +
                             ":\n     1\tThis is a test file.\n     2\tThis file is for testing purposes.\n     3\t\n");
    CHECK(obs.path == dir / "test.txt");
    CHECK_FALSE(obs.prev_exist);
    CHECK(obs.impl_source == runbox::FileEditSource::oh_aci);
    CHECK(obs.diff == std::optional<std::string>(""));
    CHECK_FALSE(obs.old_content.has_value());
    CHECK_FALSE(obs.new_content.has_value());
}

TEST_CASE("row 51: view a directory two levels deep without hidden items", "[file_editor][row51]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    put(dir / "test.txt", "x");
    put(dir / ".hidden", "x");
    CHECK(run_edit(editor, ctx, edit_action("view", dir.path)).content ==
          "Here's the files and directories up to 2 levels deep in " + dir.path + ", excluding hidden items:\n" +
              dir.path + "/\n" + (dir / "test.txt") + "\n\n1 hidden files/directories in this directory are excluded. "
              "You can use 'ls -la " + dir.path + "' to see them.");

    // Depth 2 is listed, depth 3 is not; hidden entries below are skipped but not counted;
    // bytewise order ('.' < '/'); a trailing slash on the argument is normalised away.
    fs::create_directories(dir / "a/b/c");
    put(dir / "a/.secret", "x");
    put(dir / "a.txt", "x");
    put(dir / "a/b/c/deep.txt", "x");
    CHECK(run_edit(editor, ctx, edit_action("view", dir.path + "/")).content ==
          "Here's the files and directories up to 2 levels deep in " + dir.path + ", excluding hidden items:\n" +
              dir.path + "/\n" + (dir / "a") + "/\n" + (dir / "a.txt") + "\n" + (dir / "a/b") + "/\n" +
              (dir / "test.txt") + "\n\n1 hidden files/directories in this directory are excluded. You can use 'ls -la " +
              dir.path + "' to see them.");

    CHECK(editor.view(dir.path, std::pair{1, 2}) ==
          "ERROR:\nInvalid `view_range` parameter: [1, 2]. The `view_range` parameter is not allowed when `path` "
          "points to a directory.");
}

TEST_CASE("row 51: create", "[file_editor][row51]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "new.txt";
    auto obs = create(editor, ctx, path, "Line 1\nLine 2");
    CHECK(obs.content == "File created successfully at: " + path);
    CHECK(get(path) == "Line 1\nLine 2");
    CHECK(obs.diff == "--- " + path + "\n+++ " + path + "\n@@ -1 +1,2 @@\n-\n+Line 1\n+Line 2");

    obs = create(editor, ctx, dir / "empty.txt", "");
    CHECK(obs.content == "File created successfully at: " + (dir / "empty.txt"));
    CHECK(get(dir / "empty.txt").empty());

    obs = create(editor, ctx, dir / "none.txt", std::nullopt);
    CHECK(obs.content == "ERROR:\nParameter `file_text` is required for command: create.");
    CHECK(obs.diff == "");
    CHECK_FALSE(fs::exists(dir / "none.txt"));

    const auto orphan = dir / "no/such/dir.txt";
    obs = create(editor, ctx, orphan, "x");
    CHECK(obs.content == "ERROR:\nRan into [Errno 2] No such file or directory: '" + orphan +
                             "' while trying to write to " + orphan);

    obs = create(editor, ctx, path, "again");
    CHECK(obs.content == "ERROR:\nInvalid `path` parameter: " + path + ". File already exists at: " + path +
                             ". Cannot overwrite files using command `create`.");
    CHECK(get(path) == "Line 1\nLine 2");
}

TEST_CASE("editor: path validation", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto missing = dir / "nonexistent.txt";
    CHECK(run_edit(editor, ctx, edit_action("view", missing)).content ==
          "ERROR:\nInvalid `path` parameter: " + missing + ". The path " + missing +
              " does not exist. Please provide a valid path.");

    put(dir / "rel.txt", "x");
    CHECK(run_edit(editor, ctx, edit_action("view", "rel.txt")).content ==
          "ERROR:\nInvalid `path` parameter: rel.txt. The path should be an absolute path, starting with `/`. Maybe you "
          "meant " + (dir / "rel.txt") + "?");
    CHECK(run_edit(editor, ctx, edit_action("view", "other.txt")).content ==
          "ERROR:\nInvalid `path` parameter: other.txt. The path should be an absolute path, starting with `/`.");

    CHECK(run_edit(editor, ctx, edit_action("str_replace", dir.path)).content ==
          "ERROR:\nInvalid `path` parameter: " + dir.path + ". The path " + dir.path +
              " is a directory and only the `view` command can be used on directories.");
    CHECK(run_edit(editor, ctx, edit_action("frobnicate", dir / "rel.txt")).content ==
          "ERROR:\nUnrecognized command frobnicate. The allowed commands for the oh_editor tool are: view, create, "
          "str_replace, insert, undo_edit");

    std::string bytes;
    for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
    put(dir / "blob.bin", bytes);
    CHECK(run_edit(editor, ctx, edit_action("view", dir / "blob.bin")).content ==
          "ERROR:\nFile validation failed for " + (dir / "blob.bin") +
              ": File appears to be binary and this file type cannot be read or edited by this tool.");
}

TEST_CASE("editor: file validation and text decoding", "[file_editor]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);

    const auto big = dir / "huge.log";
    put(big, "");
    REQUIRE(::truncate(big.c_str(), 11 * 1024 * 1024) == 0);  // sparse: instant
    CHECK(run_edit(editor, ctx, edit_action("view", big)).content ==
          "ERROR:\nFile validation failed for " + big + ": File is too large (11.0MB). Maximum allowed size is 10MB.");

    const auto pdf = dir / "doc.PDF";
    put(pdf, "%PDF-1.4\n");
    CHECK(replace(editor, ctx, pdf, "a", "b").content ==
          "ERROR:\nInvalid `path` parameter: " + pdf + ". The path " + pdf +
              " points to a binary file (.PDF) and only the `view` command can be used on supported binary files.");
    CHECK(run_edit(editor, ctx, edit_action("view", pdf)).content.rfind("ERROR:\nError in converting file to Markdown: ", 0) ==
          0);

    // Only UTF-8 is decoded (OH-ACI would guess another encoding); the error reads like Python's.
    const auto latin = dir / "latin1.txt";
    put(latin, "caf\xe9 au lait\n");
    CHECK(run_edit(editor, ctx, edit_action("view", latin)).content ==
          "ERROR:\nRan into 'utf-8' codec can't decode byte 0xe9 in position 3: invalid continuation byte while "
          "trying to read " + latin);

    // Universal newlines: CR LF and lone CR read as LF, and an edit writes LF back.
    const auto crlf = dir / "crlf.txt";
    put(crlf, "one\r\ntwo\rthree\r\n");
    CHECK(run_edit(editor, ctx, edit_action("view", crlf)).content ==
          "Here's the result of running `cat -n` on " + crlf + ":\n     1\tone\n     2\ttwo\n     3\tthree\n     4\t\n");
    replace(editor, ctx, crlf, "two", "TWO");
    CHECK(get(crlf) == "one\nTWO\nthree\n");
}

// ---------------------------------------------------------------------------
// editor: str_replace (row 52)

TEST_CASE("row 52: str_replace single line, with snippet and diff", "[file_editor][row52]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "test.txt";
    create(editor, ctx, path, "Line 1\nLine 2\nLine 3");
    const auto obs = replace(editor, ctx, path, "Line 2", "New Line 2");
    CHECK(obs.content == "The file " + path + " has been edited. Here's the result of running `cat -n` on a snippet of " +
                             path + ":\n     1\tLine 1\n     2\tNew Line 2\n     3\tLine 3\n" + review);
    CHECK(get(path) == "Line 1\nNew Line 2\nLine 3");
    CHECK(obs.path == path);
    CHECK(obs.old_content == std::optional<std::string>("Line 2"));
    CHECK(obs.new_content == std::optional<std::string>("New Line 2"));
    CHECK_FALSE(obs.prev_exist);
    CHECK(obs.diff == "--- " + path + "\n+++ " + path + "\n@@ -2 +2 @@\n-Line 2\n+New Line 2");
}

TEST_CASE("row 52: str_replace multi-line, tabs and context window", "[file_editor][row52]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "test.txt";

    create(editor, ctx, path, "Line 1\nLine 2\nLine 3\nLine 4");
    auto obs = replace(editor, ctx, path, "Line 2\nLine 3", "New Line 2\nNew Line 3");
    CHECK(obs.content == "The file " + path + " has been edited. Here's the result of running `cat -n` on a snippet of " +
                             path + ":\n     1\tLine 1\n     2\tNew Line 2\n     3\tNew Line 3\n     4\tLine 4\n" + review);

    const auto tabs = dir / "tabs.txt";
    create(editor, ctx, tabs, "Line 1\n\tIndented Line\nLine 3");
    obs = replace(editor, ctx, tabs, "\tIndented Line", "\tNew Indented Line");
    CHECK(obs.content == "The file " + tabs + " has been edited. Here's the result of running `cat -n` on a snippet of " +
                             tabs + ":\n     1\tLine 1\n     2\t\tNew Indented Line\n     3\tLine 3\n" + review);

    // OH-ACI's window: lines (line-4, line+4+newlines_in_new_str]; the snippet's final newline
    // shows as an empty numbered line.
    std::string text;
    for (int i = 1; i <= 20; ++i) text += "L" + std::to_string(i) + "\n";
    const auto big = dir / "big.txt";
    create(editor, ctx, big, text);
    obs = replace(editor, ctx, big, "L10\n", "X\nY\n");
    CHECK(obs.content == "The file " + big + " has been edited. Here's the result of running `cat -n` on a snippet of " +
                             big + ":\n     7\tL7\n     8\tL8\n     9\tL9\n    10\tX\n    11\tY\n    12\tL11\n    13\tL12\n"
                             "    14\tL13\n    15\tL14\n    16\tL15\n    17\t\n" + review);
    CHECK(obs.diff == "--- " + big + "\n+++ " + big + "\n@@ -10 +10,2 @@\n-L10\n+X\n+Y");
}

TEST_CASE("row 52: str_replace failures", "[file_editor][row52]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "test.txt";
    create(editor, ctx, path, "Line 1\nLine 1\nLine 2");

    auto obs = replace(editor, ctx, path, "Line 1", "New Line 1");
    CHECK(obs.content == "ERROR:\nNo replacement was performed. Multiple occurrences of old_str `Line 1` in lines [1, 2]. "
                         "Please ensure it is unique.");
    CHECK(obs.diff == "");
    CHECK(obs.old_content == std::optional<std::string>("Line 1"));

    obs = replace(editor, ctx, path, "Line 4", "New Line 4");
    CHECK(obs.content == "ERROR:\nNo replacement was performed, old_str `Line 4` did not appear verbatim in " + path + ".");

    obs = replace(editor, ctx, path, "Line 1", "Line 1");
    CHECK(obs.content == "ERROR:\nInvalid `new_str` parameter: Line 1. No replacement was performed. `new_str` and "
                         "`old_str` must be different.");

    obs = replace(editor, ctx, path, std::nullopt, "x");
    CHECK(obs.content == "ERROR:\nParameter `old_str` is required for command: str_replace.");
    CHECK(get(path) == "Line 1\nLine 1\nLine 2");

    // Multi-line blocks report the line each occurrence starts on.
    const auto blocks = dir / "blocks.py";
    create(editor, ctx, blocks, "def f():\n    return 1\n\nx = 1\ny = 2\n\ndef f():\n    return 1\n");
    obs = replace(editor, ctx, blocks, "def f():\n    return 1", "def g():\n    return 2");
    CHECK(obs.content == "ERROR:\nNo replacement was performed. Multiple occurrences of old_str `def f():\n    return 1` "
                         "in lines [1, 7]. Please ensure it is unique.");
}

TEST_CASE("row 52: empty old_str on a file written by FileWriteAction", "[file_editor][row52]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    write_action(ctx, "test.txt", "Line 1\nLine 2\nLine 3");
    const auto obs = replace(editor, ctx, dir / "test.txt", "", "new content");
    CHECK(obs.content == "ERROR:\nNo replacement was performed. Multiple occurrences of old_str `` in lines [1, 2, 3, 4]. "
                         "Please ensure it is unique.");

    // On an empty file the empty string occurs exactly once, at offset 0.
    create(editor, ctx, dir / "empty.txt", "");
    CHECK(replace(editor, ctx, dir / "empty.txt", "", "filled").content.find("has been edited") != std::string::npos);
    CHECK(get(dir / "empty.txt") == "filled");
}

TEST_CASE("row 52: empty or missing new_str deletes; whitespace retry", "[file_editor][row52]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "test.txt";
    create(editor, ctx, path, "Line 1\nLine 2\nLine 3");
    auto obs = replace(editor, ctx, path, "Line 2\n", "");
    CHECK(obs.content.find("has been edited") != std::string::npos);
    CHECK(get(path) == "Line 1\nLine 3");
    CHECK(obs.diff == "--- " + path + "\n+++ " + path + "\n@@ -2 +1,0 @@\n-Line 2");

    obs = replace(editor, ctx, path, "Line 3", std::nullopt);
    CHECK(obs.content.find("has been edited") != std::string::npos);
    CHECK(get(path) == "Line 1\n");
    CHECK_FALSE(obs.new_content.has_value());

    // No verbatim hit: both strings are stripped and the search retried.
    obs = replace(editor, ctx, path, "  Line 1 \n\n", "  Replaced  ");
    CHECK(obs.content.find("has been edited") != std::string::npos);
    CHECK(get(path) == "Replaced\n");
}

// ---------------------------------------------------------------------------
// editor: insert / undo / large files (row 53)

TEST_CASE("row 53: insert", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "test.txt";
    create(editor, ctx, path, "Line 1\nLine 2\nLine 3");

    auto obs = insert(editor, ctx, path, 1, "Inserted line");
    CHECK(obs.content == "The file " + path +
                             " has been edited. Here's the result of running `cat -n` on a snippet of the edited file:\n"
                             "     1\tLine 1\n     2\tInserted line\n     3\tLine 2\n     4\tLine 3\n" + review_insert);
    CHECK(get(path) == "Line 1\nInserted line\nLine 2\nLine 3");
    CHECK(obs.diff == "--- " + path + "\n+++ " + path + "\n@@ -1,0 +2 @@\n+Inserted line");
    CHECK_FALSE(obs.old_content.has_value());
    CHECK(obs.new_content == std::optional<std::string>("Inserted line"));

    obs = insert(editor, ctx, path, 10, "x");
    CHECK(obs.content == "ERROR:\nInvalid `insert_line` parameter: 10. It should be within the range of allowed values: [0, 4]");
    obs = insert(editor, ctx, path, -1, "x");
    CHECK(obs.content == "ERROR:\nInvalid `insert_line` parameter: -1. It should be within the range of allowed values: [0, 4]");

    obs = insert(editor, ctx, path, 1, "");
    CHECK(obs.content.find("     2\t\n") != std::string::npos);
    CHECK(get(path) == "Line 1\n\nInserted line\nLine 2\nLine 3");

    obs = insert(editor, ctx, path, 0, "Top");
    CHECK(get(path).rfind("Top\nLine 1\n", 0) == 0);

    CHECK(insert(editor, ctx, path, 1, std::nullopt).content ==
          "ERROR:\nParameter `new_str` is required for command: insert.");
    CHECK(insert(editor, ctx, path, std::nullopt, "x").content ==
          "ERROR:\nParameter `insert_line` is required for command: insert.");
}

TEST_CASE("row 53: insert at the documented limit of a 3-line file", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "three.txt";
    create(editor, ctx, path, "a\nb\nc\n");
    CHECK(insert(editor, ctx, path, 10, "x").content ==
          "ERROR:\nInvalid `insert_line` parameter: 10. It should be within the range of allowed values: [0, 3]");
    CHECK(insert(editor, ctx, path, 3, "d").content.find("has been edited") != std::string::npos);
    CHECK(get(path) == "a\nb\nc\nd\n");
}

TEST_CASE("row 53: insert_line given as a string", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "long.txt";
    std::string text;
    for (int i = 1; i <= 200; ++i) text += "line " + std::to_string(i) + "\n";
    create(editor, ctx, path, text);

    nlohmann::json action = {{"action", "edit"},
                             {"args", {{"path", path}, {"command", "insert"}, {"new_str", "INSERTED"}, {"insert_line", "185"}}}};
    CHECK_FALSE(runbox::server::coerce_insert_line(action).has_value());
    REQUIRE(action["args"]["insert_line"].is_number_integer());
    CHECK(action["args"]["insert_line"].get<int>() == 185);
    const auto obs = insert(editor, ctx, path, action["args"]["insert_line"].get<int>(), "INSERTED");
    CHECK(obs.content.find("   186\tINSERTED\n") != std::string::npos);
    CHECK(ed::split(get(path), '\n')[185] == "INSERTED");

    nlohmann::json bad = {{"action", "edit"},
                          {"args", {{"path", path}, {"command", "insert"}, {"new_str", "x"}, {"insert_line", "abc"}}}};
    const auto err = runbox::server::coerce_insert_line(bad);
    REQUIRE(err.has_value());
    const auto eobs = as<runbox::FileEditObservation>(*err);
    CHECK(eobs.content == "ERROR:\nInvalid insert_line value: 'abc'. Expected an integer.");
    CHECK(eobs.path == path);
    CHECK(eobs.new_content == std::optional<std::string>("x"));
    CHECK(eobs.diff == "");

    bad["args"]["insert_line"] = "it's";
    CHECK(as<runbox::FileEditObservation>(*runbox::server::coerce_insert_line(bad)).content ==
          "ERROR:\nInvalid insert_line value: 'it's'. Expected an integer.");

    CHECK(ed::parse_py_int(" 1_000 ") == 1000);
    CHECK(ed::parse_py_int("-3") == -3);
    CHECK_FALSE(ed::parse_py_int("1__0").has_value());
    CHECK_FALSE(ed::parse_py_int("").has_value());
    CHECK_FALSE(ed::parse_py_int("12a").has_value());
}

TEST_CASE("row 53: undo_edit", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "test.txt";
    create(editor, ctx, path, "Line 1\nLine 2\nLine 3");
    replace(editor, ctx, path, "Line 2", "New Line 2");
    REQUIRE(get(path) == "Line 1\nNew Line 2\nLine 3");

    const auto obs = run_edit(editor, ctx, edit_action("undo_edit", path));
    CHECK(obs.content == "Last edit to " + path + " undone successfully. Here's the result of running `cat -n` on " + path +
                             ":\n     1\tLine 1\n     2\tLine 2\n     3\tLine 3\n");
    CHECK(get(path) == "Line 1\nLine 2\nLine 3");
    CHECK(obs.diff == "--- " + path + "\n+++ " + path + "\n@@ -2 +2 @@\n-New Line 2\n+Line 2");

    // History is per editor and per file.
    write_action(ctx, "plain.txt", "untouched");
    CHECK(run_edit(editor, ctx, edit_action("undo_edit", dir / "plain.txt")).content ==
          "ERROR:\nNo edit history found for " + (dir / "plain.txt") + ".");
    FileEditor fresh(dir.path);
    CHECK(run_edit(fresh, ctx, edit_action("undo_edit", path)).content ==
          "ERROR:\nNo edit history found for " + path + ".");
}

TEST_CASE("editor: undo history keeps the last 10 edits per file", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    const auto path = dir / "n.txt";
    create(editor, ctx, path, "v0");
    for (int i = 1; i <= 12; ++i) {
        REQUIRE(replace(editor, ctx, path, "v" + std::to_string(i - 1), "v" + std::to_string(i)).content.find(
                    "has been edited") != std::string::npos);
    }
    for (int i = 11; i >= 2; --i) {
        REQUIRE(run_edit(editor, ctx, edit_action("undo_edit", path)).content.find("undone successfully") !=
                std::string::npos);
        CHECK(get(path) == "v" + std::to_string(i));
    }
    CHECK(run_edit(editor, ctx, edit_action("undo_edit", path)).content ==
          "ERROR:\nNo edit history found for " + path + ".");
}

TEST_CASE("row 53: large file view is truncated at 16000 characters", "[file_editor][row53]") {
    TempDir dir;
    const auto ctx = ctx_for(dir);
    FileEditor editor(dir.path);
    std::string text;
    for (int i = 0; i < 16000; ++i) text += "Line " + std::to_string(i) + "\n";
    put(dir / "big.txt", text);
    const auto obs = run_edit(editor, ctx, edit_action("view", dir / "big.txt"));
    CHECK(obs.content.find("Due to the max output limit, only part of this file has been shown to you.") != std::string::npos);
    CHECK(obs.content.find("     1\tLine 0\n") != std::string::npos);
    CHECK(obs.content.find("Line 15999") == std::string::npos);
    // Exactly the first 16000 characters of the file precede the notice.
    const auto notice = obs.content.find("<response clipped>");
    REQUIRE(notice != std::string::npos);
    std::string shown;
    for (const auto& line : ed::split(obs.content.substr(0, notice), '\n')) {
        const auto tab = line.find('\t');
        if (tab != std::string::npos) shown += line.substr(tab + 1) + "\n";
    }
    shown.pop_back();
    CHECK(shown == text.substr(0, 16000));
}

TEST_CASE("editor: truncation counts code points", "[file_editor]") {
    std::string s;
    for (int i = 0; i < 10; ++i) s += "\xc3\xa9";  // 10 code points, 20 bytes
    CHECK(ed::maybe_truncate(s, "!", 10) == s);
    CHECK(ed::maybe_truncate(s, "!", 3) == "\xc3\xa9\xc3\xa9\xc3\xa9!");
}

// ---------------------------------------------------------------------------
// diff

TEST_CASE("diff: zero-context unified format", "[file_editor][diff]") {
    const std::string p = "/workspace/a.txt";
    const std::string head = "--- " + p + "\n+++ " + p + "\n";
    CHECK(ed::unified_diff("a", "b", p) == head + "@@ -1 +1 @@\n-a\n+b");  // reference §3.4 example
    CHECK(ed::unified_diff("same\ntext", "same\ntext", p).empty());
    CHECK(ed::unified_diff("", "", p).empty());
    CHECK(ed::unified_diff("a\nc", "a\nb\nc", p) == head + "@@ -1,0 +2 @@\n+b");
    CHECK(ed::unified_diff("a\nb\nc", "a\nc", p) == head + "@@ -2 +1,0 @@\n-b");
    CHECK(ed::unified_diff("1\n2\n3\n4\n5", "1\nX\n3\n4\nY", p) == head + "@@ -2 +2 @@\n-2\n+X\n@@ -5 +5 @@\n-5\n+Y");
    CHECK(ed::unified_diff("1\n2\n3", "1\nA\nB\n3", p) == head + "@@ -2 +2,2 @@\n-2\n+A\n+B");
    CHECK(ed::unified_diff("", "x\ny", p) == head + "@@ -1 +1,2 @@\n-\n+x\n+y");
    CHECK(ed::unified_diff("keep\nold  \t", "keep\nnew \t", p) == head + "@@ -2 +2 @@\n-old\n+new");  // right-trimmed
    CHECK(ed::unified_diff("a\nb", "b", p) == head + "@@ -1 +0,0 @@\n-a");
    CHECK(ed::unified_diff("b", "a\nb", p) == head + "@@ -0,0 +1 @@\n+a");
}

TEST_CASE("diff: hunks reconstruct the new text", "[file_editor][diff]") {
    // Deterministic pseudo-random edits over a small alphabet (many repeated lines).
    std::uint32_t state = 12345;
    const auto next = [&] {
        state = state * 1103515245u + 12345u;
        return (state >> 16) & 0x7fffu;
    };
    for (int round = 0; round < 200; ++round) {
        std::vector<std::string> a, b;
        const auto len = next() % 40;
        for (std::uint32_t i = 0; i < len; ++i) a.push_back(std::string(1, static_cast<char>('a' + next() % 5)));
        for (const auto& line : a) {
            const auto r = next() % 10;
            if (r == 0) continue;                                                             // delete
            if (r == 1) b.push_back(std::string(1, static_cast<char>('a' + next() % 5)));  // replace
            else b.push_back(line);
            if (r == 2) b.push_back("new" + std::to_string(next() % 3));                     // insert
        }
        const auto old_text = ed::join(a, "\n"), new_text = ed::join(b, "\n");
        const auto diff = ed::unified_diff(old_text, new_text, "/f");
        INFO("old=" << old_text << " new=" << new_text << " diff=" << diff);
        CHECK(apply_diff(old_text, diff) == new_text);
        if (old_text == new_text) CHECK(diff.empty());
    }
}

TEST_CASE("diff: a whole-file rewrite beyond the edit bound stays one hunk", "[file_editor][diff]") {
    std::string a, b;
    for (int i = 0; i < 3000; ++i) {
        a += "old" + std::to_string(i) + "\n";
        b += "new" + std::to_string(i) + "\n";
    }
    const auto diff = ed::unified_diff(a, b, "/f");
    CHECK(diff.find("@@ -1,3000 +1,3000 @@\n") != std::string::npos);
    CHECK(apply_diff(a, diff) == b);
}

TEST_CASE("browse is unsupported", "[file_editor][browse]") {
    const auto err = as<runbox::ErrorObservation>(runbox::server::browse_unsupported());
    CHECK(err.content == "Browser functionality is not supported or disabled.");
    CHECK(err.error_id.empty());
}

}  // namespace test_file_editor
