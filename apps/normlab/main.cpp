// apps/normlab/main.cpp — the `normlab` program.
#include "cli/cli.hpp"

int main(int argc, char** argv) {
  return normlab::cli::run(argc, argv);
}
