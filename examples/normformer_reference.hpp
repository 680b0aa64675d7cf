// examples/normformer_reference.hpp — one NormFormer layer written straight
// from its equations: the slow, obviously-correct oracle for the library's
// composed TransformerLayer<NormFormer> (policy extras, fused attention,
// fused bias + GELU + LayerNorm, head scale folded into W_O). Nothing here
// calls a module, a policy or a fused op; tests/models/test_normformer_reference.cpp
// holds the two equal, value and gradient.
//
// NormFormer (Shleifer, Weston, Ott 2021), paper form (head scale before
// out_proj), x (B, T, C), H heads of D = C / H, LN affine with eps:
//
//   h   = LN_1(x)                                           self_attn_layer_norm
//   q   = (h Wq^T + bq) / sqrt(D),  k = h Wk^T + bk,  v = h Wv^T + bv
//   a_i = softmax_causal(q_i k_i^T) v_i                      for each head i
//   y   = x + LN_a(Concat(gamma_1 a_1, ..., gamma_H a_H) Wo^T + bo)
//                                                   gamma = c_attn, LN_a = attn_ln
//   out = y + fc2(LN_f(gelu(fc1(LN_2(y)))))        LN_2 = final_layer_norm,
//                                                   LN_f = ffn_layernorm, exact-erf GELU
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/normlab.hpp"

namespace normlab::reference {

/// The parameters of one NormFormer layer, by fairseq's state_dict names.
template <FloatingElement Scalar, class Backend>
struct NormFormerParams {
  using Var = Variable<Scalar, Backend>;
  Var self_attn_layer_norm_weight, self_attn_layer_norm_bias;  // (C,)
  Var q_proj_weight, q_proj_bias;                              // (C, C), (C,)
  Var k_proj_weight, k_proj_bias;                              // (C, C), (C,)
  Var v_proj_weight, v_proj_bias;                              // (C, C), (C,)
  Var c_attn;                                                  // (H,)
  Var out_proj_weight, out_proj_bias;                          // (C, C), (C,)
  Var attn_ln_weight, attn_ln_bias;                            // (C,)
  Var final_layer_norm_weight, final_layer_norm_bias;          // (C,)
  Var fc1_weight, fc1_bias;                                    // (d_ff, C), (d_ff,)
  Var ffn_layernorm_weight, ffn_layernorm_bias;                // (d_ff,)
  Var fc2_weight, fc2_bias;                                    // (C, d_ff), (C,)
};

/// x (B, T, C) -> (B, T, C): the equations above, causal, top to bottom.
/// Requires C divisible by n_heads (the ops throw on any shape mismatch).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> normformer_layer_reference(const Variable<Scalar, Backend>& x,
                                                     const NormFormerParams<Scalar, Backend>& p,
                                                     int64_t n_heads, double eps) {
  using Var = Variable<Scalar, Backend>;
  const int64_t Bn = x.size(0), Tn = x.size(1), C = x.size(2), H = n_heads, D = C / H;

  // Attention sublayer.
  const Var h = layer_norm(x, p.self_attn_layer_norm_weight, p.self_attn_layer_norm_bias,
                           eps);  // (B, T, C)
  const Var q_btc = linear(h, p.q_proj_weight, p.q_proj_bias) *
                    (1.0 / std::sqrt(static_cast<double>(D)));               // (B, T, C)
  const Var k_btc = linear(h, p.k_proj_weight, p.k_proj_bias);               // (B, T, C)
  const Var v_btc = linear(h, p.v_proj_weight, p.v_proj_bias);               // (B, T, C)
  const Var q = transpose(reshape(q_btc, {Bn, Tn, H, D}), 1, 2);             // (B, H, T, D)
  const Var k = transpose(reshape(k_btc, {Bn, Tn, H, D}), 1, 2);             // (B, H, T, D)
  const Var v = transpose(reshape(v_btc, {Bn, Tn, H, D}), 1, 2);             // (B, H, T, D)
  const Var scores = matmul(q, k, false, true);                              // (B, H, T, T)
  const Var probs = softmax(scores, /*causal=*/true);                        // (B, H, T, T)
  const Var heads = matmul(probs, v);                                        // (B, H, T, D)
  const Var gamma = reshape(p.c_attn, {H, 1, 1});                            // (H, 1, 1)
  const Var scaled = heads * gamma;                                          // (B, H, T, D)
  const Var concat = reshape(transpose(scaled, 1, 2), {Bn, Tn, C});          // (B, T, C)
  const Var mha = linear(concat, p.out_proj_weight, p.out_proj_bias);        // (B, T, C)
  const Var y = x + layer_norm(mha, p.attn_ln_weight, p.attn_ln_bias, eps);  // (B, T, C)

  // Feed-forward sublayer.
  const Var z =
      layer_norm(y, p.final_layer_norm_weight, p.final_layer_norm_bias, eps);  // (B, T, C)
  const Var a = gelu(linear(z, p.fc1_weight, p.fc1_bias));                     // (B, T, d_ff)
  const Var a_norm =
      layer_norm(a, p.ffn_layernorm_weight, p.ffn_layernorm_bias, eps);  // (B, T, d_ff)
  const Var f = linear(a_norm, p.fc2_weight, p.fc2_bias);                // (B, T, C)
  return y + f;                                                          // (B, T, C)
}

}  // namespace normlab::reference
