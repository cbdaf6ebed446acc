// runbox/detail/base64.hpp - base64 (RFC 4648 §4) and base64url (§5) on OpenSSL's EVP codec.
//
// One codec for the tree: cassettes, proto3-JSON `bytes` fields (E2B's envd), JWT payloads
// (Modal) and the editor's data URLs. OpenSSL does the work; this file only adapts lengths,
// padding and the URL alphabet. Decoding refuses anything that is not base64 with errc::bad_response.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"

namespace runbox::detail {

/// Standard base64 with `=` padding.
RUNBOX_DECL std::string base64_encode(std::string_view bytes);

/// Decodes standard base64; padding may be omitted (proto3 JSON readers accept both).
/// Throws errc::bad_response (naming `what`) on any other character or a bad length.
RUNBOX_DECL std::string base64_decode(std::string_view text, std::string_view what = "base64 text");

/// Decodes base64url (`-` and `_`, padding optional), as JWT segments use it.
RUNBOX_DECL std::string base64url_decode(std::string_view text, std::string_view what = "base64url text");

}  // namespace runbox::detail

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/detail/impl/base64.ipp"
#endif
