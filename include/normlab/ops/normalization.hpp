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
#include "normlab/backend/backend.hpp"
#include "normlab/ops/elementwise.hpp"  // GeluApproximation, bias_gelu

namespace normlab {
inline namespace v0 {

namespace detail {

/// The row length C = x.size(-1) of a normalization over the last axis; throws
/// unless x is defined with a non-empty last axis and eps >= 0.
template <FloatingElement Scalar, class Backend>
int64_t norm_row_length(const char* op, const Variable<Scalar, Backend>& x, double eps) {
  check(x.defined(), op, ": x is undefined (a default-constructed Variable)");
  check(x.ndim() >= 1, op, ": x with 0 dims (shape ", x.shape(),
        ") has no last axis to normalize over");
  check(x.size(-1) > 0, op, ": x of shape ", x.shape(),
        " has an empty last axis; there is nothing to normalize");
  check(eps >= 0, op, ": eps must be >= 0, got ", eps);
  return x.size(-1);
}

/// Throws unless the optional parameter `p` is undefined or of shape (C,).
template <FloatingElement Scalar, class Backend>
void check_norm_param(const char* op, const char* what, const Variable<Scalar, Backend>& p,
                      const Variable<Scalar, Backend>& x) {
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
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> layer_norm(const Variable<Scalar, Backend>& x,
                                     const std::type_identity_t<Variable<Scalar, Backend>>& weight,
                                     const std::type_identity_t<Variable<Scalar, Backend>>& bias,
                                     double eps = 1e-5) {
  const int64_t C = detail::norm_row_length("layer_norm", x, eps);
  detail::check_norm_param("layer_norm", "weight", weight, x);
  detail::check_norm_param("layer_norm", "bias", bias, x);
  const int64_t rows = x.numel() / C;
  const Tensor<Scalar, Backend> tx = x.data();  // (rows, C)
  const Tensor<Scalar, Backend> tw =
      weight.defined() ? weight.data() : Tensor<Scalar, Backend>();  // (C,) or none
  const Tensor<Scalar, Backend> tb =
      bias.defined() ? bias.data() : Tensor<Scalar, Backend>();  // (C,) or none
  Tensor<Scalar, Backend> y(tx.shape());                         // (rows, C)
  Tensor<Scalar, Backend> mean(Shape{rows}), rstd(Shape{rows});  // (rows,)
  layer_norm_forward(Backend{}, y.data(), mean.data(), rstd.data(), tx.data(), tw.data(), tb.data(),
                     rows, C, static_cast<Scalar>(eps));

  std::vector<Variable<Scalar, Backend>> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  if (bias.defined()) inputs.push_back(bias);
  const bool has_w = weight.defined(), has_b = bias.defined();
  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "layer_norm", y, inputs,
      [tx, tw, mean, rstd, rows, C, has_w, has_b](const Tensor<Scalar, Backend>& dy,
                                                  const GradSlots<Scalar, Backend>& d) {
        d.zero_fresh(1);  // dweight and dbias are added to; dx is written
        size_t k = 0;
        Tensor<Scalar, Backend>* dx = d[k++];
        Tensor<Scalar, Backend>* dw = has_w ? d[k++] : nullptr;
        Tensor<Scalar, Backend>* db = has_b ? d[k++] : nullptr;
        layer_norm_backward(Backend{}, dx ? dx->data() : nullptr, dw ? dw->data() : nullptr,
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
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> rms_norm(const Variable<Scalar, Backend>& x,
                                   const std::type_identity_t<Variable<Scalar, Backend>>& weight,
                                   double eps = 1e-6) {
  const int64_t C = detail::norm_row_length("rms_norm", x, eps);
  detail::check_norm_param("rms_norm", "weight", weight, x);
  const int64_t rows = x.numel() / C;
  const Tensor<Scalar, Backend> tx = x.data();  // (rows, C)
  const Tensor<Scalar, Backend> tw =
      weight.defined() ? weight.data() : Tensor<Scalar, Backend>();  // (C,) or none
  Tensor<Scalar, Backend> y(tx.shape());                             // (rows, C)
  Tensor<Scalar, Backend> rstd(Shape{rows});                         // (rows,)
  rms_norm_forward(Backend{}, y.data(), rstd.data(), tx.data(), tw.data(), rows, C,
                   static_cast<Scalar>(eps));

  std::vector<Variable<Scalar, Backend>> inputs{x};
  if (weight.defined()) inputs.push_back(weight);
  const bool has_w = weight.defined();
  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "rms_norm", y, inputs,
      [tx, tw, rstd, rows, C, has_w](const Tensor<Scalar, Backend>& dy,
                                     const GradSlots<Scalar, Backend>& d) {
        d.zero_fresh(1);  // dweight is added to; dx is written
        Tensor<Scalar, Backend>* dx = d[0];
        Tensor<Scalar, Backend>* dw = has_w ? d[1] : nullptr;
        rms_norm_backward(Backend{}, dx ? dx->data() : nullptr, dw ? dw->data() : nullptr,
                          dy.data(), tx.data(), tw.data(), rstd.data(), rows, C, d.fresh(0));
      });
  set_writes_fresh_gradients(result);
  return result;
}

/// NormFormer's normalized hidden units (Shleifer et al. 2021, the FFN's
/// LayerNorm after the activation):
///
///   y = layer_norm(GELU(x + bias), weight, ln_bias, eps)
///   x: (..., n)   bias: (n,)   weight, ln_bias: (n,) or undefined   y: (..., n)
///
/// One graph node on a backend with the fused kernels
/// (bias_gelu_layer_norm_forward / _backward): the GELU output is normalized
/// where it is computed and recomputed from x in the backward pass, so neither
/// it nor x + bias is stored or written to memory. Composed from bias_gelu and
/// layer_norm otherwise; either way the same function and gradients.
///
/// Requires: x has >= 1 dims and n = x.size(-1) > 0; bias of shape (n,);
/// weight and ln_bias undefined or (n,); eps >= 0. Throws Error naming the
/// shapes otherwise.
/// Ensures: y has x's shape; dx is written when it is fresh (see GradSlots),
/// the other gradients are added to.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> bias_gelu_layer_norm(
    const Variable<Scalar, Backend>& x, const std::type_identity_t<Variable<Scalar, Backend>>& bias,
    const std::type_identity_t<Variable<Scalar, Backend>>& weight,
    const std::type_identity_t<Variable<Scalar, Backend>>& ln_bias, double eps = 1e-5,
    GeluApproximation approx = GeluApproximation::none) {
  const int64_t C = detail::norm_row_length("bias_gelu_layer_norm", x, eps);
  detail::check(bias.defined() && bias.shape() == Shape{C}, "bias_gelu_layer_norm: bias of shape ",
                bias.defined() ? bias.shape() : Shape{}, " does not match the last dim of x ",
                x.shape(), "; expected ", Shape{C});
  detail::check_norm_param("bias_gelu_layer_norm", "weight", weight, x);
  detail::check_norm_param("bias_gelu_layer_norm", "ln_bias", ln_bias, x);
  if constexpr (HasFusedBiasGeluLayerNorm<Backend, Scalar>) {
    const int64_t rows = x.numel() / C;
    const bool tanh_approx = approx == GeluApproximation::tanh;
    const Tensor<Scalar, Backend> tx = x.data(), tbias = bias.data();  // (rows, C), (C,)
    const Tensor<Scalar, Backend> tw =
        weight.defined() ? weight.data() : Tensor<Scalar, Backend>();  // (C,) or none
    const Tensor<Scalar, Backend> tlb =
        ln_bias.defined() ? ln_bias.data() : Tensor<Scalar, Backend>();  // (C,) or none
    Tensor<Scalar, Backend> y(tx.shape());                               // (rows, C)
    Tensor<Scalar, Backend> mean(Shape{rows}), rstd(Shape{rows});  // (rows,): of GELU(x + bias)
    bias_gelu_layer_norm_forward(Backend{}, y.data(), mean.data(), rstd.data(), tx.data(),
                                 tbias.data(), tw.data(), tlb.data(), rows, C,
                                 static_cast<Scalar>(eps), tanh_approx);

    std::vector<Variable<Scalar, Backend>> inputs{x, bias};
    if (weight.defined()) inputs.push_back(weight);
    if (ln_bias.defined()) inputs.push_back(ln_bias);
    const bool has_w = weight.defined(), has_lb = ln_bias.defined();
    Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
        tanh_approx ? "bias_gelu_tanh_layer_norm" : "bias_gelu_layer_norm", y, inputs,
        [tx, tbias, tw, mean, rstd, rows, C, has_w, has_lb, tanh_approx](
            const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
          d.zero_fresh(1);  // the parameter sums are added to; dx is written
          size_t k = 0;
          Tensor<Scalar, Backend>* dx = d[k++];
          Tensor<Scalar, Backend>* dbias = d[k++];
          Tensor<Scalar, Backend>* dw = has_w ? d[k++] : nullptr;
          Tensor<Scalar, Backend>* dlb = has_lb ? d[k++] : nullptr;
          bias_gelu_layer_norm_backward(
              Backend{}, dx ? dx->data() : nullptr, dbias ? dbias->data() : nullptr,
              dw ? dw->data() : nullptr, dlb ? dlb->data() : nullptr, dy.data(), tx.data(),
              tbias.data(), tw.data(), mean.data(), rstd.data(), rows, C, tanh_approx, d.fresh(0));
        });
    set_writes_fresh_gradients(result);
    return result;
  } else {
    return layer_norm(bias_gelu(x, bias, approx), weight, ln_bias, eps);
  }
}

}  // namespace v0
}  // namespace normlab
