// bench/compile_time_gpt.cpp — the translation unit whose compile time
// tools/compile_time.sh reports: what a user's training program compiles,
// <normlab/normlab.hpp> plus a GPT<NormFormer, float, Cpu> trained with AdamW for a
// few steps. Run, it prints the loss of each step.
//
// Built three ways (bench/CMakeLists.txt): header-only; linking
// normlab::precompiled (NORMLAB_PRECOMPILED: the library holds GPT<NormFormer>);
// and linking it with NORMLAB_COMPILE_TIME_OWN_POLICY defined, where the model
// has a policy of the user's own, compose<PreLN, AttnOutNorm>, which no
// library holds: its model classes compile here, the ops and modules not.
#include <normlab/normlab.hpp>

#include <cstdint>
#include <iostream>
#include <vector>

namespace nl = normlab;

int main() {
  nl::ModelConfig cfg;  // vocab 256 (bytes), 2 layers of C 64, H 4, T 32
  cfg.d_model = 64;
  cfg.n_heads = 4;
  cfg.n_layers = 2;
  cfg.d_ff = 256;
  cfg.max_seq_len = 32;
#ifdef NORMLAB_COMPILE_TIME_OWN_POLICY
  using Policy = nl::compose<nl::PreLN, nl::AttnOutNorm>;
  cfg.policy = "pre_ln+attn_ln";
#else
  using Policy = nl::NormFormer;
  cfg.policy = "normformer";
#endif
  nl::GPT<Policy, float, nl::Cpu> model(cfg, /*seed=*/1);
  nl::AdamW<float, nl::Cpu> opt(model, {1e-3, 0.9, 0.98, 1e-8, 0.01});

  const int64_t B = 4, T = 32;
  std::vector<int64_t> ids(static_cast<size_t>(B * (T + 1)));
  for (size_t i = 0; i < ids.size(); ++i) ids[i] = static_cast<int64_t>((i * 7 + i / 5) % 256);
  std::vector<int64_t> inputs, targets;  // next-token pairs from each row of T + 1 ids
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < T; ++t) {
      inputs.push_back(ids[static_cast<size_t>(b * (T + 1) + t)]);
      targets.push_back(ids[static_cast<size_t>(b * (T + 1) + t + 1)]);
    }
  const auto x = nl::Tensor<int64_t, nl::Cpu>::from_vector({B, T}, inputs);   // (B, T)
  const auto y = nl::Tensor<int64_t, nl::Cpu>::from_vector({B, T}, targets);  // (B, T)

  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    const nl::Variable<float, nl::Cpu> loss = model.loss(x, y);  // ()
    loss.backward();
    nl::clip_grad_norm(opt.named_parameters(), 1.0);
    opt.step();
    std::cout << "step " << step << " loss " << loss.item() << "\n";
  }
}
