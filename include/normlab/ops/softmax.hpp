// normlab/ops/softmax.hpp — softmax (with an optional causal mask) and
// log_softmax over the last axis.
//
// Each is one fused graph node whose backward needs only the output y.
// x of shape (..., n) is seen as (rows, n).
#pragma once

#include <cstdint>

#include "normlab/autograd/variable.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {

/// The number of rows of x seen as (rows, n); throws unless x has a last axis.
template <FloatingElement Scalar, class Backend>
int64_t softmax_rows(const char* op, const Variable<Scalar, Backend>& x) {
  check(x.defined(), op, ": x is undefined (a default-constructed Variable)");
  check(x.ndim() >= 1, op, ": x with 0 dims (shape ", x.shape(), ") has no last axis");
  return x.size(-1) > 0 ? x.numel() / x.size(-1) : 0;
}

}  // namespace detail

/// Softmax over the last axis:  y_j = exp(x_j - max_k x_k) / sum_k exp(x_k - max_k x_k).
///
/// With `causal`, x is (..., Tq, Tk) and entry (i, j) of each (Tq, Tk) matrix
/// is masked when j > i + (Tk - Tq): the mask is aligned to the bottom-right
/// corner, so query i sees keys up to its own position counted from the end
/// (a square matrix loses its strict upper triangle). Masked entries are
/// exactly 0 in y and get no gradient; when Tq > Tk the first Tq - Tk queries
/// see no key and their rows are all 0.
///
/// Requires: x has >= 1 dims, and >= 2 dims when `causal`. Throws Error naming
/// the shape otherwise.
/// Ensures: y has x's shape; in each row with an unmasked entry those entries
/// are >= 0 and sum to 1; one graph node whose backward adds into x's gradient.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> softmax(const Variable<Scalar, Backend>& x, bool causal = false) {
  const int64_t rows = detail::softmax_rows("softmax", x);
  detail::check(!causal || x.ndim() >= 2,
                "softmax: a causal mask needs x of shape (..., Tq, Tk) with >= 2 dims, got a 1-d "
                "tensor of shape ",
                x.shape());
  const int64_t n = x.size(-1);
  const int64_t causal_tq = causal ? x.size(-2) : 0;
  const Tensor<Scalar, Backend> tx = x.data();  // (rows, n)
  Tensor<Scalar, Backend> y(tx.shape());        // (rows, n)
  softmax_forward(Backend{}, y.data(), tx.data(), rows, n, causal_tq);
  return make_result<Scalar, Backend>("softmax", y, {&x},
                                      [y, rows, n, causal_tq](const Tensor<Scalar, Backend>& dy,
                                                              const GradSlots<Scalar, Backend>& d) {
                                        softmax_backward(Backend{}, d[0]->data(), dy.data(),
                                                         y.data(), rows, n, causal_tq);
                                      });
}

/// Log-softmax over the last axis:  y_j = x_j - max_k x_k - log sum_k exp(x_k - max_k x_k),
/// computed without forming softmax, so it stays finite where softmax underflows to 0.
///
/// Requires: x has >= 1 dims. Throws Error naming the shape otherwise.
/// Ensures: y has x's shape and exp(y) sums to 1 over each row; one graph node
/// whose backward adds into x's gradient.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> log_softmax(const Variable<Scalar, Backend>& x) {
  const int64_t rows = detail::softmax_rows("log_softmax", x);
  const int64_t n = x.size(-1);
  const Tensor<Scalar, Backend> tx = x.data();  // (rows, n)
  Tensor<Scalar, Backend> y(tx.shape());        // (rows, n)
  log_softmax_forward(Backend{}, y.data(), tx.data(), rows, n);
  return make_result<Scalar, Backend>(
      "log_softmax", y, {&x},
      [y, rows, n](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        log_softmax_backward(Backend{}, d[0]->data(), dy.data(), y.data(), rows, n);
      });
}

}  // namespace v0
}  // namespace normlab
