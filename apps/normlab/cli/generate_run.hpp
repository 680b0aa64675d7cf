// apps/normlab/cli/generate_run.hpp — the model part of `normlab generate`,
// templated on the backend: generate.cpp runs it on the CPU, cuda.cu on CUDA.
#pragma once

#include <string>
#include <vector>

#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

/// The ids nl::generate continues `prompt` with, from the model of the
/// checkpoint `file` (its optimizer state ignored) on `Backend`.
/// Throws Error naming the file when it holds no model of normlab.
template <class Backend>
std::vector<int64_t> generate_on(const nl::io::SafetensorsReader& file,
                                 const std::vector<int64_t>& prompt, const nl::SamplingOptions& o) {
  const nl::ModelConfig cfg = nl::checkpoint_config(file);
  nl::GPT<nl::RuntimePolicy, float, Backend> model(cfg);
  // A training checkpoint also holds the optimizer's state.
  nl::load_parameters(model, file, nl::DTypeMatch::convert,
                      nl::tensor_names_with_prefix(file, nl::kOptimizerStatePrefix));
  return nl::generate(model, prompt, o);
}

#ifdef NORMLAB_APP_CUDA
/// generate_on<Cuda> (defined in cli/cuda.cu).
std::vector<int64_t> generate_on_cuda(const nl::io::SafetensorsReader& file,
                                      const std::vector<int64_t>& prompt,
                                      const nl::SamplingOptions& o);
#endif

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
