// normlab/backend/optim_args.hpp — the arguments of the fused optimizer
// kernels, shared by every backend (each backend's adamw_step and sgd_step
// take them by value).
#pragma once

#include "normlab/config.hpp"

namespace normlab::inline v0 {

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

}  // namespace normlab::inline v0
