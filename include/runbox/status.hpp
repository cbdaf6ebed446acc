/// \file
/// RuntimeStatus: the OpenHands STATUS$... values a runtime reports while it works.
#pragma once

#include <string_view>

namespace runbox {

/// A step of a runtime's life, reported with a message to RuntimeOptions::status_callback.
/// The values are OpenHands' (the wire strings of to_string()); runbox itself reports
/// building_runtime, starting_runtime, runtime_started, ready, error,
/// error_runtime_disconnected and stopped. The others exist for OpenHands' agent side.
enum class RuntimeStatus {
    stopped,                             ///< close() finished.
    building_runtime,                    ///< Creating the sandbox (or its workspace, image).
    starting_runtime,                    ///< Starting the sandbox or its action server, waiting for it.
    runtime_started,                     ///< The sandbox runs; its server is not yet answering.
    setting_up_workspace,                ///< OpenHands: cloning or preparing the workspace.
    setting_up_git_hooks,                ///< OpenHands: installing git hooks.
    ready,                               ///< connect() finished: actions can run.
    error,                               ///< Something failed; the message says what.
    error_runtime_disconnected,          ///< The sandbox or its server is gone.
    error_llm_authentication,            ///< OpenHands: the LLM rejected the key.
    error_llm_service_unavailable,       ///< OpenHands: the LLM service is unavailable.
    error_llm_internal_server_error,     ///< OpenHands: the LLM service failed.
    error_llm_out_of_credits,            ///< OpenHands: the LLM account has no credits.
    error_llm_content_policy_violation,  ///< OpenHands: the LLM refused the content.
    agent_rate_limited_stopped_message,  ///< OpenHands: the agent stopped on a rate limit.
    git_provider_authentication_error,   ///< OpenHands: the git provider rejected the token.
    llm_retry,                           ///< OpenHands: retrying an LLM call.
    error_memory,                        ///< OpenHands: the agent's memory failed.
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
