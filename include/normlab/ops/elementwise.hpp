// normlab/ops/elementwise.hpp — differentiable element-wise ops.
//
// Binary ops broadcast by NumPy's rules: shapes are aligned at their last
// dim, and two dims are compatible when equal or when one is 1 (a missing
// leading dim counts as 1); the result takes the larger size. The gradient of
// a broadcast operand is the sum over the elements that reused it.
#pragma once

#include <cstdint>
#include <type_traits>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/backend.hpp"
#include "normlab/backend/functors.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {

/// The forward of an element-wise binary op: out = f(a, b) over
/// broadcast(a, b), with the operands' data and the plan a backward needs.
template <FloatingElement Scalar, class Backend>
struct BinaryForward {
  Tensor<Scalar, Backend> a, b, out;
  BroadcastPlan plan;
};
template <FloatingElement Scalar, class Backend, class F>
BinaryForward<Scalar, Backend> binary_forward(const char* name, const Variable<Scalar, Backend>& a,
                                              const Variable<Scalar, Backend>& b, F f) {
  const Shape out_shape = broadcast_shapes(name, a.shape(), b.shape());
  BinaryForward<Scalar, Backend> fw{a.data(), b.data(), Tensor<Scalar, Backend>(out_shape),
                                    make_broadcast_plan(out_shape, a.shape(), b.shape())};
  map_binary_forward(Backend{}, fw.out.data(), fw.a.data(), fw.b.data(), fw.plan, fw.out.numel(),
                     f);
  return fw;
}

/// c = f(a, b) with broadcasting, and its backward.
template <FloatingElement Scalar, class Backend, class F>
Variable<Scalar, Backend> binary_op(const char* name, const Variable<Scalar, Backend>& a,
                                    const Variable<Scalar, Backend>& b, F f) {
  const BinaryForward<Scalar, Backend> fw = binary_forward(name, a, b, f);
  return make_result<Scalar, Backend>(
      name, fw.out, {&a, &b},
      [ta = fw.a, tb = fw.b, plan = fw.plan, f](const Tensor<Scalar, Backend>& dout,
                                                const GradSlots<Scalar, Backend>& d) {
        map_binary_backward(Backend{}, d[0] ? d[0]->data() : nullptr, d[1] ? d[1]->data() : nullptr,
                            dout.data(), ta.data(), tb.data(), plan, dout.numel(), f);
      });
}

/// y = f(x) element-wise, and its backward dx += dy * f.grad(x, y).
template <FloatingElement Scalar, class Backend, class F>
Variable<Scalar, Backend> unary_op(const char* name, const Variable<Scalar, Backend>& x, F f) {
  const Tensor<Scalar, Backend> tx = x.data();
  Tensor<Scalar, Backend> y(tx.shape());  // same shape as x
  map_unary_forward(Backend{}, y.data(), tx.data(), tx.numel(), f);
  return make_result<Scalar, Backend>(
      name, y, {&x},
      [tx, y, f](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        map_unary_backward(Backend{}, d[0]->data(), dy.data(), tx.data(), y.data(), dy.numel(), f);
      });
}

}  // namespace detail

/// a + b (broadcasting). When a and b have the same shape (a residual
/// connection), the upstream gradient is handed on: the first operand
/// without a gradient takes over its buffer (Node::gradient_is_view), and of
/// the other, a fresh gradient (see GradSlots) receives a copy, any other has
/// it added; at most one pass each instead of a zero fill and an add.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> add(const Variable<Scalar, Backend>& a,
                              const Variable<Scalar, Backend>& b) {
  if (!a.defined() || !b.defined() || a.shape() != b.shape())
    return detail::binary_op("add", a, b, fn::Add{});
  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "add", detail::binary_forward("add", a, b, fn::Add{}).out, {&a, &b},
      [](const Tensor<Scalar, Backend>& dout, const GradSlots<Scalar, Backend>& d) {
        for (size_t i = 0; i < 2; ++i) {
          if (!d[i]) continue;
          if (d.fresh(i))
            copy(Backend{}, d[i]->data(), dout.data(), dout.numel());
          else
            accumulate(Backend{}, d[i]->data(), dout.data(), dout.numel(), Scalar(1));
        }
      });
  set_writes_fresh_gradients(result);
  if (const auto& node = result.state_ptr()->grad_fn) node->gradient_is_view = true;
  return result;
}
/// a - b (broadcasting).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> sub(const Variable<Scalar, Backend>& a,
                              const Variable<Scalar, Backend>& b) {
  return detail::binary_op("sub", a, b, fn::Sub{});
}
/// a * b element-wise (broadcasting).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> mul(const Variable<Scalar, Backend>& a,
                              const Variable<Scalar, Backend>& b) {
  return detail::binary_op("mul", a, b, fn::Mul{});
}
/// a / b element-wise (broadcasting).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> div(const Variable<Scalar, Backend>& a,
                              const Variable<Scalar, Backend>& b) {
  return detail::binary_op("div", a, b, fn::Div{});
}

/// x + s, x * s, s - x, s / x, x ^ p for a scalar s (no gradient for s).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> add_scalar(const Variable<Scalar, Backend>& x, double s) {
  return detail::unary_op("add_scalar", x, fn::AddScalar{s});
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> mul_scalar(const Variable<Scalar, Backend>& x, double s) {
  return detail::unary_op("mul_scalar", x, fn::MulScalar{s});
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> rsub_scalar(const Variable<Scalar, Backend>& x, double s) {
  return detail::unary_op("rsub_scalar", x, fn::RSubScalar{s});
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> rdiv_scalar(const Variable<Scalar, Backend>& x, double s) {
  return detail::unary_op("rdiv_scalar", x, fn::RDivScalar{s});
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> pow(const Variable<Scalar, Backend>& x, double p) {
  return detail::unary_op("pow", x, fn::PowScalar{p});
}

/// -x
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> neg(const Variable<Scalar, Backend>& x) {
  return detail::unary_op("neg", x, fn::Neg{});
}
/// e^x
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> exp(const Variable<Scalar, Backend>& x) {
  return detail::unary_op("exp", x, fn::Exp{});
}
/// ln x (x > 0; NaN or -inf otherwise, as in IEEE arithmetic)
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> log(const Variable<Scalar, Backend>& x) {
  return detail::unary_op("log", x, fn::Log{});
}
/// sqrt x (x >= 0)
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> sqrt(const Variable<Scalar, Backend>& x) {
  return detail::unary_op("sqrt", x, fn::Sqrt{});
}
/// tanh x
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> tanh(const Variable<Scalar, Backend>& x) {
  return detail::unary_op("tanh", x, fn::Tanh{});
}
/// max(x, 0); the gradient at 0 is taken as 0.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> relu(const Variable<Scalar, Backend>& x) {
  return detail::unary_op("relu", x, fn::Relu{});
}

/// Which GELU: the exact x * Phi(x) (torch's default, approximate="none"), or
/// the tanh approximation (approximate="tanh", GPT-2's).
enum class GeluApproximation { none, tanh };

/// GELU(x) = x * Phi(x), exactly through erf or by the tanh approximation.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> gelu(const Variable<Scalar, Backend>& x,
                               GeluApproximation approx = GeluApproximation::none) {
  return approx == GeluApproximation::none ? detail::unary_op("gelu", x, fn::GeluErf{})
                                           : detail::unary_op("gelu_tanh", x, fn::GeluTanh{});
}

/// y = GELU(x + bias), the bias broadcast over the last axis:
///
///   x: (..., n)   bias: (n,)   y: (..., n)
///
/// One graph node on a backend with the fused kernels (bias_gelu_forward /
/// bias_gelu_backward), which recompute x + bias in the backward pass instead
/// of storing it; gelu(x + bias) composed from two nodes otherwise. Either way
/// dx += dy GELU'(x + bias) and dbias += its sum over the leading dims.
///
/// Requires: x has >= 1 dims and bias has shape (x.size(-1),). Throws Error
/// naming the shapes otherwise.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> bias_gelu(const Variable<Scalar, Backend>& x,
                                    const std::type_identity_t<Variable<Scalar, Backend>>& bias,
                                    GeluApproximation approx = GeluApproximation::none) {
  detail::check(x.defined() && bias.defined() && x.ndim() >= 1 && bias.shape() == Shape{x.size(-1)},
                "bias_gelu: bias of shape ", bias.defined() ? bias.shape() : Shape{},
                " does not match the last dim of x ", x.defined() ? x.shape() : Shape{});
  if constexpr (HasFusedBiasGelu<Backend, Scalar>) {
    const int64_t cols = x.size(-1), rows = cols > 0 ? x.numel() / cols : 0;
    const bool tanh_approx = approx == GeluApproximation::tanh;
    const Tensor<Scalar, Backend> tx = x.data(), tb = bias.data();  // (rows, cols), (cols,)
    Tensor<Scalar, Backend> y(tx.shape());                          // (rows, cols)
    if (rows > 0)
      bias_gelu_forward(Backend{}, y.data(), tx.data(), tb.data(), rows, cols, tanh_approx);
    Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
        tanh_approx ? "bias_gelu_tanh" : "bias_gelu", y, {&x, &bias},
        [tx, tb, rows, cols, tanh_approx](const Tensor<Scalar, Backend>& dy,
                                          const GradSlots<Scalar, Backend>& d) {
          // A fresh dx is written by the kernel; a fresh dbias (a sum over
          // rows, added to) starts from zero.
          d.zero_fresh(1);
          if (rows == 0) return;
          bias_gelu_backward(Backend{}, d[0] ? d[0]->data() : nullptr,
                             d[1] ? d[1]->data() : nullptr, dy.data(), tx.data(), tb.data(), rows,
                             cols, tanh_approx, d.fresh(0));
        });
    set_writes_fresh_gradients(result);
    return result;
  } else {
    return gelu(x + bias, approx);
  }
}

// ---- operators ------------------------------------------------------------
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator+(const Variable<Scalar, Backend>& a,
                                    const Variable<Scalar, Backend>& b) {
  return add(a, b);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator-(const Variable<Scalar, Backend>& a,
                                    const Variable<Scalar, Backend>& b) {
  return sub(a, b);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator*(const Variable<Scalar, Backend>& a,
                                    const Variable<Scalar, Backend>& b) {
  return mul(a, b);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator/(const Variable<Scalar, Backend>& a,
                                    const Variable<Scalar, Backend>& b) {
  return div(a, b);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator-(const Variable<Scalar, Backend>& x) {
  return neg(x);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator+(const Variable<Scalar, Backend>& x, double s) {
  return add_scalar(x, s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator+(double s, const Variable<Scalar, Backend>& x) {
  return add_scalar(x, s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator-(const Variable<Scalar, Backend>& x, double s) {
  return add_scalar(x, -s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator-(double s, const Variable<Scalar, Backend>& x) {
  return rsub_scalar(x, s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator*(const Variable<Scalar, Backend>& x, double s) {
  return mul_scalar(x, s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator*(double s, const Variable<Scalar, Backend>& x) {
  return mul_scalar(x, s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator/(const Variable<Scalar, Backend>& x, double s) {
  return mul_scalar(x, 1.0 / s);
}
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> operator/(double s, const Variable<Scalar, Backend>& x) {
  return rdiv_scalar(x, s);
}

}  // namespace v0
}  // namespace normlab
