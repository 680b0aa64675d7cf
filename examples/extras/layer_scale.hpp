// LayerScale (Touvron et al. 2021, CaiT): each sublayer's branch times a
// learned per-channel vector, initialized small,
//   x <- Skip_s(x) + diag(g_s) F_s(...),   g_attn, g_ffn (C,), init 0.1.
#pragma once
#include <normlab/normlab.hpp>

struct LayerScale {
  static constexpr std::string_view word = "layer_scale";
  static constexpr std::string_view equation = "Branch_s(f) = diag(g_s) f, g_s (C,) init 0.1";
  static constexpr normlab::SiteSet sites = {normlab::Site::attn_branch, normlab::Site::ffn_branch};

  template <normlab::FloatingElement Scalar, class Backend>
  struct State : normlab::Module<Scalar, Backend> {
    using Var = normlab::Variable<Scalar, Backend>;
    explicit State(const normlab::ExtraContext& cx)
        : attn_scale(normlab::Tensor<Scalar, Backend>::full({cx.d_model}, Scalar(0.1)), true),
          ffn_scale(normlab::Tensor<Scalar, Backend>::full({cx.d_model}, Scalar(0.1)), true) {}
    Var attn_branch(const Var& h) const { return h * attn_scale; }  // (B, T, C)
    Var ffn_branch(const Var& f) const { return f * ffn_scale; }    // (B, T, C)
    void for_each_own_parameter(
        const typename normlab::Module<Scalar, Backend>::ParameterFn& f) override {
      f("attn_layer_scale", attn_scale, normlab::ParamKind::own_init);
      f("ffn_layer_scale", ffn_scale, normlab::ParamKind::own_init);
    }
    Var attn_scale, ffn_scale;  // (C,) each
  };
};
