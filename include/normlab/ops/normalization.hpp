// normlab/ops/normalization.hpp — layer_norm and rms_norm over the last axis.
//
// Each is one fused graph node: the forward kernel saves per-row statistics
// and the backward is hand-written (backend/<name>/normalization.hpp), not a
// chain of primitives. x of shape (..., C) is seen as (rows, C).
#pragma once

#include <cstdint>
#include <type_traits>
#include <vector>

#include "normlab/autograd/variable.hpp"

namespace normlab::inline v0 {

namespace detail {

/// The row length C = x.size(-1) of a normalization over the last axis; throws
/// unless x is defined with a non-empty last axis and eps >= 0.
template <FloatingElement T, class B>
int64_t norm_row_length(const char* op, const Variable<T, B>& x, double eps) {
  check(x.defined(), op, ": x is undefined (a default-constructed Variable)");
  check(x.ndim() >= 1, op, ": x with 0 dims (shape ", x.shape(),
        ") has no last axis to normalize over");
  check(x.size(-1) > 0, op, ": x of shape ", x.shape(),
        " has an empty last axis; there is nothing to normalize");
  check(eps >= 0, op, ": eps must be >= 0, got ", eps);
  return x.size(-1);
}

/// Throws unless the optional parameter `p` is undefined or of shape (C,).
template <FloatingElement T, class B>
void check_norm_param(const char* op, const char* what, const Variable<T, B>& p,
                      const Variable<T, B>& x) {
  if (!p.defined()) return;
  const int64_t C = x.size(-1);
  check(p.shape() == Shape{C}, op, ": ", what, " shape ", p.shape(), " does not match last dim ", C,
        " of x ", x.shape(), "; expected ", Shape{C});
}

}  // namespace detail

/// LayerNorm over the last axis (torch.nn.functional.layer_norm):
///   y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias,
/// with the mean and the biased variance var taken over the last axis of size C.
///
/// Requires: x has >= 1 dims and C = x.size(-1) > 0; weight and bias are each
/// undefined (`{}`: no scale, no shift) or of shape (C,); eps >= 0. Throws
/// Error naming the shapes otherwise.
/// Ensures: y has x's shape; one graph node whose backward adds into the
/// gradients of x, weight and bias (those that require grad).
template <FloatingElement T, class B>
Variable<T, B> layer_norm(const Variable<T, B>& x,
                          const std::type_identity_t<Variable<T, B>>& weight,
                          const std::type_identity_t<Variable<T, B>>& bias, double eps = 1e-5) {
  const int64_t C = detail::norm_row_length("layer_norm", x, eps);
  detail::check_norm_param("layer_norm", "weight", weight, x);
  detail::check_norm_param("layer_norm", "bias", bias, x);
  const int64_t rows = x.numel() / C;
  const Tensor<T, B> tx = x.data();                                           // (rows, C)
  const Tensor<T, B> tw = weight.defined() ? weight.data() : Tensor<T, B>();  // (C,) or none
  const Tensor<T, B> tb = bias.defined() ? bias.data() : Tensor<T, B>();      // (C,) or none
  Tensor<T, B> y(tx.shape());                                                 // (rows, C)
  Tensor<T, B> mean(Shape{rows}), rstd(Shape{rows});                          // (rows,)
  layer_norm_forward(B{}, y.data(), mean.data(), rstd.data(), tx.data(), tw.data(), tb.data(), rows,
                     C, static_cast<T>(eps));

  std::vector<Variable<T, B>> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  const bool has_w = weight.defined(), has_b = bias.defined();
  Variable<T, B> result = make_result<T, B>(
      "layer_norm", y, inputs,
      [tx, tw, mean, rstd, rows, C, has_w, has_b](const Tensor<T, B>& dy,
                                                  const GradSlots<T, B>& d) {
        d.zero_fresh(1);  // dweight and dbias are added to; dx is written
        size_t k = 0;
        Tensor<T, B>* dx = d[k++];
        Tensor<T, B>* dw = has_w ? d[k++] : nullptr;
        Tensor<T, B>* db = has_b ? d[k++] : nullptr;
        layer_norm_backward(B{}, dx ? dx->data() : nullptr, dw ? dw->data() : nullptr,
                            db ? db->data() : nullptr, dy.data(), tx.data(), tw.data(), mean.data(),
                            rstd.data(), rows, C, d.fresh(0));
      });
  set_writes_fresh_gradients(result);
  return result;
}

/// RMSNorm over the last axis (Zhang & Sennrich 2019; torch.nn.functional.rms_norm):
///   y = x / sqrt(mean(x^2) + eps) * weight,
/// with the mean taken over the last axis of size C.
///
/// Requires: x has >= 1 dims and C = x.size(-1) > 0; weight is undefined
/// (`{}`: no scale) or of shape (C,); eps >= 0. Throws Error naming the shapes
/// otherwise.
/// Ensures: y has x's shape; one graph node whose backward adds into the
/// gradients of x and weight (those that require grad).
template <FloatingElement T, class B>
Variable<T, B> rms_norm(const Variable<T, B>& x, const std::type_identity_t<Variable<T, B>>& weight,
                        double eps = 1e-6) {
  const int64_t C = detail::norm_row_length("rms_norm", x, eps);
  detail::check_norm_param("rms_norm", "weight", weight, x);
  const int64_t rows = x.numel() / C;
  const Tensor<T, B> tx = x.data();                                           // (rows, C)
  const Tensor<T, B> tw = weight.defined() ? weight.data() : Tensor<T, B>();  // (C,) or none
  Tensor<T, B> y(tx.shape());                                                 // (rows, C)
  Tensor<T, B> rstd(Shape{rows});                                             // (rows,)
  rms_norm_forward(B{}, y.data(), rstd.data(), tx.data(), tw.data(), rows, C, static_cast<T>(eps));

  std::vector<Variable<T, B>> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  const bool has_w = weight.defined();
  Variable<T, B> result = make_result<T, B>(
      "rms_norm", y, inputs,
      [tx, tw, rstd, rows, C, has_w](const Tensor<T, B>& dy, const GradSlots<T, B>& d) {
        d.zero_fresh(1);  // dweight is added to; dx is written
        Tensor<T, B>* dx = d[0];
        Tensor<T, B>* dw = has_w ? d[1] : nullptr;
        rms_norm_backward(B{}, dx ? dx->data() : nullptr, dw ? dw->data() : nullptr, dy.data(),
                          tx.data(), tw.data(), rstd.data(), rows, C, d.fresh(0));
      });
  set_writes_fresh_gradients(result);
  return result;
}

}  // namespace normlab::inline v0
