// ReZero (Bachlechner et al. 2020): each sublayer's branch times a learned
// scalar initialized to 0, so every layer starts as the identity:
//   x <- x + alpha_s F_s(x),   alpha_attn, alpha_ffn (1,), init 0;
// on the no_ln placement (no norm at all) as in the paper: "no_ln+rezero".
#pragma once
#include <normlab/normlab.hpp>

struct ReZero {
  static constexpr std::string_view word = "rezero";
  static constexpr std::string_view equation = "Branch_s(f) = alpha_s f, alpha_s scalar init 0";
  static constexpr normlab::SiteSet sites = {normlab::Site::attn_branch, normlab::Site::ffn_branch};

  template <normlab::FloatingElement Scalar, class Backend>
  struct State : normlab::Module<Scalar, Backend> {
    using Var = normlab::Variable<Scalar, Backend>;
    explicit State(const normlab::ExtraContext&)
        : attn_alpha(normlab::Tensor<Scalar, Backend>::zeros({1}), true),
          ffn_alpha(normlab::Tensor<Scalar, Backend>::zeros({1}), true) {}
    Var attn_branch(const Var& h) const { return h * attn_alpha; }  // (B, T, C)
    Var ffn_branch(const Var& f) const { return f * ffn_alpha; }    // (B, T, C)
    void for_each_own_parameter(
        const typename normlab::Module<Scalar, Backend>::ParameterFn& f) override {
      f("attn_rezero_alpha", attn_alpha, normlab::ParamKind::own_init);
      f("ffn_rezero_alpha", ffn_alpha, normlab::ParamKind::own_init);
    }
    Var attn_alpha, ffn_alpha;  // (1,) each
  };
};
