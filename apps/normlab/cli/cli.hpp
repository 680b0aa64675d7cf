// apps/normlab/cli/cli.hpp — the `normlab` command as an entry point a
// program can call, e.g. after registering its own extras:
//
//   int main(int argc, char** argv) {
//     normlab::register_extra<MyExtra>();   // optional: the program's own extras
//     return normlab::cli::run(argc, argv);
//   }
//
// Link the `normlab_app` library (apps/normlab/CMakeLists.txt) for it.
//
//   normlab forward --config CONFIG.json --weights WEIGHTS.safetensors
//                   --tokens TOKENS.safetensors --out OUT.safetensors [--dtype f32|f64]
//   normlab info    --config CONFIG.json
//   normlab compare [--policies LIST] [--corpus PATH] [--out DIR] [--quick] ...
//   normlab train   [--policy SPEC | --config CONFIG.json] [--corpus PATH] [--out DIR]
//                   [--device cpu|cuda] ...
//   normlab train   --resume CHECKPOINT [--out DIR] [--corpus PATH] [--stop-at N] ...
//   normlab generate --checkpoint CHECKPOINT [--prompt TEXT] [--tokens N] [--temperature X]
//                    [--top-k K] [--seed S] [--device cpu|cuda]
//   normlab --version | --help
//
// `forward` runs a GPT described by files and writes its logits, mean
// next-token cross-entropy and the gradient of every parameter, so that our
// numbers can be diffed against anyone's PyTorch code. `info` prints a config
// and the parameter count of the presets and each known extra at its sizes.
// `compare` runs the experiments of experiments/compare.hpp. `train` trains
// one configuration with the library's Trainer, writing checkpoints and a
// metrics CSV; `--resume` continues such a run exactly. `generate` samples
// text from a checkpoint.
#pragma once

namespace normlab {
inline namespace v0 {
namespace cli {

/// Runs the `normlab` command line and returns its exit status: 0 on
/// success and for --help and --version (printed on stdout); 2 for a usage
/// error (no or an unknown command, an unknown flag, a missing or malformed
/// value); 1 for any other failure. Errors are one line on stderr starting
/// with "normlab <command>: ". Extras registered before the call are known
/// to every command (`--policy pre_ln+my_extra`, compare, reports).
int run(int argc, char** argv);

}  // namespace cli
}  // namespace v0
}  // namespace normlab
