// Counting processes from /proc for the containment tests (issue 10, row 10): the descendants of
// the test program, and the processes that carry a per-test token in their environment (those
// are found even after they escaped to init, where no parent link leads back to us).
#pragma once

#include <dirent.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>

namespace runbox_test {

struct ProcEntry {
    pid_t ppid = 0;
    char state = '?';
    std::string comm;
};

inline std::map<pid_t, ProcEntry> process_table() {
    std::map<pid_t, ProcEntry> table;
    DIR* dir = ::opendir("/proc");
    if (dir == nullptr) return table;
    while (const dirent* entry = ::readdir(dir)) {
        const pid_t pid = static_cast<pid_t>(std::atoi(entry->d_name));
        if (pid <= 0) continue;
        std::ifstream stat("/proc/" + std::string(entry->d_name) + "/stat");
        const std::string text((std::istreambuf_iterator<char>(stat)), {});
        const auto open = text.find('(');
        const auto close = text.rfind(')');
        if (open == std::string::npos || close == std::string::npos || close < open) continue;
        ProcEntry e;
        e.comm = text.substr(open + 1, close - open - 1);
        std::istringstream rest(text.substr(close + 1));
        rest >> e.state >> e.ppid;
        if (e.state != 'Z' && e.state != 'X') table[pid] = e;
    }
    ::closedir(dir);
    return table;
}

/// Every live process below this one (children, grandchildren, ...).
inline std::set<pid_t> descendants() {
    const auto table = process_table();
    std::set<pid_t> out;
    bool grew = true;
    const pid_t self = ::getpid();
    while (grew) {
        grew = false;
        for (const auto& [pid, e] : table) {
            if ((e.ppid == self || out.count(e.ppid) != 0) && out.insert(pid).second) grew = true;
        }
    }
    return out;
}

/// Live processes named `comm` whose environment holds `token` ("NAME=value").
inline std::size_t tagged(const std::string& token, const std::string& comm = "sleep") {
    std::size_t n = 0;
    for (const auto& [pid, e] : process_table()) {
        if (e.comm != comm) continue;
        std::ifstream env("/proc/" + std::to_string(pid) + "/environ");
        const std::string text((std::istreambuf_iterator<char>(env)), {});
        if (text.find(token + '\0') != std::string::npos) ++n;  // entries end with NUL
    }
    return n;
}

/// Polls `pred` until it holds or `bound` passes; returns its last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + bound;
    while (!pred()) {
        if (std::chrono::steady_clock::now() >= deadline) return pred();
        std::this_thread::sleep_for(std::chrono::milliseconds(5));  // polling a condition with a deadline
    }
    return true;
}

/// The /proc state of the process or thread `id` ('R' running, 'S' asleep in a wait, 'T' stopped,
/// 'Z' a zombie), or '\0' when there is none.
inline char proc_state(pid_t id) {
    std::ifstream stat("/proc/" + std::to_string(id) + "/stat");
    const std::string text((std::istreambuf_iterator<char>(stat)), {});
    const auto close = text.rfind(')');
    if (close == std::string::npos || close + 2 >= text.size()) return '\0';
    return text[close + 2];
}

/// Waits (bounded) until the process or thread `id` is in /proc state `state`.
inline bool wait_state(pid_t id, char state, std::chrono::milliseconds bound = std::chrono::seconds(5)) {
    return eventually([&] { return proc_state(id) == state; }, bound);
}

}  // namespace runbox_test
