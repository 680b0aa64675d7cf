// normlab/backend/functors.hpp — element-wise functions and their derivatives,
// shared by every backend (NL_HOST_DEVICE, so CUDA kernels can use them too).
//
// A unary functor F provides  y = F(x)  and  F.grad(x, y) = dy/dx.
// A binary functor F provides c = F(a, b), F.grad_a(a, b) = dc/da and
// F.grad_b(a, b) = dc/db.
#pragma once

#include <cmath>

#include "normlab/config.hpp"

namespace normlab {
inline namespace v0 {
namespace fn {

// ---- binary ------------------------------------------------------------
struct Add {
  template <class T>
  NL_HOST_DEVICE T operator()(T a, T b) const {
    return a + b;
  }
  template <class T>
  NL_HOST_DEVICE T grad_a(T, T) const {
    return T(1);
  }
  template <class T>
  NL_HOST_DEVICE T grad_b(T, T) const {
    return T(1);
  }
};
struct Sub {
  template <class T>
  NL_HOST_DEVICE T operator()(T a, T b) const {
    return a - b;
  }
  template <class T>
  NL_HOST_DEVICE T grad_a(T, T) const {
    return T(1);
  }
  template <class T>
  NL_HOST_DEVICE T grad_b(T, T) const {
    return T(-1);
  }
};
struct Mul {
  template <class T>
  NL_HOST_DEVICE T operator()(T a, T b) const {
    return a * b;
  }
  template <class T>
  NL_HOST_DEVICE T grad_a(T, T b) const {
    return b;
  }
  template <class T>
  NL_HOST_DEVICE T grad_b(T a, T) const {
    return a;
  }
};
struct Div {
  template <class T>
  NL_HOST_DEVICE T operator()(T a, T b) const {
    return a / b;
  }
  template <class T>
  NL_HOST_DEVICE T grad_a(T, T b) const {
    return T(1) / b;
  }
  template <class T>
  NL_HOST_DEVICE T grad_b(T a, T b) const {
    return -a / (b * b);
  }
};

// ---- unary -------------------------------------------------------------
struct Neg {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return -x;
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T) const {
    return T(-1);
  }
};
/// y = x + s
struct AddScalar {
  double s;
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return x + T(s);
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T) const {
    return T(1);
  }
};
/// y = s * x
struct MulScalar {
  double s;
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return T(s) * x;
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T) const {
    return T(s);
  }
};
/// y = s - x
struct RSubScalar {
  double s;
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return T(s) - x;
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T) const {
    return T(-1);
  }
};
/// y = s / x
struct RDivScalar {
  double s;
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return T(s) / x;
  }
  template <class T>
  NL_HOST_DEVICE T grad(T x, T y) const {
    return -y / x;
  }
};
/// y = x^p
struct PowScalar {
  double p;
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return std::pow(x, T(p));
  }
  template <class T>
  NL_HOST_DEVICE T grad(T x, T) const {
    return T(p) * std::pow(x, T(p - 1));
  }
};
struct Exp {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return std::exp(x);
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T y) const {
    return y;
  }
};
struct Log {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return std::log(x);
  }
  template <class T>
  NL_HOST_DEVICE T grad(T x, T) const {
    return T(1) / x;
  }
};
struct Sqrt {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return std::sqrt(x);
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T y) const {
    return T(0.5) / y;
  }
};
struct Tanh {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return std::tanh(x);
  }
  template <class T>
  NL_HOST_DEVICE T grad(T, T y) const {
    return T(1) - y * y;
  }
};
/// y = max(x, 0); dy/dx = 1 for x > 0, else 0.
struct Relu {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return x > T(0) ? x : T(0);
  }
  template <class T>
  NL_HOST_DEVICE T grad(T x, T) const {
    return x > T(0) ? T(1) : T(0);
  }
};
/// Exact GELU: y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); dy/dx = Phi(x) + x phi(x).
struct GeluErf {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));
  }
  template <class T>
  NL_HOST_DEVICE T grad(T x, T) const {
    const T cdf = T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440)));
    const T pdf = std::exp(T(-0.5) * x * x) * T(0.39894228040143267794);
    return cdf + x * pdf;
  }
};
/// Tanh-approximated GELU (Hendrycks & Gimpel 2016):
/// y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
struct GeluTanh {
  template <class T>
  NL_HOST_DEVICE T operator()(T x) const {
    const T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    return T(0.5) * x * (T(1) + std::tanh(u));
  }
  template <class T>
  NL_HOST_DEVICE T grad(T x, T) const {
    const T u = T(0.79788456080286535588) * (x + T(0.044715) * x * x * x);
    const T t = std::tanh(u);
    const T du = T(0.79788456080286535588) * (T(1) + T(3 * 0.044715) * x * x);
    return T(0.5) * (T(1) + t) + T(0.5) * x * (T(1) - t * t) * du;
  }
};

}  // namespace fn
}  // namespace v0
}  // namespace normlab
