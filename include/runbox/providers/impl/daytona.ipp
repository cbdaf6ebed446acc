// runbox/providers/impl/daytona.ipp - the daytona provider's non-template definitions
// (runbox/detail/linkage.hpp): included by providers/daytona.hpp when header-only, compiled once by
// runbox/src.hpp otherwise.
#pragma once

#include "runbox/providers/daytona.hpp"

namespace runbox::daytona {

RUNBOX_DECL Settings Settings::from(const Config& config) {
    const cloud::SettingsReader r(config, "daytona", "DAYTONA_");
    auto s = cloud::read_shared_settings<Settings>(r);
    s.api_url = r.url("api_url", s.api_url);
    s.target = r.text("target", s.target);
    s.disable_auto_stop = r.flag("disable_auto_stop", false);
    s.delete_on_close = r.flag("delete_on_close", false);
    s.is_public = r.flag("public", false);
    s.organization_id = r.text("organization_id");
    return s;
}

}  // namespace runbox::daytona
