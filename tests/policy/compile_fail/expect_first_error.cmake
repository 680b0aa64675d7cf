# Builds TARGET in BUILD_DIR, which must fail, and checks that the compiler's
# first error line matches EXPECT: the message a user reads first.
#   cmake -DBUILD_DIR=... -DTARGET=... -DEXPECT=regex -P expect_first_error.cmake
execute_process(COMMAND ${CMAKE_COMMAND} --build ${BUILD_DIR} --target ${TARGET}
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(status EQUAL 0)
  message(FATAL_ERROR "${TARGET} compiled, but it must not")
endif()
string(REGEX MATCH "[^\n]*error:[^\n]*" first "${out}${err}")
if(NOT first MATCHES "${EXPECT}")
  message(FATAL_ERROR "first error of ${TARGET} does not match '${EXPECT}':\n${first}")
endif()
message(STATUS "first error: ${first}")
