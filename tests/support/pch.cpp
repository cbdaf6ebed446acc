// The object the test programs' precompiled header is built with (tests/CMakeLists.txt).
