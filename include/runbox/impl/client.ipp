/// \file
/// Definitions of runbox/client.hpp: the client's non-template steps (included by the header
/// when header-only; by runbox/src.hpp in compiled mode, which also compiles
/// ActionExecutionClient<HttplibTransport> once).
#pragma once

#include "runbox/client.hpp"

#include <iterator>
#include <system_error>
#include <type_traits>
#include <variant>

#include <openssl/rand.h>

#include "runbox/detail/json.hpp"
#include "runbox/detail/python.hpp"
#include "runbox/zip.hpp"

namespace runbox::detail {

RUNBOX_DECL std::string random_hex(std::size_t bytes) {
    std::vector<unsigned char> raw(bytes);
    if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) {
        throw error(errc::system, "OpenSSL RAND_bytes failed");
    }
    static constexpr char hex[] = "0123456789abcdef";
    std::string out;
    for (unsigned char c : raw) {
        out += hex[c >> 4];
        out += hex[c & 15];
    }
    return out;
}

// The bytes of a file to upload (errc::not_found naming it when it cannot be read).
inline std::string read_upload_file(const std::filesystem::path& path, const std::string& provider) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw error(errc::not_found, "cannot read " + path.string(), provider);
    return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A form-data filename with its quotes and backslashes escaped.
inline std::string escape_form_quotes(const std::string& text) {
    std::string out;
    for (char c : text) {
        if (c == '"' || c == '\\') out += '\\';
        out += c;
    }
    return out;
}

RUNBOX_DECL UploadBody upload_body(const std::filesystem::path& host_src, bool recursive, const std::string& provider) {
    namespace fs = std::filesystem;
    std::error_code ec;
    if (!fs::exists(host_src, ec)) {
        throw error(errc::not_found, "Source file " + host_src.string() + " does not exist", provider);
    }
    std::string filename;
    std::string content;
    if (recursive) {
        const fs::path archive = fs::temp_directory_path() / ("runbox-upload-" + random_hex(8) + ".zip");
        struct Remove {
            fs::path path;
            ~Remove() { std::error_code ignored; fs::remove(path, ignored); }
        } cleanup{archive};
        zip_tree(host_src, archive, {.include_top_dir = true, .include_directories = true});
        filename = archive.filename().string();
        content = read_upload_file(archive, provider);
    } else {
        if (fs::is_directory(host_src, ec)) {
            throw error(errc::config_invalid, host_src.string() + " is a directory: copy it with recursive=true",
                        provider);
        }
        filename = host_src.filename().string();
        content = read_upload_file(host_src, provider);
    }
    const std::string boundary = "runbox-" + random_hex(12);
    UploadBody upload;
    upload.content_type = "multipart/form-data; boundary=" + boundary;
    std::string& body = upload.body;
    body.reserve(content.size() + 256);
    body += "--" + boundary + "\r\n";
    body += "Content-Disposition: form-data; name=\"file\"; filename=\"" + escape_form_quotes(filename) +
            "\"\r\n";
    body += "Content-Type: application/octet-stream\r\n\r\n";
    body += content;
    body += "\r\n--" + boundary + "--\r\n";
    return upload;
}

RUNBOX_DECL std::string execute_action_body(const Action& action) {
    nlohmann::ordered_json body;
    body["action"] = to_json(action);
    return body.dump();
}

RUNBOX_DECL error execute_timeout(double timeout, const std::string& provider) {
    return error(errc::timeout,
                 "Runtime failed to return execute_action before the requested timeout of " + python_float(timeout) +
                     "s",
                 provider);
}

RUNBOX_DECL nlohmann::json parse_server_json(const Response& response, std::string_view what,
                                             const std::string& provider) {
    // Everything a sandbox sends is hostile: depth and size are bounded before any walk.
    json_failure failure{};
    auto json = parse_untrusted_json(response.body, {}, &failure);
    if (json.is_discarded()) {
        throw error(errc::bad_response, std::string(what) + " answered a body that " + json_failure_text(failure),
                    provider, response.status);
    }
    return json;
}

RUNBOX_DECL Observation observation_from_answer(const Response& response, const Action& action,
                                                const std::string& provider) {
    auto json = parse_server_json(response, "/execute_action", provider);
    if (!json.is_object()) {
        throw error(errc::bad_response, "/execute_action answered a body that is not a JSON object", provider,
                    response.status);
    }
    const bool hidden = std::visit([](const auto& a) {
        if constexpr (requires { a.hidden; }) return static_cast<bool>(a.hidden);
        else return false;
    }, action);
    if (hidden) {
        if (!json.contains("extras") || !json["extras"].is_object()) json["extras"] = nlohmann::json::object();
        json["extras"]["hidden"] = true;
    }
    Observation observation = observation_from_json(json);
    meta(observation).cause = meta(action).id;
    return observation;
}

RUNBOX_DECL std::vector<std::string> file_names_from_answer(const Response& response, const std::string& provider) {
    const nlohmann::json json = parse_server_json(response, "/list_files", provider);
    if (!json.is_array()) throw error(errc::bad_response, "/list_files did not answer a JSON list", provider);
    std::vector<std::string> names;
    for (const auto& item : json) {
        if (!item.is_string()) throw error(errc::bad_response, "/list_files answered a non-string entry", provider);
        names.push_back(item.get<std::string>());
    }
    return names;
}

RUNBOX_DECL std::filesystem::path download_path() {
    return std::filesystem::temp_directory_path() / ("runbox-download-" + random_hex(8) + ".zip");
}

}  // namespace runbox::detail
