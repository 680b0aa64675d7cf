// normlab/backend/optim_args.hpp — the arguments of the fused optimizer
// kernels and the update of one element, shared by every backend (each
// backend's adamw_step and sgd_step take the arguments by value and apply
// the element update in its own loop or kernel).
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/config.hpp"

namespace normlab {
inline namespace v0 {

/// One Adam / AdamW update of a tensor, given to `adamw_step`. The optimizer
/// fills it per parameter (the bias corrections depend on its step count t).
/// Backend-neutral: every backend's adamw_step takes this struct by value.
struct AdamWStepArgs {
  double lr = 0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 0;      ///< decoupled (AdamW): p <- p * (1 - lr * weight_decay)
  double l2 = 0;                ///< coupled (Adam): g <- g + l2 * p before the moments
  double bias_correction1 = 1;  ///< 1 - beta1^t
  double bias_correction2 = 1;  ///< 1 - beta2^t
};

/// One SGD update of a tensor, given to `sgd_step` (backend-neutral, by value).
struct SgdStepArgs {
  double lr = 0;
  double momentum = 0;
  double dampening = 0;
  double weight_decay = 0;  ///< coupled: g <- g + weight_decay * p
  bool nesterov = false;
  bool first_step = false;  ///< the momentum buffer holds no history yet: buf <- g
};

/// The Adam / AdamW update of one element, in the order PyTorch 1.13's
/// single-tensor implementation applies it (torch/optim/adamw.py, adam.py):
///
///   g  = grad + l2 * p                           (Adam's L2 term; l2 = 0 for AdamW)
///   p  = p * (1 - lr * weight_decay)             (AdamW's decoupled decay)
///   m  = beta1 * m + (1 - beta1) * g
///   v  = beta2 * v + (1 - beta2) * g * g
///   p  = p - (lr / bias_correction1) * m / (sqrt(v) / sqrt(bias_correction2) + eps)
///
/// The hyper-parameters are cast to Scalar once, when it is built on the host (as
/// PyTorch casts its Python-float scalars to the tensor's type); applying it
/// runs on the host and in CUDA kernels alike. The coupled term reads p
/// before the decoupled decay.
template <class Scalar>
struct AdamWElementUpdate {
  Scalar decay, l2, beta1, beta2, one_minus_beta1, one_minus_beta2, neg_step_size,
      bias_correction2_sqrt, eps;
  bool coupled, decoupled;

  explicit AdamWElementUpdate(const AdamWStepArgs& a)
      : decay(static_cast<Scalar>(1 - a.lr * a.weight_decay)),
        l2(static_cast<Scalar>(a.l2)),
        beta1(static_cast<Scalar>(a.beta1)),
        beta2(static_cast<Scalar>(a.beta2)),
        one_minus_beta1(static_cast<Scalar>(1 - a.beta1)),
        one_minus_beta2(static_cast<Scalar>(1 - a.beta2)),
        neg_step_size(static_cast<Scalar>(-(a.lr / a.bias_correction1))),
        bias_correction2_sqrt(static_cast<Scalar>(std::sqrt(a.bias_correction2))),
        eps(static_cast<Scalar>(a.eps)),
        coupled(a.l2 != 0),
        decoupled(a.weight_decay != 0) {}

  /// Updates element i of param, m and v from grad.
  NL_HOST_DEVICE void operator()(Scalar* param, const Scalar* grad, Scalar* m, Scalar* v,
                                 int64_t i) const {
    Scalar p = param[i];
    const Scalar g = coupled ? grad[i] + l2 * p : grad[i];
    if (decoupled) p *= decay;
    const Scalar mi = m[i] * beta1 + one_minus_beta1 * g;
    const Scalar vi = v[i] * beta2 + one_minus_beta2 * g * g;
    m[i] = mi;
    v[i] = vi;
    const Scalar denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    param[i] = p + neg_step_size * mi / denom;
  }
};

/// The SGD update of one element (torch.optim.SGD's order):
///
///   g   = grad + weight_decay * p
///   buf = first_step ? g : momentum * buf + (1 - dampening) * g   (when momentum != 0)
///   g   = nesterov ? g + momentum * buf : buf                     (when momentum != 0)
///   p   = p - lr * g
///
/// Built on the host (hyper-parameters cast to Scalar once), applied on the host
/// or in a CUDA kernel; `buffer` may be null when momentum is 0.
template <class Scalar>
struct SgdElementUpdate {
  Scalar wd, momentum, one_minus_dampening, neg_lr;
  bool decay, use_momentum, nesterov, first_step;

  explicit SgdElementUpdate(const SgdStepArgs& a)
      : wd(static_cast<Scalar>(a.weight_decay)),
        momentum(static_cast<Scalar>(a.momentum)),
        one_minus_dampening(static_cast<Scalar>(1 - a.dampening)),
        neg_lr(static_cast<Scalar>(-a.lr)),
        decay(a.weight_decay != 0),
        use_momentum(a.momentum != 0),
        nesterov(a.nesterov),
        first_step(a.first_step) {}

  /// Updates element i of param (and of buffer, with momentum) from grad.
  NL_HOST_DEVICE void operator()(Scalar* param, const Scalar* grad, Scalar* buffer,
                                 int64_t i) const {
    Scalar g = decay ? grad[i] + wd * param[i] : grad[i];
    if (use_momentum) {
      const Scalar buf = first_step ? g : buffer[i] * momentum + one_minus_dampening * g;
      buffer[i] = buf;
      g = nesterov ? g + momentum * buf : buf;
    }
    param[i] = param[i] + neg_lr * g;
  }
};

}  // namespace v0
}  // namespace normlab
