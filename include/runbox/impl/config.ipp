/// \file
/// Definitions of runbox/config.hpp: the field tables and the JSON / environment readers
/// (included by the header when header-only; by runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/config.hpp"

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <memory>
#include <stdexcept>

#include "runbox/environment.hpp"

namespace runbox {

RUNBOX_DECL std::optional<std::string> process_env(const std::string& name) {
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
}

RUNBOX_DECL std::vector<std::pair<std::string, std::string>> process_env_list() {
    return detail::process_environment();
}

RUNBOX_DECL std::optional<std::string> Config::setting(std::string_view provider, std::string_view key,
                                                       std::string_view env_var) const {
    if (providers.is_object()) {
        const auto p = providers.find(std::string(provider));
        if (p != providers.end() && p->is_object()) {
            const auto v = p->find(std::string(key));
            if (v != p->end() && !v->is_null()) return v->is_string() ? v->get<std::string>() : v->dump();
        }
    }
    if (!env_var.empty() && env) {
        auto value = env(std::string(env_var));
        if (value && !value->empty()) return value;
    }
    return std::nullopt;
}

RUNBOX_DECL std::string Config::required_setting(std::string_view provider, std::string_view key,
                                                 std::string_view env_var) const {
    if (auto value = setting(provider, key, env_var)) return *value;
    throw error(errc::config_invalid,
                std::string(env_var) + " environment variable is required for the " + std::string(provider) +
                    " runtime (or set providers." + std::string(provider) + "." + std::string(key) + ")",
                std::string(provider));
}

RUNBOX_DECL int Config::integer_setting(std::string_view provider, std::string_view key, std::string_view env_var,
                                        int fallback, int minimum) const {
    const auto value = setting(provider, key, env_var);
    if (!value) return fallback;
    try {
        std::size_t used = 0;
        const long n = std::stol(*value, &used);
        if (used != value->size() || n < minimum || n > 2147483647L) throw std::invalid_argument(*value);
        return static_cast<int>(n);
    } catch (const std::exception&) {
        throw error(errc::config_invalid,
                    std::string(provider) + " setting '" + std::string(key) + "'" +
                        (env_var.empty() ? "" : " (" + std::string(env_var) + ")") + " must be an integer >= " +
                        std::to_string(minimum),
                    std::string(provider));
    }
}

RUNBOX_DECL std::chrono::milliseconds Config::millis_setting(std::string_view provider, std::string_view key,
                                                             std::string_view env_var,
                                                             std::chrono::milliseconds fallback) const {
    return std::chrono::milliseconds(
        integer_setting(provider, key, env_var, static_cast<int>(fallback.count()), 0));
}

RUNBOX_DECL bool Config::flag_setting(std::string_view provider, std::string_view key, std::string_view env_var,
                                      bool fallback) const {
    auto value = setting(provider, key, env_var);
    if (!value) return fallback;
    std::transform(value->begin(), value->end(), value->begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return *value == "true" || *value == "1";
}

RUNBOX_DECL Config& Config::use_environment(std::map<std::string, std::string> vars) {
    auto shared = std::make_shared<const std::map<std::string, std::string>>(std::move(vars));
    env = [shared](const std::string& name) -> std::optional<std::string> {
        const auto it = shared->find(name);
        if (it == shared->end()) return std::nullopt;
        return it->second;
    };
    env_list = [shared] { return std::vector<std::pair<std::string, std::string>>(shared->begin(), shared->end()); };
    return *this;
}

namespace detail {

inline std::string upper(std::string_view text) {
    std::string out(text);
    std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
    return out;
}

[[noreturn]] inline void bad_field(std::string_view field, std::string_view expected, std::string_view got) {
    throw error(errc::config_invalid, "config field '" + std::string(field) + "': expected " + std::string(expected) +
                                          ", got " + std::string(got));
}

// One field: knows how to read itself from JSON and from an environment string.
struct FieldBinder {
    std::string name;  // "timeout" or "sandbox.timeout"
    std::function<void(const nlohmann::json&)> from_json;
    std::function<void(const std::string&)> from_text;
};

inline bool parse_bool_text(const std::string& text) {
    // OpenHands: true/1 (any case) is true, anything else false.
    const std::string lowered = [&] {
        std::string s = text;
        std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
        return s;
    }();
    return lowered == "true" || lowered == "1";
}

inline int parse_int_text(const std::string& field, const std::string& text) {
    try {
        std::size_t used = 0;
        const long value = std::stol(text, &used);
        if (used != text.size() || value < -2147483647L || value > 2147483647L) throw std::invalid_argument(text);
        return static_cast<int>(value);
    } catch (const std::exception&) {
        bad_field(field, "an integer", "'" + text + "'");
    }
}

// Dict values arrive as JSON or as a Python literal ({'A': '1'}); both are accepted.
inline std::map<std::string, std::string> parse_dict_text(const std::string& field, const std::string& text) {
    auto parsed = nlohmann::json::parse(text, nullptr, false);
    if (parsed.is_discarded()) {
        std::string swapped = text;
        std::replace(swapped.begin(), swapped.end(), '\'', '"');
        parsed = nlohmann::json::parse(swapped, nullptr, false);
    }
    if (!parsed.is_object()) bad_field(field, "a dict like {'NAME': 'value'}", "'" + text + "'");
    std::map<std::string, std::string> out;
    for (const auto& [key, value] : parsed.items()) out[key] = value.is_string() ? value.get<std::string>() : value.dump();
    return out;
}

inline FieldBinder bind_field(std::string name, std::string& target) {
    return {name, [&target, name](const nlohmann::json& j) {
                if (!j.is_string()) bad_field(name, "a string", j.dump());
                target = j.get<std::string>();
            },
            [&target](const std::string& text) { target = text; }};
}
inline FieldBinder bind_field(std::string name, std::optional<std::string>& target) {
    return {name, [&target, name](const nlohmann::json& j) {
                if (j.is_null()) { target.reset(); return; }
                if (!j.is_string()) bad_field(name, "a string or null", j.dump());
                target = j.get<std::string>();
            },
            [&target](const std::string& text) { target = text; }};
}
inline FieldBinder bind_field(std::string name, bool& target) {
    return {name, [&target, name](const nlohmann::json& j) {
                if (!j.is_boolean()) bad_field(name, "true or false", j.dump());
                target = j.get<bool>();
            },
            [&target](const std::string& text) { target = parse_bool_text(text); }};
}
inline FieldBinder bind_field(std::string name, int& target) {
    return {name, [&target, name](const nlohmann::json& j) {
                if (!j.is_number_integer()) bad_field(name, "an integer", j.dump());
                target = j.get<int>();
            },
            [&target, name](const std::string& text) { target = parse_int_text(name, text); }};
}
inline FieldBinder bind_field(std::string name, std::optional<int>& target) {
    return {name, [&target, name](const nlohmann::json& j) {
                if (j.is_null()) { target.reset(); return; }
                if (!j.is_number_integer()) bad_field(name, "an integer or null", j.dump());
                target = j.get<int>();
            },
            [&target, name](const std::string& text) { target = parse_int_text(name, text); }};
}
inline FieldBinder bind_field(std::string name, std::map<std::string, std::string>& target) {
    return {name, [&target, name](const nlohmann::json& j) {
                if (!j.is_object()) bad_field(name, "an object of strings", j.dump());
                target.clear();
                for (const auto& [key, value] : j.items()) {
                    if (!value.is_string()) bad_field(name + "." + key, "a string", value.dump());
                    target[key] = value.get<std::string>();
                }
            },
            [&target, name](const std::string& text) { target = parse_dict_text(name, text); }};
}

inline std::vector<FieldBinder> sandbox_fields(SandboxConfig& s) {
    return {
        bind_field("sandbox.timeout", s.timeout),
        bind_field("sandbox.keep_runtime_alive", s.keep_runtime_alive),
        bind_field("sandbox.pause_closed_runtimes", s.pause_closed_runtimes),
        bind_field("sandbox.rm_all_containers", s.rm_all_containers),
        bind_field("sandbox.api_key", s.api_key),
        bind_field("sandbox.remote_runtime_api_url", s.remote_runtime_api_url),
        bind_field("sandbox.local_runtime_url", s.local_runtime_url),
        bind_field("sandbox.base_container_image", s.base_container_image),
        bind_field("sandbox.runtime_container_image", s.runtime_container_image),
        bind_field("sandbox.remote_runtime_init_timeout", s.remote_runtime_init_timeout),
        bind_field("sandbox.remote_runtime_api_timeout", s.remote_runtime_api_timeout),
        bind_field("sandbox.enable_auto_lint", s.enable_auto_lint),
        bind_field("sandbox.use_host_network", s.use_host_network),
        bind_field("sandbox.runtime_binding_address", s.runtime_binding_address),
        bind_field("sandbox.initialize_plugins", s.initialize_plugins),
        bind_field("sandbox.force_rebuild_runtime", s.force_rebuild_runtime),
        bind_field("sandbox.runtime_extra_deps", s.runtime_extra_deps),
        bind_field("sandbox.runtime_startup_env_vars", s.runtime_startup_env_vars),
        bind_field("sandbox.browsergym_eval_env", s.browsergym_eval_env),
        bind_field("sandbox.platform", s.platform),
        bind_field("sandbox.close_delay", s.close_delay),
        bind_field("sandbox.enable_gpu", s.enable_gpu),
        bind_field("sandbox.vscode_port", s.vscode_port),
        bind_field("sandbox.volumes", s.volumes),
    };
}

inline std::vector<FieldBinder> core_fields(Config& c) {
    return {
        bind_field("runtime", c.runtime),
        bind_field("workspace_base", c.workspace_base),
        bind_field("workspace_mount_path_in_sandbox", c.workspace_mount_path_in_sandbox),
        bind_field("run_as_openhands", c.run_as_openhands),
        bind_field("enable_browser", c.enable_browser),
        bind_field("debug", c.debug),
        bind_field("git_user_name", c.git_user_name),
        bind_field("git_user_email", c.git_user_email),
        bind_field("init_git_in_empty_workspace", c.init_git_in_empty_workspace),
        bind_field("runbox_owner", c.runbox_owner),
        bind_field("runbox_lease_file", c.runbox_lease_file),
    };
}

inline std::string_view short_name(const std::string& name) {
    const auto dot = name.find('.');
    return dot == std::string::npos ? std::string_view(name) : std::string_view(name).substr(dot + 1);
}

inline void check_sandbox(const SandboxConfig& s) {
    if (s.timeout <= 0) bad_field("sandbox.timeout", "a positive number of seconds", std::to_string(s.timeout));
}

}  // namespace detail

RUNBOX_DECL void Config::apply_env(const EnvLookup& lookup) {
    if (!lookup) return;
    auto apply = [&](const std::vector<detail::FieldBinder>& fields, std::string_view prefix) {
        for (const auto& field : fields) {
            const std::string var = std::string(prefix) + detail::upper(detail::short_name(field.name));
            const auto value = lookup(var);
            if (!value || value->empty()) continue;  // OpenHands ignores empty values
            try {
                field.from_text(*value);
            } catch (const error& e) {
                // Name the variable, not only the field, so the user knows what to fix.
                throw error(errc::config_invalid, "environment variable " + var + ": " + e.detail());
            }
        }
    };
    apply(detail::core_fields(*this), "");
    apply(detail::sandbox_fields(sandbox), "SANDBOX_");
    detail::check_sandbox(sandbox);
}

RUNBOX_DECL Config Config::from_env(EnvLookup lookup) {
    Config config;
    config.env = lookup;
    config.apply_env(lookup);
    return config;
}

RUNBOX_DECL Config Config::from_json(const nlohmann::json& json, EnvLookup lookup) {
    if (!json.is_object()) detail::bad_field("<root>", "an object", json.dump());
    Config config;
    config.env = lookup;
    const auto core = detail::core_fields(config);
    const auto sandbox = detail::sandbox_fields(config.sandbox);
    for (const auto& [key, value] : json.items()) {
        if (key == "sandbox") {
            if (!value.is_object()) detail::bad_field("sandbox", "an object", value.dump());
            for (const auto& [skey, svalue] : value.items()) {
                const auto it = std::find_if(sandbox.begin(), sandbox.end(),
                                             [&k = skey](const auto& f) { return detail::short_name(f.name) == k; });
                if (it == sandbox.end()) throw error(errc::config_invalid, "unknown config field 'sandbox." + skey + "'");
                it->from_json(svalue);
            }
        } else if (key == "transport") {
            if (!value.is_object()) detail::bad_field("transport", "an object", value.dump());
            for (const auto& [tkey, tvalue] : value.items()) {
                if (tkey == "verify_tls" && tvalue.is_boolean()) {
                    config.transport.verify_tls = tvalue.get<bool>();
                } else if (tkey == "ca_cert_path" && tvalue.is_string()) {
                    config.transport.ca_cert_path = tvalue.get<std::string>();
                } else if (tkey == "connect_timeout_ms" && tvalue.is_number_integer() && tvalue.get<long long>() > 0) {
                    config.transport.connect_timeout = std::chrono::milliseconds(tvalue.get<long long>());
                } else {
                    detail::bad_field("transport." + tkey,
                                      tkey == "verify_tls" ? "true or false"
                                      : tkey == "ca_cert_path" ? "a string"
                                      : tkey == "connect_timeout_ms" ? "a positive integer" : "a known transport field",
                                      tvalue.dump());
                }
            }
        } else if (key == "providers") {
            if (!value.is_object()) detail::bad_field("providers", "an object of provider settings", value.dump());
            for (const auto& [pname, pvalue] : value.items()) {
                if (!pvalue.is_object()) detail::bad_field("providers." + pname, "an object", pvalue.dump());
            }
            config.providers = value;
        } else {
            const auto it = std::find_if(core.begin(), core.end(), [&k = key](const auto& f) { return f.name == k; });
            if (it == core.end()) throw error(errc::config_invalid, "unknown config field '" + key + "'");
            it->from_json(value);
        }
    }
    config.apply_env(lookup);
    return config;
}

}  // namespace runbox
