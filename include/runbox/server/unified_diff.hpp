/// \file
/// the file editor's diff: openhands_aci.utils.diff.get_diff, a unified diff with zero context
/// lines (difflib's format) over a Myers minimal edit script, bounded by diff_max_edit_distance.
///
/// Why not Debian's libdtl (1.20): its unified hunks always carry 3 context lines
/// (DTL_CONTEXT_SIZE is a constant) where OH-ACI's get_diff has none, and its edit script has no
/// bound on the edit distance, which a hostile file could use to burn time and memory; what
/// would be left to use of it is the O(ND) search, about as long as the one here.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runbox/server/python_text.hpp"

namespace runbox::server::detail {

/// Above this many edits the changed middle is shown as one replace hunk (bounded time and memory).
inline constexpr long long diff_max_edit_distance = 2000;


namespace diff_impl {

/// Marks deleted a-lines and inserted b-lines of a minimal edit script (Myers' greedy O(ND)
/// forward search, keeping each round's frontier for the backtrack).
inline void myers(const std::vector<int>& a, std::size_t a0, std::size_t a1, const std::vector<int>& b, std::size_t b0,
                  std::size_t b1, std::vector<char>& del, std::vector<char>& ins) {
    const auto n = static_cast<long long>(a1 - a0);
    const auto m = static_cast<long long>(b1 - b0);
    const auto mark_all = [&] {
        for (std::size_t i = a0; i < a1; ++i) del[i] = 1;
        for (std::size_t j = b0; j < b1; ++j) ins[j] = 1;
    };
    if (n == 0 || m == 0) return mark_all();
    const long long max_d = std::min(n + m, diff_max_edit_distance);
    const long long offset = max_d + 1;
    std::vector<long long> v(static_cast<std::size_t>(2 * offset + 1), 0);
    std::vector<std::vector<std::int32_t>> trace;  // trace[d] = v[-d..d] before round d
    const auto at = [&](long long k) -> long long& { return v[static_cast<std::size_t>(k + offset)]; };
    long long found = -1;
    for (long long d = 0; d <= max_d && found < 0; ++d) {
        trace.emplace_back(v.begin() + (offset - d), v.begin() + (offset + d + 1));
        for (long long k = -d; k <= d; k += 2) {
            long long x = (k == -d || (k != d && at(k - 1) < at(k + 1))) ? at(k + 1) : at(k - 1) + 1;
            long long y = x - k;
            while (x < n && y < m && a[a0 + static_cast<std::size_t>(x)] == b[b0 + static_cast<std::size_t>(y)]) {
                ++x;
                ++y;
            }
            at(k) = x;
            if (x >= n && y >= m) {
                found = d;
                break;
            }
        }
    }
    if (found < 0) return mark_all();  // too many edits: one replace block
    long long x = n, y = m;
    for (long long d = found; d > 0; --d) {
        const auto& prev = trace[static_cast<std::size_t>(d)];  // v before round d = after round d-1
        const auto pv = [&](long long k) { return prev[static_cast<std::size_t>(k + d)]; };
        const long long k = x - y;
        const bool down = k == -d || (k != d && pv(k - 1) < pv(k + 1));
        const long long prev_k = down ? k + 1 : k - 1;
        const long long prev_x = pv(prev_k);
        const long long prev_y = prev_x - prev_k;
        if (down) {
            ins[b0 + static_cast<std::size_t>(prev_y)] = 1;
        } else {
            del[a0 + static_cast<std::size_t>(prev_x)] = 1;
        }
        x = prev_x;
        y = prev_y;
    }
}

/// difflib's _format_range_unified.
inline std::string range(std::size_t start, std::size_t stop) {
    std::size_t beginning = start + 1;
    const std::size_t length = stop - start;
    if (length == 1) return std::to_string(beginning);
    if (length == 0) --beginning;
    return std::to_string(beginning) + "," + std::to_string(length);
}

}  // namespace diff_impl

/// Unified diff of old/new split on '\n', zero context lines, headers "--- path"/"+++ path",
/// each line right-trimmed, joined by '\n', no trailing newline; "" when nothing changed.
inline std::string unified_diff(std::string_view old_text, std::string_view new_text, std::string_view path) {
    const auto a_lines = split(old_text, '\n');
    const auto b_lines = split(new_text, '\n');
    std::unordered_map<std::string_view, int> ids;
    const auto intern = [&](const std::vector<std::string>& lines) {
        std::vector<int> out;
        out.reserve(lines.size());
        for (const auto& l : lines) out.push_back(ids.emplace(l, static_cast<int>(ids.size())).first->second);
        return out;
    };
    const auto a = intern(a_lines);
    const auto b = intern(b_lines);
    const std::size_t n = a.size(), m = b.size();
    std::size_t prefix = 0;
    while (prefix < n && prefix < m && a[prefix] == b[prefix]) ++prefix;
    std::size_t suffix = 0;
    while (suffix < n - prefix && suffix < m - prefix && a[n - 1 - suffix] == b[m - 1 - suffix]) ++suffix;
    if (prefix == n && prefix == m) return {};
    std::vector<char> del(n, 0), ins(m, 0);
    diff_impl::myers(a, prefix, n - suffix, b, prefix, m - suffix, del, ins);

    std::vector<std::string> out;
    out.emplace_back(rstrip("--- " + std::string(path)));
    out.emplace_back(rstrip("+++ " + std::string(path)));
    std::size_t i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && !del[i] && !ins[j]) {
            ++i;
            ++j;
            continue;
        }
        const std::size_t i1 = i, j1 = j;
        while (i < n && del[i]) ++i;
        while (j < m && ins[j]) ++j;
        out.push_back("@@ -" + diff_impl::range(i1, i) + " +" + diff_impl::range(j1, j) + " @@");
        for (std::size_t k = i1; k < i; ++k) out.emplace_back(rstrip("-" + a_lines[k]));
        for (std::size_t k = j1; k < j; ++k) out.emplace_back(rstrip("+" + b_lines[k]));
    }
    return join(out, "\n");
}

}  // namespace runbox::server::detail
