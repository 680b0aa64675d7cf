// normlab — the command-line front end: the library's entry point with the
// built-in extras. A program with extras of its own registers them and calls
// the same entry point (examples/user_extras.cpp).
#include "normlab/cli/cli.hpp"

int main(int argc, char** argv) {
  return normlab::cli::run(argc, argv);
}
