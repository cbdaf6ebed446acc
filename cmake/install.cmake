# install + export: find_package(runbox) and pkg-config runbox both work after `cmake --install`.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(RUNBOX_CMAKE_DIR "${CMAKE_INSTALL_DATADIR}/cmake/runbox")

install(TARGETS runbox EXPORT runboxTargets FILE_SET HEADERS)
install(TARGETS runbox_compiled EXPORT runboxTargets ARCHIVE FILE_SET runbox_source)
foreach(optional IN ITEMS runbox_curl runbox_http2_server)
    if(TARGET ${optional})
        install(TARGETS ${optional} EXPORT runboxTargets FILE_SET HEADERS)
    endif()
endforeach()
install(EXPORT runboxTargets NAMESPACE runbox:: DESTINATION "${RUNBOX_CMAKE_DIR}")
install(FILES cmake/dependencies.cmake DESTINATION "${RUNBOX_CMAKE_DIR}" RENAME runboxDependencies.cmake)

configure_package_config_file(cmake/runboxConfig.cmake.in
    "${PROJECT_BINARY_DIR}/runboxConfig.cmake"
    INSTALL_DESTINATION "${RUNBOX_CMAKE_DIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/runboxConfigVersion.cmake"
    COMPATIBILITY SameMajorVersion
    ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/runboxConfig.cmake" "${PROJECT_BINARY_DIR}/runboxConfigVersion.cmake"
    DESTINATION "${RUNBOX_CMAKE_DIR}")

configure_file(cmake/runbox.pc.in "${PROJECT_BINARY_DIR}/runbox.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/runbox.pc" DESTINATION "${CMAKE_INSTALL_DATADIR}/pkgconfig")


# The programs: the command line and the two programs it runs as `runbox server` / `runbox fake`.
foreach(program IN ITEMS runbox-cli runbox-server runbox-fake)
    if(TARGET ${program})
        install(TARGETS ${program} RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
    endif()
endforeach()
