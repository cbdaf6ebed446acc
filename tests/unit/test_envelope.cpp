// Unit tests of runbox/transport/envelope.hpp: the 5-byte gRPC/Connect envelope.
#include "runbox/transport/envelope.hpp"

#include <string>
#include <vector>

#include "catch.hpp"

namespace test_envelope {  // several files share a unit (tests/CMakeLists.txt)

using runbox::encode_frame;
using runbox::errc;
using runbox::Frame;
using runbox::FrameReader;

TEST_CASE("encode_frame writes the flag byte and a big-endian length", "[envelope]") {
    const std::string frame = encode_frame("abc", runbox::frame_end_stream);
    REQUIRE(frame.size() == 8);
    CHECK(static_cast<unsigned char>(frame[0]) == 0x02);
    CHECK(frame.substr(1, 4) == std::string("\0\0\0\3", 4));
    CHECK(frame.substr(5) == "abc");

    const std::string big(0x010203, 'x');
    const std::string framed = encode_frame(big);
    CHECK(static_cast<unsigned char>(framed[1]) == 0x00);
    CHECK(static_cast<unsigned char>(framed[2]) == 0x01);
    CHECK(static_cast<unsigned char>(framed[3]) == 0x02);
    CHECK(static_cast<unsigned char>(framed[4]) == 0x03);
    CHECK(encode_frame("").size() == 5);
}

TEST_CASE("FrameReader yields the same frames for any chunking", "[envelope]") {
    const std::vector<std::string> payloads = {"", "hello", std::string(70000, 'z'), std::string("\0\1\2\xff", 4)};
    std::string stream;
    for (std::size_t i = 0; i < payloads.size(); ++i) {
        stream += encode_frame(payloads[i], i == payloads.size() - 1 ? runbox::frame_end_stream : runbox::frame_compressed);
    }
    for (std::size_t chunk : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{5}, std::size_t{7},
                              std::size_t{4096}, stream.size()}) {
        CAPTURE(chunk);
        FrameReader reader;
        std::vector<Frame> frames;
        for (std::size_t pos = 0; pos < stream.size(); pos += chunk) {
            reader.feed(std::string_view(stream).substr(pos, chunk));
            while (auto frame = reader.next()) frames.push_back(std::move(*frame));
        }
        REQUIRE(frames.size() == payloads.size());
        for (std::size_t i = 0; i < payloads.size(); ++i) CHECK(frames[i].payload == payloads[i]);
        CHECK(frames[0].compressed());
        CHECK_FALSE(frames[0].end_stream());
        CHECK(frames.back().end_stream());
        CHECK_FALSE(frames.back().compressed());
        CHECK(reader.idle());
    }
}

TEST_CASE("FrameReader refuses a header announcing more than its cap", "[envelope]") {
    FrameReader reader(16);
    reader.feed(encode_frame(std::string(16, 'a')));
    REQUIRE(reader.next()->payload.size() == 16);
    // The refusal comes as soon as the 5 header bytes are in, before any payload.
    const std::string oversize = encode_frame(std::string(17, 'a')).substr(0, 5);
    reader.feed(oversize.substr(0, 3));
    try {
        reader.feed(oversize.substr(3));
        FAIL("no error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::bad_response);
    }

    FrameReader huge;  // default cap 16 MiB; a header announcing 4 GiB - 1
    try {
        huge.feed(std::string("\0\xff\xff\xff\xff", 5));
        FAIL("no error");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::bad_response);
    }
}

TEST_CASE("FrameReader tells a truncated stream from a complete one", "[envelope]") {
    const std::string stream = encode_frame("first") + encode_frame("second");
    FrameReader reader;
    CHECK(reader.idle());
    reader.feed(std::string_view(stream).substr(0, stream.size() - 1));
    REQUIRE(reader.next()->payload == "first");
    CHECK_FALSE(reader.next());
    CHECK_FALSE(reader.idle());  // the stream ended inside "second"
    reader.feed(std::string_view(stream).substr(stream.size() - 1));
    REQUIRE(reader.next()->payload == "second");
    CHECK(reader.idle());

    FrameReader header_only;
    header_only.feed(std::string("\0\0", 2));  // a partial header is truncation too
    CHECK_FALSE(header_only.next());
    CHECK_FALSE(header_only.idle());
}

TEST_CASE("FrameReader checks the header of every frame in a chunk, not only the first", "[envelope]") {
    FrameReader reader(16);
    // One chunk: a valid frame, then a header announcing too much.
    const std::string chunk = encode_frame("ok") + std::string("\0\0\0\0\x11", 5);
    try {
        reader.feed(chunk);
        FAIL("the second header was not checked");
    } catch (const runbox::error& e) {
        CHECK(e.code() == errc::bad_response);
    }
    // Frames split across feeds keep being checked at their own offsets.
    FrameReader split(16);
    const std::string stream = encode_frame("abc") + encode_frame(std::string(16, 'x')) + encode_frame("z");
    for (char c : stream) {
        split.feed(std::string_view(&c, 1));
        while (auto frame = split.next()) CHECK(frame->payload.size() <= 16);
    }
    CHECK(split.idle());
}

}  // namespace test_envelope
