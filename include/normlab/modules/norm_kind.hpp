// normlab/modules/norm_kind.hpp — which normalization a norm computes.
//
// A building block's vocabulary: Normalization (modules/layers.hpp) is built
// with a kind, and a policy (policy/policy.hpp) chooses the kind of every norm
// of a model.
#pragma once

namespace normlab {
inline namespace v0 {

/// Which normalization a norm computes.
enum class NormKind {
  layer_norm,  ///< (x - mean) / sqrt(var + eps) * weight + bias
  rms_norm,    ///< x / sqrt(mean(x^2) + eps) * weight (no bias)
};

inline const char* to_string(NormKind k) {
  return k == NormKind::rms_norm ? "rms_norm" : "layer_norm";
}

}  // namespace v0
}  // namespace normlab
