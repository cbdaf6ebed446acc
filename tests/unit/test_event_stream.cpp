// Unit tests for runbox/event_stream.hpp (reference §11).
#include <atomic>
#include <chrono>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "catch.hpp"
#include "runbox/event_stream.hpp"

namespace test_event_stream {  // several files share a unit (tests/CMakeLists.txt)

using namespace std::chrono_literals;
using runbox::EventSource;
using runbox::EventStream;

namespace {

/// Collects what a callback saw, thread-safely.
struct Recorder {
    std::mutex mutex;
    std::vector<runbox::Event> events;
    void operator()(const runbox::Event& e) {
        std::lock_guard lock(mutex);
        events.push_back(e);
    }
    std::vector<std::int64_t> ids() {
        std::lock_guard lock(mutex);
        std::vector<std::int64_t> out;
        for (const auto& e : events) out.push_back(runbox::meta(e).id.value_or(-100));
        return out;
    }
};

runbox::Event cmd(std::string command) { return runbox::Action(runbox::CmdRunAction{.command = std::move(command)}); }

}  // namespace

TEST_CASE("ids are sequential from 0 and the stream stamps timestamp and source", "[event_stream]") {
    EventStream stream("sid-1");
    CHECK(stream.sid() == "sid-1");
    CHECK(stream.get_latest_event_id() == -1);
    CHECK_FALSE(stream.get_latest_event().has_value());
    CHECK(stream.add_event(cmd("a"), EventSource::agent) == 0);
    CHECK(stream.add_event(runbox::Observation(runbox::NullObservation{}), EventSource::environment) == 1);
    CHECK(stream.add_event(cmd("c"), EventSource::user) == 2);
    CHECK(stream.get_latest_event_id() == 2);

    const auto first = stream.get_event(0);
    CHECK(runbox::meta(first).id == 0);
    CHECK(runbox::meta(first).source == EventSource::agent);
    REQUIRE(runbox::meta(first).timestamp.has_value());
    CHECK(std::regex_match(*runbox::meta(first).timestamp,
                           std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?)")));
    CHECK(runbox::meta(stream.get_event(1)).source == EventSource::environment);
    CHECK(std::get<runbox::CmdRunAction>(std::get<runbox::Action>(stream.get_event(2))).command == "c");

    auto missing = [&] { (void)stream.get_event(3); };
    CHECK_THROWS_AS(missing(), runbox::error);
    try {
        missing();
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::not_found);
    }
}

TEST_CASE("timestamps follow Python's isoformat", "[event_stream]") {
    const auto base = std::chrono::system_clock::time_point(std::chrono::seconds(1700000000));
    const std::string whole = runbox::detail::local_iso_timestamp(base);
    CHECK(std::regex_match(whole, std::regex(R"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})")));
    const std::string frac = runbox::detail::local_iso_timestamp(base + std::chrono::microseconds(1234));
    CHECK(frac == whole + ".001234");
}

TEST_CASE("search_events honours start, inclusive end, reverse, filter and limit", "[event_stream]") {
    EventStream stream;
    for (int i = 0; i < 6; ++i)
        stream.add_event(cmd("c" + std::to_string(i)), i % 2 == 0 ? EventSource::agent : EventSource::user);
    auto ids = [](const std::vector<runbox::Event>& events) {
        std::vector<std::int64_t> out;
        for (const auto& e : events) out.push_back(*runbox::meta(e).id);
        return out;
    };
    CHECK(ids(stream.search_events()) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(ids(stream.search_events(2, 4)) == std::vector<std::int64_t>{2, 3, 4});
    CHECK(ids(stream.search_events(2, 4, true)) == std::vector<std::int64_t>{4, 3, 2});
    CHECK(ids(stream.search_events(0, 99)) == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5});
    CHECK(ids(stream.search_events(0, std::nullopt, true, {}, 2)) == std::vector<std::int64_t>{5, 4});
    CHECK(ids(stream.filtered_events_by_source(EventSource::user)) == std::vector<std::int64_t>{1, 3, 5});
    CHECK(stream.search_events(7).empty());
}

TEST_CASE("8 concurrent publishers get unique increasing ids, delivered in order", "[event_stream]") {
    EventStream stream;
    Recorder seen;
    stream.subscribe("test", std::ref(seen), "recorder");
    constexpr int threads = 8, per_thread = 200;
    std::vector<std::vector<std::int64_t>> got(threads);
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
            for (int i = 0; i < per_thread; ++i)
                got[static_cast<std::size_t>(t)].push_back(
                    stream.add_event(cmd(std::to_string(t) + ":" + std::to_string(i)), EventSource::agent));
        });
    }
    for (auto& th : pool) th.join();

    std::set<std::int64_t> all;
    for (const auto& ids : got) {
        for (std::size_t i = 1; i < ids.size(); ++i) CHECK(ids[i] > ids[i - 1]);
        all.insert(ids.begin(), ids.end());
    }
    CHECK(all.size() == static_cast<std::size_t>(threads * per_thread));
    CHECK(*all.begin() == 0);
    CHECK(*all.rbegin() == threads * per_thread - 1);
    CHECK(stream.get_latest_event_id() == threads * per_thread - 1);

    REQUIRE(stream.flush(10s));
    const auto delivered = seen.ids();
    REQUIRE(delivered.size() == static_cast<std::size_t>(threads * per_thread));
    for (std::size_t i = 0; i < delivered.size(); ++i) CHECK(delivered[i] == static_cast<std::int64_t>(i));
}

TEST_CASE("each callback sees every event in order while callbacks run concurrently", "[event_stream]") {
    EventStream stream;
    Recorder a, b;
    std::atomic<int> c_count{0};
    stream.subscribe("agent_controller", std::ref(a), "a");
    stream.subscribe("runtime", std::ref(b), "b");
    stream.subscribe("runtime", [&](const runbox::Event&) { ++c_count; }, "c");
    for (int i = 0; i < 50; ++i) stream.add_event(cmd(std::to_string(i)), EventSource::agent);
    REQUIRE(stream.wait_until_delivered(49, 10s));
    std::vector<std::int64_t> expected(50);
    for (int i = 0; i < 50; ++i) expected[static_cast<std::size_t>(i)] = i;
    CHECK(a.ids() == expected);
    CHECK(b.ids() == expected);
    CHECK(c_count.load() == 50);
    // The events the callbacks get are the stored ones.
    CHECK(std::get<runbox::CmdRunAction>(std::get<runbox::Action>(a.events.at(7))).command == "7");
}

TEST_CASE("a subscriber only gets events added after it subscribed; unsubscribe stops delivery", "[event_stream]") {
    EventStream stream;
    stream.add_event(cmd("before"), EventSource::agent);
    Recorder seen;
    stream.subscribe("test", std::ref(seen), "r");
    const auto id = stream.add_event(cmd("after"), EventSource::agent);
    REQUIRE(stream.wait_until_delivered(id, 10s));
    CHECK(seen.ids() == std::vector<std::int64_t>{1});
    stream.unsubscribe("test", "r");
    stream.unsubscribe("test", "r");          // unknown: tolerated
    stream.unsubscribe("nobody", "nothing");  // unknown: tolerated
    const auto later = stream.add_event(cmd("later"), EventSource::agent);
    REQUIRE(stream.wait_until_delivered(later, 10s));
    CHECK(seen.ids() == std::vector<std::int64_t>{1});
    // The same ids can be registered again after unsubscribing.
    CHECK_NOTHROW(stream.subscribe("test", std::ref(seen), "r"));
}

TEST_CASE("subscribing the same callback id twice is an error", "[event_stream]") {
    EventStream stream;
    stream.subscribe("runtime", [](const runbox::Event&) {}, "cb-1");
    try {
        stream.subscribe("runtime", [](const runbox::Event&) {}, "cb-1");
        FAIL("duplicate subscription accepted");
    } catch (const runbox::error& e) {
        CHECK(e.detail() == "Callback ID on subscriber runtime already exists: cb-1");
    }
    CHECK_NOTHROW(stream.subscribe("runtime", [](const runbox::Event&) {}, "cb-2"));
    CHECK_NOTHROW(stream.subscribe("test", [](const runbox::Event&) {}, "cb-1"));
}

TEST_CASE("adding an event that already has an id is an error", "[event_stream]") {
    EventStream stream;
    stream.add_event(cmd("x"), EventSource::agent);
    runbox::Event again = stream.get_event(0);
    try {
        stream.add_event(again, EventSource::agent);
        FAIL("event with an id accepted");
    } catch (const runbox::error& e) {
        CHECK(e.detail() ==
              "Event already has an ID:0. It was probably added back to the EventStream from inside a handler, "
              "triggering a loop.");
    }
    CHECK(stream.get_latest_event_id() == 0);
}

TEST_CASE("a callback can publish from inside itself without deadlock", "[event_stream]") {
    EventStream stream;
    // The runtime pattern: execute a runnable action, publish its observation with cause = action id.
    stream.subscribe(
        "runtime",
        [&](const runbox::Event& e) {
            const auto* action = std::get_if<runbox::Action>(&e);
            if (action == nullptr || !runbox::is_runnable(*action)) return;
            runbox::Observation obs = runbox::make_cmd_output("done", "ls", {});
            runbox::meta(obs).cause = runbox::meta(e).id;
            stream.add_event(std::move(obs), EventSource::environment);
        },
        "runtime-cb");
    Recorder seen;
    stream.subscribe("test", std::ref(seen), "rec");

    const auto action_id = stream.add_event(cmd("ls"), EventSource::agent);
    REQUIRE(stream.wait_until_delivered(action_id, 10s));
    REQUIRE(stream.get_latest_event_id() == action_id + 1);
    REQUIRE(stream.flush(10s));
    const auto obs = stream.get_event(action_id + 1);
    REQUIRE(std::holds_alternative<runbox::Observation>(obs));
    CHECK(runbox::meta(obs).cause == action_id);
    CHECK(runbox::meta(obs).source == EventSource::environment);
    CHECK(seen.ids() == std::vector<std::int64_t>{action_id, action_id + 1});
}

TEST_CASE("secrets are masked in nested values but not in protected top-level keys", "[event_stream]") {
    EventStream stream;
    stream.set_secrets({{"token", "s3cr3t"}, {"word", "run"}, {"who", "agent"}});

    runbox::CmdRunAction a{.command = "run with s3cr3t", .thought = "agent thinks"};
    a.meta.tool_call_metadata = runbox::ordered_json::parse(R"j({"args": {"nested": ["s3cr3t", {"deep": "xs3cr3tx"}]}})j");
    const auto id = stream.add_event(runbox::Action(a), EventSource::agent);
    const auto stored = runbox::to_json(stream.get_event(id));
    CHECK(stored.at("action") == "run");    // protected
    CHECK(stored.at("source") == "agent");  // protected
    CHECK(stored.at("id") == id);
    CHECK(stored.at("args").at("command") == "<secret_hidden> with <secret_hidden>");
    CHECK(stored.at("args").at("thought") == "<secret_hidden> thinks");
    CHECK(stored.at("message") == "Running command: <secret_hidden> with <secret_hidden>");  // recomputed
    CHECK(stored.at("tool_call_metadata").dump() ==
          R"j({"args":{"nested":["<secret_hidden>",{"deep":"x<secret_hidden>x"}]}})j");

    // Nested observation extras (metadata object, MCP arguments) are masked too.
    runbox::CmdOutputMetadata md;
    md.working_dir = "/home/s3cr3t";
    md.exit_code = 0;
    auto obs = runbox::make_cmd_output("out s3cr3t", "echo", md);
    obs.meta.cause = id;
    const auto obs_id = stream.add_event(runbox::Observation(obs), EventSource::environment);
    const runbox::Event stored_event = stream.get_event(obs_id);
    const auto& stored_obs = std::get<runbox::CmdOutputObservation>(std::get<runbox::Observation>(stored_event));
    CHECK(stored_obs.content == "out <secret_hidden>");
    CHECK(stored_obs.metadata.working_dir == "/home/<secret_hidden>");
    CHECK(stored_obs.meta.cause == id);

    runbox::MCPObservation mcp{.content = "c", .name = "tool"};
    mcp.arguments = runbox::ordered_json::parse(R"j({"list": ["a s3cr3t", 1], "obj": {"k": "s3cr3t"}})j");
    const auto mcp_id = stream.add_event(runbox::Observation(mcp), EventSource::environment);
    CHECK(runbox::to_json(stream.get_event(mcp_id)).at("extras").at("arguments").dump() ==
          R"j({"list":["a <secret_hidden>",1],"obj":{"k":"<secret_hidden>"}})j");
}

TEST_CASE("the timestamp is protected from masking", "[event_stream]") {
    EventStream stream;
    const std::string year = runbox::detail::local_iso_timestamp().substr(0, 4);
    stream.set_secrets({{"year", year}});
    const auto id = stream.add_event(runbox::Observation(runbox::ErrorObservation{.content = "in " + year}),
                                     EventSource::environment);
    const runbox::Event stored = stream.get_event(id);
    const auto& m = runbox::meta(stored);
    REQUIRE(m.timestamp.has_value());
    CHECK(m.timestamp->substr(0, 4) == year);
    CHECK(std::get<runbox::ErrorObservation>(std::get<runbox::Observation>(stream.get_event(id))).content ==
          "in <secret_hidden>");
}

TEST_CASE("set_secrets replaces and update_secrets merges", "[event_stream]") {
    EventStream stream;
    auto content_after = [&](const std::string& text) {
        const auto id = stream.add_event(runbox::Observation(runbox::ErrorObservation{.content = text}),
                                         EventSource::environment);
        return std::get<runbox::ErrorObservation>(std::get<runbox::Observation>(stream.get_event(id))).content;
    };
    CHECK(content_after("alpha beta") == "alpha beta");
    stream.set_secrets({{"a", "alpha"}});
    stream.update_secrets({{"b", "beta"}});
    CHECK(content_after("alpha beta") == "<secret_hidden> <secret_hidden>");
    stream.set_secrets({{"b", "beta"}});
    CHECK(content_after("alpha beta") == "alpha <secret_hidden>");
}

TEST_CASE("a throwing callback is reported and delivery continues", "[event_stream]") {
    EventStream stream;
    std::atomic<int> reported{0};
    stream.set_error_handler([&](const std::string& subscriber, const std::string& callback, std::exception_ptr) {
        if (subscriber == "test" && callback == "boom") ++reported;
    });
    Recorder seen;
    stream.subscribe("test", [&](const runbox::Event& e) {
        seen(e);
        throw std::runtime_error("callback failure");
    }, "boom");
    stream.add_event(cmd("1"), EventSource::agent);
    stream.add_event(cmd("2"), EventSource::agent);
    REQUIRE(stream.flush(10s));
    CHECK(seen.ids() == std::vector<std::int64_t>{0, 1});
    CHECK(reported.load() == 2);
}

TEST_CASE("close stops delivery and is idempotent", "[event_stream]") {
    EventStream stream;
    Recorder seen;
    stream.subscribe("test", std::ref(seen), "r");
    stream.add_event(cmd("1"), EventSource::agent);
    REQUIRE(stream.flush(10s));
    stream.close();
    stream.close();
    CHECK(stream.add_event(cmd("2"), EventSource::agent) == 1);  // stored, not delivered
    CHECK(stream.flush(1s));
    CHECK(seen.ids() == std::vector<std::int64_t>{0});
}

TEST_CASE("a callback may unsubscribe itself", "[event_stream]") {
    EventStream stream;
    std::atomic<int> calls{0};
    stream.subscribe("test", [&](const runbox::Event&) {
        ++calls;
        stream.unsubscribe("test", "once");
    }, "once");
    stream.add_event(cmd("1"), EventSource::agent);
    REQUIRE(stream.flush(10s));
    stream.add_event(cmd("2"), EventSource::agent);
    REQUIRE(stream.flush(10s));
    CHECK(calls.load() == 1);
}

}  // namespace test_event_stream
