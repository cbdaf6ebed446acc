// runbox-fake PROVIDER [--port N] [--api-key K] [--token-id ID --token-secret S]
//
// Serves a provider's fake API on 127.0.0.1 (port 0 = any free port), prints exactly one line
// `listening on http://127.0.0.1:PORT` (the fake's base_url(), for every provider) and serves
// until SIGTERM/SIGINT. Point any client at it:
// an official SDK, curl, or your own program.
//   daytona: API at http://127.0.0.1:PORT/api (DAYTONA_API_URL / apiUrl), default key dtn_test
//   runloop: API at http://127.0.0.1:PORT (RUNLOOP_BASE_URL / baseURL), default key rl_fake_key
//   e2b:     API and envd at http://127.0.0.1:PORT (E2B_API_URL and E2B_SANDBOX_URL), default key e2b_test
//   modal:   gRPC (h2c) at http://127.0.0.1:PORT (MODAL_SERVER_URL), default token ak-fake / as-fake;
//            --api-key K = token id and secret K; --token-id / --token-secret set them apart
//            (built where libnghttp2 is: runbox::http2_server)
//
// To add a provider: include its fake (a testing::FakeProvider with an `Options` struct that has
// `port` and `api_key`) and add one entry to `fakes()` below.
#include <signal.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "runbox/testing/fake_daytona.hpp"
#include "runbox/testing/fake_e2b.hpp"
#include "runbox/testing/fake_runloop.hpp"
#ifdef RUNBOX_WITH_HTTP2_SERVER
#include "runbox/testing/fake_modal.hpp"
#endif

namespace {

struct FakeArgs {
    int port = 0;
    std::string api_key;  // empty = the fake's default
    std::string token_id;      // Modal: empty = the fake's default
    std::string token_secret;  // Modal: empty = the fake's default
};

using runbox::testing::FakeProvider;

// Every fake the same way: its options with the port and key, started, kept alive as the base.
template <class Fake>
std::unique_ptr<FakeProvider> start_fake(const FakeArgs& args) {
    typename Fake::Options options;
    options.port = args.port;
    if (!args.api_key.empty()) options.api_key = args.api_key;
    auto fake = std::make_unique<Fake>(std::move(options));
    fake->start();
    return fake;
}

#ifdef RUNBOX_WITH_HTTP2_SERVER
// Modal's credentials are a token id and secret: --api-key sets both, --token-id/--token-secret each.
std::unique_ptr<FakeProvider> start_modal(const FakeArgs& args) {
    runbox::testing::FakeModalOptions options;
    options.port = args.port;
    options.api_key = args.api_key;
    if (!args.token_id.empty()) options.token_id = args.token_id;
    if (!args.token_secret.empty()) options.token_secret = args.token_secret;
    auto fake = std::make_unique<runbox::testing::FakeModal>(std::move(options));
    fake->start();
    return fake;
}
#endif

using FakeFactory = std::unique_ptr<FakeProvider> (*)(const FakeArgs&);

const std::map<std::string, FakeFactory>& fakes() {
    static const std::map<std::string, FakeFactory> table = {
        {"daytona", &start_fake<runbox::testing::FakeDaytona>},
        {"e2b", &start_fake<runbox::testing::FakeE2B>},
        {"runloop", &start_fake<runbox::testing::FakeRunloop>},
#ifdef RUNBOX_WITH_HTTP2_SERVER
        {"modal", &start_modal},
#endif
    };
    return table;
}

int usage(const char* argv0) {
    std::cerr << "usage: " << argv0 << " PROVIDER [--port N] [--api-key K] [--token-id ID --token-secret S]\nproviders:";
    for (const auto& [name, factory] : fakes()) std::cerr << ' ' << name;
    std::cerr << '\n';
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage(argv[0]);
    const std::string provider = argv[1];
    FakeArgs args;
    for (int i = 2; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--port" && i + 1 < argc) {
            args.port = std::atoi(argv[++i]);
        } else if (arg == "--api-key" && i + 1 < argc) {
            args.api_key = argv[++i];
        } else if (arg == "--token-id" && i + 1 < argc) {
            args.token_id = argv[++i];
        } else if (arg == "--token-secret" && i + 1 < argc) {
            args.token_secret = argv[++i];
        } else {
            return usage(argv[0]);
        }
    }
    const auto it = fakes().find(provider);
    if (it == fakes().end()) {
        std::cerr << "runbox-fake: unknown provider '" << provider << "'\n";
        return usage(argv[0]);
    }

    // Block the stop signals in every thread; the main thread waits for them synchronously.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    std::unique_ptr<FakeProvider> fake;
    try {
        fake = it->second(args);
    } catch (const std::exception& e) {
        std::cerr << "runbox-fake: " << e.what() << '\n';
        return 1;
    }
    std::cout << "listening on " << fake->base_url() << std::endl;

    int signal_number = 0;
    sigwait(&stop_signals, &signal_number);
    fake.reset();  // stops the fake and every sandbox server it started
    return 0;
}
