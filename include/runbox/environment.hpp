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

#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runbox/detail/linkage.hpp"

namespace runbox::detail {

/// Which variables of the host a sandbox process starts from (see sandbox_environment()).
enum class EnvironmentBase { inherit, allow_list };

/// The host variables a local sandbox keeps: what programs need to find themselves, speak the
/// user's language and find their libraries; nothing that usually carries a credential.
RUNBOX_DECL bool host_variable_allowed(std::string_view name);

/// Variables no sandbox process ever receives, whatever the base or the caller says.
inline bool never_passed_on(std::string_view name) { return name == "SESSION_API_KEY"; }

/// Every `NAME=value` of this process's environment in its own order (the one walk of
/// `environ`; an entry without a name or without '=' is skipped).
RUNBOX_DECL std::vector<std::pair<std::string, std::string>> process_environment();

/// This process's environment as a map (the first of duplicate names wins, as getenv does).
RUNBOX_DECL std::map<std::string, std::string> host_environment();

/// The environment of a sandbox process: `base`, then `extra` on top; never SESSION_API_KEY.
RUNBOX_DECL std::map<std::string, std::string> sandbox_environment(EnvironmentBase base,
                                                              const std::map<std::string, std::string>& extra = {});

/// "K=V" strings for execve().
RUNBOX_DECL std::vector<std::string> environment_strings(const std::map<std::string, std::string>& env);

}  // namespace runbox::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/environment.ipp"
#endif
