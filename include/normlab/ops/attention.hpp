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
#include <concepts>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/backend.hpp"

namespace normlab {
inline namespace v0 {

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
/// can see: masked scores are neither computed, stored nor read. A block of
/// rows [r0, r1) that sees keys [0, kend) is stored as a (r1 - r0, kend)
/// matrix per head, its own causal softmax (the mask of its last r1 - r0
/// queries), so the probabilities saved for the backward pass take
/// (B, H, sum over blocks of (r1 - r0) kend) floats: 62.5% of (B, H, Tq, Tk)
/// at T = 256, 56% at T = 512. Without the mask one block holds all rows.
///
/// The scores and, in the backward pass, dP and dS live in scratch blocks of
/// one task's heads, one block per worker (detail::task_workers), allocated
/// once per call: on the CPU (one head per task) a head's scores at T = 256
/// (160 KiB) stay in cache from the product that writes them to the ones
/// that read them, where (B, H, Tq, Tk) tensors went to memory and back (a
/// third of the attention's time at the benchmark GPT's shape); the next
/// task of the worker reuses the block, and a call allocates the same blocks
/// however its tasks fall on the threads.
///
/// Requires: q, k, v 3-D with the same batch and channels, k and v the same
/// length, channels divisible by n_heads > 0. Throws Error naming the shapes
/// otherwise.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> multi_head_attention(
    const Variable<Scalar, Backend>& q, const std::type_identity_t<Variable<Scalar, Backend>>& k,
    const std::type_identity_t<Variable<Scalar, Backend>>& v, int64_t n_heads, double scale,
    bool causal) {
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
  const Scalar s = static_cast<Scalar>(scale);
  // Query-row blocks [r0, r1), the keys [0, kend) each sees, and where its
  // (r1 - r0, kend) matrix of one head starts in the head's storage
  // (`offset`; block_floats in all, per head).
  struct RowBlock {
    int64_t r0, r1, kend, offset;
    int64_t rows() const { return r1 - r0; }
    int64_t floats() const { return (r1 - r0) * kend; }  // one head's
  };
  const int64_t row_block = causal ? detail::kAttentionRowBlock : std::max<int64_t>(Tq, 1);
  std::vector<RowBlock> blocks;
  int64_t block_floats = 0;
  for (int64_t r0 = 0; r0 < Tq; r0 += row_block) {
    const int64_t r1 = std::min(Tq, r0 + row_block);
    blocks.push_back({r0, r1, causal ? detail::causal_key_end(r1, Tq, Tk) : Tk, block_floats});
    block_floats += blocks.back().floats();
  }
  const int64_t n_blocks = static_cast<int64_t>(blocks.size());
  // Storage of n heads' blocks, block-major: block blk of head g (of n) at
  // n offset + g floats(): the n heads' rows of one block are one
  // (n (r1 - r0), kend) matrix, a causal softmax of r1 - r0 queries each.
  auto block_at = [](const RowBlock& blk, int64_t n_heads_stored, int64_t head) {
    return n_heads_stored * blk.offset + head * blk.floats();
  };
  auto mask_rows = [causal](const RowBlock& blk) { return causal ? blk.rows() : int64_t{0}; };
  const Tensor<Scalar, Backend> tq = q.data(), tk = k.data(), tv = v.data();  // (B, T, C) each
  Tensor<Scalar, Backend> probs(Shape{Bn, H * block_floats});  // (B, blocks, H, r1 - r0, kend)
  Tensor<Scalar, Backend> out(q.shape());                      // (B, Tq, C)
  if (Bn * Tq * Tk * C == 0) {
    if (out.numel()) out.fill_(Scalar(0));  // no keys (Tk == 0): every output is an empty sum
    Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
        "multi_head_attention", out, {&q, &k, &v},
        [](const Tensor<Scalar, Backend>&, const GradSlots<Scalar, Backend>& d) {
          d.zero_fresh();
        });  // empty sums
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
  const int64_t G = HasParallelTasks<Backend> ? 1 : H, tasks = Bn * (H / G);
  auto task_heads = [=](int64_t t) {  // {b, h0}
    return std::array<int64_t, 2>{t / (H / G), t % (H / G) * G};
  };
  // Block blk of the task's heads in probs: (G, r1 - r0, kend).
  auto probs_of = [=](int64_t b, int64_t h0, const RowBlock& blk) {
    return probs.data() + b * H * block_floats + block_at(blk, H, h0);
  };
  const int64_t workers = detail::task_workers<Backend>(tasks);
  // Per worker: the scores of its task's heads, (blocks, G, r1 - r0, kend).
  Tensor<Scalar, Backend> scratch(Shape{workers, G * block_floats});
  detail::for_each_task<Backend>(tasks, [&](int64_t t, int64_t worker) {
    const auto [b, h0] = task_heads(t);
    Scalar* const scores = scratch.data() + worker * G * block_floats;
    const Scalar* q_b = tq.data() + b * Tq * C + h0 * D;  // (Tq, G D) with row stride C
    const Scalar* k_b = tk.data() + b * Tk * C + h0 * D;  // (Tk, G D)
    const Scalar* v_b = tv.data() + b * Tk * C + h0 * D;  // (Tk, G D)
    Scalar* out_b = out.data() + b * Tq * C + h0 * D;     // (Tq, G D)
    for (const RowBlock& blk : blocks) {
      if (blk.kend == 0) continue;
      // S_bh[r0:r1, :kend] = scale * Q_bh[r0:r1] K_bh[:kend]^T for each of the G heads
      Scalar* scores_blk = scores + block_at(blk, G, 0);  // (G, r1 - r0, kend)
      gemm_strided_batched(Backend{}, false, true, blk.rows(), blk.kend, D, s, q_b + blk.r0 * C, C,
                           D, k_b, C, D, Scalar(0), scores_blk, blk.kend, blk.floats(), G);
      softmax_forward(Backend{}, probs_of(b, h0, blk), static_cast<const Scalar*>(scores_blk),
                      G * blk.rows(), blk.kend, mask_rows(blk));
    }
    for (const RowBlock& blk : blocks) {
      if (blk.kend == 0) {  // queries that see no key get empty sums
        for (int64_t r = blk.r0; r < blk.r1; ++r) fill(Backend{}, out_b + r * C, G * D, Scalar(0));
        continue;
      }
      // O_bh[r0:r1] = P_bh[r0:r1, :kend] V_bh[:kend]
      gemm_strided_batched(Backend{}, false, false, blk.rows(), D, blk.kend, Scalar(1),
                           probs_of(b, h0, blk), blk.kend, blk.floats(), v_b, C, D, Scalar(0),
                           out_b + blk.r0 * C, C, D, G);
    }
  });
  // Backward: the blocks run last to first. The last block sees every key,
  // so when dK and dV are fresh (GradSlots::fresh) its products write them
  // (beta 0) and the others add; dQ's blocks write disjoint rows.
  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "multi_head_attention", out, {&q, &k, &v},
      [=](const Tensor<Scalar, Backend>& dout,
          const GradSlots<Scalar, Backend>& d) {  // dout: (B, Tq, C)
        const Scalar beta_q = d.beta(0);
        // Per worker (as many as now run the tasks): dP and dS of its task's
        // heads, (blocks, G, r1 - r0, kend).
        const int64_t backward_workers = detail::task_workers<Backend>(tasks);
        Tensor<Scalar, Backend> dprobs_scratch(Shape{backward_workers, G * block_floats});
        Tensor<Scalar, Backend> dscores_scratch(Shape{backward_workers, G * block_floats});
        detail::for_each_task<Backend>(tasks, [&](int64_t t, int64_t worker) {
          const auto [b, h0] = task_heads(t);
          Scalar* const dprobs = dprobs_scratch.data() + worker * G * block_floats;
          Scalar* const dscores = dscores_scratch.data() + worker * G * block_floats;
          // The entries past a row's keys are read by the products, and the
          // softmax backward adds into dS: it starts as zeros.
          fill(Backend{}, dscores, G * block_floats, Scalar(0));
          const int64_t q_off = b * Tq * C + h0 * D, kv_off = b * Tk * C + h0 * D;
          const Scalar* dout_b = dout.data() + q_off;  // (Tq, G D) with row stride C
          Scalar beta_v = d.beta(2), beta_k = d.beta(1);
          for (int64_t i = n_blocks - 1; i >= 0; --i) {
            const RowBlock& blk = blocks[static_cast<size_t>(i)];
            if (blk.kend == 0) continue;
            const Scalar* p_blk = probs_of(b, h0, blk);      // (G, r1 - r0, kend)
            Scalar* dp_blk = dprobs + block_at(blk, G, 0);   // (G, r1 - r0, kend)
            Scalar* ds_blk = dscores + block_at(blk, G, 0);  // (G, r1 - r0, kend)
            // dP_bh[r0:r1, :kend] = dO_bh[r0:r1] V_bh[:kend]^T
            gemm_strided_batched(Backend{}, false, true, blk.rows(), blk.kend, D, Scalar(1),
                                 dout_b + blk.r0 * C, C, D, tv.data() + kv_off, C, D, Scalar(0),
                                 dp_blk, blk.kend, blk.floats(), G);
            if (d[2])  // dV_bh[:kend] += P_bh[r0:r1, :kend]^T dO_bh[r0:r1]
              gemm_strided_batched(Backend{}, true, false, blk.kend, D, blk.rows(), Scalar(1),
                                   p_blk, blk.kend, blk.floats(), dout_b + blk.r0 * C, C, D, beta_v,
                                   d[2]->data() + kv_off, C, D, G);
            beta_v = Scalar(1);
            softmax_backward(Backend{}, ds_blk, static_cast<const Scalar*>(dp_blk), p_blk,
                             G * blk.rows(), blk.kend, mask_rows(blk));
          }
          for (int64_t i = n_blocks - 1; i >= 0; --i) {
            const RowBlock& blk = blocks[static_cast<size_t>(i)];
            if (blk.kend == 0) {  // queries that see no key: a zero gradient
              if (d[0] && d.fresh(0))
                for (int64_t r = blk.r0; r < blk.r1; ++r)
                  fill(Backend{}, d[0]->data() + q_off + r * C, G * D, Scalar(0));
              continue;
            }
            const Scalar* ds_blk = dscores + block_at(blk, G, 0);  // (G, r1 - r0, kend)
            if (d[0])  // dQ_bh[r0:r1] += scale * dS_bh[r0:r1, :kend] K_bh[:kend]
              gemm_strided_batched(Backend{}, false, false, blk.rows(), D, blk.kend, s, ds_blk,
                                   blk.kend, blk.floats(), tk.data() + kv_off, C, D, beta_q,
                                   d[0]->data() + q_off + blk.r0 * C, C, D, G);
            if (d[1])  // dK_bh[:kend] += scale * dS_bh[r0:r1, :kend]^T Q_bh[r0:r1]
              gemm_strided_batched(Backend{}, true, false, blk.kend, D, blk.rows(), s, ds_blk,
                                   blk.kend, blk.floats(), tq.data() + q_off + blk.r0 * C, C, D,
                                   beta_k, d[1]->data() + kv_off, C, D, G);
            beta_k = Scalar(1);
          }
        });
      });
  set_writes_fresh_gradients(result);
  return result;
}

}  // namespace v0
}  // namespace normlab
