/// \file
/// Config (OpenHands' OpenHandsConfig analogue) and SandboxConfig.
///
/// The names and defaults are OpenHands' (reference §12), except `runtime`, whose default is
/// "local": runbox works with no configuration at all. A Config is built from defaults, then
/// JSON (the shape of OpenHands' config.toml: core fields at the top, a "sandbox" object), then
/// the environment (RUNTIME, SANDBOX_TIMEOUT, ...), which wins. Provider settings live under
/// "providers": {"daytona": {"api_key": ...}}, with an environment fallback per setting.
/// Bad values are errors that name the field; unknown keys are errors too.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

/// Looks up one environment variable. Tests pass their own instead of calling setenv.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
/// Lists the whole environment (for the SANDBOX_ENV_<NAME> forwarding).
using EnvList = std::function<std::vector<std::pair<std::string, std::string>>()>;

/// The default EnvLookup: std::getenv.
RUNBOX_DECL std::optional<std::string> process_env(const std::string& name);

/// The default EnvList: every `NAME=value` of the process environment (`environ`).
RUNBOX_DECL std::vector<std::pair<std::string, std::string>> process_env_list();

/// `[sandbox]`: the fields runtimes use, with OpenHands' defaults.
struct SandboxConfig {
    int timeout = 120;  ///< default action timeout, seconds
    bool keep_runtime_alive = false;  ///< Runloop: close() leaves the devbox running (`runbox run --keep`)
    bool pause_closed_runtimes = true;  ///< OpenHands compatibility: parsed, not used by runbox
    bool rm_all_containers = false;  ///< OpenHands compatibility: parsed, not used by runbox
    std::optional<std::string> api_key;  ///< OpenHands compatibility: parsed, not used (see Config::providers)
    /// OpenHands compatibility: parsed, not used by runbox
    std::optional<std::string> remote_runtime_api_url = "http://localhost:8000";
    std::string local_runtime_url = "http://localhost";  ///< OpenHands compatibility: parsed, not used by runbox
    /// OpenHands compatibility: parsed, not used by runbox
    std::optional<std::string> base_container_image = "nikolaik/python-nodejs:python3.12-nodejs22";
    std::optional<std::string> runtime_container_image;  ///< Daytona: the snapshot to create sandboxes from
    int remote_runtime_init_timeout = 180;  ///< seconds; OpenHands compatibility: parsed, not used by runbox
    int remote_runtime_api_timeout = 180;  ///< seconds; OpenHands compatibility: parsed, not used by runbox
    bool enable_auto_lint = false;  ///< sets ENABLE_AUTO_LINT=true in the sandbox's shell
    bool use_host_network = false;  ///< OpenHands compatibility: parsed, not used by runbox
    std::string runtime_binding_address = "0.0.0.0";  ///< OpenHands compatibility: parsed, not used by runbox
    bool initialize_plugins = true;  ///< OpenHands compatibility: parsed, not used by runbox
    bool force_rebuild_runtime = false;  ///< OpenHands compatibility: parsed, not used by runbox
    std::optional<std::string> runtime_extra_deps;  ///< OpenHands compatibility: parsed, not used by runbox
    /// Environment of the action server and its shell (NO_CHANGE_TIMEOUT_SECONDS, ...); every provider.
    std::map<std::string, std::string> runtime_startup_env_vars;
    std::optional<std::string> browsergym_eval_env;  ///< passed to the server as --browsergym-eval-env
    std::optional<std::string> platform;  ///< OpenHands compatibility: parsed, not used by runbox
    int close_delay = 3600;  ///< seconds; OpenHands compatibility: parsed, not used by runbox
    bool enable_gpu = false;  ///< OpenHands compatibility: parsed, not used by runbox
    std::optional<int> vscode_port;  ///< OpenHands compatibility: parsed, not used by runbox
    std::optional<std::string> volumes;  ///< OpenHands compatibility: parsed, not used by runbox
};

/// The configuration a runtime is built from.
struct Config {
    std::string runtime = "local";  ///< provider name (OpenHands defaults to "docker"; runbox to "local")
    SandboxConfig sandbox;  ///< the JSON object "sandbox"; environment SANDBOX_<FIELD>
    std::optional<std::string> workspace_base;  ///< host directory used as the workspace (local provider)
    std::string workspace_mount_path_in_sandbox = "/workspace";  ///< the server's working directory (cloud)
    bool run_as_openhands = true;  ///< Runloop: run actions as user openhands (1000), else root
    bool enable_browser = true;  ///< false: the server starts without a browser (--no-enable-browser)
    bool debug = false;  ///< cloud providers: DEBUG=true in the server's environment
    std::string git_user_name = "openhands";  ///< git's user.name in the sandbox
    std::string git_user_email = "openhands@all-hands.dev";  ///< git's user.email in the sandbox
    bool init_git_in_empty_workspace = false;  ///< OpenHands compatibility: parsed, not used by runbox
    /// The owner label on every sandbox runbox creates (lifecycle.hpp); default: this host's name.
    std::optional<std::string> runbox_owner;
    /// When set, each runtime records its creates in this lease file and the next start reaps
    /// the entries whose process is gone (lifecycle.hpp). Environment: RUNBOX_LEASE_FILE.
    std::optional<std::string> runbox_lease_file;
    /// How the runtime's transport is built (TLS verification, CA bundle, connect timeout).
    /// JSON: "transport": {"verify_tls": true, "ca_cert_path": "...", "connect_timeout_ms": 10000}.
    TransportOptions transport{};
    /// Provider settings: {"daytona": {"api_key": "...", "api_url": "..."}, "runloop": {...}}.
    nlohmann::json providers = nlohmann::json::object();
    /// Where environment variables come from (the process by default).
    EnvLookup env = process_env;
    /// The whole environment, for SANDBOX_ENV_<NAME> forwarding (the process by default).
    EnvList env_list = process_env_list;

    /// A provider setting: providers[provider][key] when present (a string, or a number/bool
    /// rendered as text), else the environment variable `env_var` when set and non-empty.
    std::optional<std::string> setting(std::string_view provider, std::string_view key,
                                       std::string_view env_var = {}) const;

    /// Like setting(), but required: a missing value is errc::config_invalid naming both places.
    std::string required_setting(std::string_view provider, std::string_view key, std::string_view env_var) const;

    /// An integer setting, at least `minimum`; a malformed value is errc::config_invalid naming it.
    int integer_setting(std::string_view provider, std::string_view key, std::string_view env_var, int fallback,
                        int minimum = 0) const;

    /// A duration setting in milliseconds (keys end in _ms by convention).
    std::chrono::milliseconds millis_setting(std::string_view provider, std::string_view key, std::string_view env_var,
                                             std::chrono::milliseconds fallback) const;

    /// A boolean setting: "true" or "1" (any case) is true, as OpenHands reads its flags.
    bool flag_setting(std::string_view provider, std::string_view key, std::string_view env_var, bool fallback) const;

    /// Uses `vars` as the whole environment (for tests and embedding; nothing touches the process).
    Config& use_environment(std::map<std::string, std::string> vars);

    /// Defaults, then `json` (OpenHands' config.toml shape), then the environment.
    static Config from_json(const nlohmann::json& json, EnvLookup lookup = process_env);
    /// Defaults, then the environment (RUNTIME, WORKSPACE_BASE, SANDBOX_TIMEOUT, ...).
    static Config from_env(EnvLookup lookup = process_env);

    /// Applies OpenHands-style environment overrides: root field `f` from `F`, `sandbox.x` from `SANDBOX_X`.
    void apply_env(const EnvLookup& lookup);
};

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/config.ipp"
#endif
