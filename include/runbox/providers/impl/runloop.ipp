// runbox/providers/impl/runloop.ipp - the runloop provider's non-template definitions
// (runbox/detail/linkage.hpp): included by providers/runloop.hpp when header-only, compiled once by
// runbox/src.hpp otherwise.
#pragma once

#include "runbox/providers/runloop.hpp"

namespace runbox::runloop {

RUNBOX_DECL Settings Settings::from(const Config& config) {
    const cloud::SettingsReader r(config, "runloop", "RUNLOOP_");
    auto s = cloud::read_shared_settings<Settings>(r);
    s.base_url = r.url("base_url", s.base_url);
    s.blueprint = r.text("blueprint");
    s.snapshot = r.text("snapshot");
    s.prebuilt = r.text("prebuilt");
    if ((s.blueprint ? 1 : 0) + (s.snapshot ? 1 : 0) + (s.prebuilt ? 1 : 0) > 1)
        throw error(errc::config_invalid, "set at most one of runloop blueprint, snapshot and prebuilt", "runloop");
    s.resource_size = r.text("resource_size", s.resource_size);
    s.keep_alive_time_seconds = r.integer("keep_alive_time_seconds", s.keep_alive_time_seconds, 1, false);
    // The SDK's rule: api.<domain> -> https://{port}-{key}.tunnel.<domain>.
    const std::string host = parse_url(s.base_url).host;
    s.tunnel_url = r.text("tunnel_url", "https://{port}-{tunnel_key}.tunnel." +
                                            (host.rfind("api.", 0) == 0 ? host.substr(4) : host));
    if (s.tunnel_url.find("{tunnel_key}") == std::string::npos)
        throw error(errc::config_invalid, "runloop setting 'tunnel_url' must contain {tunnel_key}", "runloop");
    s.tunnel_auth_mode = r.choice("tunnel_auth_mode", s.tunnel_auth_mode, {"open", "authenticated"});
    s.session_api_key = r.text("session_api_key");
    s.list_limit = r.integer("list_limit", s.list_limit, 1, false);
    return s;
}

}  // namespace runbox::runloop
