// normlab/ops/dropout.hpp — dropout.
#pragma once

#include <cstdint>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/functors.hpp"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {

/// Inverted dropout: y = x * m, m_i = [u_i >= p] / (1 - p) with u_i uniform
/// in [0, 1) from `gen`, so E[y] = x and evaluation needs no rescaling.
/// Backward: dx += dy * m.
///
/// Requires: 0 <= p <= 1 (throws Error otherwise).
/// Ensures: when p == 0 or !training, returns `x` itself (no node, no draw
/// from `gen`); p == 1 gives zeros (and a zero gradient). Otherwise the mask
/// takes gen.reserve<float>(numel) Philox blocks whatever Scalar is: successive
/// calls use fresh masks, and a seed reproduces them on every backend and
/// thread count, in float and in double.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> dropout(const Variable<Scalar, Backend>& x /*(...)*/, double p,
                                  Generator& gen, bool training = true) {
  detail::check(p >= 0 && p <= 1, "dropout: p = ", p, " not in [0, 1]");
  if (p == 0 || !training) return x;
  const Tensor<Scalar, Backend> tx = x.data();  // (...)
  const int64_t n = tx.numel();
  Tensor<Scalar, Backend> mask(tx.shape());  // (...) 0 or 1 / (1 - p)
  dropout_mask(Backend{}, mask.data(), n, gen.seed(), gen.reserve<float>(n), p);
  Tensor<Scalar, Backend> y(tx.shape());  // (...)
  const BroadcastPlan plan = make_broadcast_plan(tx.shape(), tx.shape(), tx.shape());
  map_binary_forward(Backend{}, y.data(), tx.data(), mask.data(), plan, n, fn::Mul{});
  return make_result<Scalar, Backend>(
      "dropout", y, {&x},
      [tx, mask, plan](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        map_binary_backward(Backend{}, d[0]->data(), static_cast<Scalar*>(nullptr), dy.data(),
                            tx.data(), mask.data(), plan, dy.numel(), fn::Mul{});
      });
}

}  // namespace v0
}  // namespace normlab
