// OpenHands' Modal usage in C++:
//
//     runtime = ModalRuntime(config, event_stream, sid="session-001", env_vars={"MY_VAR": "value"})
//     runtime.connect()
//     observation = runtime.run_action(CmdRunAction(command="echo $MY_VAR"))
//     runtime.close()
//
// Against the real service:
//   MODAL_TOKEN_ID=ak-... MODAL_TOKEN_SECRET=as-... SANDBOX_RUNTIME_CONTAINER_IMAGE=<registry image> ./modal_example
//   (or a profile in ~/.modal.toml; optional: MODAL_ENVIRONMENT, MODAL_APP_NAME, MODAL_SERVER_COMMAND, ...)
// Offline, against an in-process FakeModal (gRPC over h2c on loopback):   ./modal_example --fake
// Needs libcurl (link runbox::curl) for the provider, and libnghttp2 (runbox::http2_server) for --fake.
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "runbox/event_stream.hpp"
#include "runbox/providers/modal.hpp"
#include "runbox/testing/fake_modal.hpp"

int main(int argc, char** argv) {
    const bool use_fake = argc > 1 && std::string_view(argv[1]) == "--fake";
    if (argc > 2 || (argc == 2 && !use_fake)) {
        std::cerr << "usage: " << argv[0] << " [--fake]\n";
        return 2;
    }

    std::unique_ptr<runbox::testing::FakeModal> fake;
    runbox::Config config = runbox::Config::from_env();  // RUNTIME, SANDBOX_*, and MODAL_* via setting()
    if (use_fake) {
        fake = std::make_unique<runbox::testing::FakeModal>(
            runbox::testing::FakeModalOptions{.token_id = "ak-example", .token_secret = "as-example"});
        fake->start();
        config.use_environment({});  // ignore real MODAL_* credentials and ~/.modal.toml
        config.sandbox.runtime_container_image = "python:3.12-slim";
        config.providers["modal"] = {{"token_id", "ak-example"},
                                     {"token_secret", "as-example"},
                                     {"server_url", fake->url()},
                                     {"server_command", "runbox-server"},  // the fake runs runbox's server
                                     {"poll_interval_ms", 50},
                                     {"alive_poll_interval_ms", 100}};
        std::cout << "using FakeModal at " << fake->url() << "\n";
    }

    try {
        runbox::EventStream event_stream;
        runbox::ModalRuntime runtime(config, event_stream,
                                     {.sid = "session-001",
                                      .env_vars = {{"MY_VAR", "value"}},
                                      .status_callback = [](std::string_view level, runbox::RuntimeStatus status,
                                                            std::string_view message) {
                                          std::cout << "[" << level << "] " << runbox::to_string(status) << " "
                                                    << message << "\n";
                                      }});
        runtime.connect();
        std::cout << "action server: " << runtime.action_execution_server_url() << "\n";

        const runbox::Observation observation = runtime.run_action(runbox::CmdRunAction{.command = "echo $MY_VAR"});
        int exit_code = -1;
        if (const auto* out = std::get_if<runbox::CmdOutputObservation>(&observation)) {
            std::cout << "output: " << out->content << "\nexit code: " << out->metadata.exit_code << "\n";
            exit_code = out->metadata.exit_code;
        } else {
            std::cout << "observation: " << runbox::to_json(observation).dump() << "\n";
        }
        runtime.close();
        if (fake) std::cout << "sandboxes still running: " << fake->live_sandboxes() << "\n";
        return exit_code == 0 ? 0 : 1;
    } catch (const runbox::error& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
