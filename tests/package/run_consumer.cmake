# run_consumer.cmake — one package test, run by CTest as `cmake -P`:
# (re)creates WORK_DIR, makes normlab available to the consumer project in
# CONSUMER_SOURCE_DIR/MODE, configures and builds it with the outer build's generator,
# compiler and build type, and runs the program it builds.
#
# Inputs (-D): MODE (find_package | add_subdirectory), NORMLAB_SOURCE_DIR,
# NORMLAB_BINARY_DIR, CONSUMER_SOURCE_DIR, WORK_DIR, GENERATOR, MAKE_PROGRAM,
# CXX_COMPILER, BUILD_TYPE, EIGEN3_DIR.
cmake_minimum_required(VERSION 3.25)

foreach(var MODE NORMLAB_SOURCE_DIR NORMLAB_BINARY_DIR CONSUMER_SOURCE_DIR WORK_DIR GENERATOR
            CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()
if(NOT BUILD_TYPE)
  set(BUILD_TYPE Release)
endif()

# Runs a command, echoing it first; any failure fails the test with the step's name.
function(step name)
  string(REPLACE ";" " " shown "${ARGN}")
  message(STATUS "[${MODE}] ${name}: ${shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "[${MODE}] ${name} failed (${rc})")
  endif()
endfunction()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(prefix "${WORK_DIR}/prefix")
set(build "${WORK_DIR}/build")

set(configure_args
  -S "${CONSUMER_SOURCE_DIR}/${MODE}" -B "${build}"
  -G "${GENERATOR}"
  "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}"
  "-DCMAKE_BUILD_TYPE=${BUILD_TYPE}")
if(MAKE_PROGRAM)
  list(APPEND configure_args "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(EIGEN3_DIR)
  list(APPEND configure_args "-DEigen3_DIR=${EIGEN3_DIR}")
endif()

if(MODE STREQUAL "find_package")
  step(install ${CMAKE_COMMAND} --install "${NORMLAB_BINARY_DIR}" --config "${BUILD_TYPE}"
               --prefix "${prefix}")
  list(APPEND configure_args "-DCMAKE_PREFIX_PATH=${prefix}" "-DEXPECTED_PREFIX=${prefix}")
elseif(MODE STREQUAL "add_subdirectory")
  list(APPEND configure_args "-DNORMLAB_SOURCE_DIR=${NORMLAB_SOURCE_DIR}"
              -DNORMLAB_ENABLE_CUDA=OFF)
else()
  message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

step(configure ${CMAKE_COMMAND} ${configure_args})
step(build ${CMAKE_COMMAND} --build "${build}" --config "${BUILD_TYPE}")
step(run "${build}/bin/normlab_consumer")
step(run_precompiled "${build}/bin/normlab_consumer_precompiled")
