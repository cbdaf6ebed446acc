// The seed's Daytona usage in C++:
//
//     runtime = DaytonaRuntime(config, event_stream, sid="session-001", env_vars={"MY_VAR": "value"})
//     runtime.connect()
//     observation = runtime.run_action(CmdRunAction(command="echo $MY_VAR"))
//     runtime.close()
//
// Against the real service:   DAYTONA_API_KEY=... SANDBOX_RUNTIME_CONTAINER_IMAGE=<snapshot> ./daytona_example
//   (optional: DAYTONA_API_URL, DAYTONA_TARGET, DAYTONA_DELETE_ON_CLOSE=true, ...)
// Offline, against an in-process FakeDaytona:   ./daytona_example --fake
#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <string_view>

#include "runbox/event_stream.hpp"
#include "runbox/providers/daytona.hpp"
#include "runbox/testing/fake_daytona.hpp"

int main(int argc, char** argv) {
    const bool use_fake = argc > 1 && std::string_view(argv[1]) == "--fake";
    if (argc > 2 || (argc == 2 && !use_fake)) {
        std::cerr << "usage: " << argv[0] << " [--fake]\n";
        return 2;
    }

    std::unique_ptr<runbox::testing::FakeDaytona> fake;
    runbox::Config config = runbox::Config::from_env();  // RUNTIME, SANDBOX_*, and DAYTONA_* via setting()
    if (use_fake) {
        fake = std::make_unique<runbox::testing::FakeDaytona>(runbox::testing::FakeDaytonaOptions{.api_key = "dtn_example"});
        fake->start();
        config.use_environment({});  // ignore a real DAYTONA_API_KEY in the environment
        config.providers["daytona"] = {{"api_key", "dtn_example"},
                                       {"api_url", fake->url()},
                                       {"server_command", "runbox-server"},  // the fake runs runbox's server
                                       {"poll_interval_ms", 50},
                                       {"alive_poll_interval_ms", 100}};
        std::cout << "using FakeDaytona at " << fake->url() << "\n";
    }

    try {
        runbox::EventStream event_stream;
        runbox::DaytonaRuntime runtime(config, event_stream,
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
