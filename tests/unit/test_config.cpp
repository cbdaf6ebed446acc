#include "runbox/config.hpp"

#include <map>
#include <string>

#include "catch.hpp"

namespace test_config {  // several files share a unit (tests/CMakeLists.txt)

namespace {
runbox::EnvLookup env_of(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
        const auto it = vars.find(name);
        if (it == vars.end()) return std::nullopt;
        return it->second;
    };
}

std::string message_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const runbox::error& e) {
        REQUIRE(e.code() == runbox::errc::config_invalid);
        return e.what();
    }
    FAIL("no runbox::error thrown");
    return {};
}
}  // namespace

TEST_CASE("config: defaults are OpenHands' except runtime, which is local") {
    const runbox::Config config;
    CHECK(config.runtime == "local");
    CHECK(config.sandbox.timeout == 120);
    CHECK_FALSE(config.sandbox.keep_runtime_alive);
    CHECK(config.workspace_mount_path_in_sandbox == "/workspace");
    CHECK(config.sandbox.base_container_image == "nikolaik/python-nodejs:python3.12-nodejs22");
    CHECK_FALSE(config.sandbox.runtime_container_image);
    CHECK(config.sandbox.close_delay == 3600);
    CHECK(config.sandbox.pause_closed_runtimes);
    CHECK(config.git_user_name == "openhands");
    CHECK(config.git_user_email == "openhands@all-hands.dev");
    CHECK(config.run_as_openhands);
    CHECK_FALSE(config.debug);
}

TEST_CASE("config: from JSON with the config.toml shape, then the environment wins") {
    const auto json = nlohmann::json::parse(R"j({
        "runtime": "daytona", "debug": true, "workspace_mount_path_in_sandbox": "/work",
        "sandbox": {"timeout": 30, "runtime_container_image": "img:1",
                    "runtime_startup_env_vars": {"NO_CHANGE_TIMEOUT_SECONDS": "5"}},
        "providers": {"daytona": {"api_key": "from-json", "target": "us"}}
    })j");
    const auto config = runbox::Config::from_json(json, env_of({{"SANDBOX_TIMEOUT", "45"}, {"RUNTIME", ""}}));
    CHECK(config.runtime == "daytona");  // empty env values are ignored
    CHECK(config.debug);
    CHECK(config.workspace_mount_path_in_sandbox == "/work");
    CHECK(config.sandbox.timeout == 45);
    CHECK(config.sandbox.runtime_container_image == "img:1");
    CHECK(config.sandbox.runtime_startup_env_vars.at("NO_CHANGE_TIMEOUT_SECONDS") == "5");
    CHECK(config.setting("daytona", "api_key", "DAYTONA_API_KEY") == "from-json");
    CHECK(config.setting("daytona", "target") == "us");
}

TEST_CASE("config: environment variables follow OpenHands' names and casting") {
    const auto config = runbox::Config::from_env(env_of({
        {"RUNTIME", "runloop"},
        {"DEBUG", "TRUE"},
        {"RUN_AS_OPENHANDS", "0"},
        {"SANDBOX_KEEP_RUNTIME_ALIVE", "1"},
        {"SANDBOX_RUNTIME_STARTUP_ENV_VARS", "{'A': '1', 'B': 'two'}"},
        {"SANDBOX_VSCODE_PORT", "4445"},
        {"WORKSPACE_BASE", "/tmp/ws"},
    }));
    CHECK(config.runtime == "runloop");
    CHECK(config.debug);
    CHECK_FALSE(config.run_as_openhands);
    CHECK(config.sandbox.keep_runtime_alive);
    CHECK(config.sandbox.runtime_startup_env_vars == std::map<std::string, std::string>{{"A", "1"}, {"B", "two"}});
    CHECK(config.sandbox.vscode_port == 4445);
    CHECK(config.workspace_base == "/tmp/ws");
}

TEST_CASE("config: bad values name the field or the variable") {
    CHECK(message_of([] { runbox::Config::from_json(nlohmann::json::parse(R"({"sandbox": {"timeout": "x"}})")); })
              .find("'sandbox.timeout': expected an integer") != std::string::npos);
    CHECK(message_of([] { runbox::Config::from_json(nlohmann::json::parse(R"({"sandbox": {"nope": 1}})")); })
              .find("unknown config field 'sandbox.nope'") != std::string::npos);
    CHECK(message_of([] { runbox::Config::from_json(nlohmann::json::parse(R"({"runtimes": "x"})")); })
              .find("unknown config field 'runtimes'") != std::string::npos);
    CHECK(message_of([] { runbox::Config::from_json(nlohmann::json::parse(R"({"debug": "yes"})")); })
              .find("'debug': expected true or false") != std::string::npos);
    CHECK(message_of([] { runbox::Config::from_env(env_of({{"SANDBOX_TIMEOUT", "ten"}})); })
              .find("environment variable SANDBOX_TIMEOUT") != std::string::npos);
    CHECK(message_of([] { runbox::Config::from_env(env_of({{"SANDBOX_TIMEOUT", "0"}})); })
              .find("sandbox.timeout") != std::string::npos);
    CHECK(message_of([] {
              runbox::Config::from_env(env_of({{"SANDBOX_RUNTIME_STARTUP_ENV_VARS", "[1,2]"}}));
          }).find("SANDBOX_RUNTIME_STARTUP_ENV_VARS") != std::string::npos);
}

TEST_CASE("config: settings fall back to the environment, required ones name the variable") {
    runbox::Config config;
    config.use_environment({{"DAYTONA_API_KEY", "env-key"}, {"EMPTY", ""}});
    CHECK(config.setting("daytona", "api_key", "DAYTONA_API_KEY") == "env-key");
    CHECK_FALSE(config.setting("daytona", "api_url", "DAYTONA_API_URL"));
    CHECK_FALSE(config.setting("daytona", "x", "EMPTY"));
    config.providers["daytona"]["api_key"] = "json-key";
    config.providers["daytona"]["poll_interval_ms"] = 25;
    CHECK(config.setting("daytona", "api_key", "DAYTONA_API_KEY") == "json-key");
    CHECK(config.setting("daytona", "poll_interval_ms") == "25");

    const std::string what = message_of([&] { (void)config.required_setting("runloop", "api_key", "RUNLOOP_API_KEY"); });
    CHECK(what.find("RUNLOOP_API_KEY environment variable is required") != std::string::npos);
}

TEST_CASE("config: use_environment replaces the whole environment, including the list") {
    runbox::Config config;
    config.use_environment({{"SANDBOX_ENV_FOO", "bar"}, {"OTHER", "x"}});
    const auto all = config.env_list();
    REQUIRE(all.size() == 2);
    CHECK(all[0].first == "OTHER");
    CHECK(all[1] == std::pair<std::string, std::string>{"SANDBOX_ENV_FOO", "bar"});
    CHECK_FALSE(config.env("PATH"));
}

TEST_CASE("config: transport options come from JSON and are checked") {
    const auto config = runbox::Config::from_json(
        nlohmann::json::parse(R"({"transport": {"verify_tls": false, "ca_cert_path": "/etc/ca.pem", "connect_timeout_ms": 2500}})"),
        env_of({}));
    CHECK_FALSE(config.transport.verify_tls);
    CHECK(config.transport.ca_cert_path == "/etc/ca.pem");
    CHECK(config.transport.connect_timeout == std::chrono::milliseconds(2500));
    CHECK(runbox::Config{}.transport.verify_tls);  // on unless turned off
    CHECK(message_of([] { runbox::Config::from_json(nlohmann::json::parse(R"({"transport": {"verify_tls": "no"}})")); })
              .find("'transport.verify_tls': expected true or false") != std::string::npos);
    CHECK(message_of([] { runbox::Config::from_json(nlohmann::json::parse(R"({"transport": {"proxy": "x"}})")); })
              .find("'transport.proxy'") != std::string::npos);
}

TEST_CASE("config: typed provider settings check their values") {
    runbox::Config config;
    config.use_environment({{"X_PORT", "8080"}, {"X_BAD", "12abc"}, {"X_FLAG", "TRUE"}, {"X_OFF", "yes"}});
    config.providers["x"]["poll_interval_ms"] = 25;
    CHECK(config.integer_setting("x", "port", "X_PORT", 1, 1) == 8080);
    CHECK(config.integer_setting("x", "missing", "X_MISSING", 7) == 7);
    CHECK(config.millis_setting("x", "poll_interval_ms", {}, std::chrono::milliseconds(1000)) == std::chrono::milliseconds(25));
    CHECK(config.flag_setting("x", "flag", "X_FLAG", false));
    CHECK_FALSE(config.flag_setting("x", "off", "X_OFF", true));  // only true/1 are true
    CHECK(config.flag_setting("x", "unset", "X_UNSET", true));
    const std::string what = message_of([&] { (void)config.integer_setting("x", "bad", "X_BAD", 1, 1); });
    CHECK(what.find("x setting 'bad' (X_BAD) must be an integer >= 1") != std::string::npos);
    CHECK(message_of([&] { (void)config.integer_setting("x", "port", "X_PORT", 1, 9000); }).find(">= 9000") != std::string::npos);
}

}  // namespace test_config
