#pragma once

#include "runbox/server/system_stats.hpp"

namespace runbox::server::detail {

RUNBOX_DECL std::uint64_t process_cpu_ticks() {
    std::ifstream in("/proc/self/stat");
    std::string line;
    if (!std::getline(in, line)) return 0;
    // The command name (field 2) may contain spaces: fields restart after the last ')'.
    const auto close = line.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(line.substr(close + 1));
    std::string field;
    std::uint64_t utime = 0, stime = 0;
    for (int index = 3; fields >> field; ++index) {
        if (index == 14) utime = std::stoull(field);
        if (index == 15) {
            stime = std::stoull(field);
            break;
        }
    }
    return utime + stime;
}

RUNBOX_DECL std::uint64_t proc_field(const char* file, const std::string& key) {
    std::ifstream in(file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) == 0) {
            std::istringstream value(line.substr(key.size() + 1));
            std::uint64_t number = 0;
            value >> number;
            return number;
        }
    }
    return 0;
}

}  // namespace runbox::server::detail

namespace runbox::server {

RUNBOX_DECL double process_cpu_percent(std::chrono::milliseconds sample) {
    const auto ticks_per_second = static_cast<double>(::sysconf(_SC_CLK_TCK));
    const auto start_ticks = detail::process_cpu_ticks();
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(sample);  // the sampling interval itself, not a synchronisation
    const auto ticks = detail::process_cpu_ticks() - start_ticks;
    const std::chrono::duration<double> wall = std::chrono::steady_clock::now() - start;
    if (wall.count() <= 0 || ticks_per_second <= 0) return 0.0;
    return detail::round_to(static_cast<double>(ticks) / ticks_per_second / wall.count() * 100.0, 1);
}

RUNBOX_DECL nlohmann::json process_memory_stats() {
    std::uint64_t vms_pages = 0, rss_pages = 0;
    std::ifstream statm("/proc/self/statm");
    statm >> vms_pages >> rss_pages;
    const auto page = static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE));
    const std::uint64_t rss = rss_pages * page;
    const std::uint64_t total = detail::proc_field("/proc/meminfo", "MemTotal") * 1024;
    const double percent = total == 0 ? 0.0 : static_cast<double>(rss) / static_cast<double>(total) * 100.0;
    return {{"rss", rss}, {"vms", vms_pages * page}, {"percent", percent}};
}

RUNBOX_DECL nlohmann::json disk_stats(const char* path) {
    struct statvfs st {};
    if (::statvfs(path, &st) != 0) {
        return {{"total", 0}, {"used", 0}, {"free", 0}, {"percent", 0.0}};
    }
    const std::uint64_t unit = st.f_frsize;
    const std::uint64_t total = static_cast<std::uint64_t>(st.f_blocks) * unit;
    const std::uint64_t free_for_user = static_cast<std::uint64_t>(st.f_bavail) * unit;
    const std::uint64_t used = (static_cast<std::uint64_t>(st.f_blocks) - st.f_bfree) * unit;
    const std::uint64_t denominator = used + free_for_user;
    const double percent =
        denominator == 0 ? 0.0 : detail::round_to(static_cast<double>(used) / static_cast<double>(denominator) * 100.0, 1);
    return {{"total", total}, {"used", used}, {"free", free_for_user}, {"percent", percent}};
}

RUNBOX_DECL nlohmann::json system_stats(std::chrono::milliseconds cpu_sample) {
    return {{"cpu_percent", process_cpu_percent(cpu_sample)},
            {"memory", process_memory_stats()},
            {"disk", disk_stats("/")},
            {"io", io_stats()}};
}

}  // namespace runbox::server
