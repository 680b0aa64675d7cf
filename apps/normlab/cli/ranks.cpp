// apps/normlab/cli/ranks.cpp — launcher_communicator: MPI when this build has it.
#include "cli/ranks.hpp"

#include <cstdlib>
#include <string>

#ifdef NORMLAB_APP_MPI
#include "normlab/dist/mpi.hpp"
#endif

namespace normlab {
inline namespace v0 {
namespace cli::detail {

int launcher_world_size() {
  return launcher_number({"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}, 1).value_or(1);
}

std::unique_ptr<nl::dist::Communicator> launcher_communicator(const char* command) {
  const int size = launcher_world_size();
  if (size == 1) return nullptr;
#ifdef NORMLAB_APP_MPI
  auto comm = std::make_unique<nl::dist::MpiCommunicator>();
  nl::detail::check(comm->size() == size, "normlab ", command, ": the launcher runs ", size,
                    " ranks but MPI_COMM_WORLD has ", comm->size());
  return comm;
#else
  throw nl::Error(std::string("normlab ") + command + ": started as one of " +
                  std::to_string(size) +
                  " ranks by an MPI launcher, but this build has no MPI (expected a build "
                  "configured with MPI found: apt-get install libopenmpi-dev openmpi-bin, then "
                  "reconfigure)");
#endif
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
