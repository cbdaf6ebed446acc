// runbox/providers/detail/modal_auth.hpp - where Modal's credentials come from, and JWT expiry.
//
// Modal's SDKs take the token id and secret from MODAL_TOKEN_ID / MODAL_TOKEN_SECRET, else from a
// profile of ~/.modal.toml (path: MODAL_CONFIG_PATH; profile: MODAL_PROFILE, else the one marked
// `active = true`, else "default"); MODAL_SERVER_URL and MODAL_ENVIRONMENT override the profile's
// server_url and environment (shared/reference/provider-apis.md §4.2). runbox reads the same
// places, Config's providers.modal.* first. The file is parsed by toml++ (Debian's
// libtomlplusplus-dev), bounded in size; the control plane's JWT (AuthTokenGet) is read only for
// its `exp`, so the token is refreshed before it lapses.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

#include <toml++/toml.h>

#include "runbox/config.hpp"
#include "runbox/detail/base64.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/error.hpp"

namespace runbox::detail::modal {

/// What runbox needs to reach Modal's control plane.
struct Credentials {
    std::string token_id{};
    std::string token_secret{};
    std::string server_url = "https://api.modal.com:443";
    std::string environment{};  ///< empty = the workspace's default environment
    std::string profile{};      ///< the ~/.modal.toml profile used, if any
};

/// The config file's profiles: at most this many bytes are read (a real one is a few hundred).
inline constexpr std::uintmax_t max_modal_config_bytes = 1 << 20;

/// Resolves Modal's credentials from `config` (providers.modal.token_id / token_secret /
/// server_url / environment / profile / config_path), the environment, then the profile file.
/// Errors are errc::config_invalid and name the variable or file to fix, never a secret.
inline Credentials resolve_credentials(const Config& config) {
    constexpr std::string_view p = "modal";
    auto fail = [](std::string message) { return error(errc::config_invalid, std::move(message), "modal"); };
    Credentials out;
    auto id = config.setting(p, "token_id", "MODAL_TOKEN_ID");
    auto secret = config.setting(p, "token_secret", "MODAL_TOKEN_SECRET");
    auto server_url = config.setting(p, "server_url", "MODAL_SERVER_URL");
    auto environment = config.setting(p, "environment", "MODAL_ENVIRONMENT");

    // The profile file fills in what the settings and the environment leave out.
    std::string path_text;
    if (auto v = config.setting(p, "config_path", "MODAL_CONFIG_PATH")) {
        path_text = *v;
    } else if (auto home = config.env ? config.env("HOME") : std::nullopt; home && !home->empty()) {
        path_text = *home + "/.modal.toml";
    }
    std::error_code ec;
    const std::filesystem::path path(path_text);
    if (!path_text.empty() && std::filesystem::is_regular_file(path, ec)) {
        if (std::filesystem::file_size(path, ec) > max_modal_config_bytes || ec)
            throw fail("the Modal config file " + path_text + " is larger than 1 MiB");
        toml::table file;
        try {
            file = toml::parse_file(path_text);
        } catch (const toml::parse_error& e) {
            throw fail("the Modal config file " + path_text + " is not valid TOML (line " +
                       std::to_string(e.source().begin.line) + ")");
        }
        std::string profile_name;
        if (auto v = config.setting(p, "profile", "MODAL_PROFILE")) {
            profile_name = *v;
            if (!file.contains(profile_name)) throw fail("MODAL_PROFILE names a profile that " + path_text + " does not have");
        } else {
            for (const auto& [name, value] : file) {
                const auto* table = value.as_table();
                if (table && table->get_as<bool>("active") && table->get_as<bool>("active")->get()) {
                    profile_name = std::string(name.str());
                    break;
                }
            }
            if (profile_name.empty() && file.contains("default")) profile_name = "default";
        }
        if (const auto* profile = profile_name.empty() ? nullptr : file.get_as<toml::table>(profile_name)) {
            out.profile = profile_name;
            auto text = [&](std::string_view key) -> std::optional<std::string> {
                if (const auto* v = profile->get_as<std::string>(key)) return v->get();
                return std::nullopt;
            };
            if (!id && !secret) {
                id = text("token_id");
                secret = text("token_secret");
            }
            if (!server_url) server_url = text("server_url");
            if (!environment) environment = text("environment");
        }
    }

    if (!id || id->empty())
        throw fail("MODAL_TOKEN_ID and MODAL_TOKEN_SECRET are required for the modal runtime (or a profile in "
                   "~/.modal.toml, or providers.modal.token_id / token_secret)");
    if (!secret || secret->empty()) throw fail("MODAL_TOKEN_SECRET is required with MODAL_TOKEN_ID");
    out.token_id = std::move(*id);
    out.token_secret = std::move(*secret);
    if (server_url) out.server_url = std::move(*server_url);
    if (environment) out.environment = std::move(*environment);
    return out;
}

/// The `exp` claim of a JWT (seconds since the epoch), or nullopt when the token has no
/// readable expiry (the caller then refreshes on its own schedule). The signature is not checked:
/// runbox only needs to know when Modal will stop accepting the token.
inline std::optional<std::chrono::system_clock::time_point> jwt_expiry(std::string_view token) {
    const auto first = token.find('.');
    const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
    if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos) return std::nullopt;
    std::string payload;
    try {
        payload = base64url_decode(token.substr(first + 1, second - first - 1), "a JWT payload");
    } catch (const error&) {
        return std::nullopt;
    }
    const auto json = parse_untrusted_json(payload);
    if (!json.is_object()) return std::nullopt;
    const auto exp = json.find("exp");
    if (exp == json.end() || !exp->is_number()) return std::nullopt;
    const double seconds = exp->get<double>();
    // Past 2096 is not a real expiry, and system_clock's nanoseconds end in 2262: later values
    // would overflow the conversion and the renewal arithmetic.
    if (!(seconds > 0 && seconds < 4e9)) return std::nullopt;
    return std::chrono::system_clock::time_point(std::chrono::seconds(static_cast<std::int64_t>(seconds)));
}

}  // namespace runbox::detail::modal
