# A command that must fail cleanly: exit status 1, nothing on stdout, one
# line on stderr that matches EXPECT (a regular expression) — never a crash
# or a stack trace.
#
#   cmake -DEXPECT=<regex> -P cli_expect_error.cmake <program> [args...]
set(command)
set(script_seen FALSE)
math(EXPR last "${CMAKE_ARGC} - 1")
foreach(i RANGE 1 ${last})
  if(script_seen)
    list(APPEND command "${CMAKE_ARGV${i}}")
  elseif(CMAKE_ARGV${i} STREQUAL "-P")
    set(script_seen TRUE)
  endif()
endforeach()
list(REMOVE_AT command 0)  # the script itself
execute_process(COMMAND ${command} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REPLACE ";" " " shown "${command}")
if(NOT rc STREQUAL "1")
  message(FATAL_ERROR "${shown}\nexpected exit status 1, got '${rc}'; stderr:\n${err}")
endif()
if(NOT out STREQUAL "")
  message(FATAL_ERROR "${shown}\nexpected nothing on stdout, got:\n${out}")
endif()
if(NOT err MATCHES "^[^\n]+\n$")
  message(FATAL_ERROR "${shown}\nexpected exactly one line on stderr, got:\n${err}")
endif()
if(NOT err MATCHES "${EXPECT}")
  message(FATAL_ERROR "${shown}\nstderr does not match '${EXPECT}':\n${err}")
endif()
message(STATUS "${shown}: ${err}")
