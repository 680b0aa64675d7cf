// user_normlab — the `normlab` command with a user's own extras: register
// them, then call the library's entry point. Every command then knows them:
//
//   user_normlab train --policy pre_ln+layer_scale --steps 200
//   user_normlab compare --quick --policies pre_ln,pre_ln+layer_scale,no_ln+rezero
#include "cli/cli.hpp"
#include "extras/layer_scale.hpp"
#include "extras/rezero.hpp"

int main(int argc, char** argv) {
  normlab::register_extra<LayerScale>();
  normlab::register_extra<ReZero>();
  return normlab::cli::run(argc, argv);
}
