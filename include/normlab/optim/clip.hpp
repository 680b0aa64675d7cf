// normlab/optim/clip.hpp — the global gradient norm and clipping by it, as
// torch.nn.utils.clip_grad_norm_ (norm_type 2).
//
//   norm = sqrt(sum over parameters p, elements i of grad(p)_i^2)
//   coef = max_norm / (norm + 1e-6)
//   grad(p) <- grad(p) * coef   for every p, when coef < 1
//
// The sum runs in double, parameter by parameter in order, each parameter's
// sum over fixed-size chunks (backend sum_of_squares): the norm is the same
// for any thread count. PyTorch computes the norm in the gradients' dtype;
// for double gradients the two agree to rounding.
#pragma once

#include <cmath>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/backend.hpp"
#include "normlab/core/error.hpp"
#include "normlab/modules/module.hpp"

namespace normlab {
inline namespace v0 {

/// The L2 norm of all gradients of `params` taken together, as if
/// concatenated; parameters without a gradient count as zero.
template <FloatingElement Scalar, class Backend>
double grad_norm(const std::vector<Variable<Scalar, Backend>>& params) {
  double sum = 0;
  for (const auto& p : params)
    if (p.has_grad() && p.grad().numel())
      sum += sum_of_squares(Backend{}, p.grad().data(), p.numel());
  return std::sqrt(sum);
}

/// Scales the gradients of `params` so that their global norm is at most
/// about `max_norm`, and returns the norm before clipping.
///
/// Requires: max_norm finite and > 0 (throws Error naming the value).
/// Ensures: when max_norm / (norm + 1e-6) < 1 every gradient is multiplied by
/// that factor (torch's clip_coef, clamped to 1); otherwise, and whenever the
/// norm is not finite, the gradients are unchanged — unlike torch, which
/// multiplies by 0 or NaN then — so a trainer can see the inf/NaN norm and
/// skip the step.
template <FloatingElement Scalar, class Backend>
double clip_grad_norm(const std::vector<Variable<Scalar, Backend>>& params, double max_norm) {
  detail::check(std::isfinite(max_norm) && max_norm > 0,
                "clip_grad_norm: max_norm must be finite and > 0, got ", max_norm);
  const double norm = grad_norm(params);
  const double coef = max_norm / (norm + 1e-6);
  if (std::isfinite(norm) && coef < 1)
    for (const auto& p : params)
      if (p.has_grad() && p.grad().numel())
        scale_in_place(Backend{}, p.grad().data(), p.grad().numel(), static_cast<Scalar>(coef));
  return norm;
}

/// grad_norm over named parameters (e.g. Module::named_parameters(),
/// Optimizer::named_parameters()).
template <FloatingElement Scalar, class Backend>
double grad_norm(const std::vector<NamedParameter<Scalar, Backend>>& params) {
  std::vector<Variable<Scalar, Backend>> v;
  for (const auto& p : params) v.push_back(p.value);
  return grad_norm(v);
}

/// clip_grad_norm over named parameters.
template <FloatingElement Scalar, class Backend>
double clip_grad_norm(const std::vector<NamedParameter<Scalar, Backend>>& params, double max_norm) {
  std::vector<Variable<Scalar, Backend>> v;
  for (const auto& p : params) v.push_back(p.value);
  return clip_grad_norm(v, max_norm);
}

}  // namespace v0
}  // namespace normlab
