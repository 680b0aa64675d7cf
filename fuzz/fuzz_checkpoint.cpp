// fuzz/fuzz_checkpoint.cpp — libFuzzer harness for loading a checkpoint and
// training one step from it, as `normlab generate` and a resumed run do.
//
// For any bytes given as a checkpoint file:
//   1. SafetensorsReader::from_bytes, then checkpoint_config: accepted or
//      normlab::Error.
//   2. Configs over the harness's size caps are skipped, so that each input
//      stays fast: vocab_size <= 512, d_model <= 64, d_ff <= 256,
//      n_layers <= 4, max_seq_len <= 64 and at most 200k parameters (by
//      ModelConfig::minimum_parameter_count). The caps are the harness's, not
//      the library's.
//   3. GPT<RuntimePolicy, float, Cpu> is built from the config (which
//      validated, so building must not throw), then loaded: load_checkpoint
//      (exact dtypes), or when that refuses the file, load_parameters with
//      DTypeMatch::convert ignoring the `optim.` tensors, as `generate` does;
//      when that refuses it too, non-strictly (KeyMatch::report, as `forward
//      --non-strict`), whose report must account for every parameter. Each
//      may throw normlab::Error; a refused load must leave every parameter
//      unchanged (their contract).
//   4. AdamW over the model; when the file holds `optim.` tensors, its state
//      is loaded from them by read_state / load_state (normlab::Error allowed).
//   5. A forward pass of a (2, T <= 8) token batch, the loss, backward() and
//      one AdamW step: the config validated and the tokens are in range, so
//      none of these may throw; an exception there, normlab::Error included,
//      is a finding. Values may be NaN or infinite (the parameters come from
//      the file): that is not a finding.
// Any exception other than normlab::Error, a crash or a sanitizer report is a
// finding.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "fuzz_common.hpp"
#include "normlab/autograd/variable.hpp"
#include "normlab/backend/cpu.hpp"
#include "normlab/core/error.hpp"
#include "normlab/io/safetensors.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/models/config.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/optim/adam.hpp"
#include "normlab/policy/compose.hpp"
#include "normlab/train/optimizer_state.hpp"

namespace nl = normlab;
namespace io = normlab::io;
using nl::Cpu;
using Model = nl::GPT<nl::RuntimePolicy, float, Cpu>;

namespace {

constexpr const char* kHarness = "fuzz_checkpoint";

/// Whether `c` (a validated config) is within the harness's caps.
bool small_enough(const nl::ModelConfig& c) {
  return c.vocab_size <= 512 && c.d_model <= 64 && c.d_ff <= 256 && c.n_layers <= 4 &&
         c.max_seq_len <= 64 && c.minimum_parameter_count() <= 200'000;
}

/// Every parameter's values, in named_parameters() order.
std::vector<std::vector<float>> snapshot(Model& model) {
  std::vector<std::vector<float>> values;
  for (const auto& p : model.named_parameters()) values.push_back(p.value.data().to_vector());
  return values;
}

/// Loads `file` into `model` as a checkpoint or, failing that, as `generate`
/// does; returns whether either succeeded.
bool load(const io::SafetensorsReader& file, Model& model,
          const std::set<std::string>& optimizer_state) {
  try {
    nl::load_checkpoint(file, model);
    return true;
  } catch (const nl::Error&) {
  }
  try {
    nl::load_parameters(model, file, nl::DTypeMatch::convert, optimizer_state);
    return true;
  } catch (const nl::Error&) {
  }
  try {
    const nl::LoadReport r = nl::load_parameters(
        model, file,
        nl::LoadOptions{nl::DTypeMatch::convert, nl::KeyMatch::report, optimizer_state});
    if (r.loaded.size() + r.missing.size() != model.named_parameters().size())
      normlab_fuzz::finding(kHarness, "a non-strict load's report does not add up: " + r.summary());
    return true;
  } catch (const nl::Error&) {
  }
  return false;
}

/// Steps 3-5 for a config within the caps.
void train_one_step(const io::SafetensorsReader& file, const nl::ModelConfig& config) {
  // A training checkpoint also holds these.
  const std::set<std::string> optimizer_state =
      nl::tensor_names_with_prefix(file, nl::kOptimizerStatePrefix);

  std::optional<Model> model;
  try {
    model.emplace(config);
  } catch (const nl::Error& e) {
    normlab_fuzz::finding(kHarness, std::string("GPT of a validated config threw: ") + e.what());
  }
  const auto before = snapshot(*model);
  if (!load(file, *model, optimizer_state) && snapshot(*model) != before)
    normlab_fuzz::finding(kHarness, "a refused load changed the model's parameters");

  nl::AdamW<float, Cpu> optimizer(*model, {.lr = 1e-3, .weight_decay = 0.01});
  if (!optimizer_state.empty()) {
    try {
      optimizer.load_state(nl::read_state<float, Cpu>(file, "optim."));
    } catch (const nl::Error&) {
    }
  }

  try {
    const int64_t B = 2, T = std::min<int64_t>(config.max_seq_len, 8), V = config.vocab_size;
    std::vector<int64_t> tokens, targets;
    for (int64_t i = 0; i < B * T; ++i) {
      tokens.push_back(i * 7 % V);
      targets.push_back(i % 5 == 4 ? -100 : (i * 7 + 3) % V);  // some ignored targets
    }
    optimizer.zero_grad();
    nl::Variable<float, Cpu> loss =
        model->loss(nl::Tensor<int64_t, Cpu>::from_vector({B, T}, tokens),
                    nl::Tensor<int64_t, Cpu>::from_vector({B, T}, targets));
    (void)loss.item();
    loss.backward();
    optimizer.step();
  } catch (const nl::Error& e) {
    normlab_fuzz::finding(kHarness,
                          std::string("a training step of a loaded model threw: ") + e.what());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<io::SafetensorsReader> file;
  nl::ModelConfig config;
  try {
    file.emplace(
        io::SafetensorsReader::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz"));
    config = nl::checkpoint_config(*file);
  } catch (const nl::Error&) {
    return 0;  // not a checkpoint: the documented outcome
  }
  if (small_enough(config)) train_one_step(*file, config);
  return 0;
}
