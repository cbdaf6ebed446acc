// Replays fuzz inputs through a harness's LLVMFuzzerTestOneInput without libFuzzer, so any
// compiler and the sanitizer legs of the normal test suite run the seed corpus.
//
//   fuzz_replay_<harness> [--max-rss-mb N] PATH...   (PATH: a file or a directory of files)
//
// Fails (exit 1) when a path is missing or empty, or when the process's peak RSS (VmHWM) ends
// above N MiB (default 0 = no check): a seed must not make memory grow without bound.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

long peak_rss_kib() {
    std::ifstream status("/proc/self/status");
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmHWM:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
    }
    return -1;
}

}  // namespace

int main(int argc, char** argv) {
    namespace fs = std::filesystem;
    long max_rss_mb = 0;
    std::vector<fs::path> files;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--max-rss-mb") == 0 && i + 1 < argc) {
            max_rss_mb = std::strtol(argv[++i], nullptr, 10);
            continue;
        }
        const fs::path path(argv[i]);
        std::error_code ec;
        if (fs::is_directory(path, ec)) {
            std::vector<fs::path> in_dir;
            for (const auto& entry : fs::directory_iterator(path, ec)) {
                if (entry.is_regular_file()) in_dir.push_back(entry.path());
            }
            if (in_dir.empty()) {
                std::fprintf(stderr, "no inputs in %s\n", path.c_str());
                return 1;
            }
            std::sort(in_dir.begin(), in_dir.end());
            files.insert(files.end(), in_dir.begin(), in_dir.end());
        } else if (fs::is_regular_file(path, ec)) {
            files.push_back(path);
        } else {
            std::fprintf(stderr, "no such input: %s\n", path.c_str());
            return 1;
        }
    }
    if (files.empty()) {
        std::fprintf(stderr, "usage: %s [--max-rss-mb N] PATH...\n", argv[0]);
        return 2;
    }
    for (const auto& file : files) {
        std::error_code ec;
        std::string bytes(static_cast<std::size_t>(fs::file_size(file, ec)), '\0');
        std::ifstream in(file, std::ios::binary);
        if (ec || !in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
            std::fprintf(stderr, "cannot read %s\n", file.c_str());
            return 1;
        }
        std::printf("replay %s (%zu bytes)\n", file.c_str(), bytes.size());
        std::fflush(stdout);
        LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
        const long peak_mib = peak_rss_kib() / 1024;
        if (max_rss_mb > 0 && peak_mib > max_rss_mb) {
            std::fprintf(stderr, "peak RSS %ld MiB after %s is above the %ld MiB bound\n", peak_mib, file.c_str(), max_rss_mb);
            return 1;
        }
    }
    std::printf("replayed %zu inputs, peak RSS %ld MiB\n", files.size(), peak_rss_kib() / 1024);
    return 0;
}
