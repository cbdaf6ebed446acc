// runbox - the command line: try a sandbox, run a command in it, copy files, clean up.
//
//   runbox run -- echo hi                                  local sandbox, no settings needed
//   runbox --provider daytona run --keep -- uname -a       leaves the sandbox running, prints its sid
//   runbox --provider daytona exec --sid S -- ls           attaches to a kept sandbox
//   runbox --provider daytona cp ./notes.txt S:/workspace  `S:` names the sandbox side
//   runbox --provider daytona ls --sid S /workspace
//   runbox server 3000 --working-dir /workspace ...        the action server (runbox-server)
//   runbox --provider daytona list                          labelled sandboxes, with age and state
//   runbox sweep --older-than 30m --dry-run                what a crash left behind, every provider
//   runbox fake daytona --port 0                           a local fake of a provider (runbox-fake)
//
// Built on the public API only (make_runtime and the default provider list). Settings come from
// the environment (the same variables as runbox::Config::from_env) or from --config FILE (the
// JSON keys of runbox::Config). Exit codes: run/exec exit with the command's exit code, 124 when
// --timeout ran out, 125 when runbox itself failed; every other subcommand exits 0 on success,
// 1 on failure; a usage error exits 2.
#include <runbox/runbox.hpp>
#include <runbox/zip.hpp>

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <random>
#include <type_traits>
#include <string>
#include <string_view>
#include <vector>

#include <boost/mp11/algorithm.hpp>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr int exit_failure = 1;
constexpr int exit_usage = 2;
constexpr int exit_timeout = 124;
constexpr int exit_runbox_failed = 125;

struct Globals {
    std::string provider;
    std::string config_file;
    bool json_output = false;
    bool quiet = false;
};

/// The status callback on stderr: one updating line on a terminal, plain lines otherwise.
class Progress {
public:
    explicit Progress(bool quiet) : quiet_(quiet), tty_(::isatty(STDERR_FILENO) == 1) {}
    ~Progress() { finish(); }
    Progress(const Progress&) = delete;
    Progress& operator=(const Progress&) = delete;

    runbox::StatusCallback callback() {
        return [this](std::string_view, runbox::RuntimeStatus status, std::string_view message) {
            show(status, message);
        };
    }
    void finish() {
        if (open_line_) std::fputs("\n", stderr);
        open_line_ = false;
    }

private:
    void show(runbox::RuntimeStatus status, std::string_view message) {
        const bool failed = status == runbox::RuntimeStatus::error;
        if ((quiet_ && !failed) || status == runbox::RuntimeStatus::stopped) return;
        const std::string text = message.empty() ? std::string(runbox::to_string(status)) : std::string(message);
        if (tty_) {
            std::fprintf(stderr, "\r\033[K%s", text.c_str());
            open_line_ = true;
            if (status == runbox::RuntimeStatus::ready || failed) finish();
        } else {
            std::fprintf(stderr, "runbox: %s\n", text.c_str());
        }
        std::fflush(stderr);
    }

    bool quiet_;
    bool tty_;
    bool open_line_ = false;
};

runbox::Config load_config(const Globals& g) {
    runbox::Config config;
    if (!g.config_file.empty()) {
        std::ifstream in(g.config_file);
        if (!in) throw runbox::error(runbox::errc::config_invalid, "cannot read the config file " + g.config_file);
        const json parsed = json::parse(in, nullptr, false);
        if (parsed.is_discarded()) {
            throw runbox::error(runbox::errc::config_invalid, "the config file " + g.config_file + " is not valid JSON");
        }
        config = runbox::Config::from_json(parsed);
    } else {
        config = runbox::Config::from_env();
    }
    if (!g.provider.empty()) config.runtime = g.provider;
    return config;
}

std::string new_sid() {
    std::random_device device;
    std::uniform_int_distribution<int> digit(0, 15);
    std::string sid = "runbox-cli-";
    for (int i = 0; i < 12; ++i) sid += "0123456789abcdef"[digit(device)];
    return sid;
}

std::map<std::string, std::string> parse_env(const std::vector<std::string>& pairs) {
    std::map<std::string, std::string> env;
    for (const auto& pair : pairs) {
        const auto eq = pair.find('=');
        if (eq == std::string::npos || eq == 0) {
            throw CLI::ValidationError("--env", "expects KEY=VALUE, got '" + pair + "'");
        }
        env[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    return env;
}

/// One shell word for each argument, so `runbox run -- echo "a b"` runs what was typed.
std::string shell_join(const std::vector<std::string>& words) {
    std::string out;
    for (const auto& word : words) {
        if (!out.empty()) out += ' ';
        const bool plain = !word.empty() && word.find_first_not_of(
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+@%") == std::string::npos;
        if (plain) { out += word; continue; }
        out += '\'';
        for (const char c : word) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
        out += '\'';
    }
    return out;
}

/// A sandbox's side of a path: "SID:/path" -> {SID, /path}.
struct SandboxPath {
    std::string sid;
    std::string path;
};
std::optional<SandboxPath> sandbox_side(const std::string& arg) {
    const auto colon = arg.find(':');
    if (colon == std::string::npos || colon == 0 || arg.find('/') < colon) return std::nullopt;
    return SandboxPath{arg.substr(0, colon), arg.substr(colon + 1)};
}

bool sandbox_exists(const runbox::Config& config, const std::string& sid);

struct Session {
    runbox::Config config;
    runbox::EventStream events;
    Progress progress;
    std::optional<runbox::AnyRuntime<>> runtime;

    Session(const Globals& g, std::string sid, bool attach, bool keep, std::map<std::string, std::string> env = {})
        : config(load_config(g)), progress(g.quiet || g.json_output) {
        if ((attach || keep) && config.runtime == "local") {
            throw runbox::error(runbox::errc::config_invalid,
                                "the local provider's sandbox ends with this process, so it cannot be kept or "
                                "attached to; use --provider daytona|runloop (or another cloud provider)");
        }
        // A provider's attach creates the sandbox when none has the sid; exec/cp/ls with a
        // mistyped sid would then leave a new sandbox running, so the sid must exist first.
        if (attach && !sandbox_exists(config, sid)) {
            throw runbox::error(runbox::errc::not_found, "no " + config.runtime + " sandbox has the sid " + sid);
        }
        if (keep || attach) config.sandbox.keep_runtime_alive = true;
        runtime.emplace(runbox::make_runtime(config.runtime, config, events,
                                             {.sid = std::move(sid),
                                              .env_vars = std::move(env),
                                              .status_callback = progress.callback(),
                                              .attach_to_existing = attach}));
        runtime->connect();
        progress.finish();
    }
};

struct RunResult {
    int exit_code = -1;
    std::string output;
    std::optional<std::string> working_dir;
    bool timed_out = false;
};

/// Runs one command, printing its output as it arrives: a non-blocking command returns after the
/// protocol's no-change timeout with exit code -1, and an empty command continues it.
RunResult run_streaming(runbox::AnyRuntime<>& rt, const std::string& command, std::optional<double> timeout_s,
                        bool print) {
    using clock = std::chrono::steady_clock;
    const auto deadline = timeout_s ? std::optional(clock::now() + std::chrono::duration<double>(*timeout_s))
                                    : std::nullopt;
    RunResult result;
    runbox::CmdRunAction action;
    action.command = command;
    for (;;) {
        if (deadline) {
            const double left = std::chrono::duration<double>(*deadline - clock::now()).count();
            if (left <= 0) {
                runbox::CmdRunAction interrupt;
                interrupt.command = "C-c";
                interrupt.is_input = true;
                (void)rt.run(interrupt);
                result.timed_out = true;
                return result;
            }
            action.set_hard_timeout(left, false);
        }
        const auto observation = rt.run(action);
        const auto* out = std::get_if<runbox::CmdOutputObservation>(&observation);
        if (out == nullptr) {
            throw runbox::error(runbox::errc::bad_response, "the sandbox answered: " + runbox::message_of(observation));
        }
        if (print && !out->content.empty()) {
            std::fwrite(out->content.data(), 1, out->content.size(), stdout);
            if (out->content.back() != '\n') std::fputc('\n', stdout);
            std::fflush(stdout);
        }
        result.output += out->content;
        if (out->metadata.working_dir) result.working_dir = out->metadata.working_dir;
        if (out->metadata.exit_code != -1) {
            result.exit_code = out->metadata.exit_code;
            return result;
        }
        action = runbox::CmdRunAction{};  // continue: the empty command returns the new output
    }
}

int cmd_run(const Globals& g, const std::string& sid_arg, const std::vector<std::string>& env_pairs, bool keep,
            bool attach, std::optional<double> timeout_s, const std::vector<std::string>& words) {
    const std::string sid = sid_arg.empty() ? new_sid() : sid_arg;
    Session session(g, sid, attach, keep, parse_env(env_pairs));
    const auto result = run_streaming(*session.runtime, shell_join(words), timeout_s, !g.json_output);
    const std::string provider(session.runtime->provider_name());
    session.runtime->close();
    if (g.json_output) {
        json out = {{"provider", provider}, {"sid", sid}, {"exit_code", result.exit_code}, {"output", result.output},
                    {"timed_out", result.timed_out}, {"kept", keep}};
        if (result.working_dir) out["working_dir"] = *result.working_dir;
        std::cout << out.dump() << '\n';
    } else if (keep && !attach) {
        std::fprintf(stderr, "runbox: sandbox %s is still running; attach with: runbox --provider %s exec --sid %s -- COMMAND\n",
                     sid.c_str(), provider.c_str(), sid.c_str());
    }
    if (result.timed_out) return exit_timeout;
    return result.exit_code;
}

/// The sandbox's `path` into the host directory `destination`. The protocol's download zips a
/// directory; a file comes as an empty archive (as in OpenHands), so a file is taken from its
/// directory's archive.
void copy_out(runbox::AnyRuntime<>& rt, const std::string& path, const fs::path& destination) {
    const auto fetch = [&rt](const std::string& from, const fs::path& into) {
        const fs::path archive = rt.copy_from(from);
        struct Remove {
            fs::path path;
            ~Remove() { std::error_code ignored; fs::remove(path, ignored); }
        } remove{archive};
        fs::create_directories(into);
        runbox::extract_zip(archive, into);
    };
    const fs::path staging = fs::temp_directory_path() / ("runbox-cp-" + new_sid());
    struct RemoveAll {
        fs::path path;
        ~RemoveAll() { std::error_code ignored; fs::remove_all(path, ignored); }
    } cleanup{staging};
    fetch(path, staging);
    if (!fs::is_empty(staging)) {
        fs::create_directories(destination);
        fs::copy(staging, destination, fs::copy_options::recursive | fs::copy_options::overwrite_existing);
        return;
    }
    const fs::path file = fs::path(path).lexically_normal();
    fs::remove_all(staging);
    fetch(file.parent_path().string(), staging);
    if (!fs::is_regular_file(staging / file.filename())) {
        throw runbox::error(runbox::errc::not_found, "no file or directory " + path + " in the sandbox");
    }
    fs::create_directories(destination);
    fs::copy_file(staging / file.filename(), destination / file.filename(), fs::copy_options::overwrite_existing);
}

int cmd_cp(const Globals& g, const std::string& source, const std::string& destination, bool recursive) {
    const auto from = sandbox_side(source);
    const auto to = sandbox_side(destination);
    if (from.has_value() == to.has_value()) {
        throw CLI::ValidationError("cp", "exactly one of SRC and DEST names a sandbox, as SID:PATH");
    }
    Session session(g, from ? from->sid : to->sid, /*attach=*/true, /*keep=*/true);
    if (to) {
        const bool directory = fs::is_directory(source);
        session.runtime->copy_to(source, to->path, recursive || directory);
    } else {
        copy_out(*session.runtime, from->path, destination);
    }
    session.runtime->close();
    return 0;
}

int cmd_ls(const Globals& g, const std::string& sid, const std::optional<std::string>& path) {
    Session session(g, sid, /*attach=*/true, /*keep=*/true);
    const auto names = session.runtime->list_files(path);
    session.runtime->close();
    if (g.json_output) {
        std::cout << json(names).dump() << '\n';
    } else {
        for (const auto& name : names) std::cout << name << '\n';
    }
    return 0;
}

/// "90s", "30m", "2h", "1d", "0" -> milliseconds.
std::chrono::milliseconds parse_duration(const std::string& text) {
    std::size_t used = 0;
    long long n = -1;
    try {
        n = std::stoll(text, &used);
    } catch (const std::exception&) {
    }
    const std::string unit = n < 0 ? std::string("?") : text.substr(used);
    const std::map<std::string, long long> per_unit{{"", 1000}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}};
    const auto it = per_unit.find(unit);
    if (it == per_unit.end()) throw CLI::ValidationError("--older-than", "expects a duration such as 90s, 30m, 2h or 1d, got '" + text + "'");
    return std::chrono::milliseconds(n * it->second);
}

/// Calls f.template operator()<P>() for each provider of the default list that can list and
/// sweep its sandboxes, or only for `name` when one is given.
template <class F>
void for_each_sweepable(const std::string& name, F&& f) {
    bool known = false;
    boost::mp11::mp_for_each<boost::mp11::mp_transform<std::add_pointer_t, runbox::default_providers>>([&](auto* tag) {
        using P = std::remove_pointer_t<decltype(tag)>;
        if (!name.empty() && name != P::name) return;
        if constexpr (runbox::ProviderSweeps<P, typename P::default_transport>) {
            known = true;
            f.template operator()<P>();
        } else if (!name.empty()) {
            known = true;
            throw runbox::error(runbox::errc::unsupported, std::string(P::name) + " sandboxes need no listing or sweeping: they end with their program");
        }
    });
    if (!known) {
        throw runbox::error(runbox::errc::config_invalid, "Runtime " + name + " not supported, known are: " +
                                                              runbox::detail::known_names<runbox::default_providers>());
    }
}

/// Runs `body` for one provider; without --provider, a provider without credentials is skipped.
template <class Body>
bool for_provider(const Globals& g, const std::string& name, Body&& body) {
    try {
        body();
        return true;
    } catch (const runbox::error& e) {
        if (!g.provider.empty() || e.code() != runbox::errc::config_invalid) throw;
        if (!g.quiet && !g.json_output) std::fprintf(stderr, "runbox: %s skipped (not configured)\n", name.c_str());
        return false;
    }
}

std::string age_text(std::int64_t created_ms) {
    if (created_ms <= 0) return "?";
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    const long long s = std::max<long long>(0, (now - created_ms) / 1000);
    if (s < 120) return std::to_string(s) + "s";
    if (s < 7200) return std::to_string(s / 60) + "m";
    if (s < 172800) return std::to_string(s / 3600) + "h";
    return std::to_string(s / 86400) + "d";
}

json record_json(const runbox::SandboxRecord& r) {
    return {{"provider", r.provider}, {"id", r.id}, {"sid", r.sid}, {"state", r.state},
            {"owner", r.ownership.owner}, {"host", r.ownership.host}, {"pid", r.ownership.pid},
            {"created_ms", r.ownership.created_ms}, {"age", age_text(r.ownership.created_ms)}};
}

bool sandbox_exists(const runbox::Config& config, const std::string& sid) {
    bool found = false;
    for_each_sweepable(config.runtime, [&]<class P>() {
        for (const auto& r : runbox::list_sandboxes<P>(config)) found = found || r.sid == sid;
    });
    return found;
}

int cmd_list(const Globals& g) {
    const runbox::Config config = load_config(g);
    std::vector<runbox::SandboxRecord> all;
    for_each_sweepable(g.provider, [&]<class P>() {
        for_provider(g, std::string(P::name), [&] {
            for (auto& r : runbox::list_sandboxes<P>(config)) all.push_back(std::move(r));
        });
    });
    if (g.json_output) {
        json out = json::array();
        for (const auto& r : all) out.push_back(record_json(r));
        std::cout << out.dump() << '\n';
        return 0;
    }
    std::printf("%-9s %-28s %-26s %-10s %6s  %s\n", "PROVIDER", "ID", "SID", "STATE", "AGE", "OWNER");
    for (const auto& r : all) {
        std::printf("%-9s %-28s %-26s %-10s %6s  %s\n", r.provider.c_str(), r.id.c_str(), r.sid.c_str(), r.state.c_str(),
                    age_text(r.ownership.created_ms).c_str(), r.ownership.owner.c_str());
    }
    return 0;
}

int cmd_sweep(const Globals& g, const std::string& older_than, bool dry_run, bool stop_only, bool other_hosts) {
    const runbox::Config config = load_config(g);
    runbox::SweepOptions options;
    options.older_than = parse_duration(older_than);
    options.dry_run = dry_run;
    options.mode = stop_only ? runbox::ReleaseMode::stop : runbox::ReleaseMode::remove;
    options.other_hosts = other_hosts;
    runbox::SweepReport report;
    for_each_sweepable(g.provider, [&]<class P>() {
        for_provider(g, std::string(P::name), [&] {
            auto r = runbox::sweep<P>(config, options);
            for (auto& a : r.actions) report.actions.push_back(std::move(a));
            for (auto& k : r.kept) report.kept.push_back(std::move(k));
            for (auto& e : r.errors) report.errors.push_back(std::move(e));
            report.lease_entries_removed += r.lease_entries_removed;
        });
    });
    bool failed = !report.errors.empty();
    for (const auto& a : report.actions) failed = failed || (!dry_run && !a.done);
    if (g.json_output) {
        json actions = json::array();
        for (const auto& a : report.actions) {
            json j = record_json(a.sandbox);
            j["action"] = a.action;
            j["reason"] = a.reason;
            j["done"] = a.done;
            if (!a.error.empty()) j["error"] = a.error;
            actions.push_back(std::move(j));
        }
        json kept = json::array();
        for (const auto& k : report.kept) kept.push_back(record_json(k));
        std::cout << json{{"dry_run", dry_run}, {"actions", actions}, {"kept", kept}, {"errors", report.errors}}.dump() << '\n';
    } else {
        for (const auto& a : report.actions) {
            std::printf("%s%s %s %s (sid %s, %s): %s%s\n", dry_run ? "would " : "", a.action.c_str(), a.sandbox.provider.c_str(),
                        a.sandbox.id.c_str(), a.sandbox.sid.c_str(), age_text(a.sandbox.ownership.created_ms).c_str(),
                        a.reason.c_str(), a.error.empty() ? "" : (" - failed: " + a.error).c_str());
        }
        std::printf("%zu to release, %zu kept (held, younger than %s, or another host's)%s\n", report.actions.size(),
                    report.kept.size(), older_than.c_str(), dry_run ? "; dry run: run again without --dry-run to release them" : "");
        for (const auto& e : report.errors) std::fprintf(stderr, "runbox: %s\n", e.c_str());
    }
    return failed ? exit_failure : 0;
}

/// `runbox server` and `runbox fake` are the runbox-server and runbox-fake programs installed
/// beside this one: the same arguments, the same behaviour.
[[noreturn]] void exec_sibling(const char* self, const char* program, const std::vector<std::string>& args) {
    std::error_code ec;
    fs::path here = fs::read_symlink("/proc/self/exe", ec);
    if (ec) here = self;
    const fs::path sibling = here.parent_path() / program;
    std::vector<char*> argv;
    std::vector<std::string> storage{sibling.string()};
    storage.insert(storage.end(), args.begin(), args.end());
    for (auto& s : storage) argv.push_back(s.data());
    argv.push_back(nullptr);
    ::execv(sibling.c_str(), argv.data());
    ::execvp(program, argv.data());  // not beside it: on PATH
    std::fprintf(stderr, "runbox: cannot start %s: %s (it is installed beside runbox)\n", program, std::strerror(errno));
    std::exit(exit_failure);
}

/// One line naming what failed, and what to do about it where runbox knows.
int report(const char* what, const runbox::error& e, int code) {
    std::string hint;
    switch (e.code()) {
        case runbox::errc::auth_failed: hint = " (check the provider's API key)"; break;
        case runbox::errc::not_found: hint = " (is the sid right? `runbox list` shows the sandboxes)"; break;
        case runbox::errc::rate_limited: hint = " (the provider is throttling; try again later)"; break;
        default: break;
    }
    std::fprintf(stderr, "runbox: %s failed: %s%s\n", what, e.what(), hint.c_str());
    return code;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"runbox: create, drive and clean up code-execution sandboxes (local, Daytona, Runloop, ...)", "runbox"};
    app.set_version_flag("--version", "runbox " + std::string(runbox::version_string));
    app.require_subcommand(1);
    app.fallthrough();
    Globals g;
    app.add_option("--provider,-p", g.provider, "provider: " + runbox::detail::known_names<runbox::default_providers>() +
                                                   " (default: $RUNTIME, else local)");
    app.add_option("--config", g.config_file, "a JSON file with runbox::Config's keys (default: the environment)")
        ->check(CLI::ExistingFile);
    app.add_flag("--json", g.json_output, "machine-readable output (run, exec, ls, list, sweep)");
    app.add_flag("--quiet,-q", g.quiet, "no progress on stderr");

    std::string sid;
    std::vector<std::string> env_pairs;
    bool keep = false;
    std::optional<double> timeout_s;
    std::vector<std::string> words;
    auto* run = app.add_subcommand("run", "connect, run one command, print its output, close");
    run->add_option("--sid", sid, "session id (default: a new random one)");
    run->add_option("--env,-e", env_pairs, "KEY=VALUE for the sandbox's environment (repeatable)")
        ->allow_extra_args(false);  // one value per --env, so `--` still ends the options
    run->add_flag("--keep", keep, "leave the sandbox running and print how to attach again");
    run->add_option("--timeout", timeout_s, "seconds before the command is interrupted (exit 124)");
    run->add_option("command", words, "the command and its arguments (after --)")->required();

    auto* exec = app.add_subcommand("exec", "attach to a kept sandbox and run one command");
    exec->add_option("--sid", sid, "the kept sandbox's session id")->required();
    exec->add_option("--timeout", timeout_s, "seconds before the command is interrupted (exit 124)");
    exec->add_option("command", words, "the command and its arguments (after --)")->required();

    std::string source;
    std::string destination;
    bool recursive = false;
    auto* cp = app.add_subcommand("cp", "copy a file or directory to or from a sandbox (SID:PATH names the sandbox side)");
    cp->add_option("source", source, "SRC (a host path or SID:PATH)")->required();
    cp->add_option("destination", destination, "DEST (a host path or SID:PATH)")->required();
    cp->add_flag("--recursive,-r", recursive, "copy a directory (implied when SRC is a host directory)");

    std::optional<std::string> path;
    auto* ls = app.add_subcommand("ls", "list files in a kept sandbox");
    ls->add_option("--sid", sid, "the kept sandbox's session id")->required();
    ls->add_option("path", path, "directory (default: the working directory)");

    auto* list = app.add_subcommand("list", "sandboxes that carry runbox's labels, with age, state and owner");

    std::string older_than = "1h";
    bool dry_run = false;
    bool stop_only = false;
    bool other_hosts = false;
    auto* sweep = app.add_subcommand("sweep", "release labelled sandboxes that no live runtime holds (after a crash)");
    sweep->add_option("--older-than", older_than, "only sandboxes at least this old (90s, 30m, 2h, 1d; default 1h)");
    sweep->add_flag("--dry-run", dry_run, "print what would be released, change nothing");
    sweep->add_flag("--stop", stop_only, "stop them instead of deleting them");
    sweep->add_flag("--other-hosts", other_hosts, "also sandboxes created on other hosts (their holders cannot be checked)");

    // Listed for --help; main() hands their arguments to the programs before parsing.
    app.add_subcommand("server", "the action execution server: `runbox server --help` (the runbox-server program)");
    app.add_subcommand("fake", "a local fake of a provider's API: `runbox fake PROVIDER [--port N]` (runbox-fake)");

    // `runbox server ARGS` and `runbox fake ARGS` hand every argument to the program unparsed.
    if (argc >= 2 && (std::string_view(argv[1]) == "server" || std::string_view(argv[1]) == "fake")) {
        exec_sibling(argv[0], std::string_view(argv[1]) == "server" ? "runbox-server" : "runbox-fake",
                     std::vector<std::string>(argv + 2, argv + argc));
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        const int code = app.exit(e);
        return code == 0 ? 0 : exit_usage;
    }


    const bool runs_command = *run || *exec;
    try {
        if (*run) return cmd_run(g, sid, env_pairs, keep, false, timeout_s, words);
        if (*exec) return cmd_run(g, sid, {}, true, true, timeout_s, words);
        if (*cp) return cmd_cp(g, source, destination, recursive);
        if (*ls) return cmd_ls(g, sid, path);
        if (*list) return cmd_list(g);
        if (*sweep) return cmd_sweep(g, older_than, dry_run, stop_only, other_hosts);
    } catch (const CLI::ValidationError& e) {
        std::fprintf(stderr, "runbox: %s\n", e.what());
        return exit_usage;
    } catch (const runbox::error& e) {
        return report(app.get_subcommands().front()->get_name().c_str(), e,
                      runs_command ? exit_runbox_failed : exit_failure);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "runbox: %s\n", e.what());
        return runs_command ? exit_runbox_failed : exit_failure;
    }
    return exit_failure;
}
