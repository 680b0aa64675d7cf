// normlab/ops/attention.hpp — scaled dot-product attention over heads stored
// side by side, as one graph node.
//
// The projections produce q, k, v as (B, T, C) with head h in channels
// [h D, (h + 1) D). Each head's (T, D) matrix is then a strided view (row
// stride C, next head D further), so the per-head products are strided-batched
// GEMMs over the stored tensors: no split-heads permute, no merge copy.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>

#include "normlab/autograd/variable.hpp"

namespace normlab::inline v0 {

namespace detail {
/// Query rows per block of the causal attention: a block of rows [r0, r1)
/// only needs the keys [0, causal_key_end(r1)), so the products skip the
/// masked upper triangle block by block (at T = 256, four blocks do 62.5% of
/// the full products' work).
inline constexpr int64_t kAttentionRowBlock = 64;

/// Keys seen by query rows below `r1` under the bottom-right-aligned causal
/// mask (softmax's): row i sees keys j <= i + (Tk - Tq).
inline int64_t causal_key_end(int64_t r1, int64_t Tq, int64_t Tk) {
  return std::clamp<int64_t>(r1 + Tk - Tq, 0, Tk);
}

/// Whether backend B runs independent tasks on its threads (the optional
/// kernel parallel_tasks(B, n, body), see backend/cpu/cpu.hpp).
template <class B>
concept HasParallelTasks = requires(B b, int64_t n, void (*body)(int64_t)) {
  parallel_tasks(b, n, body);
};

/// body(t) for t in [0, n): through B's parallel_tasks when it has one, else
/// in order on the calling thread.
template <class B, class F>
void for_each_task(int64_t n, F&& body) {
  if constexpr (HasParallelTasks<B>)
    parallel_tasks(B{}, n, body);
  else
    for (int64_t t = 0; t < n; ++t) body(t);
}
}  // namespace detail

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
/// With the causal mask, every product runs over blocks of
/// detail::kAttentionRowBlock query rows, each against only the keys its rows
/// can see: masked scores are neither computed nor read.
///
/// Saves the probabilities (B, H, Tq, Tk) for the backward pass. The scores
/// and, in the backward pass, dP and dS live in scratch blocks of one task's
/// heads (G, Tq, Tk), allocated by the task: on the CPU (G = 1) a head's
/// 256 KiB at T = 256 stays in cache from the product that writes it to the
/// ones that read it, where (B, H, Tq, Tk) tensors went to memory and back
/// (a third of the attention's time at the benchmark GPT's shape).
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
  // Query-row blocks [r0, r1) and the keys [0, kend) each sees.
  const int64_t row_block = causal ? detail::kAttentionRowBlock : std::max<int64_t>(Tq, 1);
  const int64_t n_blocks = (Tq + row_block - 1) / row_block;
  auto rows_of = [=](int64_t blk) {  // {r0, r1, kend}
    const int64_t r0 = blk * row_block, r1 = std::min(Tq, r0 + row_block);
    return std::array<int64_t, 3>{r0, r1, causal ? detail::causal_key_end(r1, Tq, Tk) : Tk};
  };
  const Tensor<T, B> tq = q.data(), tk = k.data(), tv = v.data();  // (B, T, C) each
  Tensor<T, B> probs(Shape{Bn, H, Tq, Tk});                        // (B, H, Tq, Tk)
  Tensor<T, B> out(q.shape());                                     // (B, Tq, C)
  if (Bn * Tq * Tk * C == 0) {
    if (out.numel()) out.fill_(T(0));  // no keys (Tk == 0): every output is an empty sum
    Variable<T, B> result = make_result<T, B>(
        "multi_head_attention", out, {&q, &k, &v},
        [](const Tensor<T, B>&, const GradSlots<T, B>& d) { d.zero_fresh(); });  // empty sums
    set_writes_fresh_gradients(result);
    return result;
  }
  // Work is split into tasks of G heads of one batch member: task t is
  // member b = t / (H / G), heads [h0, h0 + G), h0 = (t mod (H / G)) G, and
  // runs every product of those heads as strided-batched GEMMs over G. A
  // backend with parallel_tasks (the CPU) takes one head per task and runs
  // the tasks on its threads in one parallel region; others take all heads
  // of a member per task, in order. Either way each head's products and
  // softmax rows run in the same order, so the results are the same.
  const int64_t G = detail::HasParallelTasks<B> ? 1 : H, tasks = Bn * (H / G);
  auto task_heads = [=](int64_t t) {  // {b, h0}
    return std::array<int64_t, 2>{t / (H / G), t % (H / G) * G};
  };
  detail::for_each_task<B>(tasks, [&](int64_t t) {
    const auto [b, h0] = task_heads(t);
    const int64_t head_rows = (b * H + h0) * Tq;     // first row of these heads in (B H Tq, Tk)
    Tensor<T, B> scores(Shape{G, Tq, Tk});           // this task's; masked entries never written
    const T* q_b = tq.data() + b * Tq * C + h0 * D;  // (Tq, G D) with row stride C
    const T* k_b = tk.data() + b * Tk * C + h0 * D;  // (Tk, G D)
    const T* v_b = tv.data() + b * Tk * C + h0 * D;  // (Tk, G D)
    T* out_b = out.data() + b * Tq * C + h0 * D;     // (Tq, G D)
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const auto [r0, r1, kend] = rows_of(blk);
      if (kend == 0) continue;
      // S_bh[r0:r1, :kend] = scale * Q_bh[r0:r1] K_bh[:kend]^T for each of the G heads
      gemm_strided_batched(B{}, false, true, r1 - r0, kend, D, s, q_b + r0 * C, C, D, k_b, C, D,
                           T(0), scores.data() + r0 * Tk, Tk, Tq * Tk, G);
    }
    softmax_forward(B{}, probs.data() + head_rows * Tk, scores.data(), G * Tq, Tk, causal ? Tq : 0);
    for (int64_t blk = 0; blk < n_blocks; ++blk) {
      const auto [r0, r1, kend] = rows_of(blk);
      if (kend == 0) {  // queries that see no key get empty sums
        for (int64_t r = r0; r < r1; ++r) fill(B{}, out_b + r * C, G * D, T(0));
        continue;
      }
      // O_bh[r0:r1] = P_bh[r0:r1, :kend] V_bh[:kend]
      gemm_strided_batched(B{}, false, false, r1 - r0, D, kend, T(1),
                           probs.data() + (head_rows + r0) * Tk, Tk, Tq * Tk, v_b, C, D, T(0),
                           out_b + r0 * C, C, D, G);
    }
  });
  // Backward: the blocks run last to first. The last block sees every key,
  // so when dK and dV are fresh (GradSlots::fresh) its products write them
  // (beta 0) and the others add; dQ's blocks write disjoint rows.
  Variable<T, B> result = make_result<T, B>(
      "multi_head_attention", out, {&q, &k, &v},
      [=](const Tensor<T, B>& dout, const GradSlots<T, B>& d) {  // dout: (B, Tq, C)
        const T beta_q = d.beta(0);
        detail::for_each_task<B>(tasks, [&](int64_t t) {
          const auto [b, h0] = task_heads(t);
          const int64_t head_rows = (b * H + h0) * Tq;
          Tensor<T, B> dprobs(Shape{G, Tq, Tk});  // this task's; masked entries never read
          Tensor<T, B> dscores = Tensor<T, B>::zeros(Shape{G, Tq, Tk});
          const int64_t q_off = b * Tq * C + h0 * D, kv_off = b * Tk * C + h0 * D;
          const T* dout_b = dout.data() + q_off;  // (Tq, G D) with row stride C
          T beta_v = d.beta(2), beta_k = d.beta(1);
          for (int64_t blk = n_blocks - 1; blk >= 0; --blk) {
            const auto [r0, r1, kend] = rows_of(blk);
            if (kend == 0) continue;
            const T* p_rows = probs.data() + (head_rows + r0) * Tk;  // (G, r1 - r0, Tk)
            // dP_bh[r0:r1, :kend] = dO_bh[r0:r1] V_bh[:kend]^T
            gemm_strided_batched(B{}, false, true, r1 - r0, kend, D, T(1), dout_b + r0 * C, C, D,
                                 tv.data() + kv_off, C, D, T(0), dprobs.data() + r0 * Tk, Tk,
                                 Tq * Tk, G);
            if (d[2])  // dV_bh[:kend] += P_bh[r0:r1, :kend]^T dO_bh[r0:r1]
              gemm_strided_batched(B{}, true, false, kend, D, r1 - r0, T(1), p_rows, Tk, Tq * Tk,
                                   dout_b + r0 * C, C, D, beta_v, d[2]->data() + kv_off, C, D, G);
            beta_v = T(1);
          }
          softmax_backward(B{}, dscores.data(), dprobs.data(), probs.data() + head_rows * Tk,
                           G * Tq, Tk, causal ? Tq : 0);
          for (int64_t blk = n_blocks - 1; blk >= 0; --blk) {
            const auto [r0, r1, kend] = rows_of(blk);
            if (kend == 0) {  // queries that see no key: a zero gradient
              if (d[0] && d.fresh(0))
                for (int64_t r = r0; r < r1; ++r)
                  fill(B{}, d[0]->data() + q_off + r * C, G * D, T(0));
              continue;
            }
            const T* ds_rows = dscores.data() + r0 * Tk;  // (G, r1 - r0, Tk)
            if (d[0])  // dQ_bh[r0:r1] += scale * dS_bh[r0:r1, :kend] K_bh[:kend]
              gemm_strided_batched(B{}, false, false, r1 - r0, D, kend, s, ds_rows, Tk, Tq * Tk,
                                   tk.data() + kv_off, C, D, beta_q, d[0]->data() + q_off + r0 * C,
                                   C, D, G);
            if (d[1])  // dK_bh[:kend] += scale * dS_bh[r0:r1, :kend]^T Q_bh[r0:r1]
              gemm_strided_batched(B{}, true, false, kend, D, r1 - r0, s, ds_rows, Tk, Tq * Tk,
                                   tq.data() + q_off + r0 * C, C, D, beta_k, d[1]->data() + kv_off,
                                   C, D, G);
            beta_k = T(1);
          }
        });
      });
  set_writes_fresh_gradients(result);
  return result;
}

}  // namespace normlab::inline v0
