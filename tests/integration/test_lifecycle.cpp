// No leaked sandboxes (issue 11), for each cloud provider against its fake: a create whose answer
// is lost, a close that cannot reach the API, sweep, the lease file after a SIGKILL mid-connect
// (a child process), the server-side TTL in the create request, and the per-sandbox session key
// behind the preview URL / tunnel.
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <limits>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "catch.hpp"
#include "runbox/event_stream.hpp"
#include "runbox/providers/daytona.hpp"
#include "runbox/providers/runloop.hpp"
#include "runbox/sweep.hpp"
#include "runbox/testing/fake_daytona.hpp"
#include "runbox/testing/fake_runloop.hpp"
#include "runbox/transport/testing.hpp"

extern char** environ;

namespace test_lifecycle {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using json = nlohmann::json;
using Faulty = runbox::FaultInjectingTransport<runbox::HttplibTransport>;

namespace {

template <class F>
bool eventually(F&& done, std::chrono::milliseconds bound = 10s) {
    return runbox::poll_until(std::forward<F>(done), bound, 5ms);
}

// One place per provider for what differs: the fake, its settings, its API paths, what "left" means.
struct Daytona {
    using Auth = runbox::daytona::Auth;
    static constexpr const char* name = "daytona";
    static constexpr const char* create_path = "/api/sandbox";  // POST = create
    static constexpr const char* api_path = "/api/sandbox";     // every control-plane call
    runbox::testing::FakeDaytona fake{[] {
        runbox::testing::FakeDaytonaOptions o;
        o.api_key = "dtn_lifecycle_key";
        o.state_delay = 20ms;
        return o;
    }()};
    Daytona() { fake.start(); }
    ~Daytona() { fake.stop(); }

    std::string url() const { return fake.url(); }
    json settings(const json& extra = json::object()) const {
        json s = {{"api_key", "dtn_lifecycle_key"}, {"api_url", fake.url()}, {"poll_interval_ms", 10},
                  {"start_timeout_ms", 10000}, {"alive_timeout_ms", 10000}, {"alive_poll_interval_ms", 20},
                  {"retry_initial_backoff_ms", 10}, {"close_timeout_ms", 400}, {"server_command", "runbox-server"}};
        for (const auto& [k, v] : extra.items()) s[k] = v;
        return s;
    }
    /// Sandboxes that still cost something: not destroyed, and not stopped.
    std::size_t left() { return fake.live_sandboxes(); }
    std::size_t creates() {
        std::size_t n = 0;
        for (const auto& r : fake.requests()) n += r.method == "POST" && r.path == create_path;
        return n;
    }
    std::string create_body() {
        for (const auto& r : fake.requests()) {
            if (r.method == "POST" && r.path == create_path) return r.body;
        }
        return {};
    }
    std::string log_text() {
        std::string all;
        for (const auto& r : fake.requests()) {
            all += r.target + "\n" + r.body + "\n";
            for (const auto& [k, v] : r.headers) all += k + ": " + v + "\n";
        }
        return all;
    }
    /// A sandbox as a runtime with this ownership would have left it.
    std::string add_owned(const runbox::Ownership& o) {
        auto labels = o.labels();
        labels["OpenHands_SID"] = "leftover";
        return fake.add_sandbox(labels, "started", false, false);
    }
    std::string add_foreign() { return fake.add_sandbox({{"team", "a"}}, "started", false, false); }
    bool is_left(const std::string& id) {
        auto sb = fake.sandbox(id);
        return sb && sb->state != "destroyed" && sb->state != "destroying";
    }
    void slow_create() { fake.configure([](auto& o) { o.create_delay = 3s; }); }
};

struct Runloop {
    using Auth = runbox::runloop::Auth;
    static constexpr const char* name = "runloop";
    static constexpr const char* create_path = "/v1/devboxes";
    static constexpr const char* api_path = "/v1/devboxes";
    runbox::testing::FakeRunloop fake{[] {
        runbox::testing::FakeRunloopOptions o;
        o.provisioning_delay = 20ms;
        o.initializing_delay = 20ms;
        o.long_poll_timeout = 200ms;
        return o;
    }()};
    Runloop() { fake.start(); }
    ~Runloop() { fake.stop(); }

    std::string url() const { return fake.url(); }
    json settings(const json& extra = json::object()) const {
        json s = {{"api_key", fake.api_key()}, {"base_url", fake.url()}, {"tunnel_url", fake.tunnel_url_template()},
                  {"poll_interval_ms", 5}, {"start_timeout_ms", 10000}, {"alive_timeout_ms", 10000},
                  {"alive_poll_interval_ms", 20}, {"request_timeout_ms", 10000}, {"retry_initial_backoff_ms", 5},
                  {"close_timeout_ms", 400}};
        for (const auto& [k, v] : extra.items()) s[k] = v;
        return s;
    }
    std::size_t left() { return fake.live_sandboxes(); }
    std::size_t creates() {
        std::size_t n = 0;
        for (const auto& r : fake.requests()) n += r.method == "POST" && r.path == create_path;
        return n;
    }
    std::string create_body() {
        for (const auto& r : fake.requests()) {
            if (r.method == "POST" && r.path == create_path) return r.body;
        }
        return {};
    }
    std::string log_text() {
        std::string all;
        for (const auto& r : fake.requests()) {
            all += r.path + "\n" + r.body + "\n";
            for (const auto& [k, v] : r.headers) all += k + ": " + v + "\n";
        }
        return all;
    }
    std::string add_owned(const runbox::Ownership& o) {
        json metadata = o.labels();
        metadata["OpenHands_SID"] = "leftover";
        return fake.create_devbox({{"name", "leftover"}, {"metadata", metadata}});
    }
    std::string add_foreign() { return fake.create_devbox({{"name", "theirs"}, {"metadata", {{"team", "a"}}}}); }
    bool is_left(const std::string& id) {
        auto d = fake.devbox(id);
        return d && d->status != "shutdown" && d->status != "failure";
    }
    void slow_create() {
        fake.configure([](auto& o) {
            o.provisioning_delay = 3s;
            o.initializing_delay = 3s;
        });
    }
};

template <class P>
runbox::Config config_for(const P& p, const json& extra = json::object()) {
    runbox::Config config;
    config.use_environment({});
    config.providers[P::name] = p.settings(extra);
    config.sandbox.runtime_container_image = "runbox/test-snapshot:1";
    config.enable_browser = false;
    return config;
}

// A pid that no process has any more (a child that exited and was reaped).
long dead_pid() {
    const pid_t child = ::fork();
    if (child == 0) ::_exit(0);
    int status = 0;
    ::waitpid(child, &status, 0);
    return static_cast<long>(child);
}

runbox::Ownership ownership_of_dead_process(std::int64_t age_ms) {
    runbox::Config c;
    runbox::Ownership o = runbox::Ownership::make(c, runbox::detail::random_hex(12));
    o.pid = dead_pid();
    o.created_ms -= age_ms;
    return o;
}

struct StatusLog {
    std::vector<std::string> errors;
    std::vector<std::string> all;
    runbox::StatusCallback callback() {
        return [this](std::string_view level, runbox::RuntimeStatus, std::string_view message) {
            all.emplace_back(message);
            if (level == "error") errors.emplace_back(message);
        };
    }
};

runbox::Response post_execute(const std::string& url, const runbox::Headers& headers) {
    runbox::HttplibTransport transport;
    runbox::Request request;
    request.method = "POST";
    request.url = url + "/execute_action";
    request.headers = headers;
    request.headers.set("Content-Type", "application/json");
    runbox::CmdRunAction action;
    action.command = "echo through";
    action.set_hard_timeout(10, true);
    nlohmann::ordered_json body;
    body["action"] = runbox::to_json(runbox::Action(action));
    request.body = body.dump();
    request.timeout = 10s;
    return transport.send(request);
}

// ---- row 1: the create's answer is lost ---------------------------------------------------------

template <class P>
void lost_create_is_found_not_resent() {
    P p;
    runbox::EventStream events;
    {
        runbox::Runtime<typename P::Auth, Faulty> rt(config_for(p), events, {.sid = "lost-create"});
        rt.transport().lose_response("POST", P::create_path, 1);
        rt.connect();  // recovers: the lookup by the create token finds the sandbox
        REQUIRE(p.creates() == 1);  // the create was never sent again
        REQUIRE(p.left() == 1);
        const auto obs = rt.run("echo owned");
        const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs);
        REQUIRE(out != nullptr);
        CHECK(out->content == "owned");
        rt.close();
        CHECK(rt.unreleased().empty());
    }
    CHECK(eventually([&] { return p.left() == 0; }));
}

TEST_CASE("lifecycle: daytona - a create whose answer is lost is found by its token, owned and released") {
    lost_create_is_found_not_resent<Daytona>();
}
TEST_CASE("lifecycle: runloop - a create whose answer is lost is found by its token, owned and released") {
    lost_create_is_found_not_resent<Runloop>();
}

// The create was performed but its answer cannot be used (not JSON; JSON without an id): the
// same lookup by token, instead of a sandbox nobody knows of.
template <class P>
void unusable_create_answer_is_found() {
    for (const std::string body : {"<html>502 from a proxy that ate the answer</html>", "{}"}) {
        INFO(body);
        P p;
        runbox::EventStream events;
        {
            runbox::Runtime<typename P::Auth, Faulty> rt(config_for(p), events, {.sid = "garbled-create"});
            rt.transport().garble_response("POST", P::create_path, 201, body);
            rt.connect();
            REQUIRE(p.creates() == 1);
            REQUIRE(p.left() == 1);
            rt.close();
            CHECK(rt.unreleased().empty());
        }
        CHECK(eventually([&] { return p.left() == 0; }));
    }
}

TEST_CASE("lifecycle: daytona - a create answered in a form runbox cannot use is found by its token and released") {
    unusable_create_answer_is_found<Daytona>();
}
TEST_CASE("lifecycle: runloop - a create answered in a form runbox cannot use is found by its token and released") {
    unusable_create_answer_is_found<Runloop>();
}

TEST_CASE("lifecycle: Ownership::matches wants this create's token and the managed label") {
    runbox::Config c;
    const auto own = runbox::Ownership::make(c, "tok123");
    CHECK(own.matches(own.labels()));
    auto other = own.labels();
    other[std::string(runbox::labels::token)] = "tok999";
    CHECK_FALSE(own.matches(other));
    auto unmanaged = own.labels();
    unmanaged.erase(std::string(runbox::labels::managed));
    CHECK_FALSE(own.matches(unmanaged));
    CHECK_FALSE(own.matches({}));
    CHECK_FALSE(runbox::Ownership{}.matches({{std::string(runbox::labels::token), ""}, {std::string(runbox::labels::managed), "1"}}));
}

// A lost answer and a lookup that finds nothing (the fake never performed it): the error stands.
TEST_CASE("lifecycle: a lost create answer with nothing to find fails connect with the transport error") {
    Daytona p;
    runbox::EventStream events;
    runbox::Runtime<runbox::daytona::Auth, Faulty> rt(config_for(p), events, {.sid = "dropped"});
    rt.transport().drop("POST", Daytona::create_path, 1);  // never reached the API
    try {
        rt.connect();
        FAIL("connect succeeded");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::transport);
    }
    CHECK(p.creates() == 0);
    CHECK(p.left() == 0);
}

// ---- row 2: close() cannot reach the API --------------------------------------------------------

template <class P>
void unreachable_close_is_reported() {
    P p;
    runbox::EventStream events;
    StatusLog log;
    runbox::Runtime<typename P::Auth, Faulty> rt(config_for(p), events,
                                                 {.sid = "unreachable", .status_callback = log.callback()});
    rt.connect();
    REQUIRE(p.left() == 1);
    rt.transport().drop("", P::api_path, -1);  // the control plane is gone from here on
    const auto before = rt.transport().requests_seen("", P::api_path);
    const auto started = std::chrono::steady_clock::now();
    rt.close();
    const auto took = std::chrono::steady_clock::now() - started;
    CHECK(took < 5s);                                                     // bounded (close_timeout_ms = 400)
    CHECK(rt.transport().requests_seen("", P::api_path) - before >= 2);  // and retried within it

    const auto unreleased = rt.unreleased();
    REQUIRE(unreleased.size() == 1);
    CHECK(unreleased[0].provider == P::name);
    CHECK(p.is_left(unreleased[0].id));
    REQUIRE(!log.errors.empty());
    CHECK(log.errors.back().find(unreleased[0].id) != std::string::npos);

    // The closed runtime no longer holds it: a sweep from this process releases it.
    rt.transport().clear_faults();
    runbox::SweepOptions options;
    options.older_than = 0ms;
    options.dry_run = false;
    const auto report = runbox::sweep<typename P::Auth>(config_for(p), options);
    REQUIRE(report.released() == 1);
    CHECK(report.actions[0].sandbox.id == unreleased[0].id);
    CHECK(eventually([&] { return p.left() == 0; }));
}

TEST_CASE("lifecycle: daytona - close() that cannot reach the API retries, then reports the sandbox") {
    unreachable_close_is_reported<Daytona>();
}
TEST_CASE("lifecycle: runloop - close() that cannot reach the API retries, then reports the devbox") {
    unreachable_close_is_reported<Runloop>();
}

// ---- sweep ---------------------------------------------------------------------------------------

template <class P>
void sweep_releases_only_what_nobody_holds() {
    P p;
    runbox::EventStream events;
    const auto config = config_for(p);
    runbox::Runtime<typename P::Auth> live(config, events, {.sid = "live"});
    live.connect();  // held by a live runtime: never swept
    const std::string orphan = p.add_owned(ownership_of_dead_process(2 * 3600 * 1000));
    const std::string young = p.add_owned(ownership_of_dead_process(0));
    const std::string foreign = p.add_foreign();  // not runbox's
    runbox::Ownership elsewhere = ownership_of_dead_process(2 * 3600 * 1000);
    elsewhere.host = "another-host";
    const std::string other_host = p.add_owned(elsewhere);

    runbox::SweepOptions options;  // dry run, older than 1 h
    const auto plan = runbox::sweep<typename P::Auth>(config, options);
    REQUIRE(plan.actions.size() == 1);
    CHECK(plan.actions[0].sandbox.id == orphan);
    CHECK(plan.actions[0].action == "delete");
    CHECK_FALSE(plan.actions[0].done);
    CHECK(plan.kept.size() == 3);  // the live one, the young one, the other host's
    CHECK(p.is_left(orphan));      // a dry run changes nothing

    options.dry_run = false;
    const auto done = runbox::sweep(boost::mp11::mp_list<runbox::local::Auth, typename P::Auth>{}, config, options);
    REQUIRE(done.released() == 1);
    CHECK(done.errors.empty());
    CHECK(eventually([&] { return !p.is_left(orphan); }));
    CHECK(p.is_left(young));
    CHECK(p.is_left(foreign));
    CHECK(p.is_left(other_host));
    CHECK(live.check_if_alive());

    options.older_than = 0ms;
    options.other_hosts = true;
    const auto rest = runbox::sweep<typename P::Auth>(config, options);
    CHECK(rest.released() == 2);  // the young one and the other host's; the live runtime's stays
    CHECK(live.check_if_alive());
    live.close();
    CHECK(!p.is_left(young));
    CHECK(p.is_left(foreign));
}

TEST_CASE("lifecycle: a creation time label from the far past or future is read without an overflow") {
    Daytona p;
    const auto config = config_for(p);
    auto past = ownership_of_dead_process(0);
    past.created_ms = std::numeric_limits<std::int64_t>::min();  // now - created wrapped around to "young"
    const std::string ancient = p.add_owned(past);
    auto future = ownership_of_dead_process(0);
    future.created_ms = std::numeric_limits<std::int64_t>::max();
    const std::string ahead = p.add_owned(future);

    runbox::SweepOptions options;  // dry run, older than 1 h
    const auto plan = runbox::sweep<runbox::daytona::Auth>(config, options);
    REQUIRE(plan.actions.size() == 1);
    CHECK(plan.actions[0].sandbox.id == ancient);  // as old as can be
    REQUIRE(plan.kept.size() == 1);
    CHECK(plan.kept[0].id == ahead);  // not old yet
}

TEST_CASE("lifecycle: daytona - sweep releases runbox's sandboxes that no live runtime holds, dry run first") {
    sweep_releases_only_what_nobody_holds<Daytona>();
}
TEST_CASE("lifecycle: runloop - sweep releases runbox's devboxes that no live runtime holds, dry run first") {
    sweep_releases_only_what_nobody_holds<Runloop>();
}

// ---- the lease file after SIGKILL mid-connect (row 3) ------------------------------------------

std::filesystem::path temp_path(const std::string& stem) {
    return std::filesystem::temp_directory_path() / (stem + "-" + runbox::detail::random_hex(6));
}

// The child: connects with the settings the parent put in its environment, and is killed.
TEST_CASE("lifecycle child: connect and wait to be killed", "[.lifecycle_child]") {
    const char* provider = std::getenv("LIFECYCLE_CHILD_PROVIDER");
    const char* settings = std::getenv("LIFECYCLE_CHILD_SETTINGS");
    const char* lease = std::getenv("LIFECYCLE_CHILD_LEASE");
    REQUIRE(provider != nullptr);
    REQUIRE(settings != nullptr);
    REQUIRE(lease != nullptr);
    runbox::Config config;
    config.use_environment({});
    config.providers[provider] = json::parse(settings);
    config.enable_browser = false;
    config.runbox_lease_file = lease;
    runbox::EventStream events;
    if (std::string(provider) == "daytona") {
        runbox::DaytonaRuntime rt(config, events, {.sid = "killed"});
        rt.connect();
    } else {
        runbox::RunloopRuntime rt(config, events, {.sid = "killed"});
        rt.connect();
    }
    FAIL("the child should have been killed during connect()");
}

template <class P>
void sigkill_mid_connect_is_reaped_by_the_next_run(bool via_sweep = false) {
    P p;
    p.slow_create();  // connect() is still waiting for the sandbox when the kill comes
    const auto lease = temp_path("runbox-lease");
    const std::string settings = p.settings().dump();
    const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    std::vector<std::string> env_strings;
    for (char** e = environ; *e != nullptr; ++e) env_strings.emplace_back(*e);
    env_strings.push_back(std::string("LIFECYCLE_CHILD_PROVIDER=") + P::name);
    env_strings.push_back("LIFECYCLE_CHILD_SETTINGS=" + settings);
    env_strings.push_back("LIFECYCLE_CHILD_LEASE=" + lease.string());
    std::vector<char*> envp;
    for (auto& s : env_strings) envp.push_back(s.data());
    envp.push_back(nullptr);
    std::string arg0 = self, arg1 = "lifecycle child: connect and wait to be killed";
    char* argv[] = {arg0.data(), arg1.data(), nullptr};
    pid_t child = -1;
    REQUIRE(::posix_spawn(&child, self.c_str(), nullptr, nullptr, argv, envp.data()) == 0);

    // Synchronise on the fake having received the create, then kill.
    const bool created = eventually([&] { return p.creates() == 1; }, 20s);
    ::kill(child, SIGKILL);
    int status = 0;
    ::waitpid(child, &status, 0);
    REQUIRE(created);
    REQUIRE(WIFSIGNALED(status));
    REQUIRE(p.left() == 1);  // the killed process left it
    const auto entries = runbox::LeaseFile(lease).entries();
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].pid == static_cast<long>(child));

    auto config = config_for(p);
    config.runbox_lease_file = lease.string();
    if (via_sweep) {
        // Sweep sees the lease entry of a dead process and releases it whatever its age.
        runbox::SweepOptions options;  // older_than 1 h: the labels alone would keep it
        options.dry_run = false;
        const auto report = runbox::sweep<typename P::Auth>(config, options);
        CHECK(report.released() == 1);
        CHECK(eventually([&] { return p.left() == 0; }));
        CHECK(runbox::LeaseFile(lease).entries().empty());
        std::filesystem::remove(lease);
        std::filesystem::remove(lease.string() + ".lock");
        return;
    }
    // The next run with the same lease file reaps it before creating its own.
    runbox::EventStream events;
    {
        runbox::Runtime<typename P::Auth> next(config, events, {.sid = "next"});
        next.connect();
        INFO("left: " << p.left());
        CHECK(eventually([&] { return p.left() == 1; }));  // only its own
        CHECK(runbox::LeaseFile(lease).entries().size() == 1);
    }
    CHECK(eventually([&] { return p.left() == 0; }));
    CHECK(runbox::LeaseFile(lease).entries().empty());
    std::filesystem::remove(lease);
    std::filesystem::remove(lease.string() + ".lock");
}

TEST_CASE("lifecycle: daytona - a client killed mid-connect is cleaned up by the next run (lease file)") {
    sigkill_mid_connect_is_reaped_by_the_next_run<Daytona>();
}
TEST_CASE("lifecycle: runloop - a client killed mid-connect is cleaned up by the next run (lease file)") {
    sigkill_mid_connect_is_reaped_by_the_next_run<Runloop>();
}
TEST_CASE("lifecycle: daytona - a client killed mid-connect is cleaned up by sweep (lease file)") {
    sigkill_mid_connect_is_reaped_by_the_next_run<Daytona>(true);
}

TEST_CASE("lifecycle: the lease file stays whole under writers in several processes") {
    const auto path = temp_path("runbox-lease-many");
    std::vector<pid_t> children;
    for (int c = 0; c < 4; ++c) {
        const pid_t child = ::fork();
        if (child == 0) {
            runbox::LeaseFile lease(path);
            for (int i = 0; i < 25; ++i) {
                runbox::LeaseEntry e{"daytona", "t" + std::to_string(c) + "-" + std::to_string(i), "s", "h", 1, 0, ""};
                lease.put(e);
                if (i % 2 == 1) lease.remove(e.token);  // odd ones come and go
            }
            ::_exit(0);
        }
        children.push_back(child);
    }
    for (pid_t child : children) {
        int status = 0;
        ::waitpid(child, &status, 0);
        CHECK(WIFEXITED(status));
    }
    const auto entries = runbox::LeaseFile(path).entries();
    CHECK(entries.size() == 4 * 13);  // the even ones of every writer, none lost
    std::filesystem::remove(path);
    std::filesystem::remove(path.string() + ".lock");
}

TEST_CASE("lifecycle: a sandbox of this process is held while its runtime lives, one of a dead pid is not") {
    runbox::Config config;
    runbox::Ownership mine = runbox::Ownership::make(config, "token-held");
    CHECK(runbox::holder_of(mine) == runbox::Holder::gone);
    {
        runbox::LiveHold hold(mine.token);
        CHECK(runbox::holder_of(mine) == runbox::Holder::live);
    }
    CHECK(runbox::holder_of(mine) == runbox::Holder::gone);
    runbox::Ownership parent = mine;
    parent.pid = static_cast<long>(::getppid());
    CHECK(runbox::holder_of(parent) == runbox::Holder::live);
    parent.pid = dead_pid();
    CHECK(runbox::holder_of(parent) == runbox::Holder::gone);
    parent.host = "elsewhere";
    CHECK(runbox::holder_of(parent) == runbox::Holder::unknown);
}

// ---- labels and the TTL backstop in the create request -----------------------------------------

TEST_CASE("lifecycle: daytona - the create carries ownership labels and a non-zero auto-stop by default") {
    Daytona p;
    runbox::EventStream events;
    auto config = config_for(p);
    config.runbox_owner = "ci-owner";
    runbox::DaytonaRuntime rt(config, events, {.sid = "labels"});
    rt.connect();
    const json body = json::parse(p.create_body());
    CHECK(body["autoStopInterval"].get<int>() > 0);
    const auto& labels = body["labels"];
    CHECK(labels["OpenHands_SID"] == "labels");
    CHECK(labels["runbox"] == "1");
    CHECK(labels["runbox_owner"] == "ci-owner");
    CHECK(labels["runbox_pid"] == std::to_string(::getpid()));
    CHECK(std::abs(std::stoll(labels["runbox_created_ms"].get<std::string>()) - runbox::detail::unix_ms_now()) < 600000);
    CHECK(labels["runbox_token"].get<std::string>().size() == 24);
    rt.close();
}

TEST_CASE("lifecycle: runloop - the create carries ownership metadata and a non-zero keep-alive by default") {
    Runloop p;
    runbox::EventStream events;
    runbox::RunloopRuntime rt(config_for(p), events, {.sid = "labels"});
    rt.connect();
    const json body = json::parse(p.create_body());
    CHECK(body["launch_parameters"]["keep_alive_time_seconds"].get<int>() > 0);
    const auto& metadata = body["metadata"];
    CHECK(metadata["OpenHands_SID"] == "labels");
    CHECK(metadata["runbox"] == "1");
    CHECK(metadata["runbox_pid"] == std::to_string(::getpid()));
    CHECK(metadata["runbox_token"].get<std::string>().size() == 24);
    rt.close();
}

// ---- row 4: the session key behind the preview URL / tunnel ------------------------------------

runbox::Response api_get(const std::string& url, const std::string& bearer) {
    runbox::HttplibTransport transport;
    runbox::Request request;
    request.method = "GET";
    request.url = url;
    request.headers.set("Authorization", "Bearer " + bearer);
    request.timeout = 10s;
    return transport.send(request);
}

// The key works, is not seen by the sandbox's shell, and is in no request log or status message.
template <class P, class R>
void key_stays_secret(P& p, R& rt, const StatusLog& log) {
    const std::string key = *rt.session_api_key();
    const auto obs = rt.run("echo k=${SESSION_API_KEY:-none}");
    const auto* out = std::get_if<runbox::CmdOutputObservation>(&obs);
    REQUIRE(out != nullptr);
    CHECK(out->content == "k=none");
    CHECK(p.log_text().find(key) == std::string::npos);
    for (const auto& m : log.all) CHECK(m.find(key) == std::string::npos);
}

TEST_CASE("lifecycle: daytona - private by default, and the preview URL without the session key gets 403") {
    Daytona p;
    runbox::EventStream events;
    StatusLog log;
    runbox::DaytonaRuntime rt(config_for(p), events, {.sid = "key", .status_callback = log.callback()});
    rt.connect();
    CHECK(json::parse(p.create_body())["public"] == false);
    const std::string url = rt.action_execution_server_url();
    const auto key = rt.session_api_key();
    REQUIRE(key.has_value());
    REQUIRE(key->size() >= 32);

    CHECK(post_execute(url, {}).status == 401);  // the proxy wants the preview token
    // With the preview token (anyone who can read the API gets it) but not the session key: 403.
    const auto link = json::parse(api_get(p.url() + "/sandbox/" + rt.provider().sandbox_id() + "/ports/4444/preview-url",
                                          "dtn_lifecycle_key").body);
    runbox::Headers token;
    token.set("X-Daytona-Preview-Token", link["token"].get<std::string>());
    CHECK(post_execute(url, token).status == 403);
    runbox::Headers both = token;
    both.set("X-Session-API-Key", *key);
    CHECK(post_execute(url, both).status == 200);
    key_stays_secret(p, rt, log);
    rt.close();
}

TEST_CASE("lifecycle: daytona - a public sandbox (opt-out) still needs the session key: 403 without it") {
    Daytona p;
    runbox::EventStream events;
    StatusLog log;
    runbox::DaytonaRuntime rt(config_for(p, {{"public", true}}), events, {.sid = "public", .status_callback = log.callback()});
    rt.connect();
    CHECK(json::parse(p.create_body())["public"] == true);
    const std::string url = rt.action_execution_server_url();
    CHECK(post_execute(url, {}).status == 403);
    runbox::Headers key;
    key.set("X-Session-API-Key", *rt.session_api_key());
    CHECK(post_execute(url, key).status == 200);
    key_stays_secret(p, rt, log);
    rt.close();
}

TEST_CASE("lifecycle: daytona - attach reads the session key of the sandbox runbox created") {
    Daytona p;
    runbox::EventStream events;
    auto config = config_for(p);
    config.sandbox.keep_runtime_alive = true;
    runbox::DaytonaRuntime first(config, events, {.sid = "reattach"});
    first.connect();
    const auto key = first.session_api_key();
    runbox::EventStream other_events;  // one subscriber per sid and stream
    runbox::DaytonaRuntime second(config, other_events, {.sid = "reattach", .attach_to_existing = true});
    second.connect();
    CHECK(second.session_api_key() == key);
    const auto obs = second.run("echo again");
    CHECK(std::holds_alternative<runbox::CmdOutputObservation>(obs));
    second.close();
    first.close();
}

TEST_CASE("lifecycle: runloop - authenticated tunnel by default, and the tunnel without the session key gets 403") {
    Runloop p;
    runbox::EventStream events;
    StatusLog log;
    runbox::RunloopRuntime rt(config_for(p), events, {.sid = "key", .status_callback = log.callback()});
    rt.connect();
    const std::string url = rt.action_execution_server_url();
    const auto key = rt.session_api_key();
    REQUIRE(key.has_value());
    REQUIRE(key->size() >= 32);
    const auto devbox = json::parse(api_get(p.url() + "/v1/devboxes/" + rt.provider().devbox_id(), p.fake.api_key()).body);
    REQUIRE(devbox["tunnel"]["auth_mode"] == "authenticated");

    CHECK(post_execute(url, {}).status == 401);  // the tunnel wants its token
    runbox::Headers tunnel;
    tunnel.set("X-Runloop-Tunnel-Authorization", "Bearer " + devbox["tunnel"]["auth_token"].get<std::string>());
    CHECK(post_execute(url, tunnel).status == 403);
    runbox::Headers both = tunnel;
    both.set("X-Session-API-Key", *key);
    CHECK(post_execute(url, both).status == 200);
    key_stays_secret(p, rt, log);
    rt.close();
}

TEST_CASE("lifecycle: runloop - an open tunnel (opt-out) still needs the session key: 403 without it") {
    Runloop p;
    runbox::EventStream events;
    StatusLog log;
    runbox::RunloopRuntime rt(config_for(p, {{"tunnel_auth_mode", "open"}}), events,
                              {.sid = "open", .status_callback = log.callback()});
    rt.connect();
    const std::string url = rt.action_execution_server_url();
    CHECK(post_execute(url, {}).status == 403);
    runbox::Headers key;
    key.set("X-Session-API-Key", *rt.session_api_key());
    CHECK(post_execute(url, key).status == 200);
    key_stays_secret(p, rt, log);
    rt.close();
}

}  // namespace

}  // namespace test_lifecycle
