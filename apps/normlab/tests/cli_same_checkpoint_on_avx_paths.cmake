# normlab train on the avx2 and on the avx512 CPU kernel path (NORMLAB_CPU_KERNELS;
# a path above the CPU's is lowered to its best): the two checkpoints are the
# same file, byte for byte. Both paths sum every GEMM element in the same order
# and run the same row-kernel operations in the same order (8 or 16 floats a
# vector), so a training run does not depend on which of them the CPU has.
#
#   cmake -DNORMLAB=<program> -DCORPUS=<path> -DOUT=<dir> -P cli_same_checkpoint_on_avx_paths.cmake
file(REMOVE_RECURSE ${OUT})
# C 40 and d_ff 88: rows that end in a partial vector on both paths; dropout
# draws too; the fused NormFormer norms.
set(model --corpus ${CORPUS} --d-model 40 --layers 2 --heads 4 --d-ff 88 --seq-len 24
          --batch-size 4 --steps 4 --eval-every 2 --eval-windows 4 --dropout 0.1
          --policy normformer --seed 5)
foreach(path avx2 avx512)
  execute_process(COMMAND ${CMAKE_COMMAND} -E env NORMLAB_CPU_KERNELS=${path}
                          ${NORMLAB} train ${model} --out ${OUT}/${path}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "0")
    message(FATAL_ERROR "normlab train on path ${path} exited with '${rc}':\n${out}\n${err}")
  endif()
endforeach()
execute_process(COMMAND ${CMAKE_COMMAND} -E compare_files ${OUT}/avx2/checkpoint-4.safetensors
                        ${OUT}/avx512/checkpoint-4.safetensors RESULT_VARIABLE differ)
if(NOT differ STREQUAL "0")
  message(FATAL_ERROR "the avx2 and avx512 checkpoints differ: ${OUT}/avx2, ${OUT}/avx512")
endif()
message(STATUS "the avx2 and avx512 checkpoints are the same file")
