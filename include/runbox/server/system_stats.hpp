/// \file
/// the "resources" object of GET /server_info, from /proc.
///
/// Keys are exactly OpenHands' (psutil-based) ones:
/// {"cpu_percent", "memory": {"rss","vms","percent"}, "disk": {"total","used","free","percent"},
///  "io": {"read_bytes","write_bytes"}}. CPU and memory describe this process, disk is "/".
#pragma once

#include "runbox/detail/linkage.hpp"

#include <nlohmann/json.hpp>

#include <sys/statvfs.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

namespace runbox::server {

namespace detail {

/// utime + stime of this process in clock ticks (fields 14 and 15 of /proc/self/stat).
RUNBOX_DECL std::uint64_t process_cpu_ticks();

/// A "key: value kB"-style field of a /proc file, or 0.
RUNBOX_DECL std::uint64_t proc_field(const char* file, const std::string& key);

inline double round_to(double value, int digits) {
    const double scale = std::pow(10.0, digits);
    return std::round(value * scale) / scale;
}

}  // namespace detail

/// CPU use of this process over `sample` (psutil's cpu_percent(interval)), in percent of one
/// core (may exceed 100 on several cores).
RUNBOX_DECL double process_cpu_percent(std::chrono::milliseconds sample = std::chrono::milliseconds(100));

/// This process's memory as /server_info reports it: {"rss", "vms"} in bytes, "percent" of RAM.
RUNBOX_DECL nlohmann::json process_memory_stats();

/// psutil.disk_usage semantics: used = blocks - free, percent = used / (used + available).
RUNBOX_DECL nlohmann::json disk_stats(const char* path = "/");

/// Bytes this process caused to be read from / written to storage; zeros when /proc/self/io
/// is unreadable (some sandboxes hide it).
inline nlohmann::json io_stats() {
    return {{"read_bytes", detail::proc_field("/proc/self/io", "read_bytes")},
            {"write_bytes", detail::proc_field("/proc/self/io", "write_bytes")}};
}

/// The whole "resources" object of /server_info.
RUNBOX_DECL nlohmann::json system_stats(std::chrono::milliseconds cpu_sample = std::chrono::milliseconds(100));

}  // namespace runbox::server

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/server/impl/system_stats.ipp"
#endif
