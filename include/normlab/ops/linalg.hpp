// normlab/ops/linalg.hpp — matmul.
#pragma once

#include <vector>

#include "normlab/autograd/variable.hpp"

namespace normlab::inline v0 {

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
template <FloatingElement T, class B>
Variable<T, B> matmul(const Variable<T, B>& a, const Variable<T, B>& b, bool trans_a = false,
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
  const Tensor<T, B> ta = a.data(), tb = b.data();
  Tensor<T, B> c{Shape(out_dims)};  // (..., M, N)
  gemm_strided_batched(B{}, trans_a, trans_b, M, N, K, T(1), ta.data(), ca, stride_a, tb.data(), cb,
                       stride_b, T(0), c.data(), N, M * N, batch);

  return make_result<T, B>(
      "matmul", c, {&a, &b},
      [=](const Tensor<T, B>& dc, const GradSlots<T, B>& d) {  // dc: (..., M, N)
        // d op(A) = dC op(B)^T and d op(B) = op(A)^T dC; a transposed operand
        // receives the transpose, computed by swapping the GEMM's operands.
        if (d[0]) {
          T* da = d[0]->data();
          if (!trans_a)  // dA (M, K) = dC (M, N) op(B)^T
            gemm_strided_batched(B{}, false, !trans_b, M, K, N, T(1), dc.data(), N, M * N,
                                 tb.data(), cb, stride_b, T(1), da, ca, stride_a, batch);
          else  // dA (K, M) = op(B) (K, N) dC^T
            gemm_strided_batched(B{}, trans_b, true, K, M, N, T(1), tb.data(), cb, stride_b,
                                 dc.data(), N, M * N, T(1), da, ca, stride_a, batch);
        }
        if (d[1]) {
          T* db = d[1]->data();
          if (!trans_b)  // dB (K, N) = op(A)^T (K, M) dC
            gemm_strided_batched(B{}, !trans_a, false, K, N, M, T(1), ta.data(), ca, stride_a,
                                 dc.data(), N, M * N, T(1), db, cb, stride_b, batch);
          else  // dB (N, K) = dC^T (N, M) op(A)
            gemm_strided_batched(B{}, true, trans_a, N, K, M, T(1), dc.data(), N, M * N, ta.data(),
                                 ca, stride_a, T(1), db, cb, stride_b, batch);
        }
      });
}

}  // namespace normlab::inline v0
