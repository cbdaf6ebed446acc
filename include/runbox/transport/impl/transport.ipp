/// \file
/// Definitions of runbox/transport/transport.hpp (included by the header when header-only; by
/// runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/transport/transport.hpp"

#include <cctype>
#include <charconv>
#include <cmath>
#include <ctime>
#include <iomanip>
#include <locale>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "runbox/detail/json.hpp"

namespace runbox {

// --- Headers ---

RUNBOX_DECL std::optional<std::string> Headers::get(std::string_view name) const {
    for (const auto& [key, value] : fields_) {
        if (detail::iequals(key, name)) return value;
    }
    return std::nullopt;
}

RUNBOX_DECL std::vector<std::string> Headers::get_all(std::string_view name) const {
    std::vector<std::string> out;
    for (const auto& [key, value] : fields_) {
        if (detail::iequals(key, name)) out.push_back(value);
    }
    return out;
}

RUNBOX_DECL Headers& Headers::set(std::string name, std::string value) {
    auto it = std::find_if(fields_.begin(), fields_.end(),
                           [&](const value_type& f) { return detail::iequals(f.first, name); });
    if (it == fields_.end()) {
        fields_.emplace_back(std::move(name), std::move(value));
        return *this;
    }
    it->second = std::move(value);
    const auto first = static_cast<std::size_t>(it - fields_.begin());
    std::size_t index = 0;
    std::erase_if(fields_, [&](const value_type& f) { return index++ > first && detail::iequals(f.first, name); });
    return *this;
}

RUNBOX_DECL std::size_t Headers::erase(std::string_view name) {
    return static_cast<std::size_t>(
        std::erase_if(fields_, [&](const value_type& f) { return detail::iequals(f.first, name); }));
}

RUNBOX_DECL Headers& Headers::merge(const Headers& overrides) {
    for (const auto& [key, value] : overrides) set(key, value);
    return *this;
}

RUNBOX_DECL bool Request::is_idempotent() const {
    if (idempotent) return *idempotent;
    for (std::string_view m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}) {
        if (detail::iequals(method, m)) return true;
    }
    return false;
}

// --- URLs and query strings ---

RUNBOX_DECL Url parse_url(std::string_view text) {
    auto fail = [](const char* why) { return error(errc::config_invalid, std::string("invalid URL: ") + why, "transport"); };
    Url url;
    const auto sep = text.find("://");
    if (sep == std::string_view::npos || sep == 0) throw fail("missing scheme");
    for (char c : text.substr(0, sep)) url.scheme.push_back(detail::ascii_lower(c));
    if (url.scheme != "http" && url.scheme != "https") throw fail("scheme must be http or https");
    text.remove_prefix(sep + 3);

    const auto authority_end = std::min(text.find_first_of("/?#"), text.size());
    std::string_view authority = text.substr(0, authority_end);
    std::string_view rest = text.substr(authority_end);
    if (authority.find('@') != std::string_view::npos) throw fail("user info is not supported");

    std::string_view port_text;
    if (!authority.empty() && authority.front() == '[') {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) throw fail("unterminated IPv6 literal");
        url.host = std::string(authority.substr(1, close - 1));
        const auto after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') throw fail("garbage after IPv6 literal");
            port_text = after.substr(1);
        }
        if (url.host.empty() || url.host.find_first_not_of("0123456789abcdefABCDEF:.") != std::string::npos) {
            throw fail("bad IPv6 literal");
        }
    } else {
        const auto colon = authority.rfind(':');
        if (colon != std::string_view::npos) {
            url.host = std::string(authority.substr(0, colon));
            port_text = authority.substr(colon + 1);
        } else {
            url.host = std::string(authority);
        }
        if (url.host.find(':') != std::string::npos) throw fail("IPv6 hosts need brackets");
    }
    if (url.host.empty()) throw fail("missing host");

    if (!port_text.empty()) {
        int port = 0;
        const auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
        if (ec != std::errc{} || end != port_text.data() + port_text.size() || port < 1 || port > 65535) {
            throw fail("bad port");
        }
        url.port = port;
    } else {
        url.port = url.scheme == "https" ? 443 : 80;
    }

    rest = rest.substr(0, rest.find('#'));
    if (rest.empty() || rest.front() == '?') url.target = "/";
    url.target += std::string(rest);
    return url;
}

RUNBOX_DECL std::string url_encode(std::string_view value) {
    static constexpr char hex[] = "0123456789ABCDEF";
    std::string out;
    out.reserve(value.size());
    for (const char c : value) {
        const auto byte = static_cast<unsigned char>(c);
        if (std::isalnum(byte) != 0 || std::string_view("-._~!*'()").find(c) != std::string_view::npos) {
            out.push_back(c);
        } else {
            out.push_back('%');
            out.push_back(hex[byte >> 4]);
            out.push_back(hex[byte & 0x0F]);
        }
    }
    return out;
}

RUNBOX_DECL std::string query_string(std::initializer_list<std::pair<std::string_view, std::string_view>> params) {
    std::string out;
    for (const auto& [key, value] : params) {
        if (!out.empty()) out += '&';
        out += url_encode(key);
        out += '=';
        out += url_encode(value);
    }
    return out;
}

namespace detail {

RUNBOX_DECL void check_header_fields(const Headers& headers) {
    for (const auto& [name, value] : headers) {
        if (name.empty() || name.find_first_of("\r\n: \t") != std::string::npos) {
            throw error(errc::config_invalid, "malformed header name", "transport");
        }
        if (value.find_first_of("\r\n") != std::string::npos) {
            throw error(errc::config_invalid, "the value of header " + name + " contains a line break", "transport");
        }
    }
}

RUNBOX_DECL bool ExchangeControl::head(const Response& head) {
    if (!live()) return false;
    if (head_seen_) return true;
    head_seen_ = true;
    streaming_ = request_.on_body && head.ok();
    if (!request_.on_head) return true;
    try {
        request_.on_head(head);
    } catch (...) {
        failure_ = std::current_exception();
    }
    return live();
}

RUNBOX_DECL bool ExchangeControl::chunk(std::string_view data) {
    if (!live()) return false;
    if (data.empty()) return true;
    delivered_ = true;
    try {
        action_ = request_.on_body(data);
    } catch (...) {
        failure_ = std::current_exception();
    }
    return live();
}

RUNBOX_DECL void ExchangeControl::raise_if_stopped(std::string_view where) const {
    if (failure_) std::rethrow_exception(failure_);
    if (action_ == StreamAction::fail) {
        throw error(errc::bad_response, std::string(where) + ": the stream handler failed the exchange", "transport");
    }
    if (stop_requested()) throw error(errc::cancelled, std::string(where) + ": cancelled", "transport");
    if (expired()) {
        throw error(errc::timeout, std::string(where) + ": the exchange passed its deadline", "transport");
    }
}

RUNBOX_DECL Watchdog::Watchdog(const Request& request, std::function<void()> abort) {
    if (!request.stop.stop_possible() && !request.deadline) return;
    thread_ = std::jthread([this, user = request.stop, deadline = request.deadline,
                            abort = std::move(abort)](std::stop_token self) {
        // Registered before the lock is taken: a token already stopped runs the callback here.
        std::stop_callback wake(user, [this] {
            std::lock_guard guard(mutex_);
            wakeup_.notify_all();
        });
        std::unique_lock lock(mutex_);
        auto stopped = [&] { return user.stop_requested(); };
        if (deadline) {
            wakeup_.wait_until(lock, self, *deadline, stopped);
        } else {
            wakeup_.wait(lock, self, stopped);
        }
        if (self.stop_requested()) return;  // the exchange finished first
        lock.unlock();
        abort();
    });
}

RUNBOX_DECL Watchdog::~Watchdog() {
    if (thread_.joinable()) {
        thread_.request_stop();
        thread_.join();
    }
}

}  // namespace detail

RUNBOX_DECL std::function<StreamAction(std::string_view)> FrameHandler::chunk_handler() const {
    return [state = state_](std::string_view chunk) {
        state->reader.feed(chunk);
        while (auto frame = state->reader.next()) {
            ++state->frames;
            const StreamAction action = state->on_frame(*frame);
            if (action != StreamAction::next) {
                state->ended = true;
                return action;
            }
        }
        return StreamAction::next;
    };
}

namespace detail {

RUNBOX_DECL std::optional<std::chrono::sys_seconds> parse_http_date(std::string_view text) {
    static constexpr const char* formats[] = {
        "%a, %d %b %Y %H:%M:%S",  // Sun, 06 Nov 1994 08:49:37 GMT
        "%A, %d-%b-%y %H:%M:%S",  // Sunday, 06-Nov-94 08:49:37 GMT
        "%a %b %d %H:%M:%S %Y",   // Sun Nov  6 08:49:37 1994
    };
    for (const char* format : formats) {
        std::tm tm{};
        std::istringstream in{std::string(text)};
        in.imbue(std::locale::classic());
        in >> std::get_time(&tm, format);
        if (in.fail()) continue;
        std::string zone;
        in >> zone;
        if (!zone.empty() && zone != "GMT" && zone != "UTC") continue;
        using namespace std::chrono;
        const year_month_day date{year{tm.tm_year + 1900}, month{static_cast<unsigned>(tm.tm_mon + 1)},
                                  day{static_cast<unsigned>(tm.tm_mday)}};
        if (!date.ok()) continue;
        return sys_days{date} + hours{tm.tm_hour} + minutes{tm.tm_min} + seconds{tm.tm_sec};
    }
    return std::nullopt;
}

RUNBOX_DECL std::optional<double> parse_non_negative(std::string_view text) {
    text = trim(text);
    if (text.empty() || text.find_first_not_of("0123456789.") != std::string_view::npos) return std::nullopt;
    std::istringstream in{std::string(text)};
    in.imbue(std::locale::classic());
    double value = 0;
    in >> value;
    if (in.fail() || !in.eof() || !std::isfinite(value)) return std::nullopt;
    return value;
}

RUNBOX_DECL std::chrono::milliseconds to_millis(double ms) {
    constexpr double cap = 365.0 * 24 * 3600 * 1000;  // keeps the cast defined
    if (!(ms > 0)) return std::chrono::milliseconds::zero();  // negative, zero or NaN
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(std::min(ms, cap))));
}

}  // namespace detail

RUNBOX_DECL std::optional<std::chrono::milliseconds> parse_retry_after(
    const Headers& headers, std::chrono::system_clock::time_point now) {
    std::optional<std::chrono::milliseconds> best;
    auto offer = [&](std::chrono::milliseconds candidate) {
        if (candidate < std::chrono::milliseconds::zero()) candidate = std::chrono::milliseconds::zero();
        if (!best || candidate > *best) best = candidate;
    };
    for (const auto& [name, value] : headers) {
        if (detail::iequals(name, "retry-after-ms")) {
            if (auto ms = detail::parse_non_negative(value)) offer(detail::to_millis(*ms));
        } else if (detail::iequals(name, "retry-after") || detail::istarts_with(name, "retry-after-")) {
            if (auto s = detail::parse_non_negative(value)) {
                offer(detail::to_millis(*s * 1000.0));
            } else if (auto when = detail::parse_http_date(detail::trim(value))) {
                // In seconds, then capped by to_millis: a date centuries ahead is a long wait
                // (which the retry budget refuses), never an overflow.
                const auto ahead = *when - std::chrono::floor<std::chrono::seconds>(now);
                offer(detail::to_millis(static_cast<double>(ahead.count()) * 1000.0));
            }
        }
    }
    return best;
}

RUNBOX_DECL void raise_for_status(const Response& response, std::string_view provider,
                                  const std::vector<std::string>& secrets) {
    if (response.status >= 200 && response.status < 400) return;
    std::string message;
    auto text_of = [](const nlohmann::json& value) -> std::string {
        if (value.is_string()) return value.get<std::string>();
        if (value.is_array()) {  // NestJS validation lists
            std::string joined;
            for (const auto& item : value) {
                if (!joined.empty()) joined += "; ";
                joined += item.is_string() ? item.get<std::string>() : item.dump();
            }
            return joined;
        }
        return value.dump();
    };
    const auto json = detail::parse_untrusted_json(response.body);
    if (json.is_object()) {
        for (const char* key : {"detail", "message", "error"}) {
            if (auto it = json.find(key); it != json.end() && !it->is_null()) {
                message = text_of(*it);
                break;
            }
        }
    }
    if (message.empty() && !json.is_discarded() && !json.is_object()) message = text_of(json);
    if (message.empty() && json.is_discarded()) {
        constexpr std::size_t limit = 300;
        message = response.body.substr(0, limit);
        if (response.body.size() > limit) message += "...";
    }
    if (message.empty()) message = "HTTP status " + std::to_string(response.status);
    const errc code = response.status > 0 ? errc_from_http_status(response.status) : errc::bad_response;
    throw error(code, redact(std::move(message), secrets), std::string(provider), response.status,
                parse_retry_after(response.headers));
}

RUNBOX_DECL RetryPolicy RetryPolicy::none() {
    RetryPolicy policy;
    policy.max_attempts = 1;
    return policy;
}

RUNBOX_DECL bool RetryPolicy::retries_status(int status) const {
    return std::find(retry_statuses.begin(), retry_statuses.end(), status) != retry_statuses.end();
}

RUNBOX_DECL std::chrono::milliseconds RetryPolicy::backoff(int attempt, double unit_random) const {
    double nominal = static_cast<double>(initial_backoff.count());
    for (int i = 1; i < attempt && nominal < static_cast<double>(max_backoff.count()); ++i) nominal *= 2;
    nominal = std::min(nominal, static_cast<double>(max_backoff.count()));
    const double factor = 1.0 - std::clamp(jitter, 0.0, 1.0) * std::clamp(unit_random, 0.0, 1.0);
    return std::chrono::milliseconds(static_cast<std::int64_t>(std::max(0.0, nominal * factor)));
}

namespace detail {

RUNBOX_DECL double unit_random() {
    thread_local std::minstd_rand engine{std::random_device{}()};
    return std::uniform_real_distribution<double>(0.0, 1.0)(engine);
}

}  // namespace detail

RUNBOX_DECL std::function<void(Request&, int)> attempt_headers(std::string counter_header, std::string key_header) {
    return [counter_header = std::move(counter_header), key_header = std::move(key_header)](Request& request,
                                                                                          int attempt) {
        if (!counter_header.empty()) request.headers.set(counter_header, std::to_string(attempt));
        if (!key_header.empty() && !request.headers.contains(key_header)) {
            thread_local std::mt19937_64 engine{std::random_device{}()};
            static constexpr char hex[] = "0123456789abcdef";
            std::string key;
            for (int i = 0; i < 2; ++i) {
                auto bits = engine();
                for (int j = 0; j < 16; ++j, bits >>= 4) key.push_back(hex[bits & 0xF]);
            }
            request.headers.set(key_header, std::move(key));
        }
    };
}

}  // namespace runbox
