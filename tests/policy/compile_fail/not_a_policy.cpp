// Must not compile: int is not a normalization policy. The test expects the
// static_assert's message in the compiler output.
#include "normlab/normlab.hpp"

int main() {
  normlab::Generator gen(0);
  normlab::TransformerLayer<int, float, normlab::Cpu> layer(normlab::ModelConfig{}, gen);
  return 0;
}
