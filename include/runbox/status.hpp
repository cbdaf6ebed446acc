// runbox/status.hpp - RuntimeStatus: the OpenHands STATUS$... values a runtime reports while it works.
#pragma once

#include <string_view>

namespace runbox {

enum class RuntimeStatus {
    stopped,
    building_runtime,
    starting_runtime,
    runtime_started,
    setting_up_workspace,
    setting_up_git_hooks,
    ready,
    error,
    error_runtime_disconnected,
    error_llm_authentication,
    error_llm_service_unavailable,
    error_llm_internal_server_error,
    error_llm_out_of_credits,
    error_llm_content_policy_violation,
    agent_rate_limited_stopped_message,
    git_provider_authentication_error,
    llm_retry,
    error_memory,
};

/// The wire string OpenHands uses ("STATUS$READY", ...).
constexpr std::string_view to_string(RuntimeStatus status) noexcept {
    switch (status) {
        case RuntimeStatus::stopped: return "STATUS$STOPPED";
        case RuntimeStatus::building_runtime: return "STATUS$BUILDING_RUNTIME";
        case RuntimeStatus::starting_runtime: return "STATUS$STARTING_RUNTIME";
        case RuntimeStatus::runtime_started: return "STATUS$RUNTIME_STARTED";
        case RuntimeStatus::setting_up_workspace: return "STATUS$SETTING_UP_WORKSPACE";
        case RuntimeStatus::setting_up_git_hooks: return "STATUS$SETTING_UP_GIT_HOOKS";
        case RuntimeStatus::ready: return "STATUS$READY";
        case RuntimeStatus::error: return "STATUS$ERROR";
        case RuntimeStatus::error_runtime_disconnected: return "STATUS$ERROR_RUNTIME_DISCONNECTED";
        case RuntimeStatus::error_llm_authentication: return "STATUS$ERROR_LLM_AUTHENTICATION";
        case RuntimeStatus::error_llm_service_unavailable: return "STATUS$ERROR_LLM_SERVICE_UNAVAILABLE";
        case RuntimeStatus::error_llm_internal_server_error: return "STATUS$ERROR_LLM_INTERNAL_SERVER_ERROR";
        case RuntimeStatus::error_llm_out_of_credits: return "STATUS$ERROR_LLM_OUT_OF_CREDITS";
        case RuntimeStatus::error_llm_content_policy_violation: return "STATUS$ERROR_LLM_CONTENT_POLICY_VIOLATION";
        case RuntimeStatus::agent_rate_limited_stopped_message: return "CHAT_INTERFACE$AGENT_RATE_LIMITED_STOPPED_MESSAGE";
        case RuntimeStatus::git_provider_authentication_error: return "STATUS$GIT_PROVIDER_AUTHENTICATION_ERROR";
        case RuntimeStatus::llm_retry: return "STATUS$LLM_RETRY";
        case RuntimeStatus::error_memory: return "STATUS$ERROR_MEMORY";
    }
    return "STATUS$ERROR";
}

}  // namespace runbox
