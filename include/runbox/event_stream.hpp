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

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"
#include "runbox/events.hpp"

namespace runbox {

namespace detail {

/// Python's datetime.now().isoformat(): local time, microseconds omitted when zero.
RUNBOX_DECL std::string local_iso_timestamp(
    std::chrono::system_clock::time_point now = std::chrono::system_clock::now());

/// Replaces every `from` in `s` by `to`, left to right (the one copy in the tree).
RUNBOX_DECL void replace_all(std::string& s, std::string_view from, std::string_view to);

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
    std::int64_t add_event(Event event, EventSource source);

    /// Registers a callback; it receives every event added from now on, in order, on its own thread.
    void subscribe(std::string subscriber_id, Callback callback, std::string callback_id);

    /// Removes a callback (unknown ids are tolerated). Events still queued for it are dropped;
    /// a callback that is running finishes first (unless it unsubscribes itself).
    void unsubscribe(const std::string& subscriber_id, const std::string& callback_id);

    /// Replaces the secret values to mask (name -> value).
    void set_secrets(std::map<std::string, std::string> secrets);
    /// Adds or overwrites secret values.
    void update_secrets(const std::map<std::string, std::string>& secrets);

    /// The stored event with this id; errc::not_found when there is none.
    Event get_event(std::int64_t id) const;

    /// The id of the newest event, -1 when the stream is empty.
    std::int64_t get_latest_event_id() const;
    /// The newest stored event, nullopt when the stream is empty.
    std::optional<Event> get_latest_event() const;

    /// Events with start_id <= id <= end_id (inclusive; default: the newest), oldest first
    /// unless `reverse`; `filter` keeps the matching ones, `limit` caps the count.
    std::vector<Event> search_events(std::int64_t start_id = 0, std::optional<std::int64_t> end_id = std::nullopt,
                                     bool reverse = false, const std::function<bool(const Event&)>& filter = {},
                                     std::optional<std::size_t> limit = std::nullopt) const;

    /// Every stored event whose source is `source`, oldest first.
    std::vector<Event> filtered_events_by_source(EventSource source) const;

    /// Blocks until every current callback has finished with all events up to `id`, or the
    /// timeout passes (false). Never call it from a callback for an event queued to that callback.
    bool wait_until_delivered(std::int64_t id, std::chrono::milliseconds timeout);
    /// wait_until_delivered() for the newest event.
    bool flush(std::chrono::milliseconds timeout = std::chrono::seconds(10));

    /// Replaces the handler of callbacks that throw (default: one line on std::cerr).
    void set_error_handler(ErrorHandler handler);

    /// Stops delivery: running callbacks finish, queued events are dropped, threads are joined.
    /// Events added afterwards are stored but not delivered. Idempotent.
    void close();

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

    bool delivered_locked(std::int64_t id) const;

    void run_worker(Slot& slot);

    void report(const Slot& slot, std::exception_ptr failure);

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

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/impl/event_stream.ipp"
#endif
