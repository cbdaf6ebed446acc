// Unit tests for runbox/events.hpp: the OpenHands wire format (reference §3).
#include <cstddef>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "catch.hpp"
#include "runbox/events.hpp"

namespace test_events {  // several files share a unit (tests/CMakeLists.txt)

using runbox::ordered_json;

namespace {

// Every action and observation example of reference §3.3–3.4, verbatim.
const std::vector<std::pair<std::string, std::string>> reference_examples = {
    {"run", R"j({
  "id": 5,
  "timestamp": "2025-01-01T00:00:00",
  "source": "agent",
  "message": "Running command: ls -l",
  "action": "run",
  "args": {
    "command": "ls -l", "is_input": false, "thought": "", "blocking": false,
    "is_static": false, "cwd": null, "hidden": false,
    "confirmation_state": "confirmed", "security_risk": -1
  },
  "timeout": 120.0
})j"},
    {"run", R"j({"message": "Running command: sleep 100", "action": "run",
 "args": {"command": "sleep 100", "is_input": false, "thought": "", "blocking": true, "is_static": false,
          "cwd": null, "hidden": false, "confirmation_state": "confirmed", "security_risk": -1},
 "timeout": 300.0})j"},
    {"run", R"j({"message": "Running command: y", "action": "run",
 "args": {"command": "y", "is_input": true, "thought": "", "blocking": false, "is_static": false,
          "cwd": null, "hidden": false, "confirmation_state": "confirmed", "security_risk": -1},
 "timeout": 120.0})j"},
    {"run_ipython", R"j({"message": "Running Python code interactively: print(1)", "action": "run_ipython",
 "args": {"code": "print(1)", "thought": "", "include_extra": true, "confirmation_state": "confirmed",
          "security_risk": -1, "kernel_init_code": ""},
 "timeout": 120.0})j"},
    {"read", R"j({"message": "Reading file: /workspace/a.txt", "action": "read",
 "args": {"path": "/workspace/a.txt", "start": 0, "end": -1, "thought": "", "security_risk": -1,
          "impl_source": "default", "view_range": null}})j"},
    {"read", R"j({"message": "Reading file: /workspace/a.txt", "action": "read",
 "args": {"path": "/workspace/a.txt", "start": 0, "end": -1, "thought": "", "security_risk": -1,
          "impl_source": "oh_aci", "view_range": [1, 10]}})j"},
    {"write", R"j({"message": "Writing file: /workspace/a.txt", "action": "write",
 "args": {"path": "/workspace/a.txt", "content": "hello", "start": 0, "end": -1, "thought": "", "security_risk": -1}})j"},
    {"edit", R"j({"message": "", "action": "edit",
 "args": {"path": "/workspace/a.txt", "command": "str_replace", "file_text": null, "old_str": "a", "new_str": "b",
          "insert_line": null, "content": "", "start": 1, "end": -1, "thought": "", "security_risk": -1,
          "impl_source": "oh_aci"}})j"},
    {"edit", R"j({"message": "", "action": "edit",
 "args": {"path": "/workspace/a.txt", "command": "", "file_text": null, "old_str": null, "new_str": null,
          "insert_line": null, "content": "x", "start": 1, "end": -1, "thought": "", "security_risk": -1,
          "impl_source": "llm_based_edit"}})j"},
    {"browse", R"j({"message": "I am browsing the URL: http://localhost:8000", "action": "browse",
 "args": {"url": "http://localhost:8000", "thought": "", "security_risk": -1, "return_axtree": false}})j"},
    {"browse_interactive", R"j({"message": "I am interacting with the browser:\n```\ngoto(\"http://x\")\n```", "action": "browse_interactive",
 "args": {"browser_actions": "goto(\"http://x\")", "thought": "", "browsergym_send_msg_to_user": "",
          "security_risk": -1, "return_axtree": false}})j"},
    {"call_tool_mcp", R"j({"message": "I am interacting with the MCP server with name:\n```\nfetch\n```\nand arguments:\n```\n{'url': 'http://x'}\n```",
 "action": "call_tool_mcp", "args": {"name": "fetch", "arguments": {"url": "http://x"}, "thought": "", "security_risk": -1}})j"},
    {"run", R"j({
  "message": "Command `ls -l` executed with exit code 0.",
  "observation": "run",
  "content": "total 0",
  "extras": {
    "command": "ls -l",
    "metadata": {
      "exit_code": 0, "pid": -1, "username": "openhands", "hostname": "a1b2c3",
      "working_dir": "/workspace", "py_interpreter_path": "/usr/bin/python",
      "prefix": "", "suffix": "\n[The command completed with exit code 0.]"
    },
    "hidden": false
  },
  "success": true
})j"},
    {"run", R"j({"message": "Command `python -u -m http.server 8000` executed with exit code -1.", "observation": "run",
 "content": "Serving HTTP on 0.0.0.0 port 8000 (http://0.0.0.0:8000/) ...",
 "extras": {"command": "python -u -m http.server 8000",
            "metadata": {"exit_code": -1, "pid": -1, "username": null, "hostname": null, "working_dir": null,
                         "py_interpreter_path": null, "prefix": "",
                         "suffix": "\n[The command timed out after 1.0 seconds. You may wait longer to see additional output by sending empty command '', send other commands to interact with the current process, send keys (\"C-c\", \"C-z\", \"C-d\") to interrupt/kill the previous command before sending your new command, or use the timeout parameter in execute_bash for future commands.]"},
            "hidden": false},
 "success": false})j"},
    {"run_ipython", R"j({"message": "Code executed in IPython cell.", "observation": "run_ipython",
 "content": "1\n[Jupyter current working directory: /workspace]\n[Jupyter Python interpreter: /openhands/poetry/openhands-ai-5O4_aCHf-py3.12/bin/python]",
 "extras": {"code": "print(1)", "image_urls": null}, "success": true})j"},
    {"read", R"j({"message": "I read the file /workspace/a.txt.", "observation": "read", "content": "hello\n",
 "extras": {"path": "/workspace/a.txt", "impl_source": "default"}})j"},
    {"write", R"j({"message": "I wrote to the file /workspace/a.txt.", "observation": "write", "content": "",
 "extras": {"path": "/workspace/a.txt"}})j"},
    {"edit", R"j({"message": "I edited the file /workspace/a.txt.", "observation": "edit",
 "content": "The file /workspace/a.txt has been edited. Here's the result of running `cat -n` on a snippet of /workspace/a.txt:\n     1\tb\nReview the changes and make sure they are as expected. Edit the file again if necessary.",
 "extras": {"path": "/workspace/a.txt", "prev_exist": false, "old_content": "a", "new_content": "b",
            "impl_source": "oh_aci", "diff": "--- /workspace/a.txt\n+++ /workspace/a.txt\n@@ -1 +1 @@\n-a\n+b", "_diff_cache": null}})j"},
    {"error", R"j({"message": "File not found: /workspace/x. Your current working directory is /workspace.", "observation": "error",
 "content": "File not found: /workspace/x. Your current working directory is /workspace.", "extras": {"error_id": ""}})j"},
    {"error", R"j({"message": "Action browse is not supported in the current runtime.", "observation": "error",
 "content": "Action browse is not supported in the current runtime.", "extras": {"error_id": "AGENT_ERROR$BAD_ACTION"}})j"},
    {"null", R"j({"message": "No observation", "observation": "null", "content": "", "extras": {}})j"},
    {"user_rejected", R"j({"message": "Action has been rejected by the user! Waiting for further user input.", "observation": "user_rejected", "content": "Action has been rejected by the user! Waiting for further user input.", "extras": {}})j"},
    {"think", R"j({"message": "Your thought has been logged.", "observation": "think", "content": "Your thought has been logged.", "extras": {}})j"},
    {"browse", R"j({"message": "Visited http://localhost:8000/", "observation": "browse",
 "content": "[Current URL: http://localhost:8000/]\n============== BEGIN webpage content ==============\n...\n============== END webpage content ==============\n",
 "extras": {"url": "http://localhost:8000/", "trigger_by_action": "browse", "screenshot": "data:image/png;base64,...",
            "screenshot_path": "/workspace/.browser_screenshots/screenshot_20250101_120000_000001.png", "set_of_marks": "...",
            "error": false, "goal_image_urls": [], "open_pages_urls": ["http://localhost:8000/"], "active_page_index": 0,
            "dom_object": {}, "axtree_object": {}, "extra_element_properties": {},
            "last_browser_action": "goto(\"http://localhost:8000\")", "last_browser_action_error": "",
            "focused_element_bid": "", "filter_visible_only": false}})j"},
    {"download", R"j({"message": "Downloaded the file at location: /workspace/file_1.pdf", "observation": "download",
 "content": "Execution of the previous action goto(...) resulted in a file download. The downloaded file is saved at location: /workspace/file_1.pdf",
 "extras": {"file_path": "/workspace/file_1.pdf"}})j"},
};

template <class F>
runbox::error capture_error(F&& f) {
    try {
        f();
    } catch (const runbox::error& e) {
        return e;
    }
    FAIL("expected runbox::error");
    return runbox::error(runbox::errc::unsupported, "unreachable");
}

ordered_json round_trip(const ordered_json& in) { return runbox::to_json(runbox::event_from_json(in)); }

std::string repeat(const std::string& unit, std::size_t n) {
    std::string out;
    out.reserve(unit.size() * n);
    for (std::size_t i = 0; i < n; ++i) out += unit;
    return out;
}

bool valid_utf8(const std::string& s) {
    try {
        (void)ordered_json(s).dump();  // strict: throws on invalid UTF-8
        return true;
    } catch (const nlohmann::json::exception&) {
        return false;
    }
}

}  // namespace

TEST_CASE("every reference example round-trips with identical JSON and key order", "[events][wire]") {
    REQUIRE(reference_examples.size() == 25);
    for (const auto& [type, text] : reference_examples) {
        INFO("example of type " << type << ": " << text);
        const ordered_json in = ordered_json::parse(text);
        const runbox::Event ev = runbox::event_from_json(in);
        const ordered_json out = runbox::to_json(ev);
        CHECK(out == in);
        CHECK(out.dump() == in.dump());  // ordered: same key order
        // The message is recomputed from the fields, never copied.
        CHECK(out.at("message") == in.at("message"));
        // The nlohmann::json overload parses the same event.
        CHECK(runbox::to_json(runbox::event_from_json(nlohmann::json::parse(text))) == in);
        // to_wire is the compact dump.
        CHECK(runbox::to_wire(ev) == in.dump());
    }
}

TEST_CASE("actions built in C++ serialise like the reference", "[events][wire]") {
    SECTION("default run action with the stream's bookkeeping and the runtime's default timeout") {
        runbox::CmdRunAction a{.command = "ls -l"};
        a.timeout = 120.0;
        a.meta.id = 5;
        a.meta.timestamp = "2025-01-01T00:00:00";
        a.meta.source = runbox::EventSource::agent;
        CHECK(runbox::to_json(runbox::Action(a)).dump() == ordered_json::parse(reference_examples[0].second).dump());
    }
    SECTION("explicit hard timeout makes the command blocking") {
        runbox::CmdRunAction a{.command = "sleep 100"};
        a.set_hard_timeout(300.0);
        CHECK(a.blocking);
        CHECK(runbox::to_wire(runbox::Action(a)) == ordered_json::parse(reference_examples[1].second).dump());
        runbox::Action generic = runbox::CmdRunAction{.command = "x"};
        runbox::set_hard_timeout(generic, 3.0, false);
        CHECK_FALSE(std::get<runbox::CmdRunAction>(generic).blocking);
        CHECK(runbox::timeout_of(generic) == 3.0);
    }
    SECTION("timeout key is absent when unset") {
        const auto j = runbox::to_json(runbox::Action(runbox::FileReadAction{.path = "/a"}));
        CHECK_FALSE(j.contains("timeout"));
        CHECK_FALSE(j.contains("id"));
        CHECK_FALSE(j.contains("cause"));
        CHECK(j.at("args").at("view_range").is_null());
    }
    SECTION("the timeout is a float on the wire") {
        runbox::Action a = runbox::FileReadAction{.path = "/a"};
        runbox::set_hard_timeout(a, 7);
        CHECK(runbox::to_wire(a).find("\"timeout\":7.0") != std::string::npos);
    }
}

TEST_CASE("observations built in C++ serialise like the reference", "[events][wire]") {
    runbox::CmdOutputMetadata md;
    md.exit_code = 0;
    md.username = "openhands";
    md.hostname = "a1b2c3";
    md.working_dir = "/workspace";
    md.py_interpreter_path = "/usr/bin/python";
    md.suffix = "\n[The command completed with exit code 0.]";
    const auto obs = runbox::make_cmd_output("total 0", "ls -l", md);
    const std::string expected = ordered_json::parse(reference_examples[12].second).dump();
    REQUIRE(reference_examples[12].first == "run");
    CHECK(runbox::to_wire(runbox::Observation(obs)) == expected);

    runbox::CmdOutputObservation running = runbox::make_cmd_output("x", "sleep 9", {});
    const auto j = runbox::to_json(runbox::Observation(running));
    CHECK(j.at("success") == false);
    CHECK(j.at("message") == "Command `sleep 9` executed with exit code -1.");

    const auto edit = runbox::to_json(runbox::Observation(runbox::FileEditObservation{.content = "c", .path = "/p"}));
    CHECK(edit.at("extras").at("_diff_cache").is_null());
    CHECK(edit.at("extras").at("impl_source") == "llm_based_edit");
    CHECK_FALSE(edit.contains("success"));

    const auto ipy = runbox::to_json(runbox::Observation(runbox::IPythonRunCellObservation{.content = "", .code = "1"}));
    CHECK(ipy.at("success") == true);
    CHECK_FALSE(runbox::to_json(runbox::Observation(runbox::ErrorObservation{.content = "boom"})).contains("success"));
}

TEST_CASE("type names, runnable flags, messages and meta accessors", "[events]") {
    runbox::Action run = runbox::CmdRunAction{.command = "echo"};
    CHECK(runbox::action_type(run) == "run");
    CHECK(runbox::is_runnable(run));
    CHECK(runbox::message_of(run) == "Running command: echo");
    CHECK_FALSE(runbox::is_runnable(runbox::Action(runbox::NullAction{})));
    CHECK_FALSE(runbox::is_runnable(runbox::Action(runbox::AgentThinkAction{.thought = "t"})));
    CHECK(runbox::is_runnable(runbox::Action(runbox::MCPAction{.name = "fetch"})));
    CHECK(runbox::action_type(runbox::Action(runbox::AgentRejectAction{})) == "reject");
    CHECK(runbox::action_type(runbox::Action(runbox::AgentThinkAction{})) == "think");
    CHECK(runbox::action_type(runbox::Action(runbox::NullAction{})) == "null");
    runbox::meta(run).cause = 3;
    CHECK(std::get<runbox::CmdRunAction>(run).meta.cause == 3);

    runbox::Observation obs = runbox::NullObservation{};
    CHECK(runbox::observation_type(obs) == "null");
    CHECK(runbox::message_of(obs) == "No observation");
    runbox::Event ev = obs;
    runbox::meta(ev).id = 9;
    CHECK(runbox::meta(ev).id == 9);
    CHECK(runbox::to_json(ev).at("id") == 9);
}

TEST_CASE("MCP action message renders arguments as a Python dict", "[events]") {
    runbox::MCPAction a{.name = "srv"};
    a.arguments = ordered_json::parse(R"j({"s": "it's", "n": 1, "f": 1.5, "b": true, "z": null, "l": [1, "a"], "q": "a'b\"c\n"})j");
    const std::string msg = runbox::message_of(runbox::Action(a));
    CHECK(msg ==
          "I am interacting with the MCP server with name:\n```\nsrv\n```\nand arguments:\n```\n"
          "{'s': \"it's\", 'n': 1, 'f': 1.5, 'b': True, 'z': None, 'l': [1, 'a'], 'q': 'a\\'b\"c\\n'}\n```");
}

// ---- reference §3.6, one test per rule ----------------------------------------

TEST_CASE("3.6: a dict without action or observation is an unknown event type", "[events][rules]") {
    auto e = capture_error([] { (void)runbox::event_from_json(ordered_json::parse(R"j({"message": "x"})j")); });
    CHECK(e.code() == runbox::errc::bad_response);
    CHECK(e.detail() == "Unknown event type");
    CHECK(capture_error([] { (void)runbox::event_from_json(ordered_json::array()); }).detail() ==
          "Unknown event type");
}

TEST_CASE("3.6: args may omit defaulted fields", "[events][rules]") {
    const std::vector<std::pair<std::string, std::size_t>> minimal = {
        {R"j({"action": "run", "args": {"command": "y", "is_input": true}, "timeout": 120.0})j", 2},
        {R"j({"action": "run_ipython", "args": {"code": "print(1)"}, "timeout": 120.0})j", 3},
        {R"j({"action": "read", "args": {"path": "/workspace/a.txt"}})j", 4},
        {R"j({"action": "write", "args": {"path": "/workspace/a.txt", "content": "hello"}})j", 6},
        {R"j({"action": "edit", "args": {"path": "/workspace/a.txt", "command": "str_replace", "old_str": "a", "new_str": "b"}})j", 7},
        {R"j({"action": "browse", "args": {"url": "http://localhost:8000"}})j", 9},
        {R"j({"action": "call_tool_mcp", "args": {"name": "fetch", "arguments": {"url": "http://x"}}})j", 11},
    };
    for (const auto& [text, index] : minimal) {
        INFO(text);
        CHECK(round_trip(ordered_json::parse(text)).dump() ==
              ordered_json::parse(reference_examples.at(index).second).dump());
    }
    // No args at all is fine for an action whose args all have defaults.
    CHECK(round_trip(ordered_json::parse(R"j({"action": "null"})j")).at("args") == ordered_json::object());
}

TEST_CASE("3.6: args.timestamp is removed and becomes the timestamp", "[events][rules]") {
    auto a = runbox::action_from_json(
        ordered_json::parse(R"j({"action": "run", "args": {"command": "ls", "timestamp": "2024-05-06T07:08:09"}})j"));
    CHECK(runbox::meta(a).timestamp == "2024-05-06T07:08:09");
    auto j = runbox::to_json(a);
    CHECK_FALSE(j.at("args").contains("timestamp"));
    CHECK(j.at("timestamp") == "2024-05-06T07:08:09");
    // A top-level timestamp wins.
    auto b = runbox::action_from_json(ordered_json::parse(
        R"j({"timestamp": "2030-01-01T00:00:00", "action": "run", "args": {"command": "ls", "timestamp": "2024-05-06T07:08:09"}})j"));
    CHECK(runbox::meta(b).timestamp == "2030-01-01T00:00:00");
}

TEST_CASE("3.6: legacy is_confirmed becomes confirmation_state", "[events][rules]") {
    auto a = runbox::action_from_json(
        ordered_json::parse(R"j({"action": "run", "args": {"command": "ls", "is_confirmed": "rejected"}})j"));
    CHECK(std::get<runbox::CmdRunAction>(a).confirmation_state == runbox::ConfirmationState::rejected);
    auto j = runbox::to_json(a);
    CHECK_FALSE(j.at("args").contains("is_confirmed"));
    CHECK(j.at("args").at("confirmation_state") == "rejected");
}

TEST_CASE("3.6: legacy images_urls becomes image_urls", "[events][rules]") {
    auto a = runbox::action_from_json(ordered_json::parse(
        R"j({"action": "message", "args": {"content": "hi", "images_urls": ["data:image/png;base64,AA"]}})j"));
    const auto& m = std::get<runbox::MessageAction>(a);
    REQUIRE(m.image_urls.has_value());
    CHECK(m.image_urls->at(0) == "data:image/png;base64,AA");
    auto j = runbox::to_json(a);
    CHECK(j.at("args").dump() ==
          R"j({"content":"hi","file_urls":null,"image_urls":["data:image/png;base64,AA"],"wait_for_response":false,"security_risk":-1})j");
    CHECK(j.at("message") == "hi");
}

TEST_CASE("3.6: integer security_risk becomes the enum, invalid values are dropped", "[events][rules]") {
    auto parse = [](const std::string& risk) {
        return std::get<runbox::CmdRunAction>(runbox::action_from_json(ordered_json::parse(
                                                  R"j({"action": "run", "args": {"command": "ls", "security_risk": )j" +
                                                  risk + "}}")))
            .security_risk;
    };
    CHECK(parse("2") == runbox::SecurityRisk::high);
    CHECK(parse("0") == runbox::SecurityRisk::low);
    CHECK(parse("1") == runbox::SecurityRisk::medium);
    CHECK(parse("7") == runbox::SecurityRisk::unknown);
    CHECK(parse("-5") == runbox::SecurityRisk::unknown);
    CHECK(parse("\"HIGH\"") == runbox::SecurityRisk::unknown);
}

TEST_CASE("3.6: deprecated keep_prompt and task_completed are dropped", "[events][rules]") {
    auto a = runbox::action_from_json(ordered_json::parse(
        R"j({"action": "run", "args": {"command": "ls", "keep_prompt": false, "task_completed": true}})j"));
    auto j = runbox::to_json(a);
    CHECK_FALSE(j.at("args").contains("keep_prompt"));
    CHECK_FALSE(j.at("args").contains("task_completed"));
    CHECK(std::get<runbox::CmdRunAction>(a).command == "ls");
}

TEST_CASE("3.6: legacy translated_ipython_code is expanded into edit args", "[events][rules]") {
    const auto in = ordered_json::parse(R"j({"action": "edit", "args": {"path": "/workspace/a.txt", "impl_source": "oh_aci",
        "translated_ipython_code": "print(file_editor(**{'command': 'str_replace', 'path': '/workspace/a.txt', 'old_str': 'a\\n', 'new_str': \"it's\", 'insert_line': None}))"}})j");
    auto a = runbox::action_from_json(in);
    const auto& e = std::get<runbox::FileEditAction>(a);
    CHECK(e.command == "str_replace");
    CHECK(e.old_str == "a\n");
    CHECK(e.new_str == "it's");
    CHECK_FALSE(e.insert_line.has_value());
    CHECK_FALSE(runbox::to_json(a).at("args").contains("translated_ipython_code"));
    // Anything else is simply removed.
    auto b = runbox::action_from_json(ordered_json::parse(
        R"j({"action": "edit", "args": {"path": "/p", "translated_ipython_code": "print('hi')"}})j"));
    CHECK(std::get<runbox::FileEditAction>(b).command.empty());
}

TEST_CASE("3.6: unknown args are an error naming them", "[events][rules]") {
    auto e = capture_error([] {
        (void)runbox::action_from_json(
            ordered_json::parse(R"j({"action": "run", "args": {"command": "ls", "bogus": 1, "other": 2}})j"));
    });
    CHECK(e.code() == runbox::errc::bad_response);
    CHECK(e.detail().find("action=run has the wrong arguments") == 0);
    CHECK(e.detail().find("bogus") != std::string::npos);
    CHECK(e.detail().find("other") != std::string::npos);
    // A required argument that is missing, or a value of the wrong type, is the same error.
    auto missing = capture_error([] { (void)runbox::action_from_json(ordered_json::parse(R"j({"action": "read", "args": {}})j")); });
    CHECK(missing.detail().find("action=read has the wrong arguments") == 0);
    CHECK(missing.detail().find("path") != std::string::npos);
    auto typed = capture_error(
        [] { (void)runbox::action_from_json(ordered_json::parse(R"j({"action": "run", "args": {"command": 5}})j")); });
    CHECK(typed.detail().find("action=run has the wrong arguments") == 0);
    auto unknown_type = capture_error([] { (void)runbox::action_from_json(ordered_json::parse(R"j({"action": "fly"})j")); });
    CHECK(unknown_type.code() == runbox::errc::bad_response);
}

TEST_CASE("3.6: top-level timeout is applied with blocking = args.blocking", "[events][rules]") {
    auto plain = std::get<runbox::CmdRunAction>(
        runbox::action_from_json(ordered_json::parse(R"j({"action": "run", "args": {"command": "x"}, "timeout": 5})j")));
    CHECK(plain.timeout == 5.0);
    CHECK_FALSE(plain.blocking);
    auto blocking = std::get<runbox::CmdRunAction>(runbox::action_from_json(
        ordered_json::parse(R"j({"action": "run", "args": {"command": "x", "blocking": true}, "timeout": 5})j")));
    CHECK(blocking.timeout == 5.0);
    CHECK(blocking.blocking);
    auto none = std::get<runbox::CmdRunAction>(
        runbox::action_from_json(ordered_json::parse(R"j({"action": "run", "args": {"command": "x"}})j")));
    CHECK_FALSE(none.timeout.has_value());
    auto read = runbox::action_from_json(ordered_json::parse(R"j({"action": "read", "args": {"path": "/p"}, "timeout": 2.5})j"));
    CHECK(runbox::timeout_of(read) == 2.5);
}

TEST_CASE("3.6: observation message and unknown top-level keys are ignored", "[events][rules]") {
    const auto in = ordered_json::parse(R"j({"message": "whatever", "observation": "run", "content": "ok", "zzz": [1],
        "extras": {"command": "true", "metadata": {"exit_code": 0}, "hidden": false}, "success": false})j");
    const auto out = round_trip(in);
    CHECK(out.at("message") == "Command `true` executed with exit code 0.");
    CHECK(out.at("success") == true);
    CHECK_FALSE(out.contains("zzz"));
}

TEST_CASE("3.6: observation content defaults to empty", "[events][rules]") {
    auto o = runbox::observation_from_json(ordered_json::parse(R"j({"observation": "write", "extras": {"path": "/a"}})j"));
    CHECK(std::get<runbox::FileWriteObservation>(o).content.empty());
    CHECK(runbox::to_json(o).at("content") == "");
}

TEST_CASE("3.6: legacy extras exit_code and command_id move into metadata", "[events][rules]") {
    auto o = runbox::observation_from_json(ordered_json::parse(
        R"j({"observation": "run", "content": "", "extras": {"command": "ls", "exit_code": 2, "command_id": 77}})j"));
    const auto& c = std::get<runbox::CmdOutputObservation>(o);
    CHECK(c.metadata.exit_code == 2);
    CHECK(c.metadata.pid == 77);
    const auto extras = runbox::to_json(o).at("extras");
    CHECK_FALSE(extras.contains("exit_code"));
    CHECK_FALSE(extras.contains("command_id"));
    CHECK(extras.at("metadata").at("exit_code") == 2);
}

TEST_CASE("3.6: formatted_output_and_error is dropped", "[events][rules]") {
    auto o = runbox::observation_from_json(ordered_json::parse(
        R"j({"observation": "read", "content": "x", "extras": {"path": "/a", "formatted_output_and_error": "x"}})j"));
    CHECK_FALSE(runbox::to_json(o).at("extras").contains("formatted_output_and_error"));
}

TEST_CASE("3.6: missing metadata is the default metadata", "[events][rules]") {
    auto o = runbox::observation_from_json(
        ordered_json::parse(R"j({"observation": "run", "content": "", "extras": {"command": "ls"}})j"));
    CHECK(std::get<runbox::CmdOutputObservation>(o).metadata == runbox::CmdOutputMetadata{});
    CHECK(runbox::to_json(o).at("extras").at("metadata").dump() ==
          R"j({"exit_code":-1,"pid":-1,"username":null,"hostname":null,"working_dir":null,"py_interpreter_path":null,"prefix":"","suffix":""})j");
}

TEST_CASE("3.6: unknown extras are an error except for run", "[events][rules]") {
    auto e = capture_error([] {
        (void)runbox::observation_from_json(
            ordered_json::parse(R"j({"observation": "read", "content": "", "extras": {"path": "/a", "mystery": 1}})j"));
    });
    CHECK(e.code() == runbox::errc::bad_response);
    CHECK(e.detail().find("observation=read") != std::string::npos);
    CHECK(e.detail().find("mystery") != std::string::npos);
    CHECK_NOTHROW(runbox::observation_from_json(ordered_json::parse(
        R"j({"observation": "run", "content": "", "extras": {"command": "ls", "mystery": 1}})j")));
    CHECK_THROWS_AS(runbox::observation_from_json(
                        ordered_json::parse(R"j({"observation": "null", "content": "", "extras": {"x": 1}})j")),
                    runbox::error);
}

TEST_CASE("3.6: id, timestamp, source, cause, tool_call_metadata and llm_metrics are copied", "[events][rules]") {
    const auto in = ordered_json::parse(R"j({"id": 12, "timestamp": "2025-01-01T12:00:00.123456", "source": "environment",
        "message": "I wrote to the file /a.", "cause": 11, "observation": "write",
        "tool_call_metadata": {"function_name": "str_replace_editor", "tool_call_id": "t1"}, "llm_metrics": {"accumulated_cost": 0.5},
        "content": "", "extras": {"path": "/a"}})j");
    auto o = runbox::observation_from_json(in);
    const auto& m = runbox::meta(o);
    CHECK(m.id == 12);
    CHECK(m.timestamp == "2025-01-01T12:00:00.123456");
    CHECK(m.source == runbox::EventSource::environment);
    CHECK(m.cause == 11);
    REQUIRE(m.tool_call_metadata.has_value());
    CHECK(m.tool_call_metadata->at("tool_call_id") == "t1");
    CHECK(runbox::to_json(o).dump() == in.dump());
    // id -1 means "unset" and is omitted.
    auto unset = runbox::action_from_json(ordered_json::parse(R"j({"id": -1, "action": "null"})j"));
    CHECK_FALSE(runbox::meta(unset).id.has_value());
    CHECK_THROWS_AS(runbox::action_from_json(ordered_json::parse(R"j({"source": "robot", "action": "null"})j")),
                    runbox::error);
}

// ---- CmdOutputMetadata ----------------------------------------------------------

TEST_CASE("command metadata parses numeric strings float->int, failures become -1", "[events][metadata]") {
    auto m = runbox::cmd_output_metadata_from_json(ordered_json::parse(
        R"j({"exit_code": "0", "pid": "12.7", "username": "u", "hostname": "h", "working_dir": "/w", "py_interpreter_path": "", "extra": 1})j"));
    CHECK(m.exit_code == 0);
    CHECK(m.pid == 12);
    CHECK(m.username == "u");
    CHECK(m.working_dir == "/w");
    CHECK(m.py_interpreter_path == "");
    auto bad = runbox::cmd_output_metadata_from_json(ordered_json::parse(R"j({"exit_code": "abc", "pid": ""})j"));
    CHECK(bad.exit_code == -1);
    CHECK(bad.pid == -1);
    auto nan = runbox::cmd_output_metadata_from_json(nlohmann::json::parse(R"j({"exit_code": "nan", "pid": " 130 "})j"));
    CHECK(nan.exit_code == -1);
    CHECK(nan.pid == 130);
    CHECK(runbox::cmd_output_metadata_from_json(ordered_json::parse(R"j({"exit_code": 127})j")).exit_code == 127);
}

TEST_CASE("agent-facing text of a command observation", "[events][metadata]") {
    runbox::CmdOutputMetadata md;
    md.prefix = "[prefix]";
    md.suffix = "[suffix]";
    auto obs = runbox::make_cmd_output("out", "c", md);
    CHECK(runbox::to_agent_text(obs) == "[prefix]out[suffix]");
    obs.metadata.working_dir = "/workspace";
    obs.metadata.py_interpreter_path = "/usr/bin/python";
    obs.metadata.exit_code = 1;
    CHECK(runbox::to_agent_text(obs) ==
          "[prefix]out[suffix]\n[Current working directory: /workspace]\n[Python interpreter: /usr/bin/python]\n"
          "[Command finished with exit code 1]");
    obs.metadata.py_interpreter_path = "";
    CHECK(runbox::to_agent_text(obs).find("Python interpreter") == std::string::npos);
}

// ---- truncation ---------------------------------------------------------------------

TEST_CASE("content of exactly 30000 characters is untouched", "[events][truncation]") {
    const std::string content = repeat("a", 30000);
    CHECK(runbox::truncate_observation_content(content) == content);
    CHECK(runbox::make_cmd_output(content, "c", {}).content == content);
}

TEST_CASE("content of 30001 characters keeps 15000 at each end around the notice", "[events][truncation]") {
    const std::string content = repeat("h", 15000) + "X" + repeat("t", 15000);
    const std::string expected =
        repeat("h", 15000) + "\n[... Observation truncated due to length ...]\n" + repeat("t", 15000);
    CHECK(runbox::truncate_observation_content(content) == expected);
    CHECK(runbox::make_cmd_output(content, "c", {}).content == expected);
    // Hidden output is never truncated.
    CHECK(runbox::make_cmd_output(content, "c", {}, true).content == content);
}

TEST_CASE("truncation counts code points and never splits one", "[events][truncation]") {
    SECTION("two-byte characters: 30000 fit") {
        const std::string content = repeat("\xC3\xA9", 30000);  // é
        CHECK(runbox::utf8_length(content) == 30000);
        CHECK(runbox::truncate_observation_content(content) == content);
    }
    SECTION("mixed widths over the limit") {
        // 15000 x 4-byte, 1 x 3-byte marker, 15000 x 2-byte
        const std::string content = repeat("\xF0\x9F\x98\x80", 15000) + "\xE2\x82\xAC" + repeat("\xC3\xA9", 15000);
        const std::string out = runbox::truncate_observation_content(content);
        CHECK(out == repeat("\xF0\x9F\x98\x80", 15000) + std::string(runbox::truncation_notice) + repeat("\xC3\xA9", 15000));
        CHECK(valid_utf8(out));
        CHECK(runbox::utf8_length(out) == 30000 + runbox::utf8_length(runbox::truncation_notice));
    }
}

TEST_CASE("a deserialised run observation is truncated unless hidden", "[events][truncation]") {
    ordered_json in = ordered_json::parse(R"j({"observation": "run", "extras": {"command": "c", "hidden": false}})j");
    in["content"] = repeat("z", 30001);
    auto visible = std::get<runbox::CmdOutputObservation>(runbox::observation_from_json(in));
    CHECK(runbox::utf8_length(visible.content) == 30000 + runbox::utf8_length(runbox::truncation_notice));
    CHECK(visible.content.find("Observation truncated due to length") != std::string::npos);
    in["extras"]["hidden"] = true;
    auto hidden = std::get<runbox::CmdOutputObservation>(runbox::observation_from_json(in));
    CHECK(hidden.content.size() == 30001);
}

TEST_CASE("to_wire replaces invalid UTF-8 instead of throwing", "[events][wire]") {
    auto obs = runbox::make_cmd_output(std::string("ok\xFF\xFE"), "c", {});
    const std::string wire = runbox::to_wire(runbox::Observation(obs));
    CHECK(wire.find("ok\xEF\xBF\xBD") != std::string::npos);  // U+FFFD
    CHECK(valid_utf8(wire));
}

TEST_CASE("concrete event types serialise without wrapping them in the variant", "[events][wire]") {
    const runbox::CmdRunAction a{.command = "ls"};
    CHECK(runbox::to_json(a) == runbox::to_json(runbox::Action(a)));
    CHECK(runbox::to_wire(a) == runbox::to_wire(runbox::Action(a)));
    CHECK(runbox::message_of(a) == "Running command: ls");
    const runbox::FileWriteObservation o{.content = "", .path = "/a"};
    CHECK(runbox::to_json(o) == runbox::to_json(runbox::Observation(o)));
    CHECK(runbox::message_of(o) == "I wrote to the file /a.");
    // Actions and observations convert straight to an Event.
    runbox::Event e = runbox::CmdRunAction{.command = "x"};
    CHECK(std::holds_alternative<runbox::Action>(e));
}

// ---------------------------------------------------------------------------
// nlohmann's customisation point (ADL to_json / from_json in namespace runbox)

namespace {

// `nlohmann::json j = x; j.get<T>()` and the same through ordered_json, for one concrete type.
template <class T>
void check_adl_round_trip(const T& x) {
    INFO(std::string(T::type));
    const nlohmann::json j = x;
    CHECK(j.get<T>() == x);
    CHECK(nlohmann::json(runbox::to_json(x)) == j);
    const ordered_json oj = x;
    CHECK(oj.dump() == runbox::to_json(x).dump());  // wire key order kept
    CHECK(oj.get<T>() == x);
}

template <class Variant>
void check_every_alternative() {
    [&]<std::size_t... I>(std::index_sequence<I...>) {
        (check_adl_round_trip(std::variant_alternative_t<I, Variant>{}), ...);
    }(std::make_index_sequence<std::variant_size_v<Variant>>{});
}

}  // namespace

TEST_CASE("every action and observation type converts through nlohmann's to_json/from_json", "[events][adl]") {
    check_every_alternative<runbox::Action>();
    check_every_alternative<runbox::Observation>();
}

TEST_CASE("the reference examples round-trip through json = x and j.get<T>()", "[events][adl]") {
    for (const auto& [type, text] : reference_examples) {
        INFO(text);
        const runbox::Event event = runbox::event_from_json(ordered_json::parse(text));
        std::visit([](const auto& family) { std::visit([](const auto& x) { check_adl_round_trip(x); }, family); },
                   event);
        const nlohmann::json j = event;
        CHECK(j.get<runbox::Event>() == event);
        CHECK(j == nlohmann::json(runbox::to_json(event)));
    }
}

TEST_CASE("Action and Observation variants convert through nlohmann, and a wrong type is bad_response", "[events][adl]") {
    runbox::CmdRunAction run;
    run.command = "echo hi";
    run.blocking = true;
    run.timeout = 30.0;
    const runbox::Action action = run;
    const nlohmann::json j = action;
    CHECK(j.at("action") == "run");
    CHECK(j.at("args").at("command") == "echo hi");
    CHECK(j.get<runbox::Action>() == action);
    CHECK(j.get<runbox::CmdRunAction>() == run);

    runbox::ErrorObservation failure;
    failure.content = "boom";
    const runbox::Observation observation = failure;
    const nlohmann::json o = observation;
    CHECK(o.at("observation") == "error");
    CHECK(o.get<runbox::Observation>() == observation);

    try {
        (void)j.get<runbox::FileReadAction>();
        FAIL("a run action was read as a read action");
    } catch (const runbox::error& e) {
        CHECK(e.code() == runbox::errc::bad_response);
        CHECK(std::string(e.what()).find("expected action=read, the JSON has action=run") != std::string::npos);
    }
    CHECK_THROWS_AS(o.get<runbox::Action>(), runbox::error);
    CHECK_THROWS_AS(nlohmann::json::parse(R"({"action": 5})").get<runbox::Event>(), runbox::error);
}

}  // namespace test_events
