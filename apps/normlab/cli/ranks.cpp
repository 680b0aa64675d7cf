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
  for (const char* variable : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE"}) {
    const char* value = std::getenv(variable);
    if (value == nullptr) continue;
    const std::string text = value;
    int size = 0;
    const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), size);
    nl::detail::check(err == std::errc() && end == text.data() + text.size() && size >= 1,
                      "the MPI launcher's ", variable, " must be a positive whole number, found '",
                      text, "'");
    return size;
  }
  return 1;
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
