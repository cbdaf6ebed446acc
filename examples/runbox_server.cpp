// runbox-server: the action execution server runbox starts inside a sandbox.
//
// It accepts OpenHands' whole server command line (reference §1.1 and §5), so a provider can
// start it exactly where it would start `python -m openhands.runtime.action_execution_server`:
//
//   runbox-server 31234 --working-dir /workspace --plugins agent_skills jupyter
//       --username openhands --user-id 1000 --no-enable-browser   (one line)
//
// Environment: SESSION_API_KEY (enables the X-Session-API-Key check), NO_CHANGE_TIMEOUT_SECONDS
// (soft timeout of commands, default 10). Other OpenHands variables (INIT_PLUGIN_TIMEOUT,
// RUNTIME_MAX_MEMORY_GB, VSCODE_PORT, ...) are accepted and ignored. Extra option: --host H
// (default 0.0.0.0, like OpenHands: it serves the host from inside a sandbox).
//
// Differences from OpenHands: there is no browser (browse actions answer "Browser functionality
// is not supported or disabled."), no VSCode server (the token is null), no MCP proxy
// (/update_mcp_server answers 500 "MCP Proxy Manager is not initialized"), no file-viewer port.
// As root with --username other than root, the shells run as that user; a missing user is
// created with `useradd -m -s /bin/bash [-u <user-id>] <name>` (OpenHands also grants it
// passwordless sudo; runbox-server does not). When not root, --username/--user-id are ignored
// and the shells run as the current user. Without --username the shells run as the current
// user too (OpenHands' default is `openhands`, but its start-up command always passes
// --username; creating a system user as a side effect of a missing flag would surprise).
//
// Building a static binary (to copy into any Linux sandbox image):
//   Debian ships cpp-httplib only as a shared library (no libcpp-httplib.a) and libzip without
//   libzip.a, so a static build needs upstream cpp-httplib's header-only httplib.h (v0.11+) on
//   the include path instead of Debian's split header, and a static libzip built from source
//   (cmake -DBUILD_SHARED_LIBS=OFF -DENABLE_BZIP2=OFF -DENABLE_LZMA=OFF -DENABLE_ZSTD=OFF ...).
//   Then, with the header-only httplib defining its implementation inline:
//     g++ -std=c++20 -O2 -static -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT
//         -I include -I /path/to/upstream-httplib -I /path/to/libzip/include
//         examples/runbox_server.cpp -o runbox-server
//         /path/to/libzip.a -lssl -lcrypto -lz -pthread            (one command)
//   (Brotli is optional: add -DCPPHTTPLIB_BROTLI_SUPPORT and -lbrotlienc -lbrotlidec
//   -lbrotlicommon.) glibc warns that getpwnam()/getgrouplist() in a static binary still load
//   NSS modules at run time; they work for /etc/passwd users in the usual images. Building
//   against musl (e.g. in an Alpine container) avoids that warning.
#include "runbox/detail/spawn.hpp"
#include "runbox/server/action_server.hpp"

#include <pwd.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

struct CommandLine {
    int port = -1;
    std::string working_dir;
    std::vector<std::string> plugins;
    std::string username;  // empty = the current user (see the note at the top)
    std::optional<long> user_id;
    bool enable_browser = true;
    std::vector<std::string> browsergym_eval_env;
    std::string host = "0.0.0.0";
    runbox::server::ActionServerOptions limits;  // only the limit fields are read from here
};

[[noreturn]] void usage_error(const std::string& message) {
    std::cerr << "usage: runbox-server PORT --working-dir DIR [--plugins NAME ...] [--username USER]\n"
                 "                     [--user-id UID] [--enable-browser | --no-enable-browser]\n"
                 "                     [--browsergym-eval-env ENV ...] [--host HOST]\n"
                 "  limits (defaults in docs/design.md): --max-body-bytes N --max-read-bytes N\n"
                 "  --max-download-bytes N --max-extracted-bytes N --max-extracted-entries N\n"
                 "  --max-json-depth N --max-json-values N --max-connections N --header-timeout SEC\n"
                 "  --read-timeout SEC --write-timeout SEC --keep-alive-timeout SEC --file-action-timeout SEC\n"
              << "runbox-server: error: " << message << "\n";
    std::exit(2);
}

std::optional<long> parse_long(std::string_view text) {
    long value = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size()) return std::nullopt;
    return value;
}

/// The setter for a limit flag ("--max-body-bytes"), or nullopt when `arg` is not one.
std::optional<std::function<void(long)>> limit_flag(const std::string& arg, runbox::server::ActionServerOptions& o) {
    using std::chrono::milliseconds;
    using std::chrono::seconds;
    const auto bytes = [](auto& field) { return [&field](long v) { field = static_cast<std::decay_t<decltype(field)>>(v); }; };
    const auto secs = [](milliseconds& field) { return [&field](long v) { field = seconds(v); }; };
    if (arg == "--max-body-bytes") return bytes(o.max_body_bytes);
    if (arg == "--max-read-bytes") return bytes(o.max_read_bytes);
    if (arg == "--max-download-bytes") return bytes(o.max_download_bytes);
    if (arg == "--max-extracted-bytes") return bytes(o.max_extracted_bytes);
    if (arg == "--max-extracted-entries") return bytes(o.max_extracted_entries);
    if (arg == "--max-json-depth") return bytes(o.max_json_depth);
    if (arg == "--max-json-values") return bytes(o.max_json_values);
    if (arg == "--max-connections") return bytes(o.max_connections);
    if (arg == "--header-timeout") return secs(o.header_timeout);
    if (arg == "--read-timeout") return secs(o.read_timeout);
    if (arg == "--write-timeout") return secs(o.write_timeout);
    if (arg == "--keep-alive-timeout") return secs(o.keep_alive_timeout);
    if (arg == "--file-action-timeout") return secs(o.file_action_timeout);
    return std::nullopt;
}

CommandLine parse_command_line(int argc, char** argv) {
    CommandLine cl;
    const std::vector<std::string> args(argv + 1, argv + argc);
    const auto value_of = [&](std::size_t& i) -> const std::string& {
        if (i + 1 >= args.size() || args[i + 1].rfind("--", 0) == 0) usage_error("argument " + args[i] + ": expected one argument");
        return args[++i];
    };
    for (std::size_t i = 0; i < args.size(); ++i) {
        const auto& arg = args[i];
        if (arg == "-h" || arg == "--help") {
            usage_error("see the options above");
        } else if (arg == "--working-dir") {
            cl.working_dir = value_of(i);
        } else if (arg == "--plugins") {
            while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) cl.plugins.push_back(args[++i]);
            if (cl.plugins.empty()) usage_error("argument --plugins: expected at least one argument");
        } else if (arg == "--username") {
            cl.username = value_of(i);
        } else if (arg == "--user-id") {
            const auto id = parse_long(value_of(i));
            if (!id || *id < 0) usage_error("argument --user-id: invalid int value");
            cl.user_id = id;
        } else if (arg == "--enable-browser") {
            cl.enable_browser = true;
        } else if (arg == "--no-enable-browser") {
            cl.enable_browser = false;
        } else if (arg == "--browsergym-eval-env") {
            while (i + 1 < args.size() && args[i + 1].rfind("--", 0) != 0) cl.browsergym_eval_env.push_back(args[++i]);
            if (cl.browsergym_eval_env.empty()) usage_error("argument --browsergym-eval-env: expected one argument");
        } else if (arg == "--host") {
            cl.host = value_of(i);
        } else if (const auto limit = limit_flag(arg, cl.limits)) {
            const auto value = parse_long(value_of(i));
            if (!value || *value <= 0) usage_error("argument " + arg + ": expected a positive integer");
            (*limit)(*value);
        } else if (arg.rfind("--", 0) == 0) {
            usage_error("unrecognized arguments: " + arg);
        } else if (cl.port < 0) {
            const auto port = parse_long(arg);
            if (!port || *port < 0 || *port > 65535) usage_error("argument port: invalid int value: '" + arg + "'");
            cl.port = static_cast<int>(*port);
        } else {
            usage_error("unrecognized arguments: " + arg);
        }
    }
    if (cl.port < 0) usage_error("the following arguments are required: port");
    return cl;
}

/// Runs a program to completion (no shell, found on PATH); returns its exit status or -1.
int run_program(const std::vector<std::string>& argv) {
    runbox::detail::SpawnOptions options;
    options.argv = argv;
    options.search_path = true;
    const auto child = runbox::detail::spawn(options);
    if (child.pid < 0) return -1;
    const auto status = runbox::detail::wait_child(child.pid);
    if (!status) return -1;
    return WIFEXITED(*status) ? WEXITSTATUS(*status) : -1;
}

/// As root, makes sure the run-as user exists (OpenHands creates it at start-up).
void ensure_user(const CommandLine& cl) {
    if (::geteuid() != 0 || cl.username.empty() || cl.username == "root") return;
    if (::getpwnam(cl.username.c_str()) != nullptr) return;
    std::vector<std::string> command{"useradd", "-m", "-s", "/bin/bash"};
    if (cl.user_id && *cl.user_id != 0) {
        command.push_back("-u");
        command.push_back(std::to_string(*cl.user_id));
    }
    command.push_back(cl.username);
    if (run_program(command) != 0) {
        // The UID may be taken already: let useradd pick one.
        if (run_program({"useradd", "-m", "-s", "/bin/bash", cl.username}) != 0) {
            throw runbox::error(runbox::errc::config_invalid, "cannot create user '" + cl.username + "' (useradd failed)");
        }
    }
}

int g_signal_pipe[2] = {-1, -1};

extern "C" void on_stop_signal(int sig) {
    const unsigned char byte = static_cast<unsigned char>(sig);
    [[maybe_unused]] const auto ignored = ::write(g_signal_pipe[1], &byte, 1);
}

extern "C" void on_sigpipe(int) {}

/// Handlers (not SIG_IGN and not a blocked mask) so that shells started by the server get
/// default signal dispositions back at exec.
void install_signal_handlers() {
    if (::pipe2(g_signal_pipe, O_CLOEXEC) != 0) throw std::system_error(errno, std::generic_category(), "pipe2");
    struct sigaction action {};
    sigemptyset(&action.sa_mask);
    action.sa_handler = on_stop_signal;
    ::sigaction(SIGTERM, &action, nullptr);
    ::sigaction(SIGINT, &action, nullptr);
    ::sigaction(SIGHUP, &action, nullptr);
    // A client that disconnects mid-response must not kill the server. (httplib's Server
    // constructor sets SIGPIPE to SIG_IGN anyway; the shells reset every disposition at exec.)
    action.sa_handler = on_sigpipe;
    ::sigaction(SIGPIPE, &action, nullptr);
}

int wait_for_stop_signal() {
    unsigned char byte = 0;
    for (;;) {
        const auto n = ::read(g_signal_pipe[0], &byte, 1);
        if (n == 1) return byte;
        if (n < 0 && errno == EINTR) continue;
        return 0;
    }
}

std::chrono::milliseconds no_change_timeout_from_env() {
    const char* value = std::getenv("NO_CHANGE_TIMEOUT_SECONDS");
    if (value == nullptr || *value == '\0') return std::chrono::seconds(10);
    const auto seconds = parse_long(value);
    if (!seconds || *seconds <= 0) {
        std::cerr << "runbox-server: ignoring invalid NO_CHANGE_TIMEOUT_SECONDS\n";
        return std::chrono::seconds(10);
    }
    return std::chrono::seconds(*seconds);
}

}  // namespace

int main(int argc, char** argv) {
    const CommandLine cl = parse_command_line(argc, argv);
    for (const auto& plugin : cl.plugins) {
        if (plugin != "jupyter" && plugin != "agent_skills" && plugin != "vscode") {
            std::cerr << "runbox-server: Plugin " << plugin << " not found\n";
            return 1;
        }
    }
    if (!cl.browsergym_eval_env.empty()) {
        std::cerr << (cl.enable_browser
                          ? "runbox-server: BrowserUnavailableException: runbox-server has no browser, so "
                            "--browsergym-eval-env is not supported\n"
                          : "runbox-server: BrowserUnavailableException: --browsergym-eval-env needs the browser, "
                            "which is disabled (--no-enable-browser)\n");
        return 1;
    }
    try {
        install_signal_handlers();
        ensure_user(cl);

        runbox::server::ActionServerOptions options = cl.limits;
        options.host = cl.host;
        options.port = cl.port;
        options.working_dir = cl.working_dir.empty() ? std::filesystem::current_path().string() : cl.working_dir;
        if (const char* key = std::getenv("SESSION_API_KEY")) options.session_api_key = key;
        options.username = ::geteuid() == 0 ? cl.username : std::string();
        options.plugins = cl.plugins;
        options.enable_browser = cl.enable_browser;
        options.no_change_timeout = no_change_timeout_from_env();

        runbox::server::ActionServer server(std::move(options));
        server.start();
        std::string shown_host = cl.host.find(':') != std::string::npos ? "[" + cl.host + "]" : cl.host;
        std::cout << "listening on http://" << shown_host << ":" << server.port() << std::endl;

        const int sig = wait_for_stop_signal();
        std::cerr << "runbox-server: signal " << sig << ", stopping\n";
        server.stop();
        return 0;
    } catch (const runbox::error& e) {
        std::cerr << "runbox-server: " << e.detail() << "\n";
    } catch (const std::exception& e) {
        std::cerr << "runbox-server: " << e.what() << "\n";
    }
    return 1;
}
