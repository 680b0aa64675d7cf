// apps/normlab/cli/ranks.hpp — the ranks an MPI launcher (mpirun, srun) started
// this process among: how `mpirun -np N normlab train ...` trains data-parallel
// with no other flag.
#pragma once

#include <memory>

#include "cli/common.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

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
