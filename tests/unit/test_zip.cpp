// Zip helpers shared by the action server (upload/download) and the client (copy_to/copy_from).
#include "catch.hpp"
#include "temp_files.hpp"

#include "runbox/zip.hpp"

#include <zip.h>

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace test_zip {  // several files share a unit (tests/CMakeLists.txt)

namespace fs = std::filesystem;

namespace {

struct TempDir : runbox_test::TempDir {
    TempDir() : runbox_test::TempDir("runbox-zip") {}
};
using runbox_test::read_file;
using runbox_test::write_file;

std::vector<std::string> sorted(std::vector<std::string> names) {
    std::sort(names.begin(), names.end());
    return names;
}

// Builds an archive directly with libzip, so the tests can craft hostile entry names.
void make_raw_zip(const fs::path& archive_path, const std::vector<std::pair<std::string, std::string>>& entries) {
    int code = 0;
    zip_t* archive = zip_open(archive_path.c_str(), ZIP_CREATE | ZIP_TRUNCATE, &code);
    REQUIRE(archive != nullptr);
    for (const auto& [name, content] : entries) {
        zip_source_t* source = zip_source_buffer(archive, content.data(), content.size(), 0);
        REQUIRE(source != nullptr);
        REQUIRE(zip_file_add(archive, name.c_str(), source, ZIP_FL_ENC_UTF_8) >= 0);
    }
    REQUIRE(zip_close(archive) == 0);
}

}  // namespace

TEST_CASE("zip_tree stores names relative to the directory", "[zip]") {
    TempDir tmp;
    write_file(tmp.path / "src" / "a.txt", "alpha");
    write_file(tmp.path / "src" / "sub" / "b.txt", "beta");
    fs::create_directories(tmp.path / "src" / "empty");
    const auto archive = tmp.path / "out.zip";

    runbox::zip_tree(tmp.path / "src", archive);
    REQUIRE(sorted(runbox::zip_entry_names(archive)) == std::vector<std::string>{"a.txt", "sub/b.txt"});
}

TEST_CASE("zip_tree with include_top_dir prefixes the directory name and keeps empty dirs", "[zip]") {
    TempDir tmp;
    write_file(tmp.path / "test_dir" / "file1.txt", "1");
    fs::create_directories(tmp.path / "test_dir" / "empty");
    const auto archive = tmp.path / "out.zip";

    runbox::zip_tree(tmp.path / "test_dir", archive, {.include_top_dir = true, .include_directories = true});
    REQUIRE(sorted(runbox::zip_entry_names(archive)) ==
            std::vector<std::string>{"test_dir/", "test_dir/empty/", "test_dir/file1.txt"});
}

TEST_CASE("zip_tree of a regular file is empty unless the top name is included", "[zip]") {
    TempDir tmp;
    write_file(tmp.path / "one.txt", "x");
    const auto archive = tmp.path / "out.zip";

    runbox::zip_tree(tmp.path / "one.txt", archive);
    REQUIRE(fs::exists(archive));
    REQUIRE(runbox::zip_entry_names(archive).empty());

    runbox::zip_tree(tmp.path / "one.txt", archive, {.include_top_dir = true});
    REQUIRE(runbox::zip_entry_names(archive) == std::vector<std::string>{"one.txt"});
}

TEST_CASE("zip_tree of a missing path throws not_found", "[zip]") {
    TempDir tmp;
    try {
        runbox::zip_tree(tmp.path / "missing", tmp.path / "out.zip");
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::not_found);
    }
}

TEST_CASE("zip round trip keeps content and executable bits", "[zip]") {
    TempDir tmp;
    write_file(tmp.path / "src" / "run.sh", "#!/bin/sh\necho hi\n");
    write_file(tmp.path / "src" / "deep" / "er" / "data.bin", std::string("\0\1\2binary", 9));
    fs::permissions(tmp.path / "src" / "run.sh", fs::perms::owner_all, fs::perm_options::add);
    const auto archive = tmp.path / "out.zip";
    runbox::zip_tree(tmp.path / "src", archive, {.include_top_dir = true});

    runbox::extract_zip(archive, tmp.path / "dest");
    REQUIRE(read_file(tmp.path / "dest" / "src" / "run.sh") == "#!/bin/sh\necho hi\n");
    REQUIRE(read_file(tmp.path / "dest" / "src" / "deep" / "er" / "data.bin") == std::string("\0\1\2binary", 9));
    const auto perms = fs::status(tmp.path / "dest" / "src" / "run.sh").permissions();
    REQUIRE((perms & fs::perms::owner_exec) != fs::perms::none);
}

TEST_CASE("extract_zip rejects path traversal before writing anything", "[zip]") {
    TempDir tmp;
    const auto archive = tmp.path / "evil.zip";
    const auto dest = tmp.path / "dest";

    SECTION("dot-dot component") {
        make_raw_zip(archive, {{"ok.txt", "fine"}, {"a/../../escaped.txt", "bad"}});
    }
    SECTION("leading dot-dot") {
        make_raw_zip(archive, {{"ok.txt", "fine"}, {"../escaped.txt", "bad"}});
    }
    SECTION("backslash dot-dot") {
        make_raw_zip(archive, {{"ok.txt", "fine"}, {"..\\escaped.txt", "bad"}});
    }
    SECTION("absolute name") {
        make_raw_zip(archive, {{"ok.txt", "fine"}, {"/tmp/escaped.txt", "bad"}});
    }
    try {
        runbox::extract_zip(archive, dest);
        FAIL("expected an error");
    } catch (const runbox::error& e) {
        REQUIRE(std::string(e.what()).find("unsafe entry name") != std::string::npos);
    }
    REQUIRE_FALSE(fs::exists(dest / "ok.txt"));
    REQUIRE_FALSE(fs::exists(tmp.path / "escaped.txt"));
}

TEST_CASE("extract_zip accepts names that merely contain dots", "[zip]") {
    TempDir tmp;
    const auto archive = tmp.path / "ok.zip";
    make_raw_zip(archive, {{"..hidden", "1"}, {"dir/a..b.txt", "2"}, {"dir/sub/", ""}});
    runbox::extract_zip(archive, tmp.path / "dest");
    REQUIRE(read_file(tmp.path / "dest" / "..hidden") == "1");
    REQUIRE(read_file(tmp.path / "dest" / "dir" / "a..b.txt") == "2");
    REQUIRE(fs::is_directory(tmp.path / "dest" / "dir" / "sub"));
}

TEST_CASE("extract_zip does not write through an existing symlink", "[zip]") {
    TempDir tmp;
    write_file(tmp.path / "outside.txt", "original");
    fs::create_directories(tmp.path / "dest");
    fs::create_symlink(tmp.path / "outside.txt", tmp.path / "dest" / "link.txt");
    const auto archive = tmp.path / "a.zip";
    make_raw_zip(archive, {{"link.txt", "replaced"}});
    runbox::extract_zip(archive, tmp.path / "dest");
    REQUIRE(read_file(tmp.path / "outside.txt") == "original");
    REQUIRE(read_file(tmp.path / "dest" / "link.txt") == "replaced");
    REQUIRE_FALSE(fs::is_symlink(tmp.path / "dest" / "link.txt"));
}

TEST_CASE("extract_zip refuses an archive over its bounds before writing anything", "[zip]") {
    TempDir tmp;
    const auto archive = tmp.path / "bomb.zip";
    const auto dest = tmp.path / "dest";
    make_raw_zip(archive, {{"small.txt", "ok"}, {"zeros.bin", std::string(std::size_t{20} << 20, '\0')}, {"c.txt", "c"}});
    REQUIRE(fs::file_size(archive) < (std::size_t{1} << 20));  // 20 MiB of zeros deflate to kilobytes

    runbox::ExtractOptions options;
    std::string expected;
    SECTION("the declared sizes add up to more than max_total_bytes") {
        options.max_total_bytes = std::uintmax_t{1} << 20;
        expected = "extracts to more than the limit of 1048576 bytes";
    }
    SECTION("more entries than max_entries") {
        options.max_entries = 2;
        expected = "has 3 entries, more than the limit of 2";
    }
    try {
        runbox::extract_zip(archive, dest, options);
        FAIL("an archive over its bounds was extracted");
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::quota_exceeded);
        REQUIRE(e.detail().find(expected) != std::string::npos);
    }
    REQUIRE_FALSE(fs::exists(dest / "small.txt"));
    REQUIRE_FALSE(fs::exists(dest / "zeros.bin"));
}

TEST_CASE("extract_zip within its bounds extracts everything", "[zip]") {
    TempDir tmp;
    const auto archive = tmp.path / "a.zip";
    make_raw_zip(archive, {{"a.txt", "12345"}, {"b.txt", "678"}});
    runbox::extract_zip(archive, tmp.path / "dest", {.max_total_bytes = 8, .max_entries = 2});
    REQUIRE(read_file(tmp.path / "dest" / "a.txt") == "12345");
    REQUIRE(read_file(tmp.path / "dest" / "b.txt") == "678");
}

TEST_CASE("extract_zip: an entry that inflates to more than it declares is cut at the bound", "[zip]") {
    TempDir tmp;
    const auto archive = tmp.path / "liar.zip";
    make_raw_zip(archive, {{"zeros.bin", std::string(std::size_t{4} << 20, '\0')}});
    // Declare 100 bytes instead of 4 MiB: in the local header (offset 22 after "PK\3\4") and in
    // the central directory (offset 24 after "PK\1\2"), little-endian.
    std::string bytes = read_file(archive);
    const auto patch = [&](std::string_view signature, std::size_t offset) {
        const auto at = bytes.find(signature);
        REQUIRE(at != std::string::npos);
        const char declared[4] = {100, 0, 0, 0};
        bytes.replace(at + offset, 4, declared, 4);
    };
    patch(std::string_view("PK\3\4", 4), 22);
    patch(std::string_view("PK\1\2", 4), 24);
    write_file(archive, bytes);

    const std::uintmax_t bound = std::uintmax_t{1} << 20;
    try {
        runbox::extract_zip(archive, tmp.path / "dest", {.max_total_bytes = bound});
        FAIL("an entry larger than it declared was extracted whole");
    } catch (const runbox::error& e) {
        // libzip may notice the lie itself (a corrupt entry) or runbox's count stops it.
        INFO(e.detail());
        REQUIRE((e.code() == runbox::errc::quota_exceeded || e.code() == runbox::errc::bad_response));
    }
    std::error_code ec;
    const auto size = fs::file_size(tmp.path / "dest" / "zeros.bin", ec);
    REQUIRE((ec || size <= bound));
}

TEST_CASE("extract_zip of something that is not a zip throws", "[zip]") {
    TempDir tmp;
    write_file(tmp.path / "not.zip", "definitely not a zip archive");
    REQUIRE_THROWS_AS(runbox::extract_zip(tmp.path / "not.zip", tmp.path / "dest"), runbox::error);
}

}  // namespace test_zip
