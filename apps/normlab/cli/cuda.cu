// apps/normlab/cli/cuda.cu — the CUDA part of the `normlab` command: whether
// a device is visible, and train, generate and compare on the CUDA backend
// (the same code as on the CPU, cli/train_run.hpp, cli/generate_run.hpp and
// experiments/compare.hpp, compiled by nvcc for Cuda). Built only when CMake enables the CUDA
// backend, which then defines NORMLAB_APP_CUDA for the application (apps/normlab/CMakeLists.txt);
// with NCCL found too (NORMLAB_APP_NCCL), train over an MPI launcher's ranks reduces with NCCL.
#include <normlab/cuda.hpp>

#include <cuda_runtime.h>

#include <string>

#include "cli/device.hpp"
#include "cli/generate_run.hpp"
#include "cli/ranks.hpp"
#include "cli/train_run.hpp"
#include "experiments/compare.hpp"
#ifdef NORMLAB_APP_NCCL
#include "normlab/dist/nccl.hpp"
#endif

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
  if (session.communicator == nullptr) {
    run_training<nl::Cuda>(run, corpus, schedule, session);
    return;
  }
#ifdef NORMLAB_APP_NCCL
  // Several ranks: NCCL over the launcher's MPI ranks, one GPU per rank of a machine
  // (local rank modulo the GPUs it sees), chosen before the first Cuda tensor.
  auto* mpi = dynamic_cast<nl::dist::MpiCommunicator*>(session.communicator);
  nl::detail::check(mpi != nullptr,
                    "normlab train --device cuda: expected the launcher's MPI "
                    "communicator to start NCCL, found the ",
                    session.communicator->name(), " communicator");
  int devices = 0;
  nl::detail::check(cudaGetDeviceCount(&devices) == cudaSuccess && devices > 0,
                    "normlab train --device cuda: rank ", mpi->rank(), " sees no CUDA device");
  const int device = launcher_local_rank() % devices;
  nl::detail::check(cudaSetDevice(device) == cudaSuccess, "normlab train --device cuda: rank ",
                    mpi->rank(), " could not select CUDA device ", device);
  nl::dist::NcclCommunicator nccl(*mpi);
  TrainSession on_gpus = session;
  on_gpus.communicator = &nccl;
  run_training<nl::Cuda>(run, corpus, schedule, on_gpus);
#else
  throw nl::Error("normlab train --device cuda: several ranks need NCCL, which this build lacks");
#endif
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
