# The API reference: `cmake --build <dir> --target docs` runs Doxygen (Debian's `doxygen`) with
# docs/Doxyfile and writes <dir>/docs/html/index.html. tests/CMakeLists.txt adds the ctest
# build.api_reference, which builds the same reference with every warning an error.
find_package(Doxygen 1.9 QUIET)
set(RUNBOX_DOCS_DIR "${PROJECT_BINARY_DIR}/docs")
if(DOXYGEN_FOUND)
    set(RUNBOX_DOXYFILE "${RUNBOX_DOCS_DIR}/Doxyfile")
    file(MAKE_DIRECTORY "${RUNBOX_DOCS_DIR}")
    # docs/Doxyfile's paths are relative to the source root; only the output moves to the build tree.
    file(CONFIGURE OUTPUT "${RUNBOX_DOXYFILE}" CONTENT
        "@INCLUDE = \"${PROJECT_SOURCE_DIR}/docs/Doxyfile\"\nOUTPUT_DIRECTORY = \"${RUNBOX_DOCS_DIR}\"\n"
        @ONLY)
    add_custom_target(docs
        COMMAND "${DOXYGEN_EXECUTABLE}" "${RUNBOX_DOXYFILE}"
        COMMAND "${CMAKE_COMMAND}" -E echo "API reference: ${RUNBOX_DOCS_DIR}/html/index.html"
        WORKING_DIRECTORY "${PROJECT_SOURCE_DIR}"
        COMMENT "Building the API reference (Doxygen)"
        VERBATIM)
else()
    message(STATUS "runbox: doxygen not found; no `docs` target (apt-get install doxygen)")
endif()
