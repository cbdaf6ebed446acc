// A self-signed certificate for 127.0.0.1 (SAN IP), made with OpenSSL's C API at test time.
// Shared by the transport tests (HttplibTransport, the transport suite).
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdlib.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>

#include "catch.hpp"

namespace {
struct TestCertificate {
    std::filesystem::path dir, cert, key;

    TestCertificate() {
        std::string pattern = (std::filesystem::temp_directory_path() / "runbox-tls-XXXXXX").string();
        REQUIRE(::mkdtemp(pattern.data()) != nullptr);
        dir = pattern;
        cert = dir / "cert.pem";
        key = dir / "key.pem";

        std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> pkey(EVP_EC_gen("P-256"), EVP_PKEY_free);
        REQUIRE(pkey);
        std::unique_ptr<X509, decltype(&X509_free)> x509(X509_new(), X509_free);
        REQUIRE(x509);
        X509* x = x509.get();
        REQUIRE(X509_set_version(x, 2) == 1);
        REQUIRE(ASN1_INTEGER_set(X509_get_serialNumber(x), 1) == 1);
        REQUIRE(X509_gmtime_adj(X509_getm_notBefore(x), -60) != nullptr);
        REQUIRE(X509_gmtime_adj(X509_getm_notAfter(x), 3600) != nullptr);
        REQUIRE(X509_set_pubkey(x, pkey.get()) == 1);
        X509_NAME* name = X509_get_subject_name(x);
        const std::string cn = "127.0.0.1";
        REQUIRE(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()),
                                           -1, -1, 0) == 1);
        REQUIRE(X509_set_issuer_name(x, name) == 1);
        X509V3_CTX ctx;
        X509V3_set_ctx_nodb(&ctx);
        X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
        for (const auto& [nid, value] : {std::pair{NID_subject_alt_name, "IP:127.0.0.1"},
                                         std::pair{NID_basic_constraints, "critical,CA:TRUE"}}) {
            X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
            REQUIRE(ext != nullptr);
            REQUIRE(X509_add_ext(x, ext, -1) == 1);
            X509_EXTENSION_free(ext);
        }
        REQUIRE(X509_sign(x, pkey.get(), EVP_sha256()) > 0);

        std::unique_ptr<BIO, decltype(&BIO_free)> cert_out(BIO_new_file(cert.c_str(), "w"), BIO_free);
        REQUIRE(cert_out);
        REQUIRE(PEM_write_bio_X509(cert_out.get(), x) == 1);
        std::unique_ptr<BIO, decltype(&BIO_free)> key_out(BIO_new_file(key.c_str(), "w"), BIO_free);
        REQUIRE(key_out);
        REQUIRE(PEM_write_bio_PrivateKey(key_out.get(), pkey.get(), nullptr, nullptr, 0, nullptr, nullptr) == 1);
    }
    ~TestCertificate() {
        std::error_code ignored;
        std::filesystem::remove_all(dir, ignored);
    }
};

}  // namespace
