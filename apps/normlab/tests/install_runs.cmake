# `cmake --install` of the build at BUILD_DIR into PREFIX installs the
# `normlab` program in PREFIX/bin, and the installed program runs:
# `normlab --version` prints VERSION.
#
#   cmake -DBUILD_DIR=<build> -DPREFIX=<dir> -DVERSION=<x.y.z> [-DCONFIG=<cfg>] -P install_runs.cmake
file(REMOVE_RECURSE ${PREFIX})
set(config_args)
if(CONFIG)
  set(config_args --config ${CONFIG})
endif()
execute_process(COMMAND ${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${PREFIX} ${config_args}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc STREQUAL "0")
  message(FATAL_ERROR "cmake --install failed (${rc}):\n${out}\n${err}")
endif()
set(program ${PREFIX}/bin/normlab)
if(NOT EXISTS ${program})
  message(FATAL_ERROR "cmake --install did not install ${program}:\n${out}")
endif()
execute_process(COMMAND ${program} --version RESULT_VARIABLE rc OUTPUT_VARIABLE version)
if(NOT rc STREQUAL "0" OR NOT version STREQUAL "normlab ${VERSION}\n")
  message(FATAL_ERROR "${program} --version: exit ${rc}, printed '${version}'")
endif()
message(STATUS "installed ${program}: ${version}")
