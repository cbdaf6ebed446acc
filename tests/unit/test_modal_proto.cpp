// The protozero codec of Modal's messages (providers/detail/modal_proto.hpp) against libprotobuf
// built from tests/proto/modal_subset.proto: the same bytes both ways, for every message the
// provider and the fake exchange, and hostile bytes end in errc::bad_response, never a crash.
#include <cstdlib>
#include <string>

#include "catch.hpp"
#include "runbox/providers/detail/modal_proto.hpp"

#ifdef RUNBOX_HAVE_LIBPROTOBUF
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include "modal_subset.pb.h"

namespace ours = runbox::detail::modal;
namespace ref = runbox_test::modal;

namespace {

// libprotobuf's deterministic form: fields in number order, map entries sorted by key.
std::string serialize(const google::protobuf::MessageLite& message) {
    std::string out;
    {
        google::protobuf::io::StringOutputStream stream(&out);
        google::protobuf::io::CodedOutputStream coded(&stream);
        coded.SetSerializationDeterministic(true);
        REQUIRE(message.SerializeToCodedStream(&coded));
    }
    return out;
}

// ours -> bytes == reference -> bytes, and the reference's bytes decode back to ours.
template <class Ours, class Ref>
void same_bytes(const Ours& mine, const Ref& reference) {
    const std::string expected = serialize(reference);
    CHECK(ours::encode(mine) == expected);
    CHECK(ours::decode<Ours>(expected) == mine);
    Ref parsed;
    REQUIRE(parsed.ParseFromString(ours::encode(mine)));
    CHECK(serialize(parsed) == expected);
}

ref::SandboxTag ref_tag(const std::string& name, const std::string& value) {
    ref::SandboxTag tag;
    tag.set_tag_name(name);
    tag.set_tag_value(value);
    return tag;
}

ref::GenericResult ref_result(int status, int exitcode, const std::string& exception) {
    ref::GenericResult result;
    result.set_status(status);
    result.set_exitcode(exitcode);
    result.set_exception(exception);
    return result;
}

ref::TunnelData ref_tunnel() {
    ref::TunnelData t;
    t.set_host("abc.modal.host");
    t.set_port(443);
    t.set_unencrypted_host("r3.modal.host");
    t.set_unencrypted_port(34567);
    t.set_container_port(8000);
    return t;
}
const ours::TunnelData our_tunnel{"abc.modal.host", 443, "r3.modal.host", 34567, 8000};

}  // namespace

TEST_CASE("Modal control-plane requests encode as libprotobuf encodes them", "[modal][proto]") {
    SECTION("AppGetOrCreate") {
        ref::AppGetOrCreateRequest r;
        r.set_app_name("runbox");
        r.set_environment_name("main");
        r.set_object_creation_type(1);
        same_bytes(ours::AppGetOrCreateRequest{"runbox", "main", 1}, r);
    }
    SECTION("ImageGetOrCreate with a registry image") {
        ref::ImageGetOrCreateRequest r;
        r.mutable_image()->add_dockerfile_commands("FROM python:3.12-slim");
        r.mutable_image()->add_dockerfile_commands("RUN true");
        r.set_app_id("ap-123");
        r.set_force_build(true);
        r.set_builder_version("2025.06");
        same_bytes(ours::ImageGetOrCreateRequest{ours::Image{{"FROM python:3.12-slim", "RUN true"}}, "ap-123", true,
                                                 "2025.06"},
                   r);
    }
    SECTION("ImageJoinStreaming") {
        ref::ImageJoinStreamingRequest r;
        r.set_image_id("im-1");
        r.set_timeout(55.0f);
        r.set_last_entry_id("e-7");
        same_bytes(ours::ImageJoinStreamingRequest{"im-1", 55.0f, "e-7"}, r);
    }
    SECTION("SandboxCreateV2: definition, ports, network, tags, env, negative and optional fields") {
        ref::SandboxCreateV2Request r;
        r.set_app_id("ap-123");
        auto* d = r.mutable_definition();
        d->add_entrypoint_args("runbox-server");
        d->add_entrypoint_args("--port");
        d->add_entrypoint_args("8000");
        d->set_image_id("im-123");
        d->mutable_resources()->set_memory_mb(1024);
        d->mutable_resources()->set_milli_cpu(1000);
        d->set_timeout_secs(600);
        d->set_workdir("");  // proto3 optional: written although empty
        auto* port = d->mutable_open_ports()->add_ports();
        port->set_port(8000);
        d->mutable_network_access()->set_network_access_type(1);
        d->set_idle_timeout_secs(0);
        *r.add_tags() = ref_tag("OpenHands_SID", "s1");
        *r.add_tags() = ref_tag("runbox.owner", "host:42");
        auto* env = r.add_secret_sources()->mutable_env()->mutable_contents();
        (*env)["B"] = "2";
        (*env)["A"] = "";
        r.add_secret_sources()->set_secret_id("st-9");

        ours::SandboxCreateV2Request mine;
        mine.app_id = "ap-123";
        mine.definition = ours::SandboxDefinition{
            .entrypoint_args = {"runbox-server", "--port", "8000"},
            .image_id = "im-123",
            .resources = ours::Resources{1024, 1000},
            .timeout_secs = 600,
            .workdir = "",
            .open_ports = std::vector<ours::PortSpec>{{8000, false}},
            .network_access = ours::NetworkAccess{1},
            .idle_timeout_secs = 0u,
        };
        mine.tags = {{"OpenHands_SID", "s1"}, {"runbox.owner", "host:42"}};
        mine.secret_sources = {ours::SecretSource{.env = std::map<std::string, std::string>{{"A", ""}, {"B", "2"}}},
                               ours::SecretSource{.secret_id = "st-9"}};
        same_bytes(mine, r);
    }
    SECTION("timeouts, ids, tags and listing") {
        ref::SandboxTimeoutRequest t;
        t.set_sandbox_id("sb2-abc");
        t.set_timeout(50.0f);
        same_bytes(ours::SandboxTimeoutRequest{"sb2-abc", 50.0f}, t);

        ref::SandboxIdRequest id;
        id.set_sandbox_id("sb2-abc");
        same_bytes(ours::SandboxIdRequest{"sb2-abc"}, id);

        ref::SandboxTagsSetRequest tags;
        tags.set_sandbox_id("sb2-abc");
        *tags.add_tags() = ref_tag("team", "a");
        same_bytes(ours::SandboxTagsSetRequest{"", "sb2-abc", {{"team", "a"}}}, tags);

        ref::SandboxListRequest list;
        list.set_app_id("ap-1");
        list.set_before_timestamp(1764633600.25);
        list.set_include_finished(true);
        *list.add_tags() = ref_tag("OpenHands_SID", "s1");
        same_bytes(ours::SandboxListRequest{"ap-1", 1764633600.25, "", true, {{"OpenHands_SID", "s1"}}}, list);
    }
}

TEST_CASE("Modal control-plane responses decode from libprotobuf's bytes", "[modal][proto]") {
    SECTION("AuthTokenGet and AppGetOrCreate") {
        ref::AuthTokenGetResponse token;
        token.set_token("e30.eyJleHAiOjE3OTU2Njg4NDN9.sig");
        same_bytes(ours::AuthTokenGetResponse{"e30.eyJleHAiOjE3OTU2Njg4NDN9.sig"}, token);
        ref::AppGetOrCreateResponse app;
        app.set_app_id("ap-123");
        same_bytes(ours::AppGetOrCreateResponse{"ap-123"}, app);
    }
    SECTION("image results: built, still building, failed") {
        ref::ImageGetOrCreateResponse built;
        built.set_image_id("im-1");
        *built.mutable_result() = ref_result(1, 0, "");
        same_bytes(ours::ImageGetOrCreateResponse{"im-1", ours::GenericResult{1, "", 0, ""}}, built);

        ref::ImageGetOrCreateResponse building;
        building.set_image_id("im-2");
        same_bytes(ours::ImageGetOrCreateResponse{"im-2", std::nullopt}, building);

        ref::ImageJoinStreamingResponse failed;
        *failed.mutable_result() = ref_result(2, -1, "pip failed");
        failed.set_entry_id("e-9");
        failed.set_eof(true);
        same_bytes(ours::ImageJoinStreamingResponse{ours::GenericResult{2, "pip failed", -1, ""}, "e-9", true}, failed);
    }
    SECTION("SandboxCreateV2Response with tunnels and router access") {
        ref::SandboxCreateV2Response r;
        r.set_sandbox_id("sb2-abc123");
        *r.add_tunnels() = ref_tunnel();
        r.set_task_id("ta-1");
        r.mutable_command_router_access()->set_jwt("a.b.c");
        r.mutable_command_router_access()->set_url("https://127.0.0.1:5000");
        r.set_sandbox_token("st");
        same_bytes(ours::SandboxCreateV2Response{"sb2-abc123", {our_tunnel}, "ta-1",
                                                 ours::CommandRouterAccess{"a.b.c", "https://127.0.0.1:5000"}, "st"},
                   r);
    }
    SECTION("tunnels, wait, terminate, tags and list") {
        ref::SandboxGetTunnelsResponse tunnels;
        *tunnels.add_tunnels() = ref_tunnel();
        same_bytes(ours::SandboxGetTunnelsResponse{std::nullopt, {our_tunnel}}, tunnels);

        ref::SandboxResultResponse running;  // SandboxWait with no result: still running
        same_bytes(ours::SandboxResultResponse{}, running);
        CHECK(ours::encode(ours::SandboxResultResponse{}).empty());
        ref::SandboxResultResponse terminated;
        *terminated.mutable_result() = ref_result(3, 137, "");
        same_bytes(ours::SandboxResultResponse{ours::GenericResult{3, "", 137, ""}}, terminated);

        ref::SandboxTagsGetResponse tags;
        *tags.add_tags() = ref_tag("a", "1");
        *tags.add_tags() = ref_tag("b", "");
        same_bytes(ours::SandboxTagsGetResponse{{{"a", "1"}, {"b", ""}}}, tags);

        ref::SandboxListResponse list;
        auto* info = list.add_sandboxes();
        info->set_id("sb2-1");
        info->set_created_at(1764633600.5);
        info->set_app_id("ap-1");
        *info->add_tags() = ref_tag("OpenHands_SID", "s1");
        info->set_name("box");
        list.add_sandboxes()->set_id("sb2-2");
        same_bytes(ours::SandboxListResponse{{ours::SandboxInfo{"sb2-1", 1764633600.5, "ap-1", {{"OpenHands_SID", "s1"}}, "box"},
                                              ours::SandboxInfo{"sb2-2", 0, "", {}, ""}}},
                   list);
    }
}

TEST_CASE("Modal error details (the throttle hint) match libprotobuf's bytes", "[modal][proto]") {
    ref::RpcRetryPolicy policy;
    policy.set_retry_after_secs(1.5f);
    same_bytes(ours::RpcRetryPolicy{1.5f}, policy);
    ref::RpcStatus status;
    status.set_code(8);
    status.set_message("slow down");
    auto* any = status.add_details();
    any->set_type_url("type.googleapis.com/modal.client.RPCRetryPolicy");
    any->set_value(serialize(policy));
    same_bytes(ours::RpcStatus{8, "slow down", {{"type.googleapis.com/modal.client.RPCRetryPolicy", serialize(policy)}}},
               status);
}

TEST_CASE("Modal command-router messages encode as libprotobuf encodes them", "[modal][proto]") {
    ref::TaskExecStartRequest start;
    start.set_task_id("ta-1");
    start.set_exec_id("4e344296-bc85-4bd9-8929-6fb8251e5adf");
    start.add_command_args("sh");
    start.add_command_args("-c");
    start.add_command_args("echo hi");
    start.set_stdout_config(1);
    start.set_stderr_config(1);
    start.set_timeout_secs(30);
    start.set_workdir("/tmp");
    (*start.mutable_env())["X"] = "1";
    (*start.add_secret_sources()->mutable_env()->mutable_contents())["FOO"] = "bar";
    ours::TaskExecStartRequest mine{.task_id = "ta-1",
                                    .exec_id = "4e344296-bc85-4bd9-8929-6fb8251e5adf",
                                    .command_args = {"sh", "-c", "echo hi"},
                                    .stdout_config = 1,
                                    .stderr_config = 1,
                                    .timeout_secs = 30u,
                                    .workdir = "/tmp",
                                    .env = {{"X", "1"}},
                                    .secret_sources = {ours::SecretSource{
                                        .env = std::map<std::string, std::string>{{"FOO", "bar"}}}}};
    same_bytes(mine, start);

    ref::TaskExecStdioReadRequest read;
    read.set_task_id("ta-1");
    read.set_exec_id("x");
    read.set_offset(uint64_t{1} << 40);
    read.set_file_descriptor(1);
    same_bytes(ours::TaskExecStdioReadRequest{"ta-1", "x", uint64_t{1} << 40, 1}, read);

    ref::TaskExecStdioReadResponse data;
    data.set_data(std::string("a\0b\xff", 4));
    same_bytes(ours::TaskExecStdioReadResponse{std::string("a\0b\xff", 4)}, data);

    ref::TaskExecRequest wait;
    wait.set_task_id("ta-1");
    wait.set_exec_id("x");
    same_bytes(ours::TaskExecRequest{"ta-1", "x"}, wait);

    SECTION("an exit code of 0 is on the wire (the oneof is set)") {
        ref::TaskExecWaitResponse zero;
        zero.set_code(0);
        CHECK_FALSE(serialize(zero).empty());
        same_bytes(ours::TaskExecWaitResponse{0, std::nullopt}, zero);
        ref::TaskExecWaitResponse killed;
        killed.set_signal(9);
        same_bytes(ours::TaskExecWaitResponse{std::nullopt, 9}, killed);
        same_bytes(ours::TaskExecWaitResponse{}, ref::TaskExecWaitResponse{});
    }
}

TEST_CASE("the messages only the fake sends or reads encode as libprotobuf encodes them", "[modal][proto]") {
    ref::EnvironmentGetOrCreateResponse env;
    env.set_environment_id("en-1");
    env.mutable_metadata()->set_name("main");
    env.mutable_metadata()->mutable_settings()->set_image_builder_version("2025.06");
    same_bytes(ours::EnvironmentGetOrCreateResponse{"en-1", "main", "2025.06"}, env);

    ref::SandboxGetTaskIdResponse task;
    task.set_task_id("");  // proto3 optional: present although empty
    same_bytes(ours::SandboxGetTaskIdResponse{std::string(), std::nullopt}, task);
    ref::SandboxGetTaskIdResponse finished;
    *finished.mutable_task_result() = ref_result(3, 137, "terminated");
    same_bytes(ours::SandboxGetTaskIdResponse{std::nullopt, ours::GenericResult{3, "terminated", 137, ""}}, finished);

    ref::SandboxGetCommandRouterAccessRequest by_sandbox;
    by_sandbox.set_sandbox_id("sb-v2-1");
    same_bytes(ours::SandboxGetCommandRouterAccessRequest{"sb-v2-1", ""}, by_sandbox);
    ref::SandboxGetCommandRouterAccessRequest by_task;
    by_task.set_task_id("ta-1");
    same_bytes(ours::SandboxGetCommandRouterAccessRequest{"", "ta-1"}, by_task);

    ref::TaskExecStdinWriteRequest stdin_write;
    stdin_write.set_task_id("ta-1");
    stdin_write.set_exec_id("e-1");
    stdin_write.set_offset(4096);
    stdin_write.set_data(std::string("a\0b", 3));
    stdin_write.set_eof(true);
    same_bytes(ours::TaskExecStdinWriteRequest{"ta-1", "e-1", 4096, std::string("a\0b", 3), true}, stdin_write);
}

TEST_CASE("a set but empty sub-message is on the wire, as libprotobuf writes it", "[modal][proto]") {
    ref::ImageGetOrCreateResponse still_running;
    still_running.set_image_id("im-1");
    still_running.mutable_result();  // set, all defaults
    same_bytes(ours::ImageGetOrCreateResponse{"im-1", ours::GenericResult{}}, still_running);

    ref::SandboxCreateV2Request create;
    auto* d = create.mutable_definition();
    d->mutable_open_ports();  // PortSpecs with no ports
    d->mutable_resources();
    create.add_secret_sources()->mutable_env();  // an env with no variables
    ours::SandboxCreateV2Request mine;
    mine.definition = ours::SandboxDefinition{.resources = ours::Resources{}, .open_ports = std::vector<ours::PortSpec>{}};
    mine.secret_sources = {ours::SecretSource{.env = std::map<std::string, std::string>{}}};
    same_bytes(mine, create);

    ref::SandboxCreateV2Request bare;
    bare.mutable_definition();
    same_bytes(ours::SandboxCreateV2Request{.definition = ours::SandboxDefinition{}}, bare);
}

TEST_CASE("hostile protobuf bytes are errc::bad_response or ignored, never a crash", "[modal][proto]") {
    ref::SandboxCreateV2Response r;
    r.set_sandbox_id("sb2-abc123");
    *r.add_tunnels() = ref_tunnel();
    r.set_task_id("ta-1");
    r.mutable_command_router_access()->set_jwt("a.b.c");
    const std::string good = serialize(r);

    // Every truncation either decodes (a prefix that ends on a field boundary) or is bad_response.
    int refused = 0;
    for (std::size_t n = 0; n < good.size(); ++n) {
        try {
            (void)ours::decode<ours::SandboxCreateV2Response>(good.substr(0, n));
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::bad_response);
            ++refused;
        }
    }
    CHECK(refused > 0);

    // A length far past the end, an over-long varint, a bool whose value is missing, and a field
    // of the wrong wire type (skipped, like an unknown field).
    for (const std::string& bytes : {std::string("\x0a\xff\xff\xff\xff\x0f", 6), std::string(11, '\xff'),
                                    std::string("\x20", 1)}) {
        try {
            (void)ours::decode<ours::ImageJoinStreamingResponse>(bytes);
            FAIL("decoded hostile bytes");
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::bad_response);
        }
    }
    const auto skipped = ours::decode<ours::SandboxIdRequest>(std::string("\x08\x05\x12\x01x", 5));
    CHECK(skipped.sandbox_id.empty());

    // Deterministic pseudo-random mutations of a valid message.
    unsigned state = 12345;
    for (int round = 0; round < 2000; ++round) {
        std::string bytes = good;
        for (int k = 0; k < 3; ++k) {
            state = state * 1103515245u + 12345u;
            bytes[(state >> 8) % bytes.size()] = static_cast<char>(state >> 16);
        }
        try {
            (void)ours::decode<ours::SandboxCreateV2Response>(bytes);
        } catch (const runbox::error& e) {
            CHECK(e.code() == runbox::errc::bad_response);
        }
    }
}

#else
TEST_CASE("libprotobuf is needed to check the Modal codec", "[modal][proto]") {
    if (std::getenv("RUNBOX_REQUIRE_CONFORMANCE") != nullptr) {
        FAIL("libprotobuf-dev / protobuf-compiler not found when the build was configured");
    }
    std::exit(77);  // skipped, never passed
}
#endif
