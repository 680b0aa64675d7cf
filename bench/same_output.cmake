# bench/same_output.cmake — runs HEADER_ONLY and PRECOMPILED (two builds of one
# program) and fails unless both succeed and print the same text.
#   cmake -DHEADER_ONLY=a -DPRECOMPILED=b -P same_output.cmake
foreach(which HEADER_ONLY PRECOMPILED)
  execute_process(COMMAND ${${which}} OUTPUT_VARIABLE out_${which} RESULT_VARIABLE rc_${which})
  if(NOT rc_${which} EQUAL 0)
    message(FATAL_ERROR "${${which}} exited with ${rc_${which}}; expected 0")
  endif()
endforeach()
if(NOT out_HEADER_ONLY STREQUAL out_PRECOMPILED)
  message(FATAL_ERROR "header-only and precompiled builds print different losses:\n"
                      "header-only:\n${out_HEADER_ONLY}\nprecompiled:\n${out_PRECOMPILED}")
endif()
string(REGEX MATCHALL "\n" lines "${out_HEADER_ONLY}")
list(LENGTH lines n)
if(n LESS 5)
  message(FATAL_ERROR "expected 5 loss lines from each build, found ${n}:\n${out_HEADER_ONLY}")
endif()
message(STATUS "same ${n} lines from both builds:\n${out_HEADER_ONLY}")
