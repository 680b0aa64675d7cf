// apps/normlab/cli/cuda.cu — the CUDA part of the `normlab` command: whether
// a device is visible, and train, generate and compare on the CUDA backend
// (the same code as on the CPU, cli/train_run.hpp, cli/generate_run.hpp and
// experiments/compare.hpp, compiled by nvcc for Cuda). Built only when CMake enables the CUDA
// backend, which then defines NORMLAB_APP_CUDA for the application (apps/normlab/CMakeLists.txt).
#include <normlab/cuda.hpp>

#include <cuda_runtime.h>

#include "cli/device.hpp"
#include "cli/generate_run.hpp"
#include "cli/train_run.hpp"
#include "experiments/compare.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

std::string cuda_device_problem() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    return nl::detail::concat("no CUDA device is visible (cudaGetDeviceCount: ",
                              cudaGetErrorName(e), ": ", cudaGetErrorString(e), ")");
  }
  if (count == 0) return "no CUDA device is visible (cudaGetDeviceCount found none)";
  return "";
}

void run_training_cuda(const TrainRun& run, const nl::TextCorpus& corpus,
                       const nl::Schedule& schedule, const TrainSession& session) {
  run_training<nl::Cuda>(run, corpus, schedule, session);
}

std::vector<int64_t> generate_on_cuda(const nl::io::SafetensorsReader& file,
                                      const std::vector<int64_t>& prompt,
                                      const nl::SamplingOptions& o) {
  return generate_on<nl::Cuda>(file, prompt, o);
}

nl::CompareResults run_compare_cuda(const nl::CompareOptions& o, const nl::TextCorpus& corpus,
                                    const nl::TrainValSplit& split, const nl::ProgressFn& progress,
                                    nl::dist::Communicator* comm) {
  return nl::run_compare<nl::Cuda>(o, corpus, split, progress, comm);
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
