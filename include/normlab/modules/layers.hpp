// normlab/modules/layers.hpp — Linear, LayerNorm, RMSNorm, Embedding, position
// embeddings, FeedForward.
//
// Constructors initialize like torch's defaults; model-wide schemes
// (modules/init.hpp) re-initialize every parameter by name and kind.
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "normlab/backend/backend.hpp"
#include "normlab/core/random.hpp"
#include "normlab/modules/module.hpp"
#include "normlab/modules/norm_kind.hpp"
#include "normlab/ops/elementwise.hpp"
#include "normlab/ops/embedding.hpp"
#include "normlab/ops/linalg.hpp"
#include "normlab/ops/normalization.hpp"
#include "normlab/ops/shape.hpp"

namespace normlab {
inline namespace v0 {

/// y = x W^T + b, with W (out, in) stored like torch's nn.Linear.
/// Init: W and b uniform in [-1/sqrt(in), 1/sqrt(in)] (torch's default).
template <FloatingElement Scalar, class Backend>
class Linear : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;
  using Tens = Tensor<Scalar, Backend>;

  /// Contract: in, out > 0 (throws Error otherwise).
  Linear(int64_t in, int64_t out, Generator& gen, bool with_bias = true) {
    detail::check(in > 0 && out > 0, "Linear: sizes must be positive, got in ", in, ", out ", out);
    const Scalar bound = Scalar(1) / std::sqrt(static_cast<Scalar>(in));
    weight = Var(Tens::uniform({out, in}, gen, -bound, bound), true);           // (out, in)
    if (with_bias) bias = Var(Tens::uniform({out}, gen, -bound, bound), true);  // (out,)
  }

  /// (..., in) -> (..., out): one `linear` node. Throws when the last dim of x is not `in`.
  Var forward(const Var& x) const { return linear(x, weight, bias); }

  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    f("weight", weight, ParamKind::weight);
    if (bias.defined()) f("bias", bias, ParamKind::bias);
  }

  Var weight;  ///< (out, in)
  Var bias;    ///< (out,), or undefined without bias
};

/// y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias over the last axis
/// (biased variance, like torch.nn.LayerNorm). Init: weight 1, bias 0.
template <FloatingElement Scalar, class Backend>
class LayerNorm : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;
  static constexpr NormKind kind = NormKind::layer_norm;

  explicit LayerNorm(int64_t dim, double eps = 1e-5)
      : weight(Tensor<Scalar, Backend>::ones({dim}), true),
        bias(Tensor<Scalar, Backend>::zeros({dim}), true),
        eps(eps) {}

  Var forward(const Var& x) const { return layer_norm(x, weight, bias, eps); }  // (..., dim)

  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    f("weight", weight, ParamKind::norm_weight);
    f("bias", bias, ParamKind::norm_bias);
  }

  Var weight, bias;  ///< (dim,) each
  double eps;
};

/// y = x / sqrt(mean(x^2) + eps) * weight over the last axis (Zhang & Sennrich
/// 2019). Init: weight 1. No bias.
template <FloatingElement Scalar, class Backend>
class RMSNorm : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;
  static constexpr NormKind kind = NormKind::rms_norm;

  explicit RMSNorm(int64_t dim, double eps = 1e-5)
      : weight(Tensor<Scalar, Backend>::ones({dim}), true), eps(eps) {}

  Var forward(const Var& x) const { return rms_norm(x, weight, eps); }  // (..., dim)

  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    f("weight", weight, ParamKind::norm_weight);
  }

  Var weight;  ///< (dim,)
  double eps;
};

/// LayerNorm or RMSNorm, the kind chosen when it is built (a policy's norm
/// kind): the norm every transformer layer and extra owns. Its parameters and
/// forward pass are exactly those of LayerNorm (weight, bias) or RMSNorm
/// (weight) of that kind. Init: weight 1, bias 0.
template <FloatingElement Scalar, class Backend>
class Normalization : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;

  Normalization(int64_t dim, double eps, NormKind kind)
      : weight(Tensor<Scalar, Backend>::ones({dim}), true), eps(eps), kind(kind) {
    if (kind == NormKind::layer_norm) bias = Var(Tensor<Scalar, Backend>::zeros({dim}), true);
  }

  Var forward(const Var& x) const {  // (..., dim)
    return kind == NormKind::rms_norm ? rms_norm(x, weight, eps) : layer_norm(x, weight, bias, eps);
  }

  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    f("weight", weight, ParamKind::norm_weight);
    if (bias.defined()) f("bias", bias, ParamKind::norm_bias);
  }

  Var weight;  ///< (dim,)
  Var bias;    ///< (dim,), LayerNorm only
  double eps;
  NormKind kind;
};

/// A token table: out[p] = weight[tokens[p]]. Init: N(0, 1) (torch's default).
template <FloatingElement Scalar, class Backend>
class Embedding : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;

  /// A (num, dim) table drawn from N(0, 1) by `gen`. With `padding_idx`
  /// (in [0, num), else Error), that row starts at zero and its lookups add
  /// nothing to its gradient (torch's nn.Embedding(..., padding_idx)).
  Embedding(int64_t num, int64_t dim, Generator& gen, ParamKind kind = ParamKind::token_embedding,
            std::optional<int64_t> padding_idx = std::nullopt)
      : weight(Tensor<Scalar, Backend>::normal({num, dim}, gen), true),
        padding_idx(padding_idx),
        kind_(kind) {
    detail::check(!padding_idx || (*padding_idx >= 0 && *padding_idx < num),
                  "Embedding: padding_idx ", padding_idx.value_or(0), " is outside [0, ", num,
                  "), the rows of the table");
    zero_padding_row();
  }

  /// (...) int64 -> (..., dim). Throws on an index outside [0, num).
  Var forward(const Tensor<int64_t, Backend>& indices) const {
    return embedding(indices, weight, padding_idx);
  }

  /// Sets row padding_idx of the weight to zero (a no-op without one): for
  /// initializers that redraw the whole table.
  void zero_padding_row() {
    if (!padding_idx) return;
    const int64_t dim = weight.size(1);
    fill(Backend{}, weight.data().data() + *padding_idx * dim, dim, Scalar(0));
  }

  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    f("weight", weight, kind_);
  }

  Var weight;                          ///< (num, dim)
  std::optional<int64_t> padding_idx;  ///< the row whose lookups get no gradient, if any

 private:
  ParamKind kind_;
};

/// How positions enter the residual stream.
enum class PositionKind {
  learned,     ///< a trained (max_seq_len, C) table, `embed_positions.weight`
  sinusoidal,  ///< fixed sin/cos features, no parameters
};

/// The fixed sinusoidal position features of fairseq's
/// SinusoidalPositionalEmbedding: for position t and i < C/2,
/// pe[t, i] = sin(t w_i), pe[t, C/2 + i] = cos(t w_i), w_i = 10000^(-i / (C/2 - 1));
/// a zero last column when C is odd; row `zero_row` (fairseq's padding_idx)
/// all zero when it is in [0, length). Returns a (length, C) tensor.
template <FloatingElement Scalar, class Backend>
Tensor<Scalar, Backend> sinusoidal_positions(int64_t length, int64_t dim, int64_t zero_row = -1) {
  const int64_t half = dim / 2;
  std::vector<Scalar> pe(static_cast<size_t>(length * dim), Scalar(0));
  const double step = half > 1 ? std::log(10000.0) / static_cast<double>(half - 1) : 0.0;
  for (int64_t t = 0; t < length; ++t)
    for (int64_t i = 0; i < half; ++i) {
      const double angle = static_cast<double>(t) * std::exp(-step * static_cast<double>(i));
      pe[static_cast<size_t>(t * dim + i)] = static_cast<Scalar>(std::sin(angle));
      pe[static_cast<size_t>(t * dim + half + i)] = static_cast<Scalar>(std::cos(angle));
    }
  if (zero_row >= 0 && zero_row < length) std::fill_n(pe.begin() + zero_row * dim, dim, Scalar(0));
  return Tensor<Scalar, Backend>::from_vector({length, dim}, pe);
}

/// The activation between fc1 and fc2.
enum class Activation {
  gelu,       ///< exact x Phi(x) (torch's default)
  gelu_tanh,  ///< tanh approximation (GPT-2)
  relu,
};

/// act(x) element-wise.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> activate(const Variable<Scalar, Backend>& x, Activation act) {
  switch (act) {
    case Activation::gelu_tanh:
      return gelu(x, GeluApproximation::tanh);
    case Activation::relu:
      return relu(x);
    case Activation::gelu:
      break;
  }
  return gelu(x);
}

/// FFN(z) = fc2(act(fc1(z))), split at the activation so that a policy can
/// normalize the hidden units (NormFormer's ffn_layernorm) in between.
template <FloatingElement Scalar, class Backend>
class FeedForward : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;

  FeedForward(int64_t d_model, int64_t d_ff, Activation act, Generator& gen)
      : fc1(d_model, d_ff, gen), fc2(d_ff, d_model, gen), activation(act) {}

  /// act(fc1(z)): (..., C) -> (..., d_ff). With GELU on a backend that fuses
  /// bias + GELU, fc1's bias is added by the fused node after the GEMM.
  Var hidden(const Var& z) const {
    if constexpr (HasFusedBiasGelu<Backend, Scalar>) {
      if (activation != Activation::relu && fc1.bias.defined())
        return bias_gelu(linear(z, fc1.weight, Var()), fc1.bias, gelu_approximation());
    }
    const Var h = fc1.forward(z);
    switch (activation) {
      case Activation::gelu:
        return gelu(h);
      case Activation::gelu_tanh:
        return gelu(h, GeluApproximation::tanh);
      case Activation::relu:
        return relu(h);
    }
    return h;
  }
  /// norm(act(fc1(z))): (..., C) -> (..., d_ff), the hidden units normalized
  /// (NormFormer's ffn_layernorm). With GELU, a LayerNorm and a backend that
  /// fuses bias + GELU + LayerNorm (bias_gelu_layer_norm), one node after the
  /// GEMM; otherwise norm.forward(hidden(z)). Same function either way.
  template <class Norm>
  Var normalized_hidden(const Var& z, const Norm& norm) const {
    if constexpr (std::is_same_v<Norm, LayerNorm<Scalar, Backend>> &&
                  HasFusedBiasGeluLayerNorm<Backend, Scalar>) {
      if (activation != Activation::relu && fc1.bias.defined())
        return bias_gelu_layer_norm(linear(z, fc1.weight, Var()), fc1.bias, norm.weight, norm.bias,
                                    norm.eps, gelu_approximation());
    }
    return norm.forward(hidden(z));
  }
  /// The same for a norm whose kind is chosen at run time: fused exactly
  /// when it is a LayerNorm.
  Var normalized_hidden(const Var& z, const Normalization<Scalar, Backend>& norm) const {
    if constexpr (HasFusedBiasGeluLayerNorm<Backend, Scalar>) {
      if (norm.kind == NormKind::layer_norm && activation != Activation::relu && fc1.bias.defined())
        return bias_gelu_layer_norm(linear(z, fc1.weight, Var()), fc1.bias, norm.weight, norm.bias,
                                    norm.eps, gelu_approximation());
    }
    return norm.forward(hidden(z));
  }
  /// fc2(h): (..., d_ff) -> (..., C)
  Var output(const Var& h) const { return fc2.forward(h); }
  Var forward(const Var& z) const { return output(hidden(z)); }

  void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
    f("fc1", fc1);
    f("fc2", fc2);
  }

  Linear<Scalar, Backend> fc1, fc2;
  Activation activation;

 private:
  /// The fused kernels' GELU flavour for a GELU activation.
  GeluApproximation gelu_approximation() const {
    return activation == Activation::gelu_tanh ? GeluApproximation::tanh : GeluApproximation::none;
  }
};

}  // namespace v0
}  // namespace normlab
