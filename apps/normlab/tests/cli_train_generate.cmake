# normlab train and generate end to end on a small corpus:
#   1. an uninterrupted run of STEPS steps;
#   2. the same run stopped halfway (--stop-at) and resumed from its
#      checkpoint in a new process: its final loss line and every loss in
#      metrics.csv must equal the uninterrupted run's;
#   3. generate from the final checkpoint twice with one seed: the same text,
#      starting with the prompt;
#   4. forward --checkpoint on the same checkpoint (its config from the file, its
#      optimizer state ignored) with the batch in TOKENS.
#
#   cmake -DNORMLAB=<program> -DCORPUS=<path> -DOUT=<dir> -DTOKENS=<tokens.safetensors>
#         -P cli_train_generate.cmake
set(steps 8)
math(EXPR half "${steps} / 2")
set(model --corpus ${CORPUS} --d-model 16 --layers 2 --heads 2 --d-ff 32 --seq-len 16
          --batch-size 4 --steps ${steps} --warmup 2 --eval-every 4 --eval-windows 8
          --dropout 0.1 --policy normformer --seed 3)
file(REMOVE_RECURSE ${OUT})

function(run_ok name)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc STREQUAL "0")
    string(REPLACE ";" " " shown "${ARGN}")
    message(FATAL_ERROR "${shown}\nexited with '${rc}':\n${out}\n${err}")
  endif()
  set(${name} "${out}" PARENT_SCOPE)
endfunction()

# The line "final step N: train loss X, val loss Y (perplexity Z)".
function(final_line name text)
  if(NOT text MATCHES "(final step [0-9]+: train loss [^\n]+)")
    message(FATAL_ERROR "no final loss line in:\n${text}")
  endif()
  set(${name} "${CMAKE_MATCH_1}" PARENT_SCOPE)
endfunction()

# metrics.csv without its tokens_per_s column (a timing).
function(losses name csv)
  file(STRINGS ${csv} rows)
  set(kept)
  foreach(row IN LISTS rows)
    string(REGEX REPLACE "^([^,]*,[^,]*,[^,]*,[^,]*),[^,]*," "\\1,," row "${row}")
    list(APPEND kept "${row}")
  endforeach()
  set(${name} "${kept}" PARENT_SCOPE)
endfunction()

run_ok(whole ${NORMLAB} train ${model} --out ${OUT}/whole)
final_line(whole_final "${whole}")

run_ok(first_half ${NORMLAB} train ${model} --stop-at ${half} --out ${OUT}/split)
if(NOT first_half MATCHES "stopped at step ${half}")
  message(FATAL_ERROR "--stop-at ${half} did not stop there:\n${first_half}")
endif()
run_ok(second_half ${NORMLAB} train --resume ${OUT}/split/checkpoint-${half}.safetensors)
final_line(split_final "${second_half}")
if(NOT split_final STREQUAL whole_final)
  message(FATAL_ERROR "resumed run: '${split_final}'\nuninterrupted: '${whole_final}'")
endif()
losses(whole_rows ${OUT}/whole/metrics.csv)
losses(split_rows ${OUT}/split/metrics.csv)
list(LENGTH whole_rows n)
math(EXPR lines "${steps} + 1")
if(NOT n EQUAL lines)
  message(FATAL_ERROR "expected a header and ${steps} rows in metrics.csv, got ${n} lines")
endif()
if(NOT whole_rows STREQUAL split_rows)
  message(FATAL_ERROR "metrics differ:\nuninterrupted ${whole_rows}\nresumed ${split_rows}")
endif()

set(generate ${NORMLAB} generate --checkpoint ${OUT}/whole/checkpoint-${steps}.safetensors
             --prompt "The " --tokens 24 --temperature 0.8 --top-k 20 --seed 5)
run_ok(text_a ${generate})
run_ok(text_b ${generate})
if(NOT text_a STREQUAL text_b)
  message(FATAL_ERROR "one seed, two texts:\n${text_a}\n${text_b}")
endif()
if(NOT text_a MATCHES "^The ")
  message(FATAL_ERROR "expected the prompt 'The ' first, got:\n${text_a}")
endif()
run_ok(forward ${NORMLAB} forward --checkpoint ${OUT}/whole/checkpoint-${steps}.safetensors
       --tokens ${TOKENS} --out ${OUT}/forward.safetensors)
# The byte model (256 ids, 2 NormFormer layers: 2 + 2 x 21 + 2 tensors) on a (2, 5) batch.
if(NOT forward MATCHES "logits \\(2, 5, 256\\), loss [0-9.]+, 46 gradients")
  message(FATAL_ERROR "forward --checkpoint printed:\n${forward}")
endif()
message(STATUS "${whole_final}\ngenerated: ${text_a}\n${forward}")
