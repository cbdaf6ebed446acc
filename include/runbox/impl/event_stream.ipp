/// \file
/// Definitions of runbox/event_stream.hpp (included by the header when header-only; by
/// runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/event_stream.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

namespace runbox {

namespace detail {

RUNBOX_DECL std::string local_iso_timestamp(std::chrono::system_clock::time_point now) {
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

RUNBOX_DECL void replace_all(std::string& s, std::string_view from, std::string_view to) {
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

RUNBOX_DECL std::int64_t EventStream::add_event(Event event, EventSource source) {
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

RUNBOX_DECL void EventStream::subscribe(std::string subscriber_id, Callback callback, std::string callback_id) {
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

RUNBOX_DECL void EventStream::unsubscribe(const std::string& subscriber_id, const std::string& callback_id) {
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

RUNBOX_DECL void EventStream::set_secrets(std::map<std::string, std::string> secrets) {
    std::lock_guard lock(mutex_);
    secrets_ = std::move(secrets);
}

RUNBOX_DECL void EventStream::update_secrets(const std::map<std::string, std::string>& secrets) {
    std::lock_guard lock(mutex_);
    for (const auto& [name, value] : secrets) secrets_[name] = value;
}

RUNBOX_DECL Event EventStream::get_event(std::int64_t id) const {
    std::lock_guard lock(mutex_);
    if (id < 0 || id >= static_cast<std::int64_t>(events_.size()))
        throw error(errc::not_found, "No event with id " + std::to_string(id));
    return *events_[static_cast<std::size_t>(id)];
}

RUNBOX_DECL std::int64_t EventStream::get_latest_event_id() const {
    std::lock_guard lock(mutex_);
    return static_cast<std::int64_t>(events_.size()) - 1;
}

RUNBOX_DECL std::optional<Event> EventStream::get_latest_event() const {
    std::lock_guard lock(mutex_);
    if (events_.empty()) return std::nullopt;
    return *events_.back();
}

RUNBOX_DECL std::vector<Event> EventStream::search_events(std::int64_t start_id, std::optional<std::int64_t> end_id,
                                                          bool reverse, const std::function<bool(const Event&)>& filter,
                                                          std::optional<std::size_t> limit) const {
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

RUNBOX_DECL std::vector<Event> EventStream::filtered_events_by_source(EventSource source) const {
    return search_events(0, std::nullopt, false, [source](const Event& e) { return meta(e).source == source; });
}

RUNBOX_DECL bool EventStream::wait_until_delivered(std::int64_t id, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mutex_);
    return delivered_.wait_for(lock, timeout, [&] { return delivered_locked(id); });
}

RUNBOX_DECL bool EventStream::flush(std::chrono::milliseconds timeout) {
    return wait_until_delivered(get_latest_event_id(), timeout);
}

RUNBOX_DECL void EventStream::set_error_handler(ErrorHandler handler) {
    std::lock_guard lock(mutex_);
    error_handler_ = std::move(handler);
}

RUNBOX_DECL void EventStream::close() {
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

RUNBOX_DECL bool EventStream::delivered_locked(std::int64_t id) const {
    for (const auto& [subscriber, callbacks] : subscribers_) {
        for (const auto& [callback_id, slot] : callbacks) {
            if (slot->in_flight && *slot->in_flight <= id) return false;
            if (!slot->queue.empty() && slot->queue.front().id <= id) return false;
        }
    }
    return true;
}

RUNBOX_DECL void EventStream::run_worker(Slot& slot) {
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

RUNBOX_DECL void EventStream::report(const Slot& slot, std::exception_ptr failure) {
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

}  // namespace runbox
