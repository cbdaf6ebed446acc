# build.include_emits_no_code: the object of tests/odr/include_only.cpp defines no runbox code:
# no function and no vtable (nm types T/t, W/w, V/v). Read-only constants (r) are not code.
execute_process(COMMAND "${NM}" -C --defined-only "${OBJECT}" RESULT_VARIABLE rc OUTPUT_VARIABLE symbols ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm failed (${rc}): ${err}")
endif()
string(REGEX MATCHALL "[0-9a-f]+ [TtWwVv] [^\n]*runbox::[^\n]*" emitted "${symbols}")
list(LENGTH emitted count)
if(count GREATER 0)
    list(SUBLIST emitted 0 20 first)
    list(JOIN first "\n" shown)
    message(FATAL_ERROR "including the headers emitted ${count} runbox functions or vtables (a root that forces inline code out; the first 20):\n${shown}")
endif()
message(STATUS "no runbox function or vtable in ${OBJECT}")
