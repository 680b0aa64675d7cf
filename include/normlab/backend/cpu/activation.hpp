// normlab/backend/cpu/activation.hpp — GELU kernels on Eigen's SIMD
// packets, and the optional fused bias + GELU (+ LayerNorm) kernels.
//
// The element-wise functors (backend/functors.hpp) call std::erf and std::exp
// once per element, which the compiler cannot vectorize; on a transformer
// layer GELU then cost a tenth of the step. Here the float formulas run on
// Eigen's packets (16 floats with AVX-512, 8 with AVX, 4 with SSE, as the
// program is compiled) with Eigen's vectorized exp, each value in registers
// from its load to its store; double keeps the C library's functions. These
// overloads are more specialized than the generic map_unary_* templates, so
// gelu() picks them up without any change to the op.
//
// On the avx2 and avx512 paths (kernel_path.hpp) float GELU runs the same
// formulas on 8 or 16 floats at a time (row_kernels_x86.hpp), whatever
// the program is compiled for, with the same bits in a build without -march.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/gemm.hpp"  // Eigen, configured
#include "normlab/backend/cpu/normalization.hpp"
#include "normlab/backend/cpu/row_kernels_x86.hpp"
#include "normlab/backend/functors.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// Element-wise work is cut into blocks of this many elements, one task each.
inline constexpr int64_t kActivationBlock = 4096;

/// GELU(x) = x Phi(x) and dGELU/dx, exact or tanh-approximated. float runs
/// on Eigen's packets (Eigen::internal's packet functions: the same code
/// that Eigen's array expressions run, without their temporaries); double
/// keeps the C library's erf and tanh, element by element, for the accuracy
/// that double tests expect.
template <bool TanhApprox>
struct GeluKernels {
  /// y = GELU(x) for the n elements of x.
  template <class Scalar>
  static void forward(Scalar* y, const Scalar* x, int64_t n) {
    if constexpr (!std::is_same_v<Scalar, float>) {
      using F = std::conditional_t<TanhApprox, fn::GeluTanh, fn::GeluErf>;
      for (int64_t i = 0; i < n; ++i) y[i] = F{}(x[i]);
    } else {
      if (run_wide_row_kernel<float>(wide_row_kernels<float>(), [&](auto isa) {
            gelu_forward(isa, std::bool_constant<TanhApprox>{}, y, x, n);
          }))
        return;
      for_each_packet(n, [&](int64_t i) {
        const Packet v = Eigen::internal::ploadu<Packet>(x + i);
        Eigen::internal::pstoreu(y + i, Eigen::internal::pmul(v, shape_factor(v)));
      });
      if (const int64_t i = n - n % kLanes; i < n)
        on_padded_tail([&](float* buf) {
          std::copy(x + i, x + n, buf);
          forward(buf, buf, kLanes);
          std::copy(buf, buf + (n - i), y + i);
        });
    }
  }
  /// dx += dy * GELU'(x) for the n elements.
  template <class Scalar>
  static void backward(Scalar* dx, const Scalar* dy, const Scalar* x, int64_t n) {
    if constexpr (!std::is_same_v<Scalar, float>) {
      using F = std::conditional_t<TanhApprox, fn::GeluTanh, fn::GeluErf>;
      for (int64_t i = 0; i < n; ++i) dx[i] += dy[i] * F{}.grad(x[i], Scalar(0));
    } else {
      if (run_wide_row_kernel<float>(wide_row_kernels<float>(), [&](auto isa) {
            gelu_backward(isa, std::bool_constant<TanhApprox>{}, dx, dy, x, n);
          }))
        return;
      using namespace Eigen::internal;
      for_each_packet(n, [&](int64_t i) {
        const Packet v = ploadu<Packet>(x + i);
        pstoreu(dx + i, padd(ploadu<Packet>(dx + i),
                             pmul(ploadu<Packet>(dy + i), derivative(v, shape_factor(v)))));
      });
      if (const int64_t i = n - n % kLanes; i < n)
        on_padded_tail([&](float* buf) {
          float* bx = buf + kLanes;
          float* bdy = buf + 2 * kLanes;
          std::copy(dx + i, dx + n, buf);
          std::copy(x + i, x + n, bx);
          std::copy(dy + i, dy + n, bdy);
          backward(buf, bdy, bx, kLanes);
          std::copy(buf, buf + (n - i), dx + i);
        });
    }
  }
  /// y = GELU(x) and dydx = GELU'(x) for the n elements, sharing the exp /
  /// erfc that both need; y by forward's formula.
  template <class Scalar>
  static void forward_and_derivative(Scalar* y, Scalar* dydx, const Scalar* x, int64_t n) {
    if constexpr (!std::is_same_v<Scalar, float>) {
      using F = std::conditional_t<TanhApprox, fn::GeluTanh, fn::GeluErf>;
      for (int64_t i = 0; i < n; ++i) {
        y[i] = F{}(x[i]);
        dydx[i] = F{}.grad(x[i], y[i]);
      }
    } else {
      if (run_wide_row_kernel<float>(wide_row_kernels<float>(), [&](auto isa) {
            gelu_forward_and_derivative(isa, std::bool_constant<TanhApprox>{}, y, dydx, x, n);
          }))
        return;
      using namespace Eigen::internal;
      for_each_packet(n, [&](int64_t i) {
        const Packet v = ploadu<Packet>(x + i), f = shape_factor(v);
        pstoreu(y + i, pmul(v, f));
        pstoreu(dydx + i, derivative(v, f));
      });
      if (const int64_t i = n - n % kLanes; i < n)
        on_padded_tail([&](float* buf) {
          float* bd = buf + kLanes;
          std::copy(x + i, x + n, buf);
          forward_and_derivative(buf, bd, buf, kLanes);
          std::copy(buf, buf + (n - i), y + i);
          std::copy(bd, bd + (n - i), dydx + i);
        });
    }
  }

 private:
  using Packet = Eigen::internal::packet_traits<float>::type;
  static constexpr int64_t kLanes = Eigen::internal::packet_traits<float>::size;

  /// body(i) for i = 0, kLanes, ... over the whole packets of [0, n).
  template <class Body>
  static void for_each_packet(int64_t n, Body body) {
    for (int64_t i = 0; i + kLanes <= n; i += kLanes) body(i);
  }
  /// tail_fn(buf) with buf three zeroed packets of floats on the stack, for
  /// the last n % kLanes elements: the caller copies them in, runs the packet
  /// path on whole packets, and copies those elements' results out.
  template <class TailFn>
  static void on_padded_tail(TailFn tail_fn) {
    alignas(64) float buf[3 * kLanes] = {};
    tail_fn(buf);
  }

  /// GELU(x) = x * factor(x): factor = Phi(x) (exact), or sigmoid(2 u),
  /// u = sqrt(2/pi) (x + 0.044715 x^3) (tanh form: the sigmoid form of
  /// 0.5 (1 + tanh(u)) does not cancel where tanh(u) is near -1).
  ///
  /// Phi(x) = 0.5 erfc(-x / sqrt 2) through the Chebyshev-fitted erfc of
  /// Press et al. (Numerical Recipes, 2nd ed., section 6.2; fractional error
  /// below 1.2e-7 everywhere). Going through erfc keeps the left tail
  /// accurate where 1 + erf(x) would cancel.
  static Packet shape_factor(Packet x) {
    using namespace Eigen::internal;
    const Packet one = pset1<Packet>(1.0f);
    if constexpr (TanhApprox) {
      const Packet u2 = pmul(pset1<Packet>(-2 * 0.79788456080286535588f),
                             padd(x, pmul(pset1<Packet>(0.044715f), pmul(pmul(x, x), x))));
      return pdiv(one, padd(one, pexp(u2)));
    } else {
      const Packet half = pset1<Packet>(0.5f);
      const Packet z = pmul(pabs(x), pset1<Packet>(0.70710678118654752440f));
      const Packet t = pdiv(one, padd(one, pmul(half, z)));
      Packet poly = pset1<Packet>(0.17087277f);  // Horner, from the highest power of t
      for (const float c : {-0.82215223f, 1.48851587f, -1.13520398f, 0.27886807f, -0.18628806f,
                            0.09678418f, 0.37409196f, 1.00002368f, -1.26551223f})
        poly = padd(pmul(poly, t), pset1<Packet>(c));
      const Packet half_erfc =
          pmul(pmul(half, t), pexp(psub(poly, pmul(z, z))));  // 0.5 erfc(|x|/sqrt 2)
      return pselect(pcmp_le(pzero(x), x), psub(one, half_erfc), half_erfc);
    }
  }
  /// GELU'(x) from x and its shape_factor f: Phi(x) + x phi(x) (exact), or
  /// s + 2 x s (1 - s) du/dx with s = sigmoid(2 u) = 0.5 (1 + tanh u) (tanh
  /// form: 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx written in s).
  static Packet derivative(Packet x, Packet f) {
    using namespace Eigen::internal;
    const Packet x2 = pmul(x, x);
    if constexpr (TanhApprox) {
      const Packet du = pmul(pset1<Packet>(0.79788456080286535588f),
                             padd(pset1<Packet>(1.0f), pmul(pset1<Packet>(3 * 0.044715f), x2)));
      return padd(
          f, pmul(pmul(pmul(pset1<Packet>(2.0f), x), pmul(f, psub(pset1<Packet>(1.0f), f))), du));
    } else {
      const Packet pdf = pmul(pexp(pmul(pset1<Packet>(-0.5f), x2)),
                              pset1<Packet>(0.39894228040143267794f));  // phi(x)
      return padd(f, pmul(x, pdf));
    }
  }
};

/// Runs block_fn(begin, length) over [0, n) in blocks, in parallel when n is large.
template <class BlockFn>
void for_each_block(int64_t n, BlockFn block_fn) {
  const int64_t blocks = (n + kActivationBlock - 1) / kActivationBlock;
#pragma omp parallel for schedule(static) if (n > kParallelGrain)
  for (int64_t k = 0; k < blocks; ++k) {
    const int64_t begin = k * kActivationBlock;
    block_fn(begin, std::min(kActivationBlock, n - begin));
  }
}

/// out = GELU(in) (exact), vectorized; see map_unary_forward.
template <class Scalar>
void map_unary_forward(Cpu, Scalar* out, const Scalar* in, int64_t n, fn::GeluErf) {
  for_each_block(
      n, [&](int64_t i, int64_t len) { GeluKernels<false>::forward(out + i, in + i, len); });
}
/// din += dout * GELU'(in) (exact), vectorized; see map_unary_backward.
template <class Scalar>
void map_unary_backward(Cpu, Scalar* din, const Scalar* dout, const Scalar* in, const Scalar*,
                        int64_t n, fn::GeluErf) {
  for_each_block(n, [&](int64_t i, int64_t len) {
    GeluKernels<false>::backward(din + i, dout + i, in + i, len);
  });
}
/// out = GELU(in) (tanh approximation), vectorized.
template <class Scalar>
void map_unary_forward(Cpu, Scalar* out, const Scalar* in, int64_t n, fn::GeluTanh) {
  for_each_block(n,
                 [&](int64_t i, int64_t len) { GeluKernels<true>::forward(out + i, in + i, len); });
}
/// din += dout * GELU'(in) (tanh approximation), vectorized.
template <class Scalar>
void map_unary_backward(Cpu, Scalar* din, const Scalar* dout, const Scalar* in, const Scalar*,
                        int64_t n, fn::GeluTanh) {
  for_each_block(n, [&](int64_t i, int64_t len) {
    GeluKernels<true>::backward(din + i, dout + i, in + i, len);
  });
}

/// out = GELU(x + bias) (or with its derivative into dout_dx when not null)
/// for one row of C elements, a segment of up to kActivationBlock at a time.
/// Requires: out, x, bias, dout_dx (C,); out may be x.
template <class Scalar>
void bias_gelu_row(Scalar* out, Scalar* dout_dx, const Scalar* x, const Scalar* bias, int64_t C,
                   bool tanh_approx) {
  // The wide kernels add the bias in registers, with the same bits.
  if (run_wide_row_kernel<Scalar>(wide_row_kernels<Scalar>(), [&](auto isa) {
        if (tanh_approx)
          bias_gelu_row(isa, std::true_type{}, out, dout_dx, x, bias, C);
        else
          bias_gelu_row(isa, std::false_type{}, out, dout_dx, x, bias, C);
      }))
    return;
  for (int64_t c0 = 0; c0 < C; c0 += kActivationBlock) {
    const int64_t len = std::min(kActivationBlock, C - c0);
    alignas(64) Scalar pre[kActivationBlock];  // x + bias of the segment
    for (int64_t c = 0; c < len; ++c) pre[c] = x[c0 + c] + bias[c0 + c];
    if (dout_dx && tanh_approx)
      GeluKernels<true>::forward_and_derivative(out + c0, dout_dx + c0, pre, len);
    else if (dout_dx)
      GeluKernels<false>::forward_and_derivative(out + c0, dout_dx + c0, pre, len);
    else if (tanh_approx)
      GeluKernels<true>::forward(out + c0, pre, len);
    else
      GeluKernels<false>::forward(out + c0, pre, len);
  }
}

/// Optional fused kernel (see backend.hpp): out[r, c] = GELU(x[r, c] + bias[c]),
/// exact or tanh-approximated. One pass instead of a bias add then an activation.
/// Requires: out, x (rows, cols); bias (cols,).
template <class Scalar>
void bias_gelu_forward(Cpu, Scalar* out, const Scalar* x, const Scalar* bias, int64_t rows,
                       int64_t cols, bool tanh_approx) {
#pragma omp parallel for schedule(static) if (rows * cols > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r)
    bias_gelu_row(out + r * cols, static_cast<Scalar*>(nullptr), x + r * cols, bias, cols,
                  tanh_approx);
}
/// Optional fused kernel, the backward of bias_gelu_forward: with
/// g = dout * GELU'(x + bias), dx += g (dx = g with overwrite_dx, when dx
/// holds no value yet) and dbias += sum over rows of g (in an order fixed by
/// (rows, cols): the same bits for any thread count). A null dx or dbias is
/// skipped.
/// Requires: dx, dout, x (rows, cols); dbias, bias (cols,).
template <class Scalar>
void bias_gelu_backward(Cpu, Scalar* dx, Scalar* dbias, const Scalar* dout, const Scalar* x,
                        const Scalar* bias, int64_t rows, int64_t cols, bool tanh_approx,
                        bool overwrite_dx) {
  const CpuKernels path = wide_row_kernels<Scalar>();
  rows_with_column_sums(
      rows, cols, dbias, static_cast<Scalar*>(nullptr), [&](int64_t r, Scalar* acc, Scalar*) {
        // The wide kernels: one pass, the same bits.
        if (run_wide_row_kernel<Scalar>(path, [&](auto isa) {
              Scalar* dx_row = dx ? dx + r * cols : nullptr;
              if (tanh_approx)
                bias_gelu_row_backward(isa, std::true_type{}, dx_row, acc, dout + r * cols,
                                       x + r * cols, bias, cols, overwrite_dx);
              else
                bias_gelu_row_backward(isa, std::false_type{}, dx_row, acc, dout + r * cols,
                                       x + r * cols, bias, cols, overwrite_dx);
            }))
          return;
        for (int64_t c0 = 0; c0 < cols; c0 += kActivationBlock) {
          const int64_t len = std::min(kActivationBlock, cols - c0);
          alignas(64) Scalar pre[kActivationBlock];  // x + bias of the segment
          alignas(64) Scalar g[kActivationBlock];    // dout * GELU'(pre)
          for (int64_t c = 0; c < len; ++c) {
            pre[c] = x[r * cols + c0 + c] + bias[c0 + c];
            g[c] = Scalar(0);
          }
          if (tanh_approx)
            GeluKernels<true>::backward(g, dout + r * cols + c0, pre, len);
          else
            GeluKernels<false>::backward(g, dout + r * cols + c0, pre, len);
          if (dx && overwrite_dx)
            for (int64_t c = 0; c < len; ++c) dx[r * cols + c0 + c] = g[c];
          else if (dx)
            for (int64_t c = 0; c < len; ++c) dx[r * cols + c0 + c] += g[c];
          if (acc)
            for (int64_t c = 0; c < len; ++c) acc[c0 + c] += g[c];
        }
      });
}

/// Optional fused kernel (see backend.hpp), NormFormer's normalized hidden
/// units: out = LayerNorm(GELU(x + bias)) per row, with weight and ln_bias
/// (null: 1 and 0) and the row statistics of the GELU output stored in mean
/// and rstd. The GELU output is normalized where it is computed: out is
/// written once, and nothing but x is kept for the backward pass.
/// Requires: C > 0; out, x (rows, C); mean, rstd (rows,); bias (C,); weight,
/// ln_bias (C,) or null.
template <class Scalar>
void bias_gelu_layer_norm_forward(Cpu, Scalar* out, Scalar* mean, Scalar* rstd, const Scalar* x,
                                  const Scalar* bias, const Scalar* weight, const Scalar* ln_bias,
                                  int64_t rows, int64_t C, Scalar eps, bool tanh_approx) {
#pragma omp parallel for schedule(static) if (rows * C > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    Scalar* yr = out + r * C;  // (C,): the GELU output, then normalized in place
    bias_gelu_row(yr, static_cast<Scalar*>(nullptr), x + r * C, bias, C, tanh_approx);
    layer_norm_row_forward(yr, mean[r], rstd[r], yr, weight, ln_bias, C, eps);
  }
}

/// Optional fused kernel, the backward of bias_gelu_layer_norm_forward. Per
/// row, with h = GELU(x + bias) recomputed, h' = GELU'(x + bias), xhat =
/// (h - mean) rstd and dh = layer_norm's input gradient for dout:
///   dweight += dout * xhat,   dln_bias += dout,   g = dh * h',
///   dx += g (dx = g with overwrite_dx),   dbias += g,
/// every sum over rows in an order fixed by (rows, C). Null outputs are skipped.
/// Requires: the forward's x, bias, weight, mean, rstd; dout, dx (rows, C);
/// dbias, dweight, dln_bias (C,).
template <class Scalar>
void bias_gelu_layer_norm_backward(Cpu, Scalar* dx, Scalar* dbias, Scalar* dweight,
                                   Scalar* dln_bias, const Scalar* dout, const Scalar* x,
                                   const Scalar* bias, const Scalar* weight, const Scalar* mean,
                                   const Scalar* rstd, int64_t rows, int64_t C, bool tanh_approx,
                                   bool overwrite_dx) {
  const bool need_dh = dx || dbias;
  auto row = [&](int64_t r, const std::array<Scalar*, 3>& acc) {  // acc: dbias, dweight, dln_bias
    // This thread's two rows of scratch: h, then dh in its place; h'.
    static thread_local std::vector<Scalar> scratch;
    if (scratch.size() < static_cast<size_t>(2 * C)) scratch.resize(static_cast<size_t>(2 * C));
    Scalar* h = scratch.data();
    Scalar* h_prime = h + C;
    bias_gelu_row(h, h_prime, x + r * C, bias, C, tanh_approx);
    layer_norm_row_backward(need_dh ? h : nullptr, acc[1], acc[2], dout + r * C, h, weight, mean[r],
                            rstd[r], C, true);
    if (!need_dh) return;
    Scalar* dxr = dx ? dx + r * C : nullptr;  // (C,)
    if (dxr && overwrite_dx)
      for (int64_t c = 0; c < C; ++c) dxr[c] = h[c] * h_prime[c];
    else if (dxr)
      for (int64_t c = 0; c < C; ++c) dxr[c] += h[c] * h_prime[c];
    if (acc[0])
      for (int64_t c = 0; c < C; ++c) acc[0][c] += h[c] * h_prime[c];
  };
  rows_with_column_sums<3>(rows, C, std::array<Scalar*, 3>{dbias, dweight, dln_bias}, row);
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
