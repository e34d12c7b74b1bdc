# SPDX-License-Identifier: MIT
# Embeds a file as a C byte array: cmake -DINPUT=f -DOUTPUT=h -DNAME=sym -P embed.cmake
# Writes `static const unsigned char NAME[]` and `static const size_t NAME_len`. The output is
# rewritten only when it changes, so dependents rebuild only then.
file(READ "${INPUT}" hex HEX)
string(LENGTH "${hex}" digits)
math(EXPR size "${digits} / 2")
if(size EQUAL 0)
  set(bytes "0x00,")
else()
  string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
  string(REGEX REPLACE "((0x..,){16})" "\\1\n    " bytes "${bytes}")
endif()
get_filename_component(input_name "${INPUT}" NAME)
set(text "/* Generated from ${input_name} by telemetry/cmake/embed.cmake: do not edit. */
static const unsigned char ${NAME}[] = {
    ${bytes}
};
static const size_t ${NAME}_len = ${size};
")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
else()
  set(old "")
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
