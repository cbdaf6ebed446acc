# Configures, builds and runs tests/cmake_consumers/project in one consumption MODE.
cmake_minimum_required(VERSION 3.25)

function(run_step what)
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "consumer ${MODE}: ${what} failed (${rc})\n${out}\n${err}")
    endif()
    message(STATUS "consumer ${MODE}: ${what} ok")
    set(step_output "${out}" PARENT_SCOPE)
endfunction()

file(REMOVE_RECURSE "${CONSUMER_BINARY_DIR}")
set(extra_args "")
if(MODE STREQUAL "find_package")
    file(REMOVE_RECURSE "${INSTALL_PREFIX}")
    run_step("install into ${INSTALL_PREFIX}" "${CMAKE_COMMAND}" --install "${RUNBOX_BINARY_DIR}" --prefix "${INSTALL_PREFIX}")
    list(APPEND extra_args "-DCMAKE_PREFIX_PATH=${INSTALL_PREFIX}")
endif()

run_step(configure "${CMAKE_COMMAND}" -S "${CONSUMER_SOURCE_DIR}" -B "${CONSUMER_BINARY_DIR}"
    -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" -DCMAKE_BUILD_TYPE=Debug
    "-DMODE=${MODE}" "-DLINK=${LINK}" "-DRUNBOX_SOURCE_DIR=${RUNBOX_SOURCE_DIR}" ${extra_args})
run_step(build "${CMAKE_COMMAND}" --build "${CONSUMER_BINARY_DIR}")
run_step(run "${CONSUMER_BINARY_DIR}/consumer")
message(STATUS "${step_output}")
if(NOT step_output MATCHES "consumer ok")
    message(FATAL_ERROR "consumer ${MODE}: the program did not report success:\n${step_output}")
endif()
