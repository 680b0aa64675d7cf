// normlab/ops/loss.hpp — cross_entropy.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/ops/embedding.hpp"  // detail::check_index_range

namespace normlab {
inline namespace v0 {

/// loss = (1 / |K|) sum_{r in K} (log sum_j exp(logits[r, j]) - logits[r, t_r]),
/// K = {r : t_r != ignore_index}: the mean over the non-ignored positions of
/// the cross-entropy between softmax(logits[r, :]) and class t_r (torch's
/// F.cross_entropy with reduction="mean"). One fused node; backward adds
/// dloss / |K| * (softmax(logits[r, :]) - onehot(t_r)) to each non-ignored row.
///
/// Requires: logits has a class dim, shape (..., V); targets has exactly the
/// leading shape (...); every target is in [0, V) or equals ignore_index.
/// Throws Error naming the shapes or the bad target, its position and V (a
/// bad target: at the backend's next read to the host on a backend with
/// HasDeviceIndexChecks, as for embedding; its row's loss is NaN until then).
/// Ensures: a 0-d result, finite for finite logits however large (log-sum-exp
/// subtracts the row max). When every position is ignored (or there are none)
/// the result is NaN, like torch's 0/0, and the gradient is zero. The targets
/// are copied, so the caller may refill its buffer before backward().
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> cross_entropy(const Variable<Scalar, Backend>& logits /*(..., V)*/,
                                        const Tensor<int64_t, Backend>& targets /*(...)*/,
                                        int64_t ignore_index = -100) {
  const Shape& ls = logits.shape();
  detail::check(ls.ndim() >= 1, "cross_entropy: logits must have a class dim (..., V), got shape ",
                ls);
  detail::check(targets.defined(), "cross_entropy: targets is an undefined tensor");
  const Shape lead(std::vector<int64_t>(ls.begin(), ls.end() - 1));
  detail::check(targets.shape() == lead, "cross_entropy: targets shape ", targets.shape(),
                " does not match logits ", ls, " leading dims ", lead);
  const int64_t v = ls[ls.ndim() - 1], n = lead.numel();
  if constexpr (HasDeviceIndexChecks<Backend, Scalar>) {
    // Checked and counted on the device: no host synchronization.
    const Tensor<Scalar, Backend> x = logits.data();     // (N, V)
    const Tensor<int64_t, Backend> t = targets.clone();  // (N)
    Tensor<Scalar, Backend> loss{Shape{}};               // ()
    Tensor<Scalar, Backend> scale{Shape{}};              // () 1 / |K|, NaN when K is empty
    Tensor<Scalar, Backend> losses{Shape{n}};            // (N)
    Tensor<Scalar, Backend> lse{Shape{n}};               // (N) log-sum-exp of each row
    cross_entropy_forward_counted(
        Backend{}, loss.data(), losses.data(), lse.data(), scale.data(), x.data(), t.data(), n, v,
        ignore_index,
        IndexCheck{"cross_entropy", "target", "targets", targets.shape(), v, ignore_index});
    return make_result<Scalar, Backend>(
        "cross_entropy", loss, {&logits},
        [x, t, lse, scale, n, v, ignore_index](const Tensor<Scalar, Backend>& dloss,
                                               const GradSlots<Scalar, Backend>& d) {
          cross_entropy_backward_counted(Backend{}, d[0]->data(), dloss.data(), x.data(),
                                         lse.data(), scale.data(), t.data(), n, v, ignore_index);
        });
  } else {
    const int64_t kept =
        detail::check_index_range("cross_entropy", "target", "targets", targets, v, ignore_index);
    const Scalar scale =
        kept > 0 ? Scalar(1) / static_cast<Scalar>(kept) : std::numeric_limits<Scalar>::quiet_NaN();

    const Tensor<Scalar, Backend> x = logits.data();     // (N, V)
    const Tensor<int64_t, Backend> t = targets.clone();  // (N)
    Tensor<Scalar, Backend> loss{Shape{}};               // ()
    Tensor<Scalar, Backend> losses{Shape{n}};            // (N)
    Tensor<Scalar, Backend> lse{Shape{n}};               // (N) log-sum-exp of each row
    cross_entropy_forward(Backend{}, loss.data(), losses.data(), lse.data(), x.data(), t.data(), n,
                          v, ignore_index, scale);
    return make_result<Scalar, Backend>(
        "cross_entropy", loss, {&logits},
        [x, t, lse, n, v, ignore_index, scale](const Tensor<Scalar, Backend>& dloss,
                                               const GradSlots<Scalar, Backend>& d) {
          cross_entropy_backward(Backend{}, d[0]->data(), dloss.data(), x.data(), lse.data(),
                                 t.data(), n, v, ignore_index, scale);
        });
  }
}

}  // namespace v0
}  // namespace normlab
