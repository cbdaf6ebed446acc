// e2b_example [--fake] [--sid SID] [COMMAND]
//
// The seed's usage example on E2B: create a sandbox tagged with the session, start the action
// execution server in it over envd, run a command, print the observation, kill the sandbox.
//
//   export E2B_API_KEY=e2b_...               # and a template that has the server, e.g.
//   export E2B_TEMPLATE=openhands            #   (see the settings in runbox/providers/e2b.hpp)
//   ./e2b_example "echo hello"
//
// With --fake it starts an in-process FakeE2B on 127.0.0.1 (API and envd on one port) and points
// the runtime at it; the command then runs in the fake sandbox's real runbox action server, no
// account needed.
#include <iostream>
#include <memory>
#include <string>
#include <variant>

#include "runbox/event_stream.hpp"
#include "runbox/providers/e2b.hpp"
#include "runbox/testing/fake_e2b.hpp"

int main(int argc, char** argv) {
    bool use_fake = false;
    std::string sid = "session-001";
    std::string command = "echo \"hello from $RUNBOX_EXAMPLE\" && pwd";
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--fake") {
            use_fake = true;
        } else if (arg == "--sid" && i + 1 < argc) {
            sid = argv[++i];
        } else if (arg == "--help" || arg == "-h") {
            std::cout << "usage: " << argv[0] << " [--fake] [--sid SID] [COMMAND]\n";
            return 0;
        } else {
            command = arg;
        }
    }

    try {
        runbox::Config config = runbox::Config::from_env();
        std::unique_ptr<runbox::testing::FakeE2B> fake;
        if (use_fake) {
            fake = std::make_unique<runbox::testing::FakeE2B>();
            fake->start();
            config.providers["e2b"] = {
                {"api_key", fake->api_key()},
                {"api_url", fake->url()},
                {"sandbox_url", fake->url()},
                {"server_url", fake->port_url_template()},  // {port}-{id}.e2b.app does not resolve here
                {"server_command", "runbox-server"},
                {"server_cwd", "/"},
                {"alive_poll_interval_ms", 50},
            };
            std::cerr << "FakeE2B listening on " << fake->url() << "\n";
        }

        runbox::EventStream events;
        // The seed's keyword arguments as designated initializers.
        runbox::E2BRuntime runtime(
            config, events,
            {.sid = sid,
             .env_vars = {{"RUNBOX_EXAMPLE", "e2b"}},
             .status_callback = [](std::string_view level, runbox::RuntimeStatus status, std::string_view message) {
                 std::cerr << "[" << level << "] " << runbox::to_string(status) << ": " << message << "\n";
             }});
        runtime.connect();
        std::cerr << "action server: " << runtime.action_execution_server_url() << "\n";

        const runbox::Observation observation = runtime.run(command);
        int exit_code = 0;
        if (const auto* out = std::get_if<runbox::CmdOutputObservation>(&observation)) {
            std::cout << out->content << "\n";
            exit_code = out->metadata.exit_code;
            std::cerr << "exit code " << exit_code << "\n";
        } else {
            std::cout << runbox::to_json(observation).dump(2) << "\n";
            exit_code = 1;
        }
        runtime.close();  // kills the sandbox (the destructor would too)
        if (fake) std::cerr << "live sandboxes after close: " << fake->live_sandboxes() << "\n";
        return exit_code == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
