// runbox/providers/impl/local.ipp - the local provider's definitions (runbox/detail/linkage.hpp):
// included by providers/local.hpp when header-only, compiled once by runbox/src.hpp otherwise.
// The in-process action server is included here, not in the header.
#pragma once

#include "runbox/providers/local.hpp"

#include <cstdint>
#include <exception>
#include <system_error>

#include "runbox/server/action_server.hpp"

namespace runbox::local {

RUNBOX_DECL Auth::Auth(const Config& config)
    : mode_(config.setting("local", "mode", "RUNBOX_LOCAL_MODE").value_or("thread")),
      server_path_(config.setting("local", "server_path", "RUNBOX_SERVER_PATH").value_or("runbox-server")) {
    if (mode_ != "thread" && mode_ != "process") {
        throw error(errc::config_invalid,
                    "providers.local.mode (RUNBOX_LOCAL_MODE) must be \"thread\" or \"process\", got \"" + mode_ + "\"",
                    "local");
    }
}

// Out of line: they destroy a std::unique_ptr<server::ActionServer>, complete only here.
RUNBOX_DECL Auth::Auth(Auth&&) noexcept = default;
RUNBOX_DECL Auth& Auth::operator=(Auth&&) noexcept = default;
RUNBOX_DECL Auth::~Auth() { stop(); }

RUNBOX_DECL ServerEndpoint Auth::start(const Config& config, const RuntimeOptions& runtime_options,
                                       const status_sink& status) {
    namespace fs = std::filesystem;
    status(RuntimeStatus::building_runtime, "Preparing the local workspace...");
    if (config.workspace_base) {
        workspace_ = fs::absolute(*config.workspace_base);
        fs::create_directories(workspace_);
        owns_workspace_ = false;
    } else {
        workspace_ = fs::temp_directory_path() / ("runbox-" + runtime_options.sid + "-" + detail::random_hex(6));
        fs::create_directories(workspace_);
        owns_workspace_ = true;
    }
    session_key_ = detail::random_hex(24);

    std::chrono::milliseconds no_change{10000};
    const auto& startup = config.sandbox.runtime_startup_env_vars;
    if (auto it = startup.find("NO_CHANGE_TIMEOUT_SECONDS"); it != startup.end()) {
        double seconds = 0;
        try {
            seconds = std::stod(it->second);
        } catch (const std::exception&) {
            throw error(errc::config_invalid, "NO_CHANGE_TIMEOUT_SECONDS must be a number", "local");
        }
        constexpr double max_seconds = 365.0 * 24 * 3600;  // keeps the conversion defined
        if (!(seconds >= 0 && seconds <= max_seconds))  // NaN fails both
            throw error(errc::config_invalid, "NO_CHANGE_TIMEOUT_SECONDS must be a number of seconds, at most a year", "local");
        no_change = std::chrono::milliseconds(static_cast<std::int64_t>(seconds * 1000));
    }

    std::string url;
    if (mode_ == "thread") {
        server::ActionServerOptions options;
        options.host = "127.0.0.1";
        options.port = 0;
        options.working_dir = workspace_.string();
        options.session_api_key = session_key_;
        options.no_change_timeout = no_change;
        options.enable_browser = false;
        for (const auto& plugin : runtime_options.plugins) options.plugins.push_back(plugin.name);
        options.env = startup;
        options.environment = detail::EnvironmentBase::allow_list;  // the host's secrets stay in the host
        server_ = std::make_unique<server::ActionServer>(std::move(options));
        server_->start();
        url = server_->url();
    } else {
        std::vector<std::pair<std::string, std::string>> env{{"SESSION_API_KEY", session_key_}};
        for (const auto& [key, value] : startup) env.emplace_back(key, value);
        std::vector<std::string> args{"0", "--working-dir", workspace_.string(), "--host", "127.0.0.1",
                                      "--no-enable-browser"};
        if (!runtime_options.plugins.empty()) {
            args.push_back("--plugins");
            for (const auto& plugin : runtime_options.plugins) args.push_back(plugin.name);
        }
        process_ = std::make_unique<ServerProcess>(server_path_, args, env, std::chrono::seconds(30));
        url = process_->url();
    }
    status(RuntimeStatus::runtime_started, "Local action execution server started.");

    ServerEndpoint endpoint;
    endpoint.url = url;
    endpoint.headers.set("X-Session-API-Key", session_key_);
    endpoint.secrets = {session_key_};
    endpoint.alive_timeout = std::chrono::seconds(30);
    endpoint.alive_poll_interval = std::chrono::milliseconds(5);
    return endpoint;
}

RUNBOX_DECL void Auth::stop() noexcept {
    try {
        if (server_) server_->stop();
    } catch (...) {
    }
    server_.reset();
    process_.reset();
    if (owns_workspace_ && !workspace_.empty()) {
        std::error_code ignored;
        std::filesystem::remove_all(workspace_, ignored);
        owns_workspace_ = false;
    }
}

}  // namespace runbox::local
