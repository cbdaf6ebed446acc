/// \file
/// runbox::sweep: release the sandboxes that no live runtime holds.
///
/// ```
/// runbox::SweepOptions opts;                 // dry run, older than 1 h, delete
/// auto plan = runbox::sweep<runbox::daytona::Auth>(config, opts);
/// for (auto& a : plan.actions) std::cout << a.action << " " << a.sandbox.id << " (" << a.reason << ")\n";
/// opts.dry_run = false;
/// runbox::sweep(runbox::default_providers{}, config, opts);   // every provider with credentials
/// ```
///
/// A sandbox is swept when it carries runbox's labels (lifecycle.hpp), its holder is gone (its
/// process died, or in this process its runtime is closed), and it is older than `older_than`
/// or its lease-file entry (Config::runbox_lease_file) names a process that is gone. Sandboxes
/// created on another host are kept unless `other_hosts` (runbox cannot see those processes).
#pragma once

#include <algorithm>
#include <chrono>
#include <concepts>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <boost/mp11.hpp>

#include "runbox/config.hpp"
#include "runbox/contract.hpp"
#include "runbox/error.hpp"
#include "runbox/lifecycle.hpp"
#include "runbox/provider.hpp"

namespace runbox {

/// Whether a provider can be swept (see lifecycle.hpp for the two members).
template <class A, class T>
concept ProviderSweeps = requires(A& a, ProviderContext<T>& ctx, const SandboxRecord& r) {
    { a.list_sandboxes(ctx) } -> std::same_as<std::vector<SandboxRecord>>;
    a.release_sandbox(ctx, r, ReleaseMode::remove);
};

/// What sweep() selects and how it releases; the defaults are a safe dry run.
struct SweepOptions {
    /// Only sandboxes at least this old (by their creation label); lease entries of dead
    /// processes are reaped whatever their age.
    std::chrono::milliseconds older_than{std::chrono::hours(1)};
    ReleaseMode mode = ReleaseMode::remove;  ///< delete (default) or only stop what is selected
    bool dry_run = true;                 ///< report what would be done, change nothing
    std::optional<std::string> owner{};  ///< only sandboxes with this owner label
    bool other_hosts = false;            ///< also sandboxes created on other hosts
};

/// One sandbox sweep released (or, in a dry run, would release).
struct SweepAction {
    SandboxRecord sandbox{};  ///< the sandbox, as the provider listed it
    std::string action{};  ///< "stop" or "delete"
    std::string reason{};  ///< why it is not held
    bool done = false;     ///< released (false in a dry run or when it failed)
    std::string error{};   ///< why releasing failed
};

/// What one sweep() found and did.
struct SweepReport {
    std::vector<SweepAction> actions{};  ///< the sandboxes selected, released or not
    std::vector<SandboxRecord> kept{};  ///< runbox's sandboxes that are held, too young or not the owner's
    std::vector<std::string> errors{};  ///< providers that could not be swept, and why
    std::size_t lease_entries_removed = 0;  ///< entries of dead processes reaped from the lease file

    /// How many of `actions` were released (`done`).
    std::size_t released() const {
        std::size_t n = 0;
        for (const auto& a : actions) n += a.done ? 1 : 0;
        return n;
    }
};

namespace detail {

/// The sweep of one provider with a context in hand (Runtime uses it at start to reap the
/// lease file: older_than = max, so only dead processes' lease entries are selected).
template <class A, class T>
void sweep_with(A& provider, ProviderContext<T>& ctx, const SweepOptions& options, SweepReport& report) {
    std::optional<LeaseFile> lease;
    if (ctx.config.runbox_lease_file) lease.emplace(*ctx.config.runbox_lease_file);
    std::vector<LeaseEntry> stale;
    if (lease) {
        for (auto& e : lease->entries()) {
            if (e.provider == A::name && holder_of(e.ownership()) == Holder::gone) stale.push_back(std::move(e));
        }
    }
    const bool lease_only = options.older_than == std::chrono::milliseconds::max();
    if (lease_only && stale.empty()) return;
    auto stale_entry = [&](const SandboxRecord& r) {
        for (const auto& e : stale) {
            if (e.token == r.ownership.token || (!e.id.empty() && e.id == r.id)) return true;
        }
        return false;
    };

    const std::vector<SandboxRecord> found = provider.list_sandboxes(ctx);
    const std::int64_t now = unix_ms_now();
    std::set<std::string> failed_tokens;
    for (const auto& r : found) {
        const bool in_lease = stale_entry(r);
        const Holder holder = holder_of(r.ownership);
        const bool held = holder == Holder::live || (holder == Holder::unknown && !options.other_hosts && !in_lease);
        // The label is the provider's to report: clamped, a bogus one cannot overflow the age.
        const std::int64_t created = std::clamp<std::int64_t>(r.ownership.created_ms, 0, now);
        const bool old = !lease_only && now - created >= options.older_than.count();
        const bool owners = !options.owner || r.ownership.owner == *options.owner;
        if (held || !owners || !(old || in_lease)) {
            report.kept.push_back(r);
            continue;
        }
        SweepAction a;
        a.sandbox = r;
        a.action = options.mode == ReleaseMode::stop ? "stop" : "delete";
        a.reason = in_lease ? "its lease names a process that is gone"
                   : holder == Holder::gone ? "its runtime is gone"
                                            : "created on another host";
        if (!options.dry_run) {
            try {
                provider.release_sandbox(ctx, r, options.mode);
                a.done = true;
                if (lease && !r.ownership.token.empty()) lease->remove(r.ownership.token);
            } catch (const error& e) {
                a.error = e.what();
                failed_tokens.insert(r.ownership.token);
            }
        }
        report.actions.push_back(std::move(a));
    }
    // Lease entries of dead processes whose sandbox is not there (never created, or gone).
    if (lease && !options.dry_run) {
        for (const auto& e : stale) {
            if (failed_tokens.count(e.token)) continue;
            lease->remove(e.token);
            ++report.lease_entries_removed;
        }
    }
}

}  // namespace detail

namespace detail {

/// Calls f(provider, ctx) with a provider of type A built from `config` and a context that no
/// runtime owns (sweep and list act on sandboxes, not on a session of their own).
template <class A, class T, class F>
decltype(auto) with_provider(const Config& config, F&& f) {
    A provider(config);
    T transport(config.transport);
    RuntimeOptions runtime_options;
    runtime_options.sid = "runbox-sweep";
    ProviderContext<T> ctx{config, runtime_options, transport, {}};
    bind_credentials(ctx, provider);
    return std::forward<F>(f)(provider, ctx);
}

}  // namespace detail

/// Sweeps one provider with the credentials in `config` (see the top of this file). Throws
/// runbox::error: errc::config_invalid when credentials are missing, the provider's list errors
/// (auth_failed, transport, ...); a sandbox that cannot be released is reported in its action.
template <class A, class T = typename A::default_transport>
SweepReport sweep(const Config& config, const SweepOptions& options = {}) {
    static_assert(ProviderSweeps<A, T>, "runbox: sweep needs a provider with list_sandboxes() and release_sandbox()");
    SweepReport report;
    detail::with_provider<A, T>(config, [&](A& provider, ProviderContext<T>& ctx) {
        detail::sweep_with(provider, ctx, options, report);
    });
    return report;
}

/// The sandboxes of one provider that carry runbox's labels, held or not (what sweep looks at).
template <class A, class T = typename A::default_transport>
std::vector<SandboxRecord> list_sandboxes(const Config& config) {
    static_assert(ProviderSweeps<A, T>, "runbox: listing needs a provider with list_sandboxes() and release_sandbox()");
    return detail::with_provider<A, T>(config, [](A& provider, ProviderContext<T>& ctx) {
        return provider.list_sandboxes(ctx);
    });
}

/// Sweeps every provider of a list that can be swept and has credentials in `config`; a
/// provider that cannot be reached or configured is named in `errors`, the others still run.
template <class... A>
SweepReport sweep(boost::mp11::mp_list<A...>, const Config& config, const SweepOptions& options = {}) {
    SweepReport all;
    auto one = [&]<class P>(P*) {
        using T = typename P::default_transport;
        if constexpr (ProviderSweeps<P, T>) {
            try {
                SweepReport r = sweep<P, T>(config, options);
                for (auto& a : r.actions) all.actions.push_back(std::move(a));
                for (auto& k : r.kept) all.kept.push_back(std::move(k));
                for (auto& e : r.errors) all.errors.push_back(std::move(e));
                all.lease_entries_removed += r.lease_entries_removed;
            } catch (const error& e) {
                all.errors.push_back(std::string(P::name) + ": " + e.what());
            }
        }
    };
    (one(static_cast<A*>(nullptr)), ...);
    return all;
}

}  // namespace runbox
