// normlab/core/dtype.hpp — element types a Tensor may hold.
#pragma once

#include <concepts>
#include <cstdint>
#include <type_traits>

#include "normlab/config.hpp"

namespace normlab {
inline namespace v0 {

/// Element types of differentiable tensors.
template <class Scalar>
concept FloatingElement = std::same_as<Scalar, float> || std::same_as<Scalar, double>;

/// Element types a Tensor may hold: float, double, and int64_t for indices
/// (token ids, targets).
template <class Scalar>
concept Element = FloatingElement<Scalar> || std::same_as<Scalar, int64_t>;

/// "float32", "float64" or "int64".
template <Element Scalar>
constexpr const char* dtype_name() {
  if constexpr (std::is_same_v<Scalar, float>)
    return "float32";
  else if constexpr (std::is_same_v<Scalar, double>)
    return "float64";
  else
    return "int64";
}

}  // namespace v0
}  // namespace normlab
