// apps/normlab/cli/device.hpp — the `--device cpu|cuda` flag of the commands
// that run a model: one parser and one availability check, so that every
// command words its device errors alike.
//
// The CUDA side lives in cli/cuda.cu, compiled only when CMake enables the
// CUDA backend; it then defines NORMLAB_APP_CUDA for the application, and the
// commands call its entry points (declared here). Without it, --device cuda
// is an error that says how to configure a build with CUDA.
#pragma once

#include <string>

#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

/// The backend a command runs its model on.
enum class Device { cpu, cuda };

/// The help text of --device (for a Flags table).
inline constexpr const char* kDeviceHelp =
    "WORD          cpu (default) or cuda: the backend that runs the model";

/// The device --device names ("cpu", "cuda"); a UsageError naming `command`
/// and the accepted words otherwise.
inline Device parse_device(const std::string& command, const std::string& word) {
  if (word == "cpu") return Device::cpu;
  if (word == "cuda") return Device::cuda;
  throw UsageError("normlab " + command + ": --device must be cpu or cuda, got '" + word + "'");
}

#ifdef NORMLAB_APP_CUDA
/// Why the CUDA backend cannot run here (e.g. "no CUDA device is visible
/// (cudaGetDeviceCount: cudaErrorNoDevice: no CUDA-capable device is
/// detected)"); empty when a device is visible. Defined in cli/cuda.cu.
std::string cuda_device_problem();
#endif

/// Returns when `device` can run in this process; else throws Error naming
/// `command` and what is missing: a build without the CUDA backend (and how
/// to configure one), or no visible CUDA device. Cheap: call it before any
/// other work.
inline void require_device(const std::string& command, Device device) {
  if (device == Device::cpu) return;
#ifdef NORMLAB_APP_CUDA
  const std::string problem = cuda_device_problem();
  if (!problem.empty()) throw nl::Error("normlab " + command + ": --device cuda: " + problem);
#else
  throw nl::Error("normlab " + command +
                  ": --device cuda: this build has no CUDA backend (configure it with "
                  "-DNORMLAB_ENABLE_CUDA=ON and a CUDA compiler, nvcc, then rebuild)");
#endif
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
