// runbox/transport/envelope.hpp - the 5-byte message envelope gRPC and Connect share.
//
// Every message on a gRPC or Connect streaming body is 1 flag byte, a 4-byte
// big-endian payload length, then the payload. FrameReader takes the body in
// whatever chunks the transport delivers and yields whole frames; its payload
// cap stops a peer from making runbox buffer an announced 4 GiB message.
// No HTTP library is included here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "runbox/detail/linkage.hpp"
#include "runbox/error.hpp"

namespace runbox {

/// Flag bit: the payload is compressed (gRPC and Connect).
inline constexpr std::uint8_t frame_compressed = 0x01;
/// Flag bit: Connect's end-of-stream message (a JSON trailer block).
inline constexpr std::uint8_t frame_end_stream = 0x02;

/// One enveloped message.
struct Frame {
    std::uint8_t flags = 0;  ///< flag bits: frame_compressed, frame_end_stream
    std::string payload{};  ///< the message bytes, without the 5-byte prefix

    /// flags & frame_end_stream
    bool end_stream() const noexcept { return (flags & frame_end_stream) != 0; }
    /// flags & frame_compressed
    bool compressed() const noexcept { return (flags & frame_compressed) != 0; }
};

/// 1 flag byte + 4-byte big-endian length + payload. Throws errc::config_invalid
/// for a payload longer than 4 GiB - 1 (the length field cannot say it).
RUNBOX_DECL std::string encode_frame(std::string_view payload, std::uint8_t flags = 0);

/// Incremental reader: feed() any chunking, next() yields whole frames in order.
class FrameReader {
public:
    /// `max_payload`: the largest payload a header may announce.
    explicit FrameReader(std::size_t max_payload = std::size_t{16} << 20) : max_payload_(max_payload) {}

    /// Buffers `bytes`. Throws runbox::error(errc::bad_response) when a frame
    /// header announces more than max_payload (checked as soon as its 5 header
    /// bytes are in, whichever frame of the buffer it belongs to).
    void feed(std::string_view bytes);

    /// The next whole frame, or nullopt until more bytes arrive.
    std::optional<Frame> next();

    /// No partial frame buffered (a stream that ends when !idle() is truncated).
    bool idle() const noexcept { return buffer_.size() == offset_; }

    /// Bytes buffered and not yet returned by next().
    std::size_t buffered() const noexcept { return buffer_.size() - offset_; }

private:
    std::size_t announced(std::size_t at) const noexcept {
        const auto byte = [&](std::size_t i) {
            return static_cast<std::size_t>(static_cast<unsigned char>(buffer_[at + i]));
        };
        return (byte(1) << 24) | (byte(2) << 16) | (byte(3) << 8) | byte(4);
    }
    std::size_t announced() const noexcept { return announced(offset_); }

    /// Checks every frame header that became complete since the last call.
    void check_headers();

    std::size_t max_payload_;
    std::string buffer_{};
    std::size_t offset_ = 0;   // start of the first frame not returned yet
    std::size_t scanned_ = 0;  // start of the first frame header not checked yet (>= offset_)
};

}  // namespace runbox

#ifdef RUNBOX_HEADER_ONLY
#include "runbox/transport/impl/envelope.ipp"
#endif
