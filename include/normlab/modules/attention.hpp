// normlab/modules/attention.hpp — multi-head self-attention with optional head scaling.
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/modules/layers.hpp"
#include "normlab/ops/attention.hpp"
#include "normlab/ops/dropout.hpp"
#include "normlab/ops/softmax.hpp"

namespace normlab {
inline namespace v0 {

/// Self-attention over x (B, T, C) with H heads of size D = C / H:
///
///   q = (x W_q^T + b_q) / sqrt(D),  k = x W_k^T + b_k,  v = x W_v^T + b_v   // (B, H, T, D)
///   h = softmax(q k^T + mask) v                                           // (B, H, T, D)
///   y = Concat(h_1, ..., h_H) W_O^T + b_O                                  // (B, T, C)
///
/// q is scaled after its projection, bias included, as fairseq does.
/// `attend` computes the heads side by side, Concat(h_1, ..., h_H) (B, T, C),
/// so that a layer can act on them (the Heads site of a policy) before
/// `out_proj`. Parameters: q_proj, k_proj, v_proj, out_proj (fairseq names).
template <FloatingElement Scalar, class Backend>
class MultiHeadAttention : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;

  /// Contract: d_model and n_heads positive, d_model divisible by n_heads.
  MultiHeadAttention(int64_t d_model, int64_t n_heads, Generator& gen)
      : q_proj(d_model, d_model, gen),
        k_proj(d_model, d_model, gen),
        v_proj(d_model, d_model, gen),
        out_proj(d_model, d_model, gen),
        n_heads(n_heads) {
    detail::check(n_heads > 0 && d_model % n_heads == 0, "MultiHeadAttention: d_model ", d_model,
                  " must be divisible by n_heads ", n_heads);
  }

  /// What a forward pass needs besides x.
  struct Options {
    bool causal = false;  ///< mask key j > query i
    /// Additive (B, 1, 1, T) bias on the scores: 0 for keys to attend, a large
    /// negative number for padding; undefined for none.
    Variable<Scalar, Backend> key_bias;
    double dropout = 0;        ///< on the attention probabilities
    Generator* gen = nullptr;  ///< for dropout
  };

  /// (B, T, C) -> (B, T, C): out_proj(attend(x)).
  Var forward(const Var& x, const Options& opt) const { return out_proj.forward(attend(x, opt)); }

  /// The heads side by side, Concat(h_1, ..., h_H): (B, T, C) -> (B, T, C).
  /// Throws when x is not 3-D with C = d_model.
  Var attend(const Var& x, const Options& opt) const {
    const int64_t C = q_proj.weight.size(0);
    detail::check(x.ndim() == 3 && x.size(2) == C, "MultiHeadAttention: expected input (B, T, ", C,
                  "), got ", x.shape());
    const int64_t Bn = x.size(0), Tn = x.size(1), H = n_heads, D = C / H;
    const double scale = 1.0 / std::sqrt(static_cast<double>(D));
    const bool drop_probs = opt.dropout > 0 && this->training();
    if (!opt.key_bias.defined() && !drop_probs) {
      // Heads stay side by side in (B, T, C): one attention node, no permutes.
      return multi_head_attention(q_proj.forward(x), k_proj.forward(x), v_proj.forward(x), H, scale,
                                  opt.causal);  // (B, T, C)
    }
    // With a padding bias or dropout on the probabilities: composed from ops.
    auto split_heads = [&](const Var& y) {  // (B, T, C) -> (B, H, T, D)
      return transpose(reshape(y, {Bn, Tn, H, D}), 1, 2);
    };
    const Var q = split_heads(q_proj.forward(x) * scale);
    const Var k = split_heads(k_proj.forward(x));
    const Var v = split_heads(v_proj.forward(x));
    Var scores = matmul(q, k, false, true);  // (B, H, T, T)
    if (opt.key_bias.defined()) scores = scores + opt.key_bias;
    Var probs = softmax(scores, opt.causal);  // (B, H, T, T)
    if (drop_probs) {
      detail::check(opt.gen != nullptr, "MultiHeadAttention: attention dropout ", opt.dropout,
                    " in training mode needs Options::gen");
      probs = dropout(probs, opt.dropout, *opt.gen, true);
    }
    const Var heads = matmul(probs, v);                   // (B, H, T, D)
    return reshape(transpose(heads, 1, 2), {Bn, Tn, C});  // (B, T, C)
  }

  /// y (B, T, C) with each group of D = C / H channels h times gamma_h (H,).
  static Var scale_heads(const Var& y, const Var& gamma) {
    const int64_t Bn = y.size(0), Tn = y.size(1), C = y.size(2), H = gamma.size(0);
    return reshape(reshape(y, {Bn, Tn, H, C / H}) * reshape(gamma, {H, 1}), {Bn, Tn, C});
  }

  void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
    f("q_proj", q_proj);
    f("k_proj", k_proj);
    f("v_proj", v_proj);
    f("out_proj", out_proj);
  }

  Linear<Scalar, Backend> q_proj, k_proj, v_proj, out_proj;
  int64_t n_heads;
};

}  // namespace v0
}  // namespace normlab
