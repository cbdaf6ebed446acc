/// \file
/// Definitions of runbox/detail/base64.hpp (OpenSSL's EVP codec; included by the header when
/// header-only; by runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/detail/base64.hpp"

#include <openssl/evp.h>

namespace runbox::detail {

RUNBOX_DECL std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');  // EVP writes a NUL terminator
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(n > 0 ? static_cast<std::size_t>(n) : 0);
    return out;
}

RUNBOX_DECL std::string base64_decode(std::string_view text, std::string_view what) {
    auto fail = [&] { return error(errc::bad_response, "invalid base64 in " + std::string(what), "transport"); };
    // EVP_DecodeBlock skips blanks and takes '=' in the middle: only the alphabet, padding last.
    const auto body_end = text.find_last_not_of('=');
    const std::string_view body = body_end == std::string_view::npos ? std::string_view{} : text.substr(0, body_end + 1);
    for (char c : body) {
        const bool alphabet = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
        if (!alphabet) throw fail();
    }
    std::string padded(text);
    if (padded.size() % 4 == 1) throw fail();
    while (padded.size() % 4 != 0) padded.push_back('=');
    if (padded.empty()) return {};
    std::size_t padding = 0;
    for (std::size_t i = padded.size(); i > 0 && padded[i - 1] == '='; --i) ++padding;
    if (padding > 2) throw fail();
    std::string out(3 * (padded.size() / 4) + 1, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(padded.data()), static_cast<int>(padded.size()));
    if (n < 0 || static_cast<std::size_t>(n) < padding) throw fail();
    out.resize(static_cast<std::size_t>(n) - padding);  // EVP counts the bytes that padding stands for
    return out;
}

RUNBOX_DECL std::string base64url_decode(std::string_view text, std::string_view what) {
    std::string standard(text);
    for (char& c : standard) {
        if (c == '-') c = '+';
        else if (c == '_') c = '/';
        else if (c == '+' || c == '/') throw error(errc::bad_response, "invalid base64url in " + std::string(what), "transport");
    }
    return base64_decode(standard, what);
}

}  // namespace runbox::detail
