// Must not compile: double is not a policy extra. The test expects the
// static_assert's message as the compiler's first error.
#include "normlab/normlab.hpp"

using Broken = normlab::compose<normlab::PreLN, normlab::AttnOutNorm, double>;

int main() {
  return Broken::has<normlab::AttnOutNorm> ? 0 : 1;
}
