// apps/normlab/cli/ranks.hpp — the ranks an MPI launcher (mpirun, srun) started
// this process among: how `mpirun -np N normlab train ...` trains data-parallel
// with no other flag.
#pragma once

#include <charconv>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>

#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

/// The value of the first of `variables` that the launcher set, a whole number
/// >= `least`; none when it set none of them. Throws Error naming the
/// variable when its value is not such a number.
inline std::optional<int> launcher_number(std::initializer_list<const char*> variables, int least) {
  for (const char* variable : variables) {
    const char* value = std::getenv(variable);
    if (value == nullptr) continue;
    const std::string text = value;
    int number = 0;
    const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), number);
    nl::detail::check(err == std::errc() && end == text.data() + text.size() && number >= least,
                      "the MPI launcher's ", variable, " must be a whole number >= ", least,
                      ", found '", text, "'");
    return number;
  }
  return std::nullopt;
}

/// This process's place among the launcher's ranks on its machine (OpenMPI's
/// OMPI_COMM_WORLD_LOCAL_RANK, Slurm's SLURM_LOCALID, MPICH's
/// MPI_LOCALRANKID); 0 without a launcher.
inline int launcher_local_rank() {
  return launcher_number({"OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", "MPI_LOCALRANKID"}, 0)
      .value_or(0);
}

/// The number of processes the launcher that started this one runs, from its
/// environment (OpenMPI's OMPI_COMM_WORLD_SIZE, PMI_SIZE of MPICH and Slurm's
/// PMI-2); 1 without a launcher. Throws Error naming the variable when its
/// value is not a positive whole number.
int launcher_world_size();

/// A communicator over the launcher's ranks (MpiCommunicator, MPI_COMM_WORLD)
/// when it runs several, else null (one process: no MPI is initialized).
/// Throws Error naming `command` when several ranks run but this build of
/// normlab has no MPI (NORMLAB_APP_MPI: the library's normlab::mpi was found
/// at configure time).
std::unique_ptr<nl::dist::Communicator> launcher_communicator(const char* command);

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
