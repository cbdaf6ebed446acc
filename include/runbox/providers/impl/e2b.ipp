// runbox/providers/impl/e2b.ipp - the e2b provider's non-template definitions
// (runbox/detail/linkage.hpp): included by providers/e2b.hpp when header-only, compiled once by
// runbox/src.hpp otherwise.
#pragma once

#include "runbox/providers/e2b.hpp"

namespace runbox::e2b {

RUNBOX_DECL Settings Settings::from(const Config& config) {
    const cloud::SettingsReader r(config, "e2b", "E2B_");
    auto s = cloud::read_shared_settings<Settings>(r);
    s.domain = r.text("domain", s.domain);
    if (s.domain.empty() || s.domain.find_first_of("/{} ") != std::string::npos)
        throw error(errc::config_invalid, "E2B_DOMAIN must be a host name such as e2b.app", "e2b");
    s.api_url = r.url("api_url", "https://api." + s.domain);
    const bool own_domain = s.domain == "e2b.app" || s.domain == "e2b.dev" || s.domain == "e2b.pro" ||
                            s.domain == "e2b-staging.dev";
    s.sandbox_url = template_url(r, "sandbox_url",
                                 own_domain ? "https://sandbox." + s.domain
                                            : "https://" + std::to_string(envd_port) + "-{id}." + s.domain);
    s.server_url = template_url(r, "server_url", "https://{port}-{id}." + s.domain);
    if (s.server_url.find("{id}") == std::string::npos)
        throw error(errc::config_invalid, "e2b setting 'server_url' must contain {id}", "e2b");
    if (config.sandbox.runtime_container_image && !config.sandbox.runtime_container_image->empty())
        s.template_id = *config.sandbox.runtime_container_image;
    s.template_id = r.text("template", s.template_id);
    s.timeout_seconds = r.integer("timeout_seconds", s.timeout_seconds, 1);
    s.is_public = r.flag("public", s.is_public);
    s.session_api_key = r.text("session_api_key");
    s.list_limit = std::min(r.integer("list_limit", s.list_limit, 1, false), 100);
    return s;
}

RUNBOX_DECL std::string Settings::template_url(const cloud::SettingsReader& r, std::string_view key, std::string fallback) {
    std::string value = cloud::trim_slashes(r.text(key, std::move(fallback)));
    std::string probe = value;
    runbox::detail::replace_all(probe, "{id}", "x");
    runbox::detail::replace_all(probe, "{port}", "1");
    try {
        (void)parse_url(probe);
    } catch (const error&) {
        throw error(errc::config_invalid, r.env_name(key) + " must be an http(s) URL", "e2b");
    }
    return value;
}

}  // namespace runbox::e2b

namespace runbox::e2b::detail {

RUNBOX_DECL int compare_versions(std::string_view a, std::string_view b) {
    auto next = [](std::string_view& v) -> long {
        long n = 0;
        std::size_t i = 0;
        while (i < v.size() && v[i] >= '0' && v[i] <= '9' && n < 1000000) n = n * 10 + (v[i++] - '0');
        while (i < v.size() && v[i] != '.') ++i;  // "-rc1" and the like
        v.remove_prefix(i < v.size() ? i + 1 : i);
        return n;
    };
    for (int part = 0; part < 4; ++part) {
        const long x = next(a);
        const long y = next(b);
        if (x != y) return x < y ? -1 : 1;
    }
    return 0;
}

}  // namespace runbox::e2b::detail
