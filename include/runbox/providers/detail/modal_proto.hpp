// runbox/providers/detail/modal_proto.hpp - the protobuf messages runbox exchanges with Modal.
//
// Modal's control plane (modal.client.ModalClient) and command router
// (modal.task_command_router.TaskCommandRouter) speak gRPC with protobuf bodies. This header holds
// the subset of their messages that a sandbox's lifecycle needs, as plain structs with one
// encoder and one decoder each, on protozero (Debian's libprotozero-dev, header-only): protozero
// does the varints, tags and length prefixes, this file only says which field has which number.
// Field numbers come from shared/reference/provider-apis.md §4.4-§4.5; the V2 RPCs
// (SandboxCreateV2, SandboxWaitV2, ...) reuse the V1 request and response messages except
// SandboxCreateV2Request/Response. tests/unit/test_modal_proto.cpp checks every message byte for
// byte against libprotobuf built from tests/proto/modal_subset.proto (same numbers).
//
// Encoding follows proto3: a plain scalar or string at its default (0, "", false) is left out, a
// field declared `optional` here (std::optional) is written whenever it is set, as libprotobuf
// does. Fields are written in field-number order, which is what libprotobuf writes, so encodings
// compare equal byte for byte. Decoding skips unknown fields and fields of an unexpected wire
// type (a newer server may add fields), and turns malformed input into errc::bad_response.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <protozero/pbf_reader.hpp>
#include <protozero/pbf_writer.hpp>

#include "runbox/error.hpp"

namespace runbox::detail::modal {

using protozero::pbf_wire_type;
using protozero::tag_and_type;

// ---- Shared messages ----------------------------------------------------------------------

/// GenericResult.status: 0 means "still running" (no result yet).
enum class GenericStatus : std::int32_t {
    unspecified = 0,
    success = 1,
    failure = 2,
    terminated = 3,
    timeout = 4,
    init_failure = 5,
    internal_failure = 6,
    idle_timeout = 7,
    memory_manager_eviction = 8,
};

/// ObjectCreationType of AppGetOrCreate.
enum class ObjectCreationType : std::int32_t { lookup = 0, create_if_missing = 1, ephemeral = 5 };

struct GenericResult {
    std::int32_t status = 0;   ///< 1 GenericStatus
    std::string exception{};   ///< 2
    std::int32_t exitcode = 0;  ///< 3
    std::string traceback{};   ///< 4
    bool operator==(const GenericResult&) const = default;
};

struct SandboxTag {
    std::string tag_name{};   ///< 1
    std::string tag_value{};  ///< 2
    bool operator==(const SandboxTag&) const = default;
};

struct TunnelData {
    std::string host{};                  ///< 1
    std::uint32_t port = 0;              ///< 2
    std::string unencrypted_host{};      ///< 3 (optional in Modal's proto; empty = absent here)
    std::uint32_t unencrypted_port = 0;  ///< 4
    std::uint32_t container_port = 0;    ///< 5
    bool operator==(const TunnelData&) const = default;
};

// ---- ModalClient ----------------------------------------------------------------------------

struct AuthTokenGetRequest {
    bool operator==(const AuthTokenGetRequest&) const = default;
};
struct AuthTokenGetResponse {
    std::string token{};  ///< 1: a JWT whose payload carries `exp`
    bool operator==(const AuthTokenGetResponse&) const = default;
};

struct AppGetOrCreateRequest {
    std::string app_name{};                 ///< 1
    std::string environment_name{};         ///< 2
    std::int32_t object_creation_type = 0;  ///< 3 ObjectCreationType
    bool operator==(const AppGetOrCreateRequest&) const = default;
};
struct AppGetOrCreateResponse {
    std::string app_id{};  ///< 1
    bool operator==(const AppGetOrCreateResponse&) const = default;
};

struct Image {
    std::vector<std::string> dockerfile_commands{};  ///< 6, e.g. "FROM python:3.12-slim"
    bool operator==(const Image&) const = default;
};
struct ImageGetOrCreateRequest {
    std::optional<Image> image{};  ///< 2
    std::string app_id{};          ///< 4
    bool force_build = false;      ///< 7
    std::string builder_version{};  ///< 9
    bool operator==(const ImageGetOrCreateRequest&) const = default;
};
struct ImageGetOrCreateResponse {
    std::string image_id{};                ///< 1
    std::optional<GenericResult> result{};  ///< 2: absent or status 0 = still building
    bool operator==(const ImageGetOrCreateResponse&) const = default;
};
struct ImageJoinStreamingRequest {
    std::string image_id{};       ///< 1
    float timeout = 0;            ///< 2, seconds
    std::string last_entry_id{};  ///< 3
    bool operator==(const ImageJoinStreamingRequest&) const = default;
};
struct ImageJoinStreamingResponse {
    std::optional<GenericResult> result{};  ///< 1
    std::string entry_id{};                 ///< 3
    bool eof = false;                       ///< 4
    bool operator==(const ImageJoinStreamingResponse&) const = default;
};

struct Resources {
    std::uint32_t memory_mb = 0;  ///< 2
    std::uint32_t milli_cpu = 0;  ///< 3
    bool operator==(const Resources&) const = default;
};
struct PortSpec {
    std::uint32_t port = 0;    ///< 1
    bool unencrypted = false;  ///< 2
    bool operator==(const PortSpec&) const = default;
};
/// NetworkAccess.network_access_type: 1 OPEN, 2 BLOCKED.
struct NetworkAccess {
    std::int32_t network_access_type = 0;  ///< 1
    bool operator==(const NetworkAccess&) const = default;
};
/// The `Sandbox` message: what to run and with which resources.
struct SandboxDefinition {
    std::vector<std::string> entrypoint_args{};    ///< 1: the command (empty = none)
    std::string image_id{};                        ///< 3
    std::optional<Resources> resources{};          ///< 5
    std::uint32_t timeout_secs = 0;                ///< 7
    std::optional<std::string> workdir{};          ///< 8 (proto3 optional)
    std::optional<std::vector<PortSpec>> open_ports{};  ///< 20: PortSpecs{ports = 1}
    std::optional<NetworkAccess> network_access{};  ///< 22
    std::optional<std::uint32_t> idle_timeout_secs{};  ///< 33 (proto3 optional)
    bool operator==(const SandboxDefinition&) const = default;
};
/// SecretSource: oneof secret_id = 1 | env = 2 (StringMap{contents = 1}).
struct SecretSource {
    std::optional<std::string> secret_id{};
    std::optional<std::map<std::string, std::string>> env{};
    bool operator==(const SecretSource&) const = default;
};
struct SandboxCreateV2Request {
    std::string app_id{};                        ///< 1
    std::optional<SandboxDefinition> definition{};  ///< 2
    std::vector<SandboxTag> tags{};              ///< 4
    std::vector<SecretSource> secret_sources{};  ///< 6: the sandbox's environment variables
    bool operator==(const SandboxCreateV2Request&) const = default;
};
struct CommandRouterAccess {
    std::string jwt{};  ///< 1
    std::string url{};  ///< 2: https://host[:port]
    bool operator==(const CommandRouterAccess&) const = default;
};
struct SandboxCreateV2Response {
    std::string sandbox_id{};                           ///< 1
    std::vector<TunnelData> tunnels{};                  ///< 2
    std::string task_id{};                              ///< 3
    std::optional<CommandRouterAccess> command_router_access{};  ///< 5
    std::string sandbox_token{};                        ///< 6
    bool operator==(const SandboxCreateV2Response&) const = default;
};

/// SandboxGetTunnels[V2], SandboxWait[V2]: sandbox_id = 1, timeout = 2 (float seconds).
struct SandboxTimeoutRequest {
    std::string sandbox_id{};
    float timeout = 0;
    bool operator==(const SandboxTimeoutRequest&) const = default;
};
using SandboxGetTunnelsRequest = SandboxTimeoutRequest;
using SandboxWaitRequest = SandboxTimeoutRequest;

struct SandboxGetTunnelsResponse {
    std::optional<GenericResult> result{};  ///< 1
    std::vector<TunnelData> tunnels{};      ///< 2
    bool operator==(const SandboxGetTunnelsResponse&) const = default;
};
/// SandboxWaitResponse.result (1) and SandboxTerminateResponse.existing_result (1).
struct SandboxResultResponse {
    std::optional<GenericResult> result{};
    bool operator==(const SandboxResultResponse&) const = default;
};
using SandboxWaitResponse = SandboxResultResponse;
using SandboxTerminateResponse = SandboxResultResponse;

/// SandboxTerminate[V2], SandboxTagsGet[V2]: sandbox_id = 1.
struct SandboxIdRequest {
    std::string sandbox_id{};
    bool operator==(const SandboxIdRequest&) const = default;
};
using SandboxTerminateRequest = SandboxIdRequest;
using SandboxTagsGetRequest = SandboxIdRequest;

struct SandboxTagsSetRequest {
    std::string environment_name{};  ///< 1
    std::string sandbox_id{};        ///< 2
    std::vector<SandboxTag> tags{};  ///< 3: replaces the whole set
    bool operator==(const SandboxTagsSetRequest&) const = default;
};
struct SandboxTagsGetResponse {
    std::vector<SandboxTag> tags{};  ///< 1
    bool operator==(const SandboxTagsGetResponse&) const = default;
};

struct SandboxListRequest {
    std::string app_id{};            ///< 1
    double before_timestamp = 0;     ///< 2: unix seconds; 0 = now
    std::string environment_name{};  ///< 3
    bool include_finished = false;   ///< 4
    std::vector<SandboxTag> tags{};  ///< 5: sandboxes that have at least these
    bool operator==(const SandboxListRequest&) const = default;
};
struct SandboxInfo {
    std::string id{};                ///< 1
    double created_at = 0;           ///< 3: unix seconds
    std::string app_id{};            ///< 5
    std::vector<SandboxTag> tags{};  ///< 6
    std::string name{};              ///< 7
    bool operator==(const SandboxInfo&) const = default;
};
struct SandboxListResponse {
    std::vector<SandboxInfo> sandboxes{};  ///< 1: newest first; an empty page ends the listing
    bool operator==(const SandboxListResponse&) const = default;
};

/// An empty message (google.protobuf.Empty, AuthTokenGetRequest, TaskExecStartResponse...).
struct Empty {
    bool operator==(const Empty&) const = default;
};

// ---- TaskCommandRouter ----------------------------------------------------------------------

struct TaskExecStartRequest {
    std::string task_id{};                          ///< 1
    std::string exec_id{};                          ///< 2: client-chosen uuid4 (makes the call idempotent)
    std::vector<std::string> command_args{};        ///< 3
    std::int32_t stdout_config = 0;                 ///< 4: 0 DEVNULL, 1 PIPE
    std::int32_t stderr_config = 0;                 ///< 5: 0 DEVNULL, 1 PIPE, 2 into stdout
    std::optional<std::uint32_t> timeout_secs{};    ///< 6
    std::optional<std::string> workdir{};           ///< 7
    std::map<std::string, std::string> env{};       ///< 12
    std::vector<SecretSource> secret_sources{};     ///< 13: the JS SDK's per-exec env
    bool operator==(const TaskExecStartRequest&) const = default;
};
struct TaskExecStdioReadRequest {
    std::string task_id{};             ///< 1
    std::string exec_id{};             ///< 2
    std::uint64_t offset = 0;          ///< 3: bytes already read (resume)
    std::int32_t file_descriptor = 0;  ///< 4: 0 STDOUT, 1 STDERR
    bool operator==(const TaskExecStdioReadRequest&) const = default;
};
struct TaskExecStdioReadResponse {
    std::string data{};  ///< 1 (bytes)
    bool operator==(const TaskExecStdioReadResponse&) const = default;
};
/// TaskExecWait / TaskExecPoll: task_id = 1, exec_id = 2.
struct TaskExecRequest {
    std::string task_id{};
    std::string exec_id{};
    bool operator==(const TaskExecRequest&) const = default;
};
/// oneof exit_status: code = 1 | signal = 2; neither = still running (Poll). Written even when 0.
struct TaskExecWaitResponse {
    std::optional<std::int32_t> code{};
    std::optional<std::int32_t> signal{};
    bool operator==(const TaskExecWaitResponse&) const = default;
};

// ---- Messages the fake answers that runbox itself does not send --------------------------------

/// EnvironmentGetOrCreateResponse: environment_id = 1, metadata = 2 (EnvironmentMetadata{name = 1,
/// settings = 2 (EnvironmentSettings{image_builder_version = 1})}).
struct EnvironmentGetOrCreateResponse {
    std::string environment_id{};
    std::string name{};
    std::string image_builder_version{};
    bool operator==(const EnvironmentGetOrCreateResponse&) const = default;
};
/// SandboxGetTaskId[V2]Response: task_id = 1 (proto3 optional), task_result = 2.
struct SandboxGetTaskIdResponse {
    std::optional<std::string> task_id{};
    std::optional<GenericResult> task_result{};
    bool operator==(const SandboxGetTaskIdResponse&) const = default;
};
/// SandboxGetCommandRouterAccessRequest: oneof sandbox_id = 1 | task_id = 2. The response is
/// CommandRouterAccess's shape (jwt = 1, url = 2).
struct SandboxGetCommandRouterAccessRequest {
    std::string sandbox_id{};
    std::string task_id{};
    bool operator==(const SandboxGetCommandRouterAccessRequest&) const = default;
};
/// TaskExecStdinWriteRequest: task_id = 1, exec_id = 2, offset = 3, data = 4 (bytes), eof = 5.
struct TaskExecStdinWriteRequest {
    std::string task_id{};
    std::string exec_id{};
    std::uint64_t offset = 0;
    std::string data{};
    bool eof = false;
    bool operator==(const TaskExecStdinWriteRequest&) const = default;
};

// ---- Error details ----------------------------------------------------------------------------

/// One `google.protobuf.Any` of an error's details: type_url = 1, value = 2 (bytes).
struct RpcAny {
    std::string type_url{};
    std::string value{};
    bool operator==(const RpcAny&) const = default;
};
/// modal.client.RPCStatus, the grpc-status-details-bin trailer: code = 1, message = 2, details = 3.
struct RpcStatus {
    std::int32_t code = 0;
    std::string message{};
    std::vector<RpcAny> details{};
    bool operator==(const RpcStatus&) const = default;
};
/// modal.client.RPCRetryPolicy (a detail of a throttled answer): retry_after_secs = 1 (float).
struct RpcRetryPolicy {
    float retry_after_secs = 0;
    bool operator==(const RpcRetryPolicy&) const = default;
};

// ---- Encoding -------------------------------------------------------------------------------

namespace proto_io {
using writer = protozero::pbf_writer;
using reader = protozero::pbf_reader;

inline void put(writer& w, protozero::pbf_tag_type tag, const std::string& value) {
    if (!value.empty()) w.add_string(tag, value);
}
inline void put(writer& w, protozero::pbf_tag_type tag, std::int32_t value) {
    if (value != 0) w.add_int32(tag, value);
}
inline void put(writer& w, protozero::pbf_tag_type tag, std::uint32_t value) {
    if (value != 0) w.add_uint32(tag, value);
}
inline void put(writer& w, protozero::pbf_tag_type tag, std::uint64_t value) {
    if (value != 0) w.add_uint64(tag, value);
}
inline void put(writer& w, protozero::pbf_tag_type tag, bool value) {
    if (value) w.add_bool(tag, value);
}
inline void put(writer& w, protozero::pbf_tag_type tag, float value) {
    if (value != 0) w.add_float(tag, value);
}
inline void put(writer& w, protozero::pbf_tag_type tag, double value) {
    if (value != 0) w.add_double(tag, value);
}
inline void put_all(writer& w, protozero::pbf_tag_type tag, const std::vector<std::string>& values) {
    for (const auto& value : values) w.add_string(tag, value);
}
/// map<string, string>: one entry message {key = 1, value = 2} per pair, in key order (what
/// libprotobuf's deterministic serialisation writes); an entry always carries both fields.
inline void put_map(writer& w, protozero::pbf_tag_type tag, const std::map<std::string, std::string>& values) {
    for (const auto& [key, value] : values) {
        writer entry(w, tag);
        entry.add_string(1, key);
        entry.add_string(2, value);
    }
}
}  // namespace proto_io

// write(writer&, const M&) / read(reader, M&) for each message below; the templates find them
// by argument-dependent lookup when they are instantiated.

/// Writes what `fill` writes as an embedded message at `tag`, present even when empty, as
/// libprotobuf writes a set message. (A nested protozero::pbf_writer that wrote nothing rolls its
/// field back, so the bytes are built apart and added whole.)
template <class Fill>
void put_embedded(protozero::pbf_writer& w, protozero::pbf_tag_type tag, Fill&& fill) {
    std::string bytes;
    {
        protozero::pbf_writer sub(bytes);
        fill(sub);
    }
    w.add_message(tag, bytes);
}
/// Writes `value` as an embedded message at `tag` (always present, even when empty).
template <class Message>
void put_message(protozero::pbf_writer& w, protozero::pbf_tag_type tag, const Message& value) {
    put_embedded(w, tag, [&](protozero::pbf_writer& sub) { write(sub, value); });
}
template <class Message>
void put_message(protozero::pbf_writer& w, protozero::pbf_tag_type tag, const std::optional<Message>& value) {
    if (value) put_message(w, tag, *value);
}
template <class Message>
void put_messages(protozero::pbf_writer& w, protozero::pbf_tag_type tag, const std::vector<Message>& values) {
    for (const auto& value : values) put_message(w, tag, value);
}
template <class Message>
Message get_message(protozero::pbf_reader& r) {
    Message m;
    read(r.get_message(), m);
    return m;
}
/// A bool field. Not pbf_reader::get_bool(): it reads the value's first byte before checking
/// that one is left, and a hostile message may end right after the key.
inline bool get_flag(protozero::pbf_reader& r) { return r.get_uint64() != 0; }

inline std::map<std::string, std::string>::value_type get_map_entry(protozero::pbf_reader& r) {
    protozero::pbf_reader entry = r.get_message();
    std::string key, value;
    while (entry.next()) {
        switch (entry.tag_and_type()) {
            case tag_and_type(1U, pbf_wire_type::length_delimited): key = entry.get_string(); break;
            case tag_and_type(2U, pbf_wire_type::length_delimited): value = entry.get_string(); break;
            default: entry.skip();
        }
    }
    return {std::move(key), std::move(value)};
}

inline constexpr auto len = pbf_wire_type::length_delimited;
inline constexpr auto varint = pbf_wire_type::varint;
inline constexpr auto fixed32 = pbf_wire_type::fixed32;
inline constexpr auto fixed64 = pbf_wire_type::fixed64;

inline void write(protozero::pbf_writer& w, const GenericResult& m) {
    proto_io::put(w, 1, m.status);
    proto_io::put(w, 2, m.exception);
    proto_io::put(w, 3, m.exitcode);
    proto_io::put(w, 4, m.traceback);
}
inline void read(protozero::pbf_reader r, GenericResult& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, varint): m.status = r.get_int32(); break;
            case tag_and_type(2U, len): m.exception = r.get_string(); break;
            case tag_and_type(3U, varint): m.exitcode = r.get_int32(); break;
            case tag_and_type(4U, len): m.traceback = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxTag& m) {
    proto_io::put(w, 1, m.tag_name);
    proto_io::put(w, 2, m.tag_value);
}
inline void read(protozero::pbf_reader r, SandboxTag& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.tag_name = r.get_string(); break;
            case tag_and_type(2U, len): m.tag_value = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const TunnelData& m) {
    proto_io::put(w, 1, m.host);
    proto_io::put(w, 2, m.port);
    proto_io::put(w, 3, m.unencrypted_host);
    proto_io::put(w, 4, m.unencrypted_port);
    proto_io::put(w, 5, m.container_port);
}
inline void read(protozero::pbf_reader r, TunnelData& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.host = r.get_string(); break;
            case tag_and_type(2U, varint): m.port = r.get_uint32(); break;
            case tag_and_type(3U, len): m.unencrypted_host = r.get_string(); break;
            case tag_and_type(4U, varint): m.unencrypted_port = r.get_uint32(); break;
            case tag_and_type(5U, varint): m.container_port = r.get_uint32(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const Image& m) { proto_io::put_all(w, 6, m.dockerfile_commands); }
inline void read(protozero::pbf_reader r, Image& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(6U, len)) m.dockerfile_commands.push_back(r.get_string());
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const Resources& m) {
    proto_io::put(w, 2, m.memory_mb);
    proto_io::put(w, 3, m.milli_cpu);
}
inline void read(protozero::pbf_reader r, Resources& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(2U, varint): m.memory_mb = r.get_uint32(); break;
            case tag_and_type(3U, varint): m.milli_cpu = r.get_uint32(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const PortSpec& m) {
    proto_io::put(w, 1, m.port);
    proto_io::put(w, 2, m.unencrypted);
}
inline void read(protozero::pbf_reader r, PortSpec& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, varint): m.port = r.get_uint32(); break;
            case tag_and_type(2U, varint): m.unencrypted = get_flag(r); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const NetworkAccess& m) { proto_io::put(w, 1, m.network_access_type); }
inline void read(protozero::pbf_reader r, NetworkAccess& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, varint)) m.network_access_type = r.get_int32();
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const SandboxDefinition& m) {
    proto_io::put_all(w, 1, m.entrypoint_args);
    proto_io::put(w, 3, m.image_id);
    put_message(w, 5, m.resources);
    proto_io::put(w, 7, m.timeout_secs);
    if (m.workdir) w.add_string(8, *m.workdir);
    if (m.open_ports) put_embedded(w, 20, [&](protozero::pbf_writer& specs) { put_messages(specs, 1, *m.open_ports); });
    put_message(w, 22, m.network_access);
    if (m.idle_timeout_secs) w.add_uint32(33, *m.idle_timeout_secs);
}
inline void read(protozero::pbf_reader r, SandboxDefinition& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.entrypoint_args.push_back(r.get_string()); break;
            case tag_and_type(3U, len): m.image_id = r.get_string(); break;
            case tag_and_type(5U, len): m.resources = get_message<Resources>(r); break;
            case tag_and_type(7U, varint): m.timeout_secs = r.get_uint32(); break;
            case tag_and_type(8U, len): m.workdir = r.get_string(); break;
            case tag_and_type(20U, len): {
                protozero::pbf_reader specs = r.get_message();
                m.open_ports.emplace();
                while (specs.next()) {
                    if (specs.tag_and_type() == tag_and_type(1U, len)) m.open_ports->push_back(get_message<PortSpec>(specs));
                    else specs.skip();
                }
                break;
            }
            case tag_and_type(22U, len): m.network_access = get_message<NetworkAccess>(r); break;
            case tag_and_type(33U, varint): m.idle_timeout_secs = r.get_uint32(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SecretSource& m) {
    if (m.secret_id) w.add_string(1, *m.secret_id);
    if (m.env) put_embedded(w, 2, [&](protozero::pbf_writer& string_map) { proto_io::put_map(string_map, 1, *m.env); });
}
inline void read(protozero::pbf_reader r, SecretSource& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.secret_id = r.get_string(); m.env.reset(); break;
            case tag_and_type(2U, len): {
                protozero::pbf_reader string_map = r.get_message();
                m.env.emplace();
                m.secret_id.reset();
                while (string_map.next()) {
                    if (string_map.tag_and_type() == tag_and_type(1U, len)) {
                        auto entry = get_map_entry(string_map);  // a repeated key: the last one wins
                        m.env->insert_or_assign(std::move(entry.first), std::move(entry.second));
                    }
                    else string_map.skip();
                }
                break;
            }
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const CommandRouterAccess& m) {
    proto_io::put(w, 1, m.jwt);
    proto_io::put(w, 2, m.url);
}
inline void read(protozero::pbf_reader r, CommandRouterAccess& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.jwt = r.get_string(); break;
            case tag_and_type(2U, len): m.url = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxInfo& m) {
    proto_io::put(w, 1, m.id);
    proto_io::put(w, 3, m.created_at);
    proto_io::put(w, 5, m.app_id);
    put_messages(w, 6, m.tags);
    proto_io::put(w, 7, m.name);
}
inline void read(protozero::pbf_reader r, SandboxInfo& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.id = r.get_string(); break;
            case tag_and_type(3U, fixed64): m.created_at = r.get_double(); break;
            case tag_and_type(5U, len): m.app_id = r.get_string(); break;
            case tag_and_type(6U, len): m.tags.push_back(get_message<SandboxTag>(r)); break;
            case tag_and_type(7U, len): m.name = r.get_string(); break;
            default: r.skip();
        }
    }
}

// ---- Top-level messages -----------------------------------------------------------------------

inline void write(protozero::pbf_writer&, const Empty&) {}
inline void read(protozero::pbf_reader r, Empty&) {
    while (r.next()) r.skip();
}

inline void write(protozero::pbf_writer& w, const AuthTokenGetResponse& m) { proto_io::put(w, 1, m.token); }
inline void read(protozero::pbf_reader r, AuthTokenGetResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.token = r.get_string();
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const AppGetOrCreateRequest& m) {
    proto_io::put(w, 1, m.app_name);
    proto_io::put(w, 2, m.environment_name);
    proto_io::put(w, 3, m.object_creation_type);
}
inline void read(protozero::pbf_reader r, AppGetOrCreateRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.app_name = r.get_string(); break;
            case tag_and_type(2U, len): m.environment_name = r.get_string(); break;
            case tag_and_type(3U, varint): m.object_creation_type = r.get_int32(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const AppGetOrCreateResponse& m) { proto_io::put(w, 1, m.app_id); }
inline void read(protozero::pbf_reader r, AppGetOrCreateResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.app_id = r.get_string();
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const ImageGetOrCreateRequest& m) {
    put_message(w, 2, m.image);
    proto_io::put(w, 4, m.app_id);
    proto_io::put(w, 7, m.force_build);
    proto_io::put(w, 9, m.builder_version);
}
inline void read(protozero::pbf_reader r, ImageGetOrCreateRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(2U, len): m.image = get_message<Image>(r); break;
            case tag_and_type(4U, len): m.app_id = r.get_string(); break;
            case tag_and_type(7U, varint): m.force_build = get_flag(r); break;
            case tag_and_type(9U, len): m.builder_version = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const ImageGetOrCreateResponse& m) {
    proto_io::put(w, 1, m.image_id);
    put_message(w, 2, m.result);
}
inline void read(protozero::pbf_reader r, ImageGetOrCreateResponse& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.image_id = r.get_string(); break;
            case tag_and_type(2U, len): m.result = get_message<GenericResult>(r); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const ImageJoinStreamingRequest& m) {
    proto_io::put(w, 1, m.image_id);
    proto_io::put(w, 2, m.timeout);
    proto_io::put(w, 3, m.last_entry_id);
}
inline void read(protozero::pbf_reader r, ImageJoinStreamingRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.image_id = r.get_string(); break;
            case tag_and_type(2U, fixed32): m.timeout = r.get_float(); break;
            case tag_and_type(3U, len): m.last_entry_id = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const ImageJoinStreamingResponse& m) {
    put_message(w, 1, m.result);
    proto_io::put(w, 3, m.entry_id);
    proto_io::put(w, 4, m.eof);
}
inline void read(protozero::pbf_reader r, ImageJoinStreamingResponse& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.result = get_message<GenericResult>(r); break;
            case tag_and_type(3U, len): m.entry_id = r.get_string(); break;
            case tag_and_type(4U, varint): m.eof = get_flag(r); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxCreateV2Request& m) {
    proto_io::put(w, 1, m.app_id);
    put_message(w, 2, m.definition);
    put_messages(w, 4, m.tags);
    put_messages(w, 6, m.secret_sources);
}
inline void read(protozero::pbf_reader r, SandboxCreateV2Request& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.app_id = r.get_string(); break;
            case tag_and_type(2U, len): m.definition = get_message<SandboxDefinition>(r); break;
            case tag_and_type(4U, len): m.tags.push_back(get_message<SandboxTag>(r)); break;
            case tag_and_type(6U, len): m.secret_sources.push_back(get_message<SecretSource>(r)); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxCreateV2Response& m) {
    proto_io::put(w, 1, m.sandbox_id);
    put_messages(w, 2, m.tunnels);
    proto_io::put(w, 3, m.task_id);
    put_message(w, 5, m.command_router_access);
    proto_io::put(w, 6, m.sandbox_token);
}
inline void read(protozero::pbf_reader r, SandboxCreateV2Response& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.sandbox_id = r.get_string(); break;
            case tag_and_type(2U, len): m.tunnels.push_back(get_message<TunnelData>(r)); break;
            case tag_and_type(3U, len): m.task_id = r.get_string(); break;
            case tag_and_type(5U, len): m.command_router_access = get_message<CommandRouterAccess>(r); break;
            case tag_and_type(6U, len): m.sandbox_token = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxTimeoutRequest& m) {
    proto_io::put(w, 1, m.sandbox_id);
    proto_io::put(w, 2, m.timeout);
}
inline void read(protozero::pbf_reader r, SandboxTimeoutRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.sandbox_id = r.get_string(); break;
            case tag_and_type(2U, fixed32): m.timeout = r.get_float(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxGetTunnelsResponse& m) {
    put_message(w, 1, m.result);
    put_messages(w, 2, m.tunnels);
}
inline void read(protozero::pbf_reader r, SandboxGetTunnelsResponse& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.result = get_message<GenericResult>(r); break;
            case tag_and_type(2U, len): m.tunnels.push_back(get_message<TunnelData>(r)); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxResultResponse& m) { put_message(w, 1, m.result); }
inline void read(protozero::pbf_reader r, SandboxResultResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.result = get_message<GenericResult>(r);
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const SandboxIdRequest& m) { proto_io::put(w, 1, m.sandbox_id); }
inline void read(protozero::pbf_reader r, SandboxIdRequest& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.sandbox_id = r.get_string();
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const SandboxTagsSetRequest& m) {
    proto_io::put(w, 1, m.environment_name);
    proto_io::put(w, 2, m.sandbox_id);
    put_messages(w, 3, m.tags);
}
inline void read(protozero::pbf_reader r, SandboxTagsSetRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.environment_name = r.get_string(); break;
            case tag_and_type(2U, len): m.sandbox_id = r.get_string(); break;
            case tag_and_type(3U, len): m.tags.push_back(get_message<SandboxTag>(r)); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxTagsGetResponse& m) { put_messages(w, 1, m.tags); }
inline void read(protozero::pbf_reader r, SandboxTagsGetResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.tags.push_back(get_message<SandboxTag>(r));
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const SandboxListRequest& m) {
    proto_io::put(w, 1, m.app_id);
    proto_io::put(w, 2, m.before_timestamp);
    proto_io::put(w, 3, m.environment_name);
    proto_io::put(w, 4, m.include_finished);
    put_messages(w, 5, m.tags);
}
inline void read(protozero::pbf_reader r, SandboxListRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.app_id = r.get_string(); break;
            case tag_and_type(2U, fixed64): m.before_timestamp = r.get_double(); break;
            case tag_and_type(3U, len): m.environment_name = r.get_string(); break;
            case tag_and_type(4U, varint): m.include_finished = get_flag(r); break;
            case tag_and_type(5U, len): m.tags.push_back(get_message<SandboxTag>(r)); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxListResponse& m) { put_messages(w, 1, m.sandboxes); }
inline void read(protozero::pbf_reader r, SandboxListResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.sandboxes.push_back(get_message<SandboxInfo>(r));
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const TaskExecStartRequest& m) {
    proto_io::put(w, 1, m.task_id);
    proto_io::put(w, 2, m.exec_id);
    proto_io::put_all(w, 3, m.command_args);
    proto_io::put(w, 4, m.stdout_config);
    proto_io::put(w, 5, m.stderr_config);
    if (m.timeout_secs) w.add_uint32(6, *m.timeout_secs);
    if (m.workdir) w.add_string(7, *m.workdir);
    proto_io::put_map(w, 12, m.env);
    put_messages(w, 13, m.secret_sources);
}
inline void read(protozero::pbf_reader r, TaskExecStartRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.task_id = r.get_string(); break;
            case tag_and_type(2U, len): m.exec_id = r.get_string(); break;
            case tag_and_type(3U, len): m.command_args.push_back(r.get_string()); break;
            case tag_and_type(4U, varint): m.stdout_config = r.get_int32(); break;
            case tag_and_type(5U, varint): m.stderr_config = r.get_int32(); break;
            case tag_and_type(6U, varint): m.timeout_secs = r.get_uint32(); break;
            case tag_and_type(7U, len): m.workdir = r.get_string(); break;
            case tag_and_type(12U, len): {
                auto entry = get_map_entry(r);
                m.env.insert_or_assign(std::move(entry.first), std::move(entry.second));
                break;
            }
            case tag_and_type(13U, len): m.secret_sources.push_back(get_message<SecretSource>(r)); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const TaskExecStdioReadRequest& m) {
    proto_io::put(w, 1, m.task_id);
    proto_io::put(w, 2, m.exec_id);
    proto_io::put(w, 3, m.offset);
    proto_io::put(w, 4, m.file_descriptor);
}
inline void read(protozero::pbf_reader r, TaskExecStdioReadRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.task_id = r.get_string(); break;
            case tag_and_type(2U, len): m.exec_id = r.get_string(); break;
            case tag_and_type(3U, varint): m.offset = r.get_uint64(); break;
            case tag_and_type(4U, varint): m.file_descriptor = r.get_int32(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const TaskExecStdioReadResponse& m) {
    if (!m.data.empty()) w.add_bytes(1, m.data);
}
inline void read(protozero::pbf_reader r, TaskExecStdioReadResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) m.data = r.get_bytes();
        else r.skip();
    }
}

inline void write(protozero::pbf_writer& w, const TaskExecRequest& m) {
    proto_io::put(w, 1, m.task_id);
    proto_io::put(w, 2, m.exec_id);
}
inline void read(protozero::pbf_reader r, TaskExecRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.task_id = r.get_string(); break;
            case tag_and_type(2U, len): m.exec_id = r.get_string(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const TaskExecWaitResponse& m) {
    if (m.code) w.add_int32(1, *m.code);  // a oneof member is written even when 0
    else if (m.signal) w.add_int32(2, *m.signal);
}
inline void read(protozero::pbf_reader r, TaskExecWaitResponse& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, varint): m.code = r.get_int32(); m.signal.reset(); break;
            case tag_and_type(2U, varint): m.signal = r.get_int32(); m.code.reset(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const EnvironmentGetOrCreateResponse& m) {
    proto_io::put(w, 1, m.environment_id);
    protozero::pbf_writer metadata(w, 2);
    proto_io::put(metadata, 1, m.name);
    protozero::pbf_writer settings(metadata, 2);
    proto_io::put(settings, 1, m.image_builder_version);
}
inline void read(protozero::pbf_reader r, EnvironmentGetOrCreateResponse& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, len)) {
            m.environment_id = r.get_string();
        } else if (r.tag_and_type() == tag_and_type(2U, len)) {
            protozero::pbf_reader metadata = r.get_message();
            while (metadata.next()) {
                if (metadata.tag_and_type() == tag_and_type(1U, len)) {
                    m.name = metadata.get_string();
                } else if (metadata.tag_and_type() == tag_and_type(2U, len)) {
                    protozero::pbf_reader settings = metadata.get_message();
                    while (settings.next()) {
                        if (settings.tag_and_type() == tag_and_type(1U, len)) m.image_builder_version = settings.get_string();
                        else settings.skip();
                    }
                } else {
                    metadata.skip();
                }
            }
        } else {
            r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxGetTaskIdResponse& m) {
    if (m.task_id) w.add_string(1, *m.task_id);  // proto3 optional: present even when empty
    put_message(w, 2, m.task_result);
}
inline void read(protozero::pbf_reader r, SandboxGetTaskIdResponse& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.task_id = r.get_string(); break;
            case tag_and_type(2U, len): m.task_result = get_message<GenericResult>(r); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const SandboxGetCommandRouterAccessRequest& m) {
    if (!m.sandbox_id.empty()) w.add_string(1, m.sandbox_id);
    else if (!m.task_id.empty()) w.add_string(2, m.task_id);
}
inline void read(protozero::pbf_reader r, SandboxGetCommandRouterAccessRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.sandbox_id = r.get_string(); m.task_id.clear(); break;
            case tag_and_type(2U, len): m.task_id = r.get_string(); m.sandbox_id.clear(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const TaskExecStdinWriteRequest& m) {
    proto_io::put(w, 1, m.task_id);
    proto_io::put(w, 2, m.exec_id);
    proto_io::put(w, 3, m.offset);
    if (!m.data.empty()) w.add_bytes(4, m.data);
    proto_io::put(w, 5, m.eof);
}
inline void read(protozero::pbf_reader r, TaskExecStdinWriteRequest& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.task_id = r.get_string(); break;
            case tag_and_type(2U, len): m.exec_id = r.get_string(); break;
            case tag_and_type(3U, varint): m.offset = r.get_uint64(); break;
            case tag_and_type(4U, len): m.data = r.get_bytes(); break;
            case tag_and_type(5U, varint): m.eof = get_flag(r); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const RpcAny& m) {
    proto_io::put(w, 1, m.type_url);
    if (!m.value.empty()) w.add_bytes(2, m.value);
}
inline void read(protozero::pbf_reader r, RpcAny& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, len): m.type_url = r.get_string(); break;
            case tag_and_type(2U, len): m.value = r.get_bytes(); break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const RpcStatus& m) {
    proto_io::put(w, 1, m.code);
    proto_io::put(w, 2, m.message);
    put_messages(w, 3, m.details);
}
inline void read(protozero::pbf_reader r, RpcStatus& m) {
    while (r.next()) {
        switch (r.tag_and_type()) {
            case tag_and_type(1U, varint): m.code = r.get_int32(); break;
            case tag_and_type(2U, len): m.message = r.get_string(); break;
            case tag_and_type(3U, len):
                if (m.details.size() >= 64) throw protozero::exception{};  // a hint has a handful at most
                m.details.push_back(get_message<RpcAny>(r));
                break;
            default: r.skip();
        }
    }
}

inline void write(protozero::pbf_writer& w, const RpcRetryPolicy& m) { proto_io::put(w, 1, m.retry_after_secs); }
inline void read(protozero::pbf_reader r, RpcRetryPolicy& m) {
    while (r.next()) {
        if (r.tag_and_type() == tag_and_type(1U, fixed32)) m.retry_after_secs = r.get_float();
        else r.skip();
    }
}

// ---- Entry points -----------------------------------------------------------------------------

/// The protobuf encoding of `message`.
template <class Message>
std::string encode(const Message& message) {
    std::string out;
    protozero::pbf_writer w(out);
    write(w, message);
    return out;
}

/// Decodes `bytes` as a `Message`. Malformed input (a truncated field, a varint longer than
/// 10 bytes, a length past the end) is errc::bad_response naming the message type's role, never
/// a crash; unknown fields are skipped. Nesting is bounded by the message types themselves
/// (each read() knows its sub-messages), so hostile input cannot recurse.
template <class Message>
Message decode(std::string_view bytes, std::string_view what = "message") {
    Message message;
    try {
        read(protozero::pbf_reader(bytes.data(), bytes.size()), message);
    } catch (const protozero::exception&) {
        throw error(errc::bad_response, "malformed protobuf in a Modal " + std::string(what), "modal");
    }
    return message;
}

}  // namespace runbox::detail::modal
