// Must not compile: double is not a policy extra. The test expects the
// static_assert's message in the compiler output.
#include "normlab/normlab.hpp"

using Broken = normlab::compose<normlab::PreLN, normlab::AttnOutNorm, double>;

int main() { return Broken::attn_out_norm ? 0 : 1; }
