// Must not compile: a policy is a placement and extras, not a struct of
// traits. `attn_ln` here (the config's word) would have been silently ignored
// by a trait-based policy; now the first error says how to compose instead
// and lists the built-in extras.
#include "normlab/normlab.hpp"

struct PostLNWithAttnLN : normlab::PostLN {
  static constexpr bool attn_ln = true;
};

int main() {
  normlab::ModelConfig cfg;
  normlab::GPT<PostLNWithAttnLN, float, normlab::Cpu> model(cfg);
  return static_cast<int>(model.parameter_count() % 2);
}
