// normlab/autograd/gradcheck.hpp — checking backward passes by central finite differences.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "normlab/autograd/variable.hpp"

namespace normlab {
inline namespace v0 {

struct GradcheckOptions {
  double eps = 1e-5;         ///< finite-difference step (central: error O(eps^2))
  double tolerance = 1e-6;   ///< largest accepted error (see GradcheckResult::max_error)
  double floor = 1e-3;       ///< error denominators are at least this (gradients near zero)
  uint64_t seed = 20240607;  ///< seed of the random projection of non-scalar outputs
};

struct GradcheckResult {
  /// max over all checked elements of |analytic - numeric| / max(|analytic|, |numeric|, floor).
  double max_error = 0;
  size_t worst_input = 0;            ///< which input holds the worst element
  int64_t worst_index = 0;           ///< its flat index
  double analytic = 0, numeric = 0;  ///< the two values there
  int64_t checked = 0;               ///< number of elements compared
  bool ok = true;

  std::string report() const {
    std::ostringstream os;
    os.precision(10);
    os << "gradcheck " << (ok ? "passed" : "FAILED") << ": max error " << max_error << " over "
       << checked << " elements; worst at input " << worst_input << " index " << worst_index
       << " (analytic " << analytic << ", numeric " << numeric << ")";
    return os.str();
  }
};

/// Compares the backward pass of `f` with central finite differences, in double.
///
/// Requires: `f(inputs)` returns a Variable computed from `inputs` by ops;
/// calling it twice on the same values gives the same result (seeded
/// randomness only). A non-scalar output y is reduced to L = sum(y * r) with a
/// fixed random r, so every output element contributes.
/// Ensures: each input that requires grad is checked element by element;
/// the inputs' values are restored; their grads hold the analytic gradient.
template <class Backend, class F>
GradcheckResult gradcheck(F&& f, std::vector<Variable<double, Backend>> inputs,
                          const GradcheckOptions& opt = {}) {
  using TensorD = Tensor<double, Backend>;
  for (auto& x : inputs) x.clear_grad();
  Variable<double, Backend> out = f(inputs);
  Generator gen(opt.seed);
  const TensorD r = TensorD::uniform(out.shape(), gen, -1.0, 1.0);
  const std::vector<double> rv = r.to_vector();
  out.backward(r);

  auto projected = [&]() {
    NoGradGuard no_grad;
    const std::vector<double> y = f(inputs).data().to_vector();
    double acc = 0;
    for (size_t k = 0; k < y.size(); ++k) acc += y[k] * rv[k];
    return acc;
  };

  GradcheckResult res;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    TensorD data = inputs[i].data();
    std::vector<double> x = data.to_vector();
    const std::vector<double> analytic =
        inputs[i].has_grad() ? inputs[i].grad().to_vector() : std::vector<double>(x.size(), 0.0);
    for (size_t j = 0; j < x.size(); ++j) {
      const double x0 = x[j];
      x[j] = x0 + opt.eps;
      data.copy_from(TensorD::from_vector(data.shape(), x));
      const double up = projected();
      x[j] = x0 - opt.eps;
      data.copy_from(TensorD::from_vector(data.shape(), x));
      const double down = projected();
      x[j] = x0;
      const double numeric = (up - down) / (2 * opt.eps);
      const double err = std::abs(analytic[j] - numeric) /
                         std::max({std::abs(analytic[j]), std::abs(numeric), opt.floor});
      const double e = std::isnan(err) ? INFINITY : err;  // NaN counts as the worst
      if (res.checked++ == 0 || e > res.max_error) {
        res.max_error = e;
        res.worst_input = i;
        res.worst_index = static_cast<int64_t>(j);
        res.analytic = analytic[j];
        res.numeric = numeric;
      }
    }
    data.copy_from(TensorD::from_vector(data.shape(), x));
  }
  res.ok = res.max_error <= opt.tolerance;
  return res;
}

}  // namespace v0
}  // namespace normlab
