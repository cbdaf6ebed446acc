/// \file
/// Definitions of runbox/environment.hpp (included by the header when header-only; by
/// runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/environment.hpp"

#include <iterator>

extern "C" char** environ;  // POSIX: the process environment

namespace runbox::detail {

RUNBOX_DECL bool host_variable_allowed(std::string_view name) {
    static constexpr std::string_view exact[] = {"PATH",   "HOME",    "USER", "LOGNAME", "SHELL",
                                                 "LANG",   "LANGUAGE", "TZ",   "TMPDIR",  "TERM",
                                                 "LD_LIBRARY_PATH"};
    for (const auto& e : exact) {
        if (name == e) return true;
    }
    return name.rfind("LC_", 0) == 0;
}

RUNBOX_DECL std::vector<std::pair<std::string, std::string>> process_environment() {
    std::vector<std::pair<std::string, std::string>> out;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string_view kv(*entry);
        const auto eq = kv.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        out.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    return out;
}

RUNBOX_DECL std::map<std::string, std::string> host_environment() {
    std::map<std::string, std::string> env;
    for (auto& [key, value] : process_environment()) env.emplace(std::move(key), std::move(value));
    return env;
}

RUNBOX_DECL std::map<std::string, std::string> sandbox_environment(EnvironmentBase base,
                                                                   const std::map<std::string, std::string>& extra) {
    std::map<std::string, std::string> env;
    for (auto& [key, value] : host_environment()) {
        if (base == EnvironmentBase::allow_list && !host_variable_allowed(key)) continue;
        env.emplace(key, std::move(value));
    }
    if (env.find("PATH") == env.end()) env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
    for (const auto& [key, value] : extra) {
        if (!key.empty() && key.find('=') == std::string::npos) env[key] = value;
    }
    for (auto it = env.begin(); it != env.end();) {
        it = never_passed_on(it->first) ? env.erase(it) : std::next(it);
    }
    return env;
}

RUNBOX_DECL std::vector<std::string> environment_strings(const std::map<std::string, std::string>& env) {
    std::vector<std::string> out;
    out.reserve(env.size());
    for (const auto& [key, value] : env) out.push_back(key + "=" + value);
    return out;
}

}  // namespace runbox::detail
