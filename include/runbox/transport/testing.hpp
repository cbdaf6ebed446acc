// runbox/transport/testing.hpp - transports for tests.
//
//  HandlerTransport           answers with a function (no network)
//  FaultInjectingTransport<I> drops, delays or answers chosen requests, or loses their answers
//                             after forwarding them; forwards the rest to I
//  RecordingTransport<I>      forwards to I and writes every exchange to a JSON-lines cassette,
//                             with credentials redacted
//  ReplayTransport            answers from a cassette, in order
//
// All of them satisfy TransportPolicy and are safe to call from several threads.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <openssl/evp.h>

#include "runbox/detail/base64.hpp"
#include "runbox/detail/json.hpp"
#include "runbox/error.hpp"
#include "runbox/transport/transport.hpp"

namespace runbox {

namespace detail {
/// Delivers a canned response to a request the way a real transport does: the
/// stop token and deadline are checked first, then on_head gets the head, then
/// a 2xx body goes to on_body (one chunk) and the handler's answer is honoured.
inline Response deliver_body(const Request& request, Response response, std::string_view who) {
    ExchangeControl control(request);
    if (!control.live()) control.raise_if_stopped(who);
    Response head;
    head.status = response.status;
    head.headers = response.headers;
    if (!control.head(head)) control.raise_if_stopped(who);
    if (control.streaming()) {
        std::string body = std::move(response.body);
        response.body.clear();
        if (!control.chunk(body)) {
            if (control.done()) {
                response.trailers.clear();  // the exchange was cut before the trailers
                return response;
            }
            control.raise_if_stopped(who);
        }
    }
    return response;
}
}  // namespace detail

// ---------------------------------------------------------------------------

/// A transport that answers every request with a function. Without one it
/// throws errc::transport, like a host nobody listens on.
class HandlerTransport {
public:
    using Handler = std::function<Response(const Request&)>;  ///< computes the answer to one request; may throw runbox::error like a real transport
    static constexpr bool supports_http2 = true;  ///< the handler can answer anything
    static constexpr bool supports_streaming = true;  ///< answers are fed to Request::on_body

    HandlerTransport() = default;
    explicit HandlerTransport(const TransportOptions&) {}  ///< no handler yet (TransportPolicy constructor; options unused)
    explicit HandlerTransport(Handler handler) : handler_(std::move(handler)) {}  ///< answers with `handler`

    void set_handler(Handler handler) { handler_ = std::move(handler); }  ///< replaces the handler (not thread-safe against a concurrent send)

    /// The handler's answer, fed through on_head/on_body like a real transport; errc::transport without a
    /// handler, errc::cancelled when Request::stop was already requested.
    Response send(const Request& request) {
        if (!handler_) throw error(errc::transport, "HandlerTransport has no handler", "transport");
        detail::ExchangeControl(request).raise_if_stopped("HandlerTransport");  // before the handler acts
        return detail::deliver_body(request, handler_(request), "HandlerTransport");
    }

private:
    Handler handler_;
};

// ---------------------------------------------------------------------------

/// One rule of a FaultInjectingTransport.
struct Fault {
    /// What a matching rule does.
    enum class Kind {
        drop,   ///< throw errc::transport, as if the connection was reset
        delay,  ///< wait, then forward (errc::timeout if the wait reaches request.timeout)
        reply,  ///< answer status + headers + body without forwarding
        lose_response,  ///< forward (the server performs it), then throw errc::transport: the answer is lost
        start_failure,  ///< provider fakes only (testing/fake_base.hpp): the sandbox that the matching request
                        ///< creates or starts fails to start, `body` = the reason; a transport forwards it
        garble_response,  ///< transports only: forward (the server performs it), then answer `status` + `body`
                          ///< instead of what the server said (an answer runbox cannot use); a fake ignores it
    };
    Kind kind = Kind::drop;  ///< what the rule does
    std::string method{};      ///< empty = any method (compared case-insensitively)
    std::string url_contains{};  ///< empty = any URL
    int times = 1;             ///< applies to the next `times` matching requests; < 0 = forever
    std::chrono::milliseconds delay{0};  ///< Kind::delay: how long to wait
    int status = 0;  ///< Kind::reply, Kind::garble_response: the HTTP status
    Headers headers{};  ///< Kind::reply, Kind::garble_response: the response headers
    std::string body{};  ///< Kind::reply, Kind::garble_response: the response body; Kind::start_failure: the reason

    /// Whether `request` matches method and url_contains (ignores `times`).
    bool matches(const Request& request) const {
        return (method.empty() || detail::iequals(method, request.method)) &&
               request.url.find(url_contains) != std::string::npos;
    }
};

/// Forwards to `Inner` except where a rule says otherwise. Rules are tried in
/// the order added; the first live matching rule applies and uses up one of
/// its `times`.
template <class Inner>
class FaultInjectingTransport {
public:
    static constexpr bool supports_http2 = Inner::supports_http2;  ///< as Inner
    static constexpr bool supports_streaming = Inner::supports_streaming;  ///< as Inner

    /// Builds Inner from `options` (TransportPolicy constructor).
    explicit FaultInjectingTransport(const TransportOptions& options)
        requires std::constructible_from<Inner, const TransportOptions&>
        : inner_(options) {}
    explicit FaultInjectingTransport(Inner inner) : inner_(std::move(inner)) {}  ///< wraps `inner`, no rules yet

    /// Appends a rule; thread-safe (rules and the request log have one lock).
    FaultInjectingTransport& add(Fault fault) {
        std::lock_guard lock(state_->mutex);
        state_->faults.push_back(std::move(fault));
        return *this;
    }
    /// Adds a Fault::Kind::drop rule: the next `times` matching requests throw errc::transport.
    FaultInjectingTransport& drop(std::string method, std::string url_contains, int times = 1) {
        return add(Fault{.kind = Fault::Kind::drop, .method = std::move(method),
                         .url_contains = std::move(url_contains), .times = times});
    }
    /// Adds a Fault::Kind::delay rule: wait `by`, then forward (errc::timeout if `by` reaches
    /// Request::timeout).
    FaultInjectingTransport& delay(std::string method, std::string url_contains, std::chrono::milliseconds by,
                                   int times = 1) {
        return add(Fault{.kind = Fault::Kind::delay, .method = std::move(method),
                         .url_contains = std::move(url_contains), .times = times, .delay = by});
    }
    /// Adds a Fault::Kind::reply rule: answer `status`, `headers`, `body` without forwarding.
    FaultInjectingTransport& reply(std::string method, std::string url_contains, int status, Headers headers = {},
                                   std::string body = {}, int times = 1) {
        return add(Fault{.kind = Fault::Kind::reply, .method = std::move(method),
                         .url_contains = std::move(url_contains), .times = times, .status = status,
                         .headers = std::move(headers), .body = std::move(body)});
    }
    /// The request reaches the server and is performed; its answer is lost (errc::transport).
    FaultInjectingTransport& lose_response(std::string method, std::string url_contains, int times = 1) {
        return add(Fault{.kind = Fault::Kind::lose_response, .method = std::move(method),
                         .url_contains = std::move(url_contains), .times = times});
    }
    /// The request reaches the server and is performed; the answer is replaced by `status` and `body`.
    FaultInjectingTransport& garble_response(std::string method, std::string url_contains, int status, std::string body,
                                             int times = 1) {
        return add(Fault{.kind = Fault::Kind::garble_response, .method = std::move(method),
                         .url_contains = std::move(url_contains), .times = times, .status = status,
                         .body = std::move(body)});
    }
    /// Removes every rule (the request log stays).
    void clear_faults() {
        std::lock_guard lock(state_->mutex);
        state_->faults.clear();
    }

    /// Every request seen (faulted or forwarded).
    std::size_t requests_seen() const {
        std::lock_guard lock(state_->mutex);
        return state_->seen.size();
    }
    /// Requests seen whose method matches (empty = any) and whose URL contains `url_contains`.
    std::size_t requests_seen(std::string_view method, std::string_view url_contains) const {
        std::lock_guard lock(state_->mutex);
        return static_cast<std::size_t>(std::count_if(state_->seen.begin(), state_->seen.end(), [&](const auto& s) {
            return (method.empty() || detail::iequals(method, s.first)) && s.second.find(url_contains) != std::string::npos;
        }));
    }
    /// (method, url) of every request seen, in order.
    std::vector<std::pair<std::string, std::string>> seen() const {
        std::lock_guard lock(state_->mutex);
        return state_->seen;
    }

    Inner& inner() noexcept { return inner_; }  ///< the wrapped transport

    /// Forwards to the inner transport's pool, when it has one (Runtime::close uses it).
    void clear_pool()
        requires requires(Inner& inner) { inner.clear_pool(); }
    {
        inner_.clear_pool();
    }
    /// Records the request, applies the first live matching rule (using up one of its `times`), else forwards
    /// to Inner.
    Response send(const Request& request) {
        std::optional<Fault> fault;
        {
            std::lock_guard lock(state_->mutex);
            state_->seen.emplace_back(request.method, request.url);
            for (auto& rule : state_->faults) {
                if (rule.times == 0 || !rule.matches(request)) continue;
                if (rule.times > 0) --rule.times;
                fault = rule;
                break;
            }
        }
        if (!fault) return inner_.send(request);
        switch (fault->kind) {
            case Fault::Kind::drop:
                throw error(errc::transport, request.method + " failed: connection dropped (injected)", "transport");
            case Fault::Kind::delay:
                if (fault->delay >= request.timeout) {
                    std::this_thread::sleep_for(request.timeout);
                    throw error(errc::timeout,
                                request.method + " timed out after " + std::to_string(request.timeout.count()) +
                                    " ms (injected delay)",
                                "transport");
                }
                std::this_thread::sleep_for(fault->delay);
                return inner_.send(request);
            case Fault::Kind::reply:
                break;
            case Fault::Kind::start_failure:
                return inner_.send(request);
            case Fault::Kind::lose_response:
                inner_.send(request);
                throw error(errc::transport, request.method + " failed: the response was lost (injected)", "transport");
            case Fault::Kind::garble_response:
                inner_.send(request);
                break;  // answered below, as a reply
        }
        Response response;
        response.status = fault->status;
        response.headers = std::move(fault->headers);
        response.body = std::move(fault->body);
        return detail::deliver_body(request, std::move(response), "FaultInjectingTransport");
    }

private:
    struct State {
        mutable std::mutex mutex;
        std::vector<Fault> faults;
        std::vector<std::pair<std::string, std::string>> seen;
    };
    Inner inner_;
    std::unique_ptr<State> state_ = std::make_unique<State>();
};

// ---------------------------------------------------------------------------
// Cassettes: one JSON object per line,
//   {"request":{"method","url","headers":[[n,v],...],"body"|"body_base64"},
//    "response":{"status","headers","body"|"body_base64","streamed","trailers"?}}   or   "error":{"code","message","http_status"}

namespace detail {
/// Stores a body as "body" when it is valid UTF-8 text, else as "body_base64".
inline void put_body(nlohmann::json& object, const std::string& body) {
    try {
        (void)nlohmann::json(body).dump();
        object["body"] = body;
    } catch (const nlohmann::json::type_error&) {
        object["body_base64"] = base64_encode(body);
    }
}

inline std::string get_body(const nlohmann::json& object) {
    if (auto it = object.find("body_base64"); it != object.end()) return base64_decode(it->get<std::string>(), "a cassette body");
    return object.value("body", std::string());
}

inline nlohmann::json headers_to_json(const Headers& headers) {
    auto out = nlohmann::json::array();
    for (const auto& [name, value] : headers) out.push_back({name, value});
    return out;
}

inline Headers headers_from_json(const nlohmann::json& array) {
    Headers out;
    if (!array.is_array()) return out;
    for (const auto& field : array) out.add(field.at(0).get<std::string>(), field.at(1).get<std::string>());
    return out;
}

inline errc errc_from_name(std::string_view name) {
    for (int value = static_cast<int>(errc::config_invalid); value <= static_cast<int>(errc::cancelled); ++value) {
        if (to_string(static_cast<errc>(value)) == name) return static_cast<errc>(value);
    }
    return errc::transport;
}

/// Header names whose values are credentials, whatever the provider.
inline bool is_credential_header(std::string_view name) {
    for (std::string_view sensitive : {"authorization", "proxy-authorization", "x-api-key", "x-session-api-key",
                                       "x-daytona-preview-token", "x-access-token", "cookie", "set-cookie",
                                       "x-runloop-tunnel-authorization", "e2b-traffic-access-token"}) {
        if (iequals(name, sensitive)) return true;
    }
    return istarts_with(name, "x-modal-");
}

/// A body whose bytes are counted by length prefixes (gRPC/Connect envelopes, protobuf) or
/// that is not UTF-8 text: a redaction there must keep every byte offset.
inline bool is_length_sensitive(const Headers& headers, const std::string& body) {
    const std::string type = headers.get("content-type").value_or("");
    for (std::string_view framed : {"application/grpc", "application/connect", "application/proto",
                                    "application/x-protobuf", "application/octet-stream"}) {
        if (istarts_with(type, framed)) return true;
    }
    try {
        (void)nlohmann::json(body).dump();
        return false;
    } catch (const nlohmann::json::type_error&) {
        return true;  // not UTF-8
    }
}

/// Collects the string values of `fields` anywhere in `value` (bounded depth).
inline void collect_secret_fields(const nlohmann::json& value, const std::vector<std::string>& fields,
                                  std::vector<std::string>& out, int depth = 0) {
    if (depth > 32) return;
    if (value.is_object()) {
        for (const auto& [key, item] : value.items()) {
            if (item.is_string() && std::find(fields.begin(), fields.end(), key) != fields.end()) {
                out.push_back(item.get<std::string>());
            } else {
                collect_secret_fields(item, fields, out, depth + 1);
            }
        }
    } else if (value.is_array()) {
        for (const auto& item : value) collect_secret_fields(item, fields, out, depth + 1);
    }
}

/// The secrets named by request.secret_fields in a request or response body: the body as JSON,
/// or each message of a framed (Connect/gRPC-web JSON) body. Protobuf payloads cannot be searched
/// without their schema; a provider that sees a token there calls add_secret itself.
inline std::vector<std::string> secrets_in_body(const Request& request, const std::string& body) {
    std::vector<std::string> out;
    if (request.secret_fields.empty() || body.empty()) return out;
    collect_secret_fields(parse_untrusted_json(body), request.secret_fields, out);
    if (out.empty() && body.size() >= 5) {
        try {
            FrameReader reader;
            reader.feed(body);
            while (auto frame = reader.next()) {
                collect_secret_fields(parse_untrusted_json(frame->payload), request.secret_fields, out);
            }
        } catch (const error&) {
            // not a framed body
        }
    }
    return out;
}
}  // namespace detail

/// Forwards to `Inner` and appends every exchange (including errors) to a
/// JSON-lines cassette, truncated when the transport is built. Values of
/// credential headers (Authorization, X-API-Key, X-Session-API-Key,
/// X-Daytona-Preview-Token, X-Access-Token, Cookie, X-Runloop-Tunnel-Authorization,
/// E2B-Traffic-Access-Token, X-Modal-*) become "<redacted>", and so does every
/// occurrence of a registered secret - a credential header value seen earlier,
/// or the value of a request or response field named in Request::secret_fields (learned
/// before the exchange is written) - in URLs, headers and bodies. In a body that
/// length prefixes describe (gRPC/Connect/protobuf content types, or bytes that
/// are not UTF-8) a secret becomes as many '*' as it has bytes instead, so the
/// envelope and protobuf lengths stay true and the cassette still replays.
template <class Inner>
class RecordingTransport {
public:
    static constexpr bool supports_http2 = Inner::supports_http2;  ///< as Inner
    static constexpr bool supports_streaming = Inner::supports_streaming;  ///< as Inner
    static constexpr std::string_view redacted = "<redacted>";  ///< what credential header values and secrets become in a cassette

    /// Records to options.cassette_path.
    explicit RecordingTransport(const TransportOptions& options)
        requires std::constructible_from<Inner, const TransportOptions&>
        : RecordingTransport(options.cassette_path, Inner(options)) {}

    /// Records to `cassette` (truncated; errc::config_invalid if empty or not writable), redacting `secrets`
    /// too.
    RecordingTransport(std::filesystem::path cassette, Inner inner, std::vector<std::string> secrets = {})
        : inner_(std::move(inner)), state_(std::make_unique<State>()) {
        if (cassette.empty()) throw error(errc::config_invalid, "RecordingTransport needs a cassette path", "transport");
        state_->out.open(cassette, std::ios::binary | std::ios::trunc);
        if (!state_->out) throw error(errc::config_invalid, "cannot write the cassette " + cassette.string(), "transport");
        for (auto& secret : secrets) add_secret(std::move(secret));
    }

    /// Redacts `secret` from everything recorded from now on.
    void add_secret(std::string secret) {
        std::lock_guard lock(state_->mutex);
        learn(std::move(secret));
    }

    /// Exchanges written so far.
    std::size_t recorded() const {
        std::lock_guard lock(state_->mutex);
        return state_->count;
    }

    Inner& inner() noexcept { return inner_; }  ///< the wrapped transport

    /// Forwards to the inner transport's pool, when it has one (Runtime::close uses it).
    void clear_pool()
        requires requires(Inner& inner) { inner.clear_pool(); }
    {
        inner_.clear_pool();
    }
    /// Forwards to Inner and appends the exchange (or the error it threw, rethrown) to the cassette,
    /// redacted.
    Response send(const Request& request) {
        {
            std::lock_guard lock(state_->mutex);
            for (const auto& [name, value] : request.headers) {
                if (!detail::is_credential_header(name)) continue;
                learn(value);
                if (const auto space = value.find(' '); space != std::string::npos) learn(value.substr(space + 1));  // "Bearer <token>"
            }
            // A secret the request itself carries (a session key in a create's environment).
            for (auto& secret : detail::secrets_in_body(request, request.body)) learn(std::move(secret));
        }
        // A streamed body still reaches the caller; the recording keeps a copy.
        std::string streamed;
        Request forwarded;
        const Request* to_send = &request;
        if (request.on_body) {
            forwarded = request;
            forwarded.on_body = [&](std::string_view chunk) {
                streamed.append(chunk);
                return request.on_body(chunk);
            };
            to_send = &forwarded;
        }
        nlohmann::json entry;
        try {
            Response response = inner_.send(*to_send);
            const bool was_streamed = request.on_body && response.ok();
            if (!request.secret_fields.empty()) {
                std::lock_guard lock(state_->mutex);
                for (auto& secret : detail::secrets_in_body(request, was_streamed ? streamed : response.body)) {
                    learn(std::move(secret));
                }
            }
            nlohmann::json recorded_response{{"status", response.status},
                                             {"headers", detail::headers_to_json(response.headers)}};
            if (!response.trailers.empty()) recorded_response["trailers"] = detail::headers_to_json(response.trailers);
            recorded_response["streamed"] = was_streamed;
            entry["response"] = std::move(recorded_response);
            write(request, std::move(entry), was_streamed ? streamed : response.body, &response.headers);
            return response;
        } catch (const error& e) {
            entry["error"] = {{"code", std::string(to_string(e.code()))},
                              {"message", e.detail()},
                              {"http_status", e.http_status()}};
            write(request, std::move(entry), {});
            throw;
        }
    }

private:
    struct State {
        std::mutex mutex;
        std::ofstream out;
        std::vector<std::string> secrets;  // longest first
        std::size_t count = 0;
    };

    void learn(std::string secret) {  // caller holds the lock
        if (secret.size() < 4 || secret == redacted) return;  // too short to be a credential; would shred the text
        if (std::find(state_->secrets.begin(), state_->secrets.end(), secret) != state_->secrets.end()) return;
        state_->secrets.push_back(std::move(secret));
        std::stable_sort(state_->secrets.begin(), state_->secrets.end(),
                         [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
    }

    /// Replaces every known secret by "<redacted>" - or, when `keep_length`, by as many '*'
    /// as it has bytes, so length prefixes (envelopes, protobuf fields) stay true and the
    /// body still parses when replayed.
    std::string scrub(std::string text, bool keep_length = false) const {  // caller holds the lock
        for (const auto& secret : state_->secrets) {
            const std::string mask = keep_length ? std::string(secret.size(), '*') : std::string(redacted);
            for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos + mask.size())) {
                text.replace(pos, secret.size(), mask);
            }
        }
        return text;
    }

    nlohmann::json scrub(const Headers& headers) const {
        Headers out;
        for (const auto& [name, value] : headers) {
            out.add(name, detail::is_credential_header(name) ? std::string(redacted) : scrub(value));
        }
        return detail::headers_to_json(out);
    }

    void write(const Request& request, nlohmann::json entry, const std::string& response_body,
               const Headers* response_headers = nullptr) {
        std::lock_guard lock(state_->mutex);
        nlohmann::json recorded_request{{"method", request.method},
                                        {"url", scrub(request.url)},
                                        {"headers", scrub(request.headers)}};
        detail::put_body(recorded_request,
                         scrub(request.body, detail::is_length_sensitive(request.headers, request.body)));
        entry["request"] = std::move(recorded_request);
        if (auto it = entry.find("response"); it != entry.end()) {
            (*it)["headers"] = scrub(detail::headers_from_json((*it)["headers"]));
            if (it->contains("trailers")) (*it)["trailers"] = scrub(detail::headers_from_json((*it)["trailers"]));
            const bool keep_length =
                detail::is_length_sensitive(response_headers ? *response_headers : Headers{}, response_body);
            detail::put_body(*it, scrub(response_body, keep_length));
        }
        if (auto it = entry.find("error"); it != entry.end()) {
            (*it)["message"] = scrub((*it)["message"].get<std::string>());
        }
        state_->out << entry.dump() << '\n';
        state_->out.flush();
        ++state_->count;
    }

    Inner inner_;
    std::unique_ptr<State> state_;
};

/// Answers from a cassette written by RecordingTransport, one exchange per
/// request, in order. Each request must match the next entry's method and
/// URL path (host, port and query are not compared: ports differ between
/// runs); a mismatch or an exhausted cassette throws errc::bad_response
/// naming what was expected and what came. Recorded errors are rethrown.
class ReplayTransport {
public:
    static constexpr bool supports_http2 = true;  ///< replays whatever was recorded
    static constexpr bool supports_streaming = true;  ///< recorded streamed bodies are fed to Request::on_body

    explicit ReplayTransport(const TransportOptions& options) : ReplayTransport(std::filesystem::path(options.cassette_path)) {}  ///< reads options.cassette_path

    /// Reads every exchange of `cassette`; errc::config_invalid if unreadable, errc::bad_response for a line
    /// that is not an exchange.
    explicit ReplayTransport(const std::filesystem::path& cassette) : state_(std::make_unique<State>()) {
        std::ifstream in(cassette, std::ios::binary);
        if (!in) throw error(errc::config_invalid, "cannot read the cassette " + cassette.string(), "transport");
        std::string line;
        while (std::getline(in, line)) {
            if (line.empty()) continue;
            auto entry = nlohmann::json::parse(line, nullptr, false);
            if (!entry.is_object() || !entry.contains("request")) {
                throw error(errc::bad_response,
                            "cassette " + cassette.string() + " line " + std::to_string(state_->entries.size() + 1) +
                                " is not an exchange",
                            "transport");
            }
            state_->entries.push_back(std::move(entry));
        }
    }

    /// Entries not replayed yet.
    std::size_t remaining() const {
        std::lock_guard lock(state_->mutex);
        return state_->entries.size() - state_->next;
    }

    /// The next recorded answer (or rethrown error) if `request` matches its method and path, else
    /// errc::bad_response.
    Response send(const Request& request) {
        const std::string path = parse_url(request.url).path();
        const std::string got = request.method + " " + path;
        nlohmann::json entry;
        std::size_t index = 0;
        {
            std::lock_guard lock(state_->mutex);
            index = state_->next;
            if (index >= state_->entries.size()) {
                throw error(errc::bad_response,
                            "cassette exhausted after " + std::to_string(index) + " exchanges; got " + got, "transport");
            }
            const auto& recorded = state_->entries[index]["request"];
            const std::string method = recorded.value("method", std::string());
            const std::string recorded_path = parse_url(recorded.value("url", std::string())).path();
            if (!detail::iequals(method, request.method) || recorded_path != path) {
                const std::string expected = method + " " + recorded_path;
                throw error(errc::bad_response,
                            "cassette entry " + std::to_string(index + 1) + " expected " + expected + ", got " + got,
                            "transport");
            }
            entry = state_->entries[index];
            ++state_->next;
        }
        if (auto it = entry.find("error"); it != entry.end()) {
            throw error(detail::errc_from_name(it->value("code", std::string())), it->value("message", std::string()),
                        "transport", it->value("http_status", 0));
        }
        const auto& recorded = entry.at("response");
        Response response;
        response.status = recorded.value("status", 0);
        response.headers = detail::headers_from_json(recorded.value("headers", nlohmann::json::array()));
        response.body = detail::get_body(recorded);
        response.trailers = detail::headers_from_json(recorded.value("trailers", nlohmann::json::array()));
        return detail::deliver_body(request, std::move(response), "ReplayTransport");
    }

private:
    struct State {
        mutable std::mutex mutex;
        std::vector<nlohmann::json> entries;
        std::size_t next = 0;
    };
    std::unique_ptr<State> state_;
};

static_assert(is_transport_policy_v<HandlerTransport>);
static_assert(is_transport_policy_v<FaultInjectingTransport<HandlerTransport>>);
static_assert(is_transport_policy_v<RecordingTransport<HandlerTransport>>);
static_assert(is_transport_policy_v<ReplayTransport>);

}  // namespace runbox
