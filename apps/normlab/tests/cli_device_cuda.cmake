# `normlab train --device cuda` and `generate --device cuda` in a build with
# the CUDA backend, on whatever machine runs the tests. One test that holds
# both in CI (no GPU) and on a GPU machine, so its expectation depends on the
# machine:
#   - normlab finds no device: each command fails before any work (exit status
#     1, nothing on stdout, one line on stderr naming the missing device, no
#     --out folder made). As a witness that no device is really there,
#     `nvidia-smi -L` (when installed, and unless CUDA_VISIBLE_DEVICES hides
#     devices on purpose) must list no GPU either; otherwise normlab missed one.
#   - normlab finds a device: a tiny run trains on it to its final loss line,
#     and generate samples from its checkpoint on it.
# With HIDE set, CUDA_VISIBLE_DEVICES=-1 hides every device, so the failure
# is checked on every machine, a GPU machine included.
#
#   cmake -DNORMLAB=<program> -DCORPUS=<path> -DOUT=<dir> [-DHIDE=ON] -P cli_device_cuda.cmake
file(REMOVE_RECURSE ${OUT})
if(HIDE)
  set(ENV{CUDA_VISIBLE_DEVICES} "-1")
endif()
set(train ${NORMLAB} train --device cuda --corpus ${CORPUS} --d-model 16 --layers 2 --heads 2
          --seq-len 16 --batch-size 2 --steps 3 --warmup 1 --eval-windows 2 --out ${OUT})
execute_process(COMMAND ${train} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
string(REPLACE ";" " " shown "${train}")

# The one line of a command that found no device.
function(expect_no_device command rc out err)
  set(line "^normlab ${command}: --device cuda: no CUDA device is visible \\(cudaGetDeviceCount[^\n]*\\)\n$")
  if(NOT rc STREQUAL "1" OR NOT out STREQUAL "" OR NOT err MATCHES "${line}")
    message(FATAL_ERROR "normlab ${command} --device cuda: expected exit status 1, nothing on "
                        "stdout and one line matching '${line}'; got '${rc}', stdout:\n${out}\n"
                        "stderr:\n${err}")
  endif()
endfunction()

if(err MATCHES "no CUDA device is visible")
  expect_no_device(train "${rc}" "${out}" "${err}")
  if(EXISTS ${OUT})
    message(FATAL_ERROR "${shown}\nfailed, but after making ${OUT}: the device check must come first")
  endif()
  execute_process(COMMAND ${NORMLAB} generate --device cuda --checkpoint ${OUT}/none.safetensors
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  expect_no_device(generate "${rc}" "${out}" "${err}")
  find_program(nvidia_smi nvidia-smi)
  if(NOT HIDE AND nvidia_smi AND NOT DEFINED ENV{CUDA_VISIBLE_DEVICES})
    execute_process(COMMAND ${nvidia_smi} -L RESULT_VARIABLE smi_rc OUTPUT_VARIABLE gpus
                    ERROR_QUIET)
    if(smi_rc STREQUAL "0" AND gpus MATCHES "GPU [0-9]+:")
      message(FATAL_ERROR "normlab found no CUDA device, but nvidia-smi -L lists:\n${gpus}")
    endif()
  endif()
  message(STATUS "no CUDA device visible: train and generate --device cuda fail cleanly")
  return()
endif()
if(HIDE)
  message(FATAL_ERROR "${shown}\nwith CUDA_VISIBLE_DEVICES=-1: expected the no-device error; got "
                      "'${rc}', stdout:\n${out}\nstderr:\n${err}")
endif()
if(NOT rc STREQUAL "0" OR NOT out MATCHES "final step 3: train loss [0-9.]+, val loss")
  message(FATAL_ERROR "${shown}\na CUDA device is visible: expected a finished run; got '${rc}', "
                      "stdout:\n${out}\nstderr:\n${err}")
endif()
execute_process(COMMAND ${NORMLAB} generate --device cuda --checkpoint ${OUT}/checkpoint-3.safetensors
                        --prompt "The " --tokens 20 --seed 5
                RESULT_VARIABLE rc OUTPUT_VARIABLE text ERROR_VARIABLE err)
if(NOT rc STREQUAL "0" OR NOT text MATCHES "^The ")
  message(FATAL_ERROR "generate --device cuda: got '${rc}', stdout:\n${text}\nstderr:\n${err}")
endif()
message(STATUS "a CUDA device is visible: train and generate ran on it")
