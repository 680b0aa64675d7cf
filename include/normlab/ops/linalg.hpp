// normlab/ops/linalg.hpp — matmul, and linear (x W^T + b as one node).
#pragma once

#include <type_traits>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/backend.hpp"

namespace normlab {
inline namespace v0 {

/// C = op(A) op(B) over the last two dims, where op(X) is X, or X^T (of its
/// last two dims) when the matching flag is set; no transposed copy is made.
///
///   a: (..., M, K), or (..., K, M) with trans_a
///   b: (..., K, N), or (..., N, K) with trans_b
///   C: (..., M, N)
///
/// Leading (batch) dims: either both operands have the same ones, or one
/// operand is 2-D and is shared by every member of the other's batch (x @ W
/// for x (B, T, C) and W (C, D)). The gradient of a shared operand is the sum
/// over the batch.
///
/// Contract: requires ndim >= 2 for both and matching inner sizes K; throws an
/// Error naming both shapes and flags otherwise.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> matmul(const Variable<Scalar, Backend>& a,
                                 const Variable<Scalar, Backend>& b, bool trans_a = false,
                                 bool trans_b = false) {
  const Shape& sa = a.shape();
  const Shape& sb = b.shape();
  auto describe = [&] {
    return detail::concat("a ", sa, trans_a ? "^T" : "", " and b ", sb, trans_b ? "^T" : "");
  };
  detail::check(sa.ndim() >= 2 && sb.ndim() >= 2,
                "matmul: both operands need at least 2 dims, got ", describe());
  const int64_t ra = sa[sa.ndim() - 2], ca = sa[sa.ndim() - 1];  // a's stored matrix (ra, ca)
  const int64_t rb = sb[sb.ndim() - 2], cb = sb[sb.ndim() - 1];  // b's stored matrix (rb, cb)
  const int64_t M = trans_a ? ca : ra, K = trans_a ? ra : ca;
  const int64_t Kb = trans_b ? cb : rb, N = trans_b ? rb : cb;
  detail::check(K == Kb, "matmul: inner sizes differ (", K, " vs ", Kb, ") for ", describe());

  const std::vector<int64_t> batch_a(sa.begin(), sa.end() - 2), batch_b(sb.begin(), sb.end() - 2);
  detail::check(batch_a.empty() || batch_b.empty() || batch_a == batch_b,
                "matmul: batch dims must be equal, or one operand 2-D, got ", describe());
  std::vector<int64_t> out_dims = batch_a.empty() ? batch_b : batch_a;
  const int64_t batch = Shape(out_dims).numel();
  out_dims.push_back(M);
  out_dims.push_back(N);

  const int64_t stride_a = batch_a.empty() ? 0 : ra * ca;  // 0: shared over the batch
  const int64_t stride_b = batch_b.empty() ? 0 : rb * cb;
  const Tensor<Scalar, Backend> ta = a.data(), tb = b.data();
  Tensor<Scalar, Backend> c{Shape(out_dims)};  // (..., M, N)
  gemm_strided_batched(Backend{}, trans_a, trans_b, M, N, K, Scalar(1), ta.data(), ca, stride_a,
                       tb.data(), cb, stride_b, Scalar(0), c.data(), N, M * N, batch);

  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "matmul", c, {&a, &b},
      [=](const Tensor<Scalar, Backend>& dc,
          const GradSlots<Scalar, Backend>& d) {  // dc: (..., M, N)
        // d op(A) = dC op(B)^T and d op(B) = op(A)^T dC; a transposed operand
        // receives the transpose, computed by swapping the GEMM's operands. A
        // fresh slot is written (GEMM beta 0), any other added to (beta 1).
        if (batch == 0) {  // a shared operand's gradient is an empty sum
          d.zero_fresh();
          return;
        }
        if (d[0]) {
          Scalar* da = d[0]->data();
          if (!trans_a)  // dA (M, K) = dC (M, N) op(B)^T
            gemm_strided_batched(Backend{}, false, !trans_b, M, K, N, Scalar(1), dc.data(), N,
                                 M * N, tb.data(), cb, stride_b, d.beta(0), da, ca, stride_a,
                                 batch);
          else  // dA (K, M) = op(B) (K, N) dC^T
            gemm_strided_batched(Backend{}, trans_b, true, K, M, N, Scalar(1), tb.data(), cb,
                                 stride_b, dc.data(), N, M * N, d.beta(0), da, ca, stride_a, batch);
        }
        if (d[1]) {
          Scalar* db = d[1]->data();
          if (!trans_b)  // dB (K, N) = op(A)^T (K, M) dC
            gemm_strided_batched(Backend{}, !trans_a, false, K, N, M, Scalar(1), ta.data(), ca,
                                 stride_a, dc.data(), N, M * N, d.beta(1), db, cb, stride_b, batch);
          else  // dB (N, K) = dC^T (N, M) op(A)
            gemm_strided_batched(Backend{}, true, trans_a, N, K, M, Scalar(1), dc.data(), N, M * N,
                                 ta.data(), ca, stride_a, d.beta(1), db, cb, stride_b, batch);
        }
      });
  set_writes_fresh_gradients(result);
  return result;
}

/// y = x W^T + b over the last axis (torch.nn.functional.linear), one graph node:
///
///   x: (..., in)   W: (out, in)   b: (out,) or undefined   y: (..., out)
///
/// The rows of x are one GEMM (no reshape nodes, no broadcast add); on a
/// backend with gemm_bias the GEMM adds b as it writes y. Backward:
/// dx += dy W, dW += dy^T x, db += sum over rows of dy (summed in double, in
/// an order fixed by the shapes, so the result does not depend on the thread
/// count).
///
/// Requires: x has >= 1 dims and x.size(-1) == W.size(1); W is 2-D; b is
/// undefined or of shape (out,). Throws Error naming the shapes otherwise.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> linear(const Variable<Scalar, Backend>& x,
                                 const std::type_identity_t<Variable<Scalar, Backend>>& weight,
                                 const std::type_identity_t<Variable<Scalar, Backend>>& bias) {
  detail::check(weight.defined() && weight.ndim() == 2, "linear: weight must be (out, in), got ",
                weight.defined() ? weight.shape() : Shape{});
  const int64_t out = weight.size(0), in = weight.size(1);
  detail::check(x.defined() && x.ndim() >= 1 && x.size(-1) == in, "linear: input of shape ",
                x.defined() ? x.shape() : Shape{}, " does not end in in_features ", in,
                " of weight ", weight.shape());
  detail::check(!bias.defined() || bias.shape() == Shape{out}, "linear: bias of shape ",
                bias.defined() ? bias.shape() : Shape{}, " does not match out_features ", out,
                "; expected ", Shape{out});
  const int64_t rows = x.numel() / in;
  std::vector<int64_t> dims(x.shape().begin(), x.shape().end() - 1);
  dims.push_back(out);
  const Tensor<Scalar, Backend> tx = x.data(), tw = weight.data();  // (rows, in), (out, in)
  Tensor<Scalar, Backend> y{Shape(dims)};                           // (rows, out)
  const bool has_b = bias.defined();
  if (rows > 0) {
    bool bias_added = false;
    if constexpr (HasGemmBias<Backend, Scalar>) {
      if (has_b) {  // the GEMM adds b to every row as it writes y
        gemm_bias(Backend{}, false, true, rows, out, in, Scalar(1), tx.data(), in, tw.data(), in,
                  bias.data().data(), y.data(), out);
        bias_added = true;
      }
    }
    if (!bias_added) {
      if (has_b)  // every row of y starts as b, then the GEMM adds x W^T
        copy_rows(Backend{}, y.data(), out, bias.data().data(), 0, rows, out, false);
      gemm(Backend{}, false, true, rows, out, in, Scalar(1), tx.data(), in, tw.data(), in,
           has_b ? Scalar(1) : Scalar(0), y.data(), out);
    }
  }
  std::vector<Variable<Scalar, Backend>> inputs{x, weight};
  if (has_b) inputs.push_back(bias);
  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "linear", y, inputs,
      [tx, tw, rows, in, out, has_b](const Tensor<Scalar, Backend>& dy,
                                     const GradSlots<Scalar, Backend>& d) {
        // A fresh slot is written (GEMM beta 0), any other added to (beta 1).
        if (rows == 0) {  // empty sums
          d.zero_fresh();
          return;
        }
        if (d[0])  // dx (rows, in) += dy (rows, out) W (out, in)
          gemm(Backend{}, false, false, rows, in, out, Scalar(1), dy.data(), out, tw.data(), in,
               d.beta(0), d[0]->data(), in);
        if (d[1])  // dW (out, in) += dy^T (out, rows) x (rows, in)
          gemm(Backend{}, true, false, out, in, rows, Scalar(1), dy.data(), out, tx.data(), in,
               d.beta(1), d[1]->data(), in);
        if (has_b && d[2]) {  // db (out,) += sum over rows of dy
          if (d.fresh(2)) {
            sum_axis_forward(Backend{}, d[2]->data(), dy.data(), int64_t{1}, rows, out, Scalar(1));
          } else {
            Tensor<Scalar, Backend> colsum(Shape{out});  // (out,)
            sum_axis_forward(Backend{}, colsum.data(), dy.data(), int64_t{1}, rows, out, Scalar(1));
            accumulate(Backend{}, d[2]->data(), colsum.data(), out, Scalar(1));
          }
        }
      });
  set_writes_fresh_gradients(result);
  return result;
}

}  // namespace v0
}  // namespace normlab
