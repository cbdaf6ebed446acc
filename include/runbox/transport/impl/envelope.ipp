/// \file
/// Definitions of runbox/transport/envelope.hpp (included by the header when header-only; by
/// runbox/src.hpp in compiled mode).
#pragma once

#include "runbox/transport/envelope.hpp"

namespace runbox {

RUNBOX_DECL std::string encode_frame(std::string_view payload, std::uint8_t flags) {
    if (payload.size() > std::size_t{0xFFFFFFFFu}) {
        throw error(errc::config_invalid, "a framed message cannot exceed 4 GiB", "transport");
    }
    const auto size = static_cast<std::uint32_t>(payload.size());
    std::string out;
    out.reserve(5 + payload.size());
    out.push_back(static_cast<char>(flags));
    out.push_back(static_cast<char>((size >> 24) & 0xFF));
    out.push_back(static_cast<char>((size >> 16) & 0xFF));
    out.push_back(static_cast<char>((size >> 8) & 0xFF));
    out.push_back(static_cast<char>(size & 0xFF));
    out.append(payload);
    return out;
}

RUNBOX_DECL void FrameReader::feed(std::string_view bytes) {
    buffer_.append(bytes);
    check_headers();
}

RUNBOX_DECL std::optional<Frame> FrameReader::next() {
    if (buffer_.size() - offset_ < 5) return std::nullopt;
    const std::size_t size = announced();
    if (buffer_.size() - offset_ - 5 < size) return std::nullopt;
    Frame frame;
    frame.flags = static_cast<std::uint8_t>(buffer_[offset_]);
    frame.payload = buffer_.substr(offset_ + 5, size);
    offset_ += 5 + size;
    // Compact once the consumed prefix dominates, so a long stream does not grow the buffer.
    if (offset_ == buffer_.size()) {
        buffer_.clear();
        scanned_ = 0;
        offset_ = 0;
    } else if (offset_ > buffer_.size() / 2) {
        buffer_.erase(0, offset_);
        scanned_ -= offset_;
        offset_ = 0;
    }
    return frame;
}

RUNBOX_DECL void FrameReader::check_headers() {
    while (buffer_.size() >= scanned_ + 5) {
        const std::size_t size = announced(scanned_);
        if (size > max_payload_) {
            throw error(errc::bad_response,
                        "a framed message announces " + std::to_string(size) + " bytes, over the limit of " +
                            std::to_string(max_payload_),
                        "transport");
        }
        scanned_ += 5 + size;
    }
}

}  // namespace runbox
