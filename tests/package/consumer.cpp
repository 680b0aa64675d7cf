// consumer.cpp — the program both package tests build against normlab as a user would:
// a leaf Variable x, y = x * x + 1, and y.backward(ones) must give dy/dx = 2x.
#include <normlab/normlab.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  namespace nl = normlab;
  using T = nl::Tensor<float, nl::Cpu>;
  using V = nl::Variable<float, nl::Cpu>;

  const V ones(T::ones({2, 3}));                           // (2, 3)
  V x(T::from({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}), true);  // (2, 3), needs grad
  const V y = x * x + ones;                                // (2, 3)
  y.backward(T::ones({2, 3}));

  const std::vector<float> xs = x.data().to_vector(), ys = y.data().to_vector();
  const std::vector<float> dx = x.grad().to_vector();
  int bad = 0;
  for (std::size_t i = 0; i < xs.size(); ++i) {
    if (std::abs(ys[i] - (xs[i] * xs[i] + 1.f)) > 1e-6f || std::abs(dx[i] - 2.f * xs[i]) > 1e-6f) {
      std::fprintf(stderr, "at %zu: x=%g y=%g dy/dx=%g, expected y=%g dy/dx=%g\n", i,
                   static_cast<double>(xs[i]), static_cast<double>(ys[i]),
                   static_cast<double>(dx[i]), static_cast<double>(xs[i] * xs[i] + 1.f),
                   static_cast<double>(2.f * xs[i]));
      ++bad;
    }
  }
  if (bad) return 1;
  std::printf("normlab %d.%d.%d consumer: y = x*x + 1 and dy/dx = 2x are right\n",
              nl::version_major, nl::version_minor, nl::version_patch);
  return 0;
}
