# tests/dist/mpi/expect_failure.cmake — runs one failure scenario of normlab_test_dist_mpi
# under mpirun and checks that the job ends with a non-zero status and a message
# matching EXPECT, within LIMIT seconds (a hang fails instead of blocking).
#
#   cmake -DMPIEXEC=... -DNP=3 -DPROGRAM=... -DSCENARIO=rank_exits -DEXPECT=regex
#         -DLIMIT=60 [-DPREFLAGS=...] -P expect_failure.cmake
string(TIMESTAMP start "%s")
execute_process(COMMAND ${MPIEXEC} -np ${NP} ${PREFLAGS} ${PROGRAM} --scenario=${SCENARIO}
                RESULT_VARIABLE status OUTPUT_VARIABLE out ERROR_VARIABLE err
                TIMEOUT ${LIMIT})
string(TIMESTAMP stop "%s")
math(EXPR took "${stop} - ${start}")
set(all "${out}${err}")
message(STATUS "mpirun -np ${NP} ... --scenario=${SCENARIO}: status '${status}' after ${took} s; output:\n${all}")
if(status STREQUAL "0")
  message(FATAL_ERROR "scenario ${SCENARIO}: mpirun exited with status 0, expected a failure")
endif()
if(status MATCHES "timeout|Process terminated due to timeout")
  message(FATAL_ERROR "scenario ${SCENARIO}: no end within ${LIMIT} s (a hang)")
endif()
if(NOT all MATCHES "${EXPECT}")
  message(FATAL_ERROR "scenario ${SCENARIO}: the output lacks a match of\n  ${EXPECT}")
endif()
