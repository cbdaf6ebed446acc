// runloop_example [--fake] [--sid SID] [COMMAND]
//
// The seed's usage example on Runloop: create a devbox named after the session, start the action
// execution server in it, run a command, print the observation, shut the devbox down.
//
//   export RUNLOOP_API_KEY=...              # and a blueprint with the server, e.g.
//   export RUNLOOP_BLUEPRINT=openhands      #   (see the settings in runbox/providers/runloop.hpp)
//   ./runloop_example "echo hello"
//
// With --fake it starts an in-process FakeRunloop on 127.0.0.1 and points the runtime at it; the
// command then runs in the fake devbox's real runbox action server, no account needed.
#include <cstdio>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <variant>

#include "runbox/event_stream.hpp"
#include "runbox/providers/runloop.hpp"
#include "runbox/testing/fake_runloop.hpp"

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
        std::unique_ptr<runbox::testing::FakeRunloop> fake;
        if (use_fake) {
            fake = std::make_unique<runbox::testing::FakeRunloop>();
            fake->start();
            config.providers["runloop"] = {
                {"api_key", fake->api_key()},
                {"base_url", fake->url()},
                {"tunnel_url", fake->tunnel_url_template()},
                {"poll_interval_ms", 20},
                {"alive_poll_interval_ms", 50},
            };
            std::cerr << "FakeRunloop listening on " << fake->url() << "\n";
        }

        runbox::EventStream events;
        // The seed's keyword arguments as designated initializers.
        runbox::RunloopRuntime runtime(
            config, events,
            {.sid = sid,
             .env_vars = {{"RUNBOX_EXAMPLE", "runloop"}},
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
        runtime.close();  // shuts the devbox down (the destructor would too)
        if (fake) std::cerr << "running devboxes after close: " << fake->running_devboxes() << "\n";
        return exit_code == 0 ? 0 : 1;
    } catch (const std::exception& e) {
        std::cerr << e.what() << "\n";
        return 1;
    }
}
