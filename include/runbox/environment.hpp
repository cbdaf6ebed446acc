/// \file
/// the environment a sandbox process starts with, built on purpose.
///
/// Two bases, one builder (every spawn of a shell, Python REPL, static command or runbox-server
/// child goes through sandbox_environment()):
/// ```
/// inherit     the server's own environment: runbox-server inside a sandbox, where that
///             environment is the sandbox's (what OpenHands' shell sees).
/// allow_list  only the host variables named by host_variable_allowed(): the local provider,
///             whose "server environment" is the user's own program and its secrets.
/// ```
/// Either way SESSION_API_KEY is never passed on (the shell must not learn the key that guards
/// its own server), and the caller's variables (Config / options env) are added last.
#pragma once

#include <iterator>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

extern "C" char** environ;  // POSIX: the process environment

namespace runbox::detail {

enum class EnvironmentBase { inherit, allow_list };

/// The host variables a local sandbox keeps: what programs need to find themselves, speak the
/// user's language and find their libraries; nothing that usually carries a credential.
inline bool host_variable_allowed(std::string_view name) {
    static constexpr std::string_view exact[] = {"PATH",   "HOME",    "USER", "LOGNAME", "SHELL",
                                                 "LANG",   "LANGUAGE", "TZ",   "TMPDIR",  "TERM",
                                                 "LD_LIBRARY_PATH"};
    for (const auto& e : exact) {
        if (name == e) return true;
    }
    return name.rfind("LC_", 0) == 0;
}

/// Variables no sandbox process ever receives, whatever the base or the caller says.
inline bool never_passed_on(std::string_view name) { return name == "SESSION_API_KEY"; }

/// Every `NAME=value` of this process's environment in its own order (the one walk of
/// `environ`; an entry without a name or without '=' is skipped).
inline std::vector<std::pair<std::string, std::string>> process_environment() {
    std::vector<std::pair<std::string, std::string>> out;
    for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
        const std::string_view kv(*entry);
        const auto eq = kv.find('=');
        if (eq == std::string_view::npos || eq == 0) continue;
        out.emplace_back(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
    }
    return out;
}

/// This process's environment as a map (the first of duplicate names wins, as getenv does).
inline std::map<std::string, std::string> host_environment() {
    std::map<std::string, std::string> env;
    for (auto& [key, value] : process_environment()) env.emplace(std::move(key), std::move(value));
    return env;
}

/// The environment of a sandbox process: `base`, then `extra` on top; never SESSION_API_KEY.
inline std::map<std::string, std::string> sandbox_environment(EnvironmentBase base,
                                                              const std::map<std::string, std::string>& extra = {}) {
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

/// "K=V" strings for execve().
inline std::vector<std::string> environment_strings(const std::map<std::string, std::string>& env) {
    std::vector<std::string> out;
    out.reserve(env.size());
    for (const auto& [key, value] : env) out.push_back(key + "=" + value);
    return out;
}

}  // namespace runbox::detail
