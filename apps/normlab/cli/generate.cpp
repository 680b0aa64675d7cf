// apps/normlab/cli/generate.cpp — `normlab generate`: text sampled from a checkpoint.
#include "cli/common.hpp"
#include "cli/device.hpp"
#include "cli/generate_run.hpp"

namespace normlab {
inline namespace v0 {
namespace cli::detail {

int generate_command(int argc, char** argv) {
  const Flags flags(
      "generate",
      {{"--checkpoint", "CHECKPOINT  a checkpoint of normlab train (or any normlab checkpoint)"},
       {"--prompt", "TEXT          text to continue (default: a newline)"},
       {"--tokens", "N             bytes to generate (default 200)"},
       {"--temperature", "X        > 0 divides the logits; 0 = greedy (default 1)"},
       {"--top-k", "K              sample among the K likeliest bytes, 0 = all (default 0)"},
       {"--seed", "S               seed of the sampling (default 1)"},
       {"--device", kDeviceHelp}},
      argc, argv, 2);
  if (flags.print_help(
          "usage: normlab generate --checkpoint CHECKPOINT [--prompt TEXT] [--tokens N]\n"
          "                        [--temperature X] [--top-k K] [--seed S]\n"
          "Loads the model of a checkpoint and continues the prompt one byte at a time, in eval\n"
          "mode, from the softmax of logits / temperature over the top-k bytes (temperature 0:\n"
          "always the likeliest). The model sees the last max_seq_len bytes. Prints the prompt\n"
          "and its continuation; the same checkpoint, prompt and flags give the same text (on\n"
          "the same device: --device cuda runs the model on the GPU, whose logits may differ\n"
          "from the CPU's in the last bits).\n"))
    return 0;
  const Device device = parse_device("generate", flags.get("--device", "cpu"));
  require_device("generate", device);
  nl::SamplingOptions o;
  o.max_new_tokens = int_at_least("--tokens", flags.get("--tokens", "200"), 0);
  o.temperature = number_in("--temperature", flags.get("--temperature", "1"), 0, HUGE_VAL);
  o.top_k = int_at_least("--top-k", flags.get("--top-k", "0"), 0);
  o.seed = static_cast<uint64_t>(int_at_least("--seed", flags.get("--seed", "1"), 0));
  const uint64_t memory = nl::detail::physical_memory_bytes();
  // The text is kept as ids (8 bytes) and bytes (1) until it is printed.
  if (memory != 0 && static_cast<uint64_t>(o.max_new_tokens) > memory / 9)
    throw nl::Error("normlab generate: --tokens " + std::to_string(o.max_new_tokens) +
                    " would hold 9 bytes per token, more than this machine's " +
                    std::to_string(memory) + " bytes of memory (expected at most " +
                    std::to_string(memory / 9) + " tokens)");
  const std::string prompt = flags.get("--prompt", "\n");
  if (prompt.empty())
    throw UsageError("normlab generate: --prompt needs at least one character, got ''");
  const auto file = nl::io::SafetensorsReader::open(flags.required("--checkpoint"));
  const std::vector<int64_t> ids = nl::ByteTokenizer::encode(prompt);
#ifdef NORMLAB_APP_CUDA
  const std::vector<int64_t> text =
      device == Device::cuda ? generate_on_cuda(file, ids, o) : generate_on<nl::Cpu>(file, ids, o);
#else
  const std::vector<int64_t> text = generate_on<nl::Cpu>(file, ids, o);
#endif
  const std::string all = prompt + nl::ByteTokenizer::decode(text) + "\n";
  std::fwrite(all.data(), 1, all.size(), stdout);  // bytes as they are, NUL included
  return 0;
}

}  // namespace cli::detail
}  // namespace v0
}  // namespace normlab
