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
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar a, Scalar b) const {
    return a + b;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_a(Scalar, Scalar) const {
    return Scalar(1);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_b(Scalar, Scalar) const {
    return Scalar(1);
  }
};
struct Sub {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar a, Scalar b) const {
    return a - b;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_a(Scalar, Scalar) const {
    return Scalar(1);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_b(Scalar, Scalar) const {
    return Scalar(-1);
  }
};
struct Mul {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar a, Scalar b) const {
    return a * b;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_a(Scalar, Scalar b) const {
    return b;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_b(Scalar a, Scalar) const {
    return a;
  }
};
struct Div {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar a, Scalar b) const {
    return a / b;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_a(Scalar, Scalar b) const {
    return Scalar(1) / b;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad_b(Scalar a, Scalar b) const {
    return -a / (b * b);
  }
};

// ---- unary -------------------------------------------------------------
struct Neg {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return -x;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar) const {
    return Scalar(-1);
  }
};
/// y = x + s
struct AddScalar {
  double s;
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return x + Scalar(s);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar) const {
    return Scalar(1);
  }
};
/// y = s * x
struct MulScalar {
  double s;
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return Scalar(s) * x;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar) const {
    return Scalar(s);
  }
};
/// y = s - x
struct RSubScalar {
  double s;
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return Scalar(s) - x;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar) const {
    return Scalar(-1);
  }
};
/// y = s / x
struct RDivScalar {
  double s;
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return Scalar(s) / x;
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar x, Scalar y) const {
    return -y / x;
  }
};
/// y = x^p
struct PowScalar {
  double p;
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return std::pow(x, Scalar(p));
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar x, Scalar) const {
    return Scalar(p) * std::pow(x, Scalar(p - 1));
  }
};
struct Exp {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return std::exp(x);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar y) const {
    return y;
  }
};
struct Log {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return std::log(x);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar x, Scalar) const {
    return Scalar(1) / x;
  }
};
struct Sqrt {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return std::sqrt(x);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar y) const {
    return Scalar(0.5) / y;
  }
};
struct Tanh {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return std::tanh(x);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar, Scalar y) const {
    return Scalar(1) - y * y;
  }
};
/// y = max(x, 0); dy/dx = 1 for x > 0, else 0.
struct Relu {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return x > Scalar(0) ? x : Scalar(0);
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar x, Scalar) const {
    return x > Scalar(0) ? Scalar(1) : Scalar(0);
  }
};
/// Exact GELU: y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)); dy/dx = Phi(x) + x phi(x).
struct GeluErf {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    return Scalar(0.5) * x * (Scalar(1) + std::erf(x * Scalar(0.70710678118654752440)));
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar x, Scalar) const {
    const Scalar cdf = Scalar(0.5) * (Scalar(1) + std::erf(x * Scalar(0.70710678118654752440)));
    const Scalar pdf = std::exp(Scalar(-0.5) * x * x) * Scalar(0.39894228040143267794);
    return cdf + x * pdf;
  }
};
/// Tanh-approximated GELU (Hendrycks & Gimpel 2016):
/// y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3).
struct GeluTanh {
  template <class Scalar>
  NL_HOST_DEVICE Scalar operator()(Scalar x) const {
    const Scalar u = Scalar(0.79788456080286535588) * (x + Scalar(0.044715) * x * x * x);
    return Scalar(0.5) * x * (Scalar(1) + std::tanh(u));
  }
  template <class Scalar>
  NL_HOST_DEVICE Scalar grad(Scalar x, Scalar) const {
    const Scalar u = Scalar(0.79788456080286535588) * (x + Scalar(0.044715) * x * x * x);
    const Scalar t = std::tanh(u);
    const Scalar du = Scalar(0.79788456080286535588) * (Scalar(1) + Scalar(3 * 0.044715) * x * x);
    return Scalar(0.5) * (Scalar(1) + t) + Scalar(0.5) * x * (Scalar(1) - t * t) * du;
  }
};

}  // namespace fn
}  // namespace v0
}  // namespace normlab
