// normlab/ops/attention.hpp — scaled dot-product attention over heads stored
// side by side, as one graph node.
//
// The projections produce q, k, v as (B, T, C) with head h in channels
// [h D, (h + 1) D). Each head's (T, D) matrix is then a strided view (row
// stride C, next head D further), so the per-head products are strided-batched
// GEMMs over the stored tensors: no split-heads permute, no merge copy.
#pragma once

#include <cstdint>
#include <type_traits>

#include "normlab/autograd/variable.hpp"

namespace normlab::inline v0 {

/// Multi-head scaled dot-product attention, heads in place:
///
///   P_bh = softmax(scale * Q_bh K_bh^T + M)   // (Tq, Tk), M the causal mask
///   O_bh = P_bh V_bh                          // (Tq, D)
///
/// where X_bh is the (T, D) block of x (B, T, H D) holding head h of batch
/// member b. The causal mask is softmax's (aligned to the bottom-right
/// corner). Backward (dS the softmax backward of dP = dO V^T):
///
///   dV = P^T dO,   dQ = scale * dS K,   dK = scale * dS^T Q.
///
///   q: (B, Tq, H D)   k, v: (B, Tk, H D)   result: (B, Tq, H D)
///
/// Saves the probabilities (B, H, Tq, Tk) for the backward pass.
/// Requires: q, k, v 3-D with the same batch and channels, k and v the same
/// length, channels divisible by n_heads > 0. Throws Error naming the shapes
/// otherwise.
template <FloatingElement T, class B>
Variable<T, B> multi_head_attention(const Variable<T, B>& q,
                                    const std::type_identity_t<Variable<T, B>>& k,
                                    const std::type_identity_t<Variable<T, B>>& v, int64_t n_heads,
                                    double scale, bool causal) {
  detail::check(q.ndim() == 3 && k.ndim() == 3 && v.ndim() == 3,
                "multi_head_attention: q, k, v must be (B, T, C), got ", q.shape(), ", ", k.shape(),
                ", ", v.shape());
  const int64_t Bn = q.size(0), Tq = q.size(1), C = q.size(2), Tk = k.size(1);
  detail::check(
      k.size(0) == Bn && v.size(0) == Bn && k.size(2) == C && v.size(2) == C && v.size(1) == Tk,
      "multi_head_attention: q ", q.shape(), ", k ", k.shape(), " and v ", v.shape(),
      " must share batch and channels, and k and v their length");
  detail::check(n_heads > 0 && C % n_heads == 0, "multi_head_attention: ", C,
                " channels do not split into ", n_heads, " heads");
  const int64_t H = n_heads, D = C / H;
  const T s = static_cast<T>(scale);
  const Tensor<T, B> tq = q.data(), tk = k.data(), tv = v.data();  // (B, T, C) each
  Tensor<T, B> probs(Shape{Bn, H, Tq, Tk});                        // (B, H, Tq, Tk)
  Tensor<T, B> out(q.shape());                                     // (B, Tq, C)
  if (Bn * Tq * Tk * C > 0) {
    Tensor<T, B> scores(probs.shape());  // (B, H, Tq, Tk)
    for (int64_t b = 0; b < Bn; ++b)     // S_bh = scale * Q_bh K_bh^T for every head h
      gemm_strided_batched(B{}, false, true, Tq, Tk, D, s, tq.data() + b * Tq * C, C, D,
                           tk.data() + b * Tk * C, C, D, T(0), scores.data() + b * H * Tq * Tk, Tk,
                           Tq * Tk, H);
    softmax_forward(B{}, probs.data(), scores.data(), Bn * H * Tq, Tk, causal ? Tq : 0);
    for (int64_t b = 0; b < Bn; ++b)  // O_bh = P_bh V_bh
      gemm_strided_batched(B{}, false, false, Tq, D, Tk, T(1), probs.data() + b * H * Tq * Tk, Tk,
                           Tq * Tk, tv.data() + b * Tk * C, C, D, T(0), out.data() + b * Tq * C, C,
                           D, H);
  } else if (out.numel()) {
    out.fill_(T(0));  // no keys (Tk == 0): every output is an empty sum
  }
  return make_result<T, B>(
      "multi_head_attention", out, {&q, &k, &v},
      [=](const Tensor<T, B>& dout, const GradSlots<T, B>& d) {  // dout: (B, Tq, C)
        if (Bn * Tq * Tk * C == 0) return;
        Tensor<T, B> dprobs(probs.shape());                         // (B, H, Tq, Tk)
        Tensor<T, B> dscores = Tensor<T, B>::zeros(probs.shape());  // (B, H, Tq, Tk)
        for (int64_t b = 0; b < Bn; ++b) {
          const T* dout_b = dout.data() + b * Tq * C;
          const T* p_b = probs.data() + b * H * Tq * Tk;
          // dP_bh = dO_bh V_bh^T
          gemm_strided_batched(B{}, false, true, Tq, Tk, D, T(1), dout_b, C, D,
                               tv.data() + b * Tk * C, C, D, T(0), dprobs.data() + b * H * Tq * Tk,
                               Tk, Tq * Tk, H);
          if (d[2])  // dV_bh += P_bh^T dO_bh
            gemm_strided_batched(B{}, true, false, Tk, D, Tq, T(1), p_b, Tk, Tq * Tk, dout_b, C, D,
                                 T(1), d[2]->data() + b * Tk * C, C, D, H);
        }
        softmax_backward(B{}, dscores.data(), dprobs.data(), probs.data(), Bn * H * Tq, Tk,
                         causal ? Tq : 0);
        for (int64_t b = 0; b < Bn; ++b) {
          const T* ds_b = dscores.data() + b * H * Tq * Tk;
          if (d[0])  // dQ_bh += scale * dS_bh K_bh
            gemm_strided_batched(B{}, false, false, Tq, D, Tk, s, ds_b, Tk, Tq * Tk,
                                 tk.data() + b * Tk * C, C, D, T(1), d[0]->data() + b * Tq * C, C,
                                 D, H);
          if (d[1])  // dK_bh += scale * dS_bh^T Q_bh
            gemm_strided_batched(B{}, true, false, Tk, D, Tq, s, ds_b, Tk, Tq * Tk,
                                 tq.data() + b * Tq * C, C, D, T(1), d[1]->data() + b * Tk * C, C,
                                 D, H);
        }
      });
}

}  // namespace normlab::inline v0
