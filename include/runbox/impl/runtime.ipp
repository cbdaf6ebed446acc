// runbox/impl/runtime.ipp - what every Runtime<A, T> shares (runbox/detail/linkage.hpp): included
// by runtime.hpp when header-only, compiled once by runbox/src.hpp otherwise.
#pragma once

#include "runbox/runtime.hpp"

namespace runbox::detail {

RUNBOX_DECL std::string json_string_literal(const std::string& value) {
    return nlohmann::json(value).dump(-1, ' ', true);
}

RUNBOX_DECL EnvVarCommands env_var_commands(const std::map<std::string, std::string>& env) {
    std::map<std::string, std::string> upper;
    for (const auto& [key, value] : env) upper[upper_ascii(key)] = value;
    EnvVarCommands plan;
    std::string code = "import os\n";
    for (const auto& [key, value] : upper) {
        code += "os.environ[\"" + key + "\"] = " + json_string_literal(value) + "\n";
    }
    plan.ipython_code = code + "\n";
    if (upper.empty()) return plan;
    std::string exports;
    std::string persist;
    for (const auto& [key, value] : upper) {
        const std::string literal = json_string_literal(value);
        if (!value.empty()) plan.values.push_back(value);
        if (literal.size() > 2 && literal.substr(1, literal.size() - 2) != value)
            plan.values.push_back(literal.substr(1, literal.size() - 2));
        exports += "export " + key + "=" + literal + "; ";
        persist += "touch ~/.bashrc; grep -q \"^export " + key + "=\" ~/.bashrc || echo \"export " + key + "=" +
                   literal + "\" >> ~/.bashrc; ";
        plan.keys += (plan.keys.empty() ? "" : ", ") + key;
    }
    auto trim = [](std::string text) {
        while (!text.empty() && text.back() == ' ') text.pop_back();
        return text;
    };
    plan.commands = {{trim(exports), "environment"}, {trim(persist), ".bashrc"}};
    return plan;
}

RUNBOX_DECL void check_env_result(const Observation& obs, const std::string& keys, const std::string& what,
                                  std::string_view provider, const std::vector<std::string>& secrets) {
    const auto* out = std::get_if<CmdOutputObservation>(&obs);
    if (out != nullptr && out->metadata.exit_code == 0) return;
    std::string content = out != nullptr ? out->content
                          : std::holds_alternative<ErrorObservation>(obs) ? std::get<ErrorObservation>(obs).content
                                                                          : std::string("unexpected observation");
    // Redacted before it is cut, so no secret is cut into a piece redact() cannot find.
    content = redact(std::move(content), secrets);
    constexpr std::size_t max_quoted = 2000;
    if (content.size() > max_quoted) {
        std::size_t cut = max_quoted;
        while (cut > 0 && (static_cast<unsigned char>(content[cut]) & 0xC0) == 0x80) --cut;  // not inside a UTF-8 character
        content = content.substr(0, cut) + "...";
    }
    throw error(errc::server_error, "Failed to add env vars [" + keys + "] to " + what + ": " + content,
                std::string(provider));
}

RUNBOX_DECL std::map<std::string, std::string> initial_env_vars(const Config& config, const RuntimeOptions& options) {
    std::map<std::string, std::string> env;
    if (config.env_list) {
        constexpr std::string_view prefix = "SANDBOX_ENV_";
        for (const auto& [name, value] : config.env_list()) {
            if (name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0) {
                env[name.substr(prefix.size())] = value;
            }
        }
    }
    if (config.sandbox.enable_auto_lint) env["ENABLE_AUTO_LINT"] = "true";
    for (const auto& [key, value] : options.env_vars) env[key] = value;
    for (const auto& [provider, token] : options.git_provider_tokens) {
        if (!token.empty()) env[provider + "_token"] = token;
    }
    return env;
}

RUNBOX_DECL std::optional<Observation> gate_action(Action& action, const Config& config, std::string_view provider) {
    if (!is_runnable(action)) {
        if (std::holds_alternative<AgentThinkAction>(action)) {
            return AgentThinkObservation{.content = "Your thought has been logged."};
        }
        return NullObservation{};
    }
    const std::optional<ConfirmationState> confirmation =
        std::visit([](const auto& a) -> std::optional<ConfirmationState> {
            if constexpr (requires { a.confirmation_state; }) return a.confirmation_state;
            else return std::nullopt;
        }, action);
    if (confirmation == ConfirmationState::awaiting_confirmation) return NullObservation{};
    if (confirmation == ConfirmationState::rejected) {
        return UserRejectObservation{.content = "Action has been rejected by the user! Waiting for further user input."};
    }
    if (std::holds_alternative<MCPAction>(action)) {
        // MCP goes to MCP servers, not /execute_action; runbox has no MCP client yet.
        return ErrorObservation{.content = "Action call_tool_mcp is not supported in the current runtime.",
                                .error_id = "AGENT_ERROR$BAD_ACTION"};
    }
    if (!timeout_of(action)) {
        if (const auto* cmd = std::get_if<CmdRunAction>(&action); cmd != nullptr && cmd->blocking) {
            throw error(errc::config_invalid, "Blocking command with no timeout set", std::string(provider));
        }
        // The default timeout is non-blocking: the soft "no new output" timeout stays active.
        set_hard_timeout(action, static_cast<double>(config.sandbox.timeout), false);
    }
    return std::nullopt;
}

RUNBOX_DECL void publish_observation(EventStream& stream, Observation observation, const Action& action) {
    if (std::holds_alternative<NullObservation>(observation)) return;
    auto& m = meta(observation);
    m.cause = meta(action).id;
    m.tool_call_metadata = meta(action).tool_call_metadata;
    stream.add_event(Event(std::move(observation)), meta(action).source.value_or(EventSource::agent));
}

RUNBOX_DECL std::string git_config_command(const Config& config) {
    return "git config --global user.name \"" + config.git_user_name + "\" && git config --global user.email \"" +
           config.git_user_email + "\"";
}

}  // namespace runbox::detail
