// runbox/providers/detail/impl/cloud_api.ipp - the cloud providers' shared control-plane helpers
// (runbox/detail/linkage.hpp): included by cloud_api.hpp when header-only, compiled once by
// runbox/src.hpp otherwise.
#pragma once

#include "runbox/providers/detail/cloud_api.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

namespace runbox::cloud {

RUNBOX_DECL std::string string_field(const nlohmann::json& j, std::string_view key, std::string fallback) {
    if (!j.is_object()) return fallback;
    const auto it = j.find(std::string(key));
    return it != j.end() && it->is_string() ? it->get<std::string>() : fallback;
}

RUNBOX_DECL void authorize_bearer(Request& request, const std::string& key) {
    request.headers.set("Authorization", "Bearer " + key);
    request.headers.set("User-Agent", "runbox/" + std::string(version_string));
    if (!request.headers.contains("Accept")) request.headers.set("Accept", "application/json");
}

RUNBOX_DECL std::string SettingsReader::env_name(std::string_view key) const {
    std::string out = prefix_;
    for (const char c : key) out += (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
    return out;
}

RUNBOX_DECL std::string SettingsReader::url(std::string_view key, std::string fallback, bool env) const {
    std::string value = trim_slashes(text(key, std::move(fallback), env));
    try {
        (void)parse_url(value);
    } catch (const error&) {
        throw error(errc::config_invalid,
                    (env ? env_name(key) : provider_ + " setting '" + std::string(key) + "'") + " must be an http(s) URL",
                    provider_);
    }
    return value;
}

RUNBOX_DECL std::string SettingsReader::choice(std::string_view key, std::string fallback,
                                              std::initializer_list<std::string_view> choices, bool env) const {
    std::string value = text(key, std::move(fallback), env);
    std::string list;
    for (const auto c : choices) {
        if (c == value) return value;
        list += (list.empty() ? "" : " or ") + std::string(c);
    }
    throw error(errc::config_invalid,
                provider_ + " setting '" + std::string(key) + "'" + (env ? " (" + env_name(key) + ")" : "") +
                    " must be " + list,
                provider_);
}

RUNBOX_DECL void ApiSettings::read_api(const SettingsReader& r, bool with_key) {
    if (with_key) api_key = r.required("api_key");
    poll_interval = r.millis("poll_interval_ms", poll_interval);
    start_timeout = r.millis("start_timeout_ms", start_timeout);
    alive_timeout = r.millis("alive_timeout_ms", alive_timeout);
    alive_poll_interval = r.millis("alive_poll_interval_ms", alive_poll_interval, false);
    request_timeout = r.millis("request_timeout_ms", request_timeout);
    retry_initial_backoff = r.millis("retry_initial_backoff_ms", retry_initial_backoff, false);
    retry_max_attempts = r.integer("retry_max_attempts", retry_max_attempts, 1, false);
    close_timeout = r.millis("close_timeout_ms", close_timeout);
}

RUNBOX_DECL ServerEndpoint ApiSettings::endpoint(std::string url) const {
    ServerEndpoint e;
    e.url = trim_slashes(std::move(url));
    e.secrets = {api_key};
    e.alive_timeout = alive_timeout;
    e.alive_poll_interval = alive_poll_interval;
    return e;
}

RUNBOX_DECL void add_secret_header(ServerEndpoint& endpoint, std::string name, std::string value, std::string secret) {
    if (secret.empty()) return;
    endpoint.headers.set(std::move(name), std::move(value));
    endpoint.secrets.push_back(std::move(secret));
}

RUNBOX_DECL ServerUser ServerUser::from(const Config& config) {
    const auto env = [&](const char* var) -> std::optional<std::string> {
        return config.env ? config.env(var) : std::nullopt;
    };
    return {env("RUNTIME_USERNAME").value_or(config.run_as_openhands ? "openhands" : "root"),
            env("RUNTIME_UID").value_or(config.run_as_openhands ? "1000" : "0")};
}

RUNBOX_DECL void ServerLaunch::read_launch(const SettingsReader& r) {
    server_command = r.text("server_command");
    server_cwd = r.text("server_cwd", server_cwd);
    server_port = r.integer("server_port", server_port, 1);
}

RUNBOX_DECL std::string ServerLaunch::cd_command() const { return "cd " + detail::shell_quote(server_cwd); }

RUNBOX_DECL std::vector<std::string> ServerLaunch::server_args(const Config& config, const RuntimeOptions& options,
                                                              const ServerUser& user) const {
    std::vector<std::string> args{std::to_string(server_port), "--working-dir", config.workspace_mount_path_in_sandbox};
    if (!options.plugins.empty()) {
        args.emplace_back("--plugins");
        for (const auto& plugin : options.plugins) args.push_back(plugin.name);
    }
    args.insert(args.end(), {"--username", user.name, "--user-id", user.id});
    if (config.sandbox.browsergym_eval_env) {
        args.emplace_back("--browsergym-eval-env");
        args.push_back(*config.sandbox.browsergym_eval_env);
    }
    if (!config.enable_browser) args.emplace_back("--no-enable-browser");
    return args;
}

RUNBOX_DECL std::string ServerLaunch::command_line(const Config& config, const RuntimeOptions& options,
                                                  const ServerUser& user) const {
    std::string cmd = server_command.value_or(std::string(openhands_launcher));
    for (const auto& word : server_args(config, options, user)) cmd += " " + detail::shell_quote(word);
    return cmd;
}

RUNBOX_DECL std::string derived_session_key(std::string_view api_key, std::string_view create_token) {
    if (api_key.empty() || create_token.empty()) return {};
    const std::string message = "runbox session key\n" + std::string(create_token);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    if (HMAC(EVP_sha256(), api_key.data(), static_cast<int>(api_key.size()),
             reinterpret_cast<const unsigned char*>(message.data()), message.size(), digest, &size) == nullptr) {
        throw error(errc::system, "HMAC-SHA256 failed in OpenSSL", "runbox");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < size; ++i) {
        out.push_back(hex[digest[i] >> 4]);
        out.push_back(hex[digest[i] & 0xf]);
    }
    return out;
}

RUNBOX_DECL nlohmann::json startup_env(const Config& config, const std::map<std::string, std::string>& extra,
                                  const std::string& session_key) {
    nlohmann::json env = nlohmann::json::object();
    for (const auto& [k, v] : config.sandbox.runtime_startup_env_vars) env[k] = v;
    for (const auto& [k, v] : extra) env[k] = v;
    if (config.debug) env["DEBUG"] = "true";
    if (!session_key.empty()) env[std::string(session_key_env)] = session_key;
    return env;
}

}  // namespace runbox::cloud
