// Compiled mode (RUNBOX_SEPARATE_COMPILATION, issue 13): the core headers only declare, so a
// unit that uses the client, the transports, the configuration, the events and the archives
// compiles without cpp-httplib, libzip or OpenSSL; those stay inside runbox::compiled. The
// program then runs a little of each part, so a declaration the library does not define is a
// link error here.
#include <runbox/client.hpp>
#include <runbox/config.hpp>
#include <runbox/detail/base64.hpp>
#include <runbox/error.hpp>
#include <runbox/event_stream.hpp>
#include <runbox/events.hpp>
#include <runbox/lifecycle.hpp>
#include <runbox/rpc_status.hpp>
#include <runbox/transport/httplib.hpp>
#include <runbox/transport/transport.hpp>
#include <runbox/zip.hpp>

#if !defined(RUNBOX_SEPARATE_COMPILATION)
#error "core_headers.cpp checks the compiled mode: build it against runbox::compiled"
#endif
#if defined(CPPHTTPLIB_VERSION)
#error "a core header included httplib.h in compiled mode"
#endif
#if defined(_HAD_ZIP_H)
#error "a core header included zip.h in compiled mode"
#endif
#if defined(OPENSSL_VERSION_NUMBER)
#error "a core header included an OpenSSL header in compiled mode"
#endif

#include <cstdio>
#include <string>

int main() {
    int failures = 0;
    auto check = [&](bool ok, const char* what) {
        if (!ok) {
            std::fprintf(stderr, "core_headers: %s\n", what);
            ++failures;
        }
    };
    runbox::CmdRunAction run;
    run.command = "echo hi";
    const std::string wire = runbox::to_wire(run);
    check(runbox::action_type(runbox::action_from_json(nlohmann::json::parse(wire))) == "run", "event round trip");
    check(runbox::message_of(run) == "Running command: echo hi", "message_of");

    runbox::EventStream stream;
    stream.add_event(runbox::Action(run), runbox::EventSource::agent);
    check(stream.get_latest_event_id() == 0, "event stream id");

    runbox::Config config;
    config.use_environment({{"SANDBOX_TIMEOUT", "7"}});
    config.apply_env(config.env);
    check(config.sandbox.timeout == 7, "config from the environment");

    check(runbox::parse_url("http://127.0.0.1:9/x?y").port == 9, "parse_url");
    check(runbox::detail::base64_decode(runbox::detail::base64_encode("runbox")) == "runbox", "base64");
    check(!runbox::grpc_status_of(runbox::Response{}).has_value(), "grpc_status_of");
    check(runbox::detail::random_hex(4).size() == 8, "random_hex");

    runbox::HttplibTransport transport;
    check(transport.idle_connections() == 0, "HttplibTransport");
    runbox::ActionExecutionClient<runbox::HttplibTransport> client(transport, {.url = "http://127.0.0.1:1/"});
    check(client.url() == "http://127.0.0.1:1", "ActionExecutionClient");

    try {
        runbox::zip_entry_names("/nonexistent/runbox-core-headers.zip");
        check(false, "zip_entry_names of a missing archive");
    } catch (const runbox::error& e) {
        check(e.code() == runbox::errc::bad_response, "zip error code");
    }
    return failures == 0 ? 0 : 1;
}
