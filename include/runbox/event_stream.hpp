/// \file
/// an in-memory OpenHands EventStream: ids, secrets, publish/subscribe.
///
/// Delivery model (reference §11): every (subscriber, callback) pair owns one worker thread
/// and a FIFO queue, so each callback sees events in id order while different callbacks run
/// concurrently. add_event() assigns the id and enqueues under one lock and never runs a
/// callback itself, so a callback may publish (the runtime publishes its observation from
/// inside its callback) without deadlocking. Tests wait with wait_until_delivered()/flush().
/// Persistence to a file store is not part of this class.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <ctime>
#include <deque>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "runbox/error.hpp"
#include "runbox/events.hpp"

namespace runbox {

namespace detail {

/// Python's datetime.now().isoformat(): local time, microseconds omitted when zero.
inline std::string local_iso_timestamp(std::chrono::system_clock::time_point now = std::chrono::system_clock::now()) {
    const auto since_epoch = now.time_since_epoch();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(since_epoch);
    auto micros = std::chrono::duration_cast<std::chrono::microseconds>(since_epoch - seconds).count();
    std::time_t t = static_cast<std::time_t>(seconds.count());
    if (micros < 0) {  // before the epoch: borrow a second
        micros += 1000000;
        --t;
    }
    std::tm tm{};
    localtime_r(&t, &tm);
    char buf[40];
    std::size_t n = std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::string out(buf, n);
    if (micros != 0) {
        char frac[32];
        std::snprintf(frac, sizeof frac, ".%06lld", static_cast<long long>(micros));
        out += frac;
    }
    return out;
}

/// Replaces every `from` in `s` by `to`, left to right (the one copy in the tree).
inline void replace_all(std::string& s, std::string_view from, std::string_view to) {
    if (from.empty()) return;
    for (auto pos = s.find(from); pos != std::string::npos; pos = s.find(from, pos + to.size()))
        s.replace(pos, from.size(), to);
}

inline void mask_secrets_in_value(ordered_json& v, const std::vector<std::string>& secrets);

/// Masks every secret in string values; at top level the bookkeeping keys are left alone.
inline void mask_secrets_in_object(ordered_json& obj, const std::vector<std::string>& secrets, bool top_level) {
    static constexpr std::string_view protected_keys[] = {"timestamp", "id",          "source", "cause",
                                                           "action",    "observation", "message"};
    for (auto it = obj.begin(); it != obj.end(); ++it) {
        if (top_level) {
            bool is_protected = false;
            for (auto key : protected_keys) is_protected = is_protected || it.key() == key;
            if (is_protected) continue;
        }
        mask_secrets_in_value(it.value(), secrets);
    }
}

inline void mask_secrets_in_value(ordered_json& v, const std::vector<std::string>& secrets) {
    if (v.is_string()) {
        auto& s = v.get_ref<std::string&>();
        for (const auto& secret : secrets) replace_all(s, secret, "<secret_hidden>");
    } else if (v.is_object()) {
        mask_secrets_in_object(v, secrets, false);
    } else if (v.is_array()) {
        for (auto& x : v) mask_secrets_in_value(x, secrets);
    }
}

}  // namespace detail

/// An in-memory event stream shared by a runtime and its users (see the delivery model above).
/// Every member is thread-safe; callbacks run on the stream's own threads.
class EventStream {
public:
    /// Receives one event; runs on the callback's own worker thread, never concurrently with itself.
    using Callback = std::function<void(const Event&)>;
    /// Called (on the callback's thread, without locks held) when a callback throws.
    using ErrorHandler =
        std::function<void(const std::string& subscriber_id, const std::string& callback_id, std::exception_ptr)>;

    /// A stream for session `sid` (the id RuntimeOptions::sid usually repeats).
    explicit EventStream(std::string sid = "default") : sid_(std::move(sid)) {}
    EventStream(const EventStream&) = delete;
    EventStream& operator=(const EventStream&) = delete;
    ~EventStream() { close(); }

    /// The session id given to the constructor.
    const std::string& sid() const noexcept { return sid_; }

    /// Stamps (timestamp, source, id), masks secrets, stores and delivers the event; returns its id.
    std::int64_t add_event(Event event, EventSource source) {
        if (const auto& id = meta(event).id) {
            throw error(errc::conflict, "Event already has an ID:" + std::to_string(*id) +
                                            ". It was probably added back to the EventStream from inside a "
                                            "handler, triggering a loop.");
        }
        meta(event).timestamp = detail::local_iso_timestamp();
        meta(event).source = source;
        std::vector<std::string> secrets;
        {
            std::lock_guard lock(mutex_);
            for (const auto& [name, value] : secrets_)
                if (!value.empty()) secrets.push_back(value);
        }
        if (!secrets.empty()) {
            ordered_json data = to_json(event);
            detail::mask_secrets_in_object(data, secrets, true);
            event = event_from_json(data);  // the stored event is the sanitised one
        }
        std::lock_guard lock(mutex_);
        const std::int64_t id = static_cast<std::int64_t>(events_.size());
        meta(event).id = id;
        auto stored = std::make_shared<const Event>(std::move(event));
        events_.push_back(stored);
        if (!closed_) {
            for (auto& [subscriber, callbacks] : subscribers_) {  // sorted subscriber order, as the reference
                for (auto& [callback_id, slot] : callbacks) {
                    slot->queue.push_back(Item{id, stored});
                    slot->wake.notify_one();
                }
            }
        }
        return id;
    }

    /// Registers a callback; it receives every event added from now on, in order, on its own thread.
    void subscribe(std::string subscriber_id, Callback callback, std::string callback_id) {
        std::lock_guard lock(mutex_);
        auto& callbacks = subscribers_[subscriber_id];
        if (callbacks.count(callback_id) != 0) {
            throw error(errc::conflict,
                        "Callback ID on subscriber " + subscriber_id + " already exists: " + callback_id);
        }
        auto slot = std::make_shared<Slot>();
        slot->subscriber_id = subscriber_id;
        slot->callback_id = callback_id;
        slot->callback = std::move(callback);
        slot->stop = closed_;
        slot->thread = std::thread([this, slot] { run_worker(*slot); });
        callbacks.emplace(std::move(callback_id), std::move(slot));
    }

    /// Removes a callback (unknown ids are tolerated). Events still queued for it are dropped;
    /// a callback that is running finishes first (unless it unsubscribes itself).
    void unsubscribe(const std::string& subscriber_id, const std::string& callback_id) {
        std::shared_ptr<Slot> slot;
        {
            std::lock_guard lock(mutex_);
            auto sub = subscribers_.find(subscriber_id);
            if (sub == subscribers_.end()) return;
            auto it = sub->second.find(callback_id);
            if (it == sub->second.end()) return;
            slot = std::move(it->second);
            sub->second.erase(it);
            if (sub->second.empty()) subscribers_.erase(sub);
            slot->stop = true;
            slot->queue.clear();
            slot->wake.notify_one();
            delivered_.notify_all();
            if (slot->thread.get_id() == std::this_thread::get_id()) {
                retired_.push_back(slot);  // joined by close()
                return;
            }
        }
        if (slot->thread.joinable()) slot->thread.join();
    }

    /// Replaces the secret values to mask (name -> value).
    void set_secrets(std::map<std::string, std::string> secrets) {
        std::lock_guard lock(mutex_);
        secrets_ = std::move(secrets);
    }
    /// Adds or overwrites secret values.
    void update_secrets(const std::map<std::string, std::string>& secrets) {
        std::lock_guard lock(mutex_);
        for (const auto& [name, value] : secrets) secrets_[name] = value;
    }

    /// The stored event with this id; errc::not_found when there is none.
    Event get_event(std::int64_t id) const {
        std::lock_guard lock(mutex_);
        if (id < 0 || id >= static_cast<std::int64_t>(events_.size()))
            throw error(errc::not_found, "No event with id " + std::to_string(id));
        return *events_[static_cast<std::size_t>(id)];
    }

    /// The id of the newest event, -1 when the stream is empty.
    std::int64_t get_latest_event_id() const {
        std::lock_guard lock(mutex_);
        return static_cast<std::int64_t>(events_.size()) - 1;
    }
    /// The newest stored event, nullopt when the stream is empty.
    std::optional<Event> get_latest_event() const {
        std::lock_guard lock(mutex_);
        if (events_.empty()) return std::nullopt;
        return *events_.back();
    }

    /// Events with start_id <= id <= end_id (inclusive; default: the newest), oldest first
    /// unless `reverse`; `filter` keeps the matching ones, `limit` caps the count.
    std::vector<Event> search_events(std::int64_t start_id = 0, std::optional<std::int64_t> end_id = std::nullopt,
                                     bool reverse = false, const std::function<bool(const Event&)>& filter = {},
                                     std::optional<std::size_t> limit = std::nullopt) const {
        std::vector<std::shared_ptr<const Event>> snapshot;
        {
            std::lock_guard lock(mutex_);
            const std::int64_t last = static_cast<std::int64_t>(events_.size()) - 1;
            const std::int64_t hi = end_id ? std::min(*end_id, last) : last;
            for (std::int64_t id = std::max<std::int64_t>(start_id, 0); id <= hi; ++id)
                snapshot.push_back(events_[static_cast<std::size_t>(id)]);
        }
        if (reverse) std::reverse(snapshot.begin(), snapshot.end());
        std::vector<Event> out;
        for (const auto& e : snapshot) {
            if (limit && out.size() >= *limit) break;
            if (!filter || filter(*e)) out.push_back(*e);
        }
        return out;
    }

    /// Every stored event whose source is `source`, oldest first.
    std::vector<Event> filtered_events_by_source(EventSource source) const {
        return search_events(0, std::nullopt, false, [source](const Event& e) { return meta(e).source == source; });
    }

    /// Blocks until every current callback has finished with all events up to `id`, or the
    /// timeout passes (false). Never call it from a callback for an event queued to that callback.
    bool wait_until_delivered(std::int64_t id, std::chrono::milliseconds timeout) {
        std::unique_lock lock(mutex_);
        return delivered_.wait_for(lock, timeout, [&] { return delivered_locked(id); });
    }
    /// wait_until_delivered() for the newest event.
    bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
        return wait_until_delivered(get_latest_event_id(), timeout);
    }

    /// Replaces the handler of callbacks that throw (default: one line on std::cerr).
    void set_error_handler(ErrorHandler handler) {
        std::lock_guard lock(mutex_);
        error_handler_ = std::move(handler);
    }

    /// Stops delivery: running callbacks finish, queued events are dropped, threads are joined.
    /// Events added afterwards are stored but not delivered. Idempotent.
    void close() {
        std::vector<std::shared_ptr<Slot>> slots;
        {
            std::lock_guard lock(mutex_);
            closed_ = true;
            for (auto& [subscriber, callbacks] : subscribers_)
                for (auto& [callback_id, slot] : callbacks) slots.push_back(slot);
            subscribers_.clear();
            for (auto& slot : retired_) slots.push_back(slot);
            retired_.clear();
            for (auto& slot : slots) {
                slot->stop = true;
                slot->queue.clear();
                slot->wake.notify_one();
            }
            delivered_.notify_all();
        }
        for (auto& slot : slots) {
            if (!slot->thread.joinable()) continue;
            if (slot->thread.get_id() == std::this_thread::get_id()) slot->thread.detach();  // close() from a callback
            else slot->thread.join();
        }
    }

private:
    struct Item {
        std::int64_t id;
        std::shared_ptr<const Event> event;
    };
    struct Slot {
        std::string subscriber_id, callback_id;
        Callback callback;
        std::deque<Item> queue;
        std::optional<std::int64_t> in_flight;
        bool stop = false;
        std::condition_variable wake;
        std::thread thread;
    };

    bool delivered_locked(std::int64_t id) const {
        for (const auto& [subscriber, callbacks] : subscribers_) {
            for (const auto& [callback_id, slot] : callbacks) {
                if (slot->in_flight && *slot->in_flight <= id) return false;
                if (!slot->queue.empty() && slot->queue.front().id <= id) return false;
            }
        }
        return true;
    }

    void run_worker(Slot& slot) {
        std::unique_lock lock(mutex_);
        while (true) {
            slot.wake.wait(lock, [&] { return slot.stop || !slot.queue.empty(); });
            if (slot.stop) break;
            Item item = std::move(slot.queue.front());
            slot.queue.pop_front();
            slot.in_flight = item.id;
            lock.unlock();
            std::exception_ptr failure;
            try {
                slot.callback(*item.event);
            } catch (...) {
                failure = std::current_exception();
            }
            if (failure) report(slot, failure);
            lock.lock();
            slot.in_flight.reset();
            delivered_.notify_all();
        }
        slot.in_flight.reset();
        delivered_.notify_all();
    }

    void report(const Slot& slot, std::exception_ptr failure) {
        ErrorHandler handler;
        {
            std::lock_guard lock(mutex_);
            handler = error_handler_;
        }
        if (handler) {
            handler(slot.subscriber_id, slot.callback_id, failure);
            return;
        }
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            std::cerr << "runbox: event callback " << slot.subscriber_id << "/" << slot.callback_id
                      << " threw: " << e.what() << "\n";
        } catch (...) {
            std::cerr << "runbox: event callback " << slot.subscriber_id << "/" << slot.callback_id
                      << " threw a non-standard exception\n";
        }
    }

    std::string sid_;
    mutable std::mutex mutex_;
    std::condition_variable delivered_;
    std::vector<std::shared_ptr<const Event>> events_;
    std::map<std::string, std::map<std::string, std::shared_ptr<Slot>>> subscribers_;
    std::vector<std::shared_ptr<Slot>> retired_;
    std::map<std::string, std::string> secrets_;
    ErrorHandler error_handler_;
    bool closed_ = false;
};

}  // namespace runbox
