/// \file
/// AnyRuntime and make_runtime over a provider list you name, with no provider included.
///
/// factory.hpp adds the default list (every provider runbox ships, the local one with its
/// in-process action server among them). A program that drives only cloud providers includes
/// this header and its providers' headers, and compiles none of the sandbox server:
/// ```
/// #include <runbox/any_runtime.hpp>
/// #include <runbox/providers/daytona.hpp>
/// using mine = boost::mp11::mp_list<runbox::daytona::Auth>;
/// auto rt = runbox::make_runtime<mine>("daytona", config, events);
/// ```
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include <boost/mp11/algorithm.hpp>
#include <boost/mp11/list.hpp>

#include "runbox/contract.hpp"
#include "runbox/error.hpp"
#include "runbox/runtime.hpp"

namespace runbox {

/// A provider runbox has that needs an opt-in dependency.
struct OptInProvider {
    std::string_view name;   ///< its make_runtime name
    std::string_view needs;  ///< what to link, as the known-names list shows it
    std::string_view how;    ///< the whole answer to make_runtime(name) when the list lacks it
};

/// Providers that need an opt-in dependency: make_runtime answers such a name, when its list
/// lacks it, with errc::unsupported saying how to enable it (not "unknown"), and the list of
/// known names still names it.
inline constexpr OptInProvider opt_in_providers[] = {
    {"modal", "link runbox::curl",
     "the modal runtime is not in this build's provider list: it needs libcurl (HTTP/2 for gRPC); link the "
     "runbox::curl CMake target, which defines RUNBOX_WITH_CURL and adds it to runbox::default_providers"},
};

namespace detail {

// A provider's default transport. The fallback only keeps the variant type computable, so that
// check_listed_provider can report a missing declaration with its own message.
template <class A>
struct default_transport_of {
    using type = HttplibTransport;
};
template <class A>
    requires requires { typename A::default_transport; }
struct default_transport_of<A> {
    using type = typename A::default_transport;
};

}  // namespace detail

/// The runtime type of provider `A`: Runtime<A, A::default_transport>.
template <class A>
using runtime_for = Runtime<A, typename detail::default_transport_of<A>::type>;

namespace detail {

template <class List>
struct check_provider_list;

template <class... A>
struct check_provider_list<boost::mp11::mp_list<A...>> {
    static_assert(sizeof...(A) > 0, "runbox: a provider list must name at least one provider");
    static constexpr bool listed = (check_listed_provider<A>::value && ...);
    static_assert(listed);
    static constexpr bool contracts = (check_auth_policy<A, typename default_transport_of<A>::type>::value && ...);
    static constexpr bool names_unique = [] {
        constexpr std::string_view names[] = {std::string_view(A::name)...};
        for (std::size_t i = 0; i < sizeof...(A); ++i) {
            for (std::size_t j = i + 1; j < sizeof...(A); ++j) {
                if (names[i] == names[j]) return false;
            }
        }
        return true;
    }();
    static_assert(names_unique, "runbox: two providers in a provider list have the same name");
    static constexpr bool value = listed && contracts && names_unique;
};

template <class List>
std::string known_names() {
    std::string out;
    boost::mp11::mp_for_each<boost::mp11::mp_iota<boost::mp11::mp_size<List>>>([&](auto index) {
        if (!out.empty()) out += ", ";
        out += std::string(boost::mp11::mp_at_c<List, decltype(index)::value>::name);
    });
    for (const auto& opt_in : opt_in_providers) {
        bool listed = false;
        boost::mp11::mp_for_each<boost::mp11::mp_iota<boost::mp11::mp_size<List>>>([&](auto index) {
            listed = listed || boost::mp11::mp_at_c<List, decltype(index)::value>::name == opt_in.name;
        });
        if (!listed) out += ", " + std::string(opt_in.name) + " (" + std::string(opt_in.needs) + ")";
    }
    return out;
}

}  // namespace detail

/// A runtime of any provider in `Providers`: a std::variant with the Runtime API on top.
template <class Providers>
class AnyRuntime : public boost::mp11::mp_rename<boost::mp11::mp_transform<runtime_for, Providers>, std::variant> {
    static_assert(detail::check_provider_list<Providers>::value);

public:
    /// std::variant<runtime_for<P>...> over `Providers`.
    using variant_type = boost::mp11::mp_rename<boost::mp11::mp_transform<runtime_for, Providers>, std::variant>;
    /// The provider list this runtime was built over.
    using providers = Providers;
    using variant_type::variant_type;

    /// The underlying variant, for std::visit, std::get and std::holds_alternative.
    ///@{
    variant_type& variant() noexcept { return *this; }
    const variant_type& variant() const noexcept { return *this; }
    ///@}

    /// Calls f(runtime) with the concrete Runtime<P, T>.
    ///@{
    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit(std::forward<F>(f), variant());
    }
    template <class F>
    decltype(auto) visit(F&& f) const {
        return std::visit(std::forward<F>(f), variant());
    }
    ///@}

    /// "local", "daytona", ...
    std::string_view provider_name() const {
        return visit([](const auto& rt) { return std::string_view(std::decay_t<decltype(rt)>::auth_policy::name); });
    }

    // Each member below calls the Runtime member of the same name on the runtime held; errors
    // are that member's (runbox::error; errc::unsupported before connect()).

    /// Runtime::connect(): creates or attaches to the sandbox, starts its server, waits until it
    /// is ready; a failure cleans up what was created and rethrows.
    void connect() { visit([](auto& rt) { rt.connect(); }); }
    /// Runtime::close(): idempotent, never throws; also run by the destructor.
    void close() noexcept { std::visit([](auto& rt) { rt.close(); }, variant()); }
    /// True between a successful connect() and close().
    bool connected() const { return visit([](const auto& rt) { return rt.connected(); }); }
    /// The session id (RuntimeOptions::sid).
    const std::string& sid() const { return visit([](const auto& rt) -> const std::string& { return rt.sid(); }); }
    /// The last status reported (unset before connect()).
    std::optional<RuntimeStatus> status() const { return visit([](const auto& rt) { return rt.status(); }); }

    /// Runtime::run_action(): runs any action with OpenHands' confirmation gates and the default
    /// timeout; the answer is the server's observation (an ErrorObservation when the action failed).
    Observation run_action(Action action) {
        return visit([&](auto& rt) { return rt.run_action(std::move(action)); });
    }
    /// Runs a shell command with the default (non-blocking) timeout; usually a CmdOutputObservation.
    Observation run(std::string command) { return visit([&](auto& rt) { return rt.run(std::move(command)); }); }
    /// Runs a CmdRunAction as given (timeout, blocking, is_input, ...).
    Observation run(CmdRunAction action) { return run_action(std::move(action)); }
    /// Runs a Jupyter cell.
    Observation run_ipython(IPythonRunCellAction action) { return run_action(std::move(action)); }
    /// Reads a whole file; usually a FileReadObservation.
    Observation read(std::string path) { return visit([&](auto& rt) { return rt.read(std::move(path)); }); }
    /// Reads as the action says (line range, OH-ACI view).
    Observation read(FileReadAction action) { return run_action(std::move(action)); }
    /// Writes `content` to `path` (created if missing); usually a FileWriteObservation.
    Observation write(std::string path, std::string content) {
        return visit([&](auto& rt) { return rt.write(std::move(path), std::move(content)); });
    }
    /// Writes as the action says (line range).
    Observation write(FileWriteAction action) { return run_action(std::move(action)); }
    /// Edits a file (OH-ACI str_replace_editor or an LLM-based edit).
    Observation edit(FileEditAction action) { return run_action(std::move(action)); }
    /// Opens a URL in the sandbox's browser (an ErrorObservation when it has none).
    Observation browse(BrowseURLAction action) { return run_action(std::move(action)); }
    /// Runs BrowserGym actions in the sandbox's browser.
    Observation browse_interactive(BrowseInteractiveAction action) { return run_action(std::move(action)); }

    /// Uploads a host file (or, with `recursive`, a directory under its own name) into the
    /// sandbox directory `sandbox_dest`.
    void copy_to(const std::filesystem::path& host_src, const std::string& sandbox_dest, bool recursive = false) {
        visit([&](auto& rt) { rt.copy_to(host_src, sandbox_dest, recursive); });
    }
    /// Downloads a sandbox file or directory as a zip into a new local file; returns its path
    /// (the caller owns and removes it). At most `max_bytes` (errc::quota_exceeded past it).
    std::filesystem::path copy_from(const std::string& sandbox_path, std::uintmax_t max_bytes = default_max_copy_from_bytes) {
        return visit([&](auto& rt) { return rt.copy_from(sandbox_path, max_bytes); });
    }
    /// Names in `path` (default: the server's working directory), directories first with a trailing '/'.
    std::vector<std::string> list_files(const std::optional<std::string>& path = std::nullopt) {
        return visit([&](auto& rt) { return rt.list_files(path); });
    }
    /// Exports `env` in the sandbox's shell and persists it in ~/.bashrc.
    void add_env_vars(const std::map<std::string, std::string>& env) {
        visit([&](auto& rt) { rt.add_env_vars(env); });
    }
    /// The action execution server's base URL (after connect()).
    std::string action_execution_server_url() const {
        return visit([](const auto& rt) { return rt.action_execution_server_url(); });
    }
    /// The VS Code URL when the vscode plugin is on and the server has a token, else nullopt.
    std::optional<std::string> vscode_url() { return visit([](auto& rt) { return rt.vscode_url(); }); }
    /// GET /server_info: {"uptime", "idle_time", "resources": {...}}.
    nlohmann::json server_info() { return visit([](auto& rt) { return rt.server_info(); }); }
};

/// Builds the runtime of the provider called `name` ("local", "daytona", ...). An unknown name is
/// errc::config_invalid listing the known ones.
template <class Providers>
AnyRuntime<Providers> make_runtime(std::string_view name, const Config& config, EventStream& event_stream,
                                   RuntimeOptions options = {}) {
    namespace mp = boost::mp11;
    constexpr std::size_t count = mp::mp_size<Providers>::value;
    std::size_t index = count;
    mp::mp_for_each<mp::mp_iota_c<count>>([&](auto i) {
        if (mp::mp_at_c<Providers, decltype(i)::value>::name == name) index = decltype(i)::value;
    });
    if (index == count) {
        for (const auto& opt_in : opt_in_providers) {
            if (opt_in.name == name) throw error(errc::unsupported, std::string(opt_in.how), std::string(name));
        }
        throw error(errc::config_invalid,
                    "Runtime " + std::string(name) + " not supported, known are: " + detail::known_names<Providers>());
    }
    return mp::mp_with_index<count>(index, [&](auto i) {
        using runtime_type = runtime_for<mp::mp_at_c<Providers, decltype(i)::value>>;
        static_assert(check_runtime_constructor<runtime_type>::value);
        return AnyRuntime<Providers>(std::in_place_index<decltype(i)::value>, config, event_stream, std::move(options));
    });
}

/// The provider named by config.runtime ("local" by default).
template <class Providers>
AnyRuntime<Providers> make_runtime(const Config& config, EventStream& event_stream, RuntimeOptions options = {}) {
    return make_runtime<Providers>(config.runtime, config, event_stream, std::move(options));
}

}  // namespace runbox
