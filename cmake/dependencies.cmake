# Finds runbox's dependencies the way each Debian 12 package ships them.
# Also used by the installed runboxConfig.cmake (RUNBOX_FIND_FOR_CONSUMER switches to find_dependency).
include_guard(GLOBAL)

if(RUNBOX_FIND_FOR_CONSUMER)
    include(CMakeFindDependencyMacro)
    macro(_runbox_find)
        find_dependency(${ARGN})
    endmacro()
else()
    macro(_runbox_find)
        find_package(${ARGN} REQUIRED)
    endmacro()
endif()

set(THREADS_PREFER_PTHREAD_FLAG ON)
_runbox_find(Threads)
_runbox_find(nlohmann_json 3.11)
_runbox_find(Boost 1.74)          # header-only use (Mp11); Debian has Boost::headers, no Boost::mp11
_runbox_find(OpenSSL 3)

# cpp-httplib: upstream ships a CMake package (httplib::httplib, header-only); Debian 12 ships a
# compiled split build with only a pkg-config file whose -D flags change class layouts, so the
# flags must come from pkg-config, never be guessed.
if(NOT TARGET runbox_cpp_httplib)
    find_package(httplib CONFIG QUIET)
    add_library(runbox_cpp_httplib INTERFACE IMPORTED GLOBAL)
    if(httplib_FOUND)
        target_link_libraries(runbox_cpp_httplib INTERFACE httplib::httplib)
    else()
        find_package(PkgConfig REQUIRED)
        pkg_check_modules(RUNBOX_HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
        target_link_libraries(runbox_cpp_httplib INTERFACE PkgConfig::RUNBOX_HTTPLIB)
    endif()
endif()

# libzip: Debian 12's libzip CMake package refers to the zipcmp/zipmerge/ziptool programs, which
# live in a separate package and make find_package(libzip) fail without them; pkg-config is exact.
if(NOT TARGET runbox_libzip)
    find_package(PkgConfig REQUIRED)
    pkg_check_modules(RUNBOX_LIBZIP REQUIRED IMPORTED_TARGET GLOBAL libzip)
    add_library(runbox_libzip INTERFACE IMPORTED GLOBAL)
    target_link_libraries(runbox_libzip INTERFACE PkgConfig::RUNBOX_LIBZIP)
endif()

# Optional, opt-in pieces (never needed by runbox::runbox itself):
#  - libcurl for CurlTransport (target runbox::curl, include runbox/transport/curl.hpp);
#  - libnghttp2 for the HTTP/2 test server (target runbox::http2_server, runbox/testing/http2_server.hpp).
find_package(CURL 7.80 QUIET)  # CURLOPT_PREREQFUNCTION
if(NOT TARGET runbox_nghttp2)
    find_package(PkgConfig QUIET)
    if(PkgConfig_FOUND)
        pkg_check_modules(RUNBOX_NGHTTP2 QUIET IMPORTED_TARGET GLOBAL libnghttp2)
    endif()
    if(RUNBOX_NGHTTP2_FOUND)
        add_library(runbox_nghttp2 INTERFACE IMPORTED GLOBAL)
        target_link_libraries(runbox_nghttp2 INTERFACE PkgConfig::RUNBOX_NGHTTP2)
    endif()
endif()
