// apps/normlab/experiments/statistics.hpp — the few statistics the compare
// experiments judge their claims by: a least-squares line with a confidence
// interval for its slope (the depth sweep's log-log fit), and the mean
// difference of paired samples with its interval (two policies on the same
// seeds).
//
//   const LineFit f = fit_line(log_depths, log_norms);  // f.slope in [f.lo, f.hi]
//   const MeanInterval d = paired_difference(nf_losses, pre_losses);
#pragma once

#include <cmath>
#include <cstddef>
#include <limits>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {

/// The 97.5% quantile of Student's t distribution with `df` degrees of
/// freedom: the half-width, in standard errors, of a two-sided 95% interval.
/// Exact to three decimals for df <= 30 (the standard table); beyond, the
/// approximation 1.96 + 2.4 / df, within 0.002 of the true value.
/// Requires: df >= 1.
inline double t_quantile_975(int64_t df) {
  detail::check(df >= 1, "t_quantile_975: needs df >= 1, got ", df);
  static constexpr double table[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306,
                                       2.262,  2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120,
                                       2.110,  2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
                                       2.060,  2.056, 2.052, 2.048, 2.045, 2.042};
  if (df <= 30) return table[df - 1];
  return 1.96 + 2.4 / static_cast<double>(df);
}

/// y = intercept + slope x, fitted by least squares, with the slope's
/// standard error and 95% interval [lo, hi] (t with n - 2 degrees of
/// freedom). With n = 2 the line is exact and the interval unknown (NaN).
struct LineFit {
  double slope = std::numeric_limits<double>::quiet_NaN();
  double intercept = std::numeric_limits<double>::quiet_NaN();
  double slope_se = std::numeric_limits<double>::quiet_NaN();
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
  int64_t n = 0;  ///< points fitted
};

/// The least-squares line through the points (x[i], y[i]) whose x and y are
/// both finite (others are left out and not counted in n).
/// Returns a LineFit of NaNs (n as counted) when fewer than two points are
/// left or the x values do not vary.
/// Requires: x.size() == y.size().
inline LineFit fit_line(const std::vector<double>& x, const std::vector<double>& y) {
  detail::check(x.size() == y.size(), "fit_line: needs as many x as y values, got ", x.size(),
                " and ", y.size());
  LineFit f;
  double sx = 0, sy = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) {
      sx += x[i];
      sy += y[i];
      ++f.n;
    }
  if (f.n < 2) return f;
  const double n = static_cast<double>(f.n), mx = sx / n, my = sy / n;
  double sxx = 0, sxy = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) {
      sxx += (x[i] - mx) * (x[i] - mx);
      sxy += (x[i] - mx) * (y[i] - my);
    }
  if (!(sxx > 0)) return f;
  f.slope = sxy / sxx;
  f.intercept = my - f.slope * mx;
  if (f.n < 3) return f;
  double sse = 0;
  for (size_t i = 0; i < x.size(); ++i)
    if (std::isfinite(x[i]) && std::isfinite(y[i])) {
      const double r = y[i] - (f.intercept + f.slope * x[i]);
      sse += r * r;
    }
  f.slope_se = std::sqrt(sse / (n - 2) / sxx);
  const double half = t_quantile_975(f.n - 2) * f.slope_se;
  f.lo = f.slope - half;
  f.hi = f.slope + half;
  return f;
}

/// A mean with its standard error and 95% interval (t with n - 1 degrees of
/// freedom; NaN when n < 2).
struct MeanInterval {
  double mean = std::numeric_limits<double>::quiet_NaN();
  double se = std::numeric_limits<double>::quiet_NaN();
  double lo = std::numeric_limits<double>::quiet_NaN();
  double hi = std::numeric_limits<double>::quiet_NaN();
  int64_t n = 0;
};

/// The mean of the finite values of `v` with its interval.
inline MeanInterval mean_interval(const std::vector<double>& v) {
  MeanInterval m;
  double s = 0;
  for (double x : v)
    if (std::isfinite(x)) {
      s += x;
      ++m.n;
    }
  if (m.n == 0) return m;
  m.mean = s / static_cast<double>(m.n);
  if (m.n < 2) return m;
  double ss = 0;
  for (double x : v)
    if (std::isfinite(x)) ss += (x - m.mean) * (x - m.mean);
  m.se = std::sqrt(ss / static_cast<double>(m.n - 1) / static_cast<double>(m.n));
  const double half = t_quantile_975(m.n - 1) * m.se;
  m.lo = m.mean - half;
  m.hi = m.mean + half;
  return m;
}

/// The mean of a[i] - b[i] over the pairs where both are finite, with its
/// interval: two policies measured on the same seeds (same data order, same
/// initial draws) differ by less noise than two unpaired samples.
/// Requires: a.size() == b.size().
inline MeanInterval paired_difference(const std::vector<double>& a, const std::vector<double>& b) {
  detail::check(a.size() == b.size(),
                "paired_difference: needs as many values in each sample, got ", a.size(), " and ",
                b.size());
  std::vector<double> d;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::isfinite(a[i]) && std::isfinite(b[i])) d.push_back(a[i] - b[i]);
  return mean_interval(d);
}

}  // namespace v0
}  // namespace normlab
