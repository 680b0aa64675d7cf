// tests/dist/rank_values.hpp — the values the communicator tests (tests/dist/mpi,
// tests/dist/nccl) reduce: rank r's element i, and the sum in the documented order.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace normlab::dist_testing {

/// Rank r's element i: a mix of signs and magnitudes (2^-20 .. 2^20), so that a
/// float or double sum depends on the order of its terms.
template <class Scalar>
Scalar value(int r, int64_t i) {
  uint64_t h = static_cast<uint64_t>(i) * 0x9E3779B97F4A7C15ull ^
               (static_cast<uint64_t>(r) + 1) * 0xC2B2AE3D27D4EB4Full;
  h ^= h >> 29;
  h *= 0xBF58476D1CE4E5B9ull;
  h ^= h >> 32;
  const double mantissa = static_cast<double>(h % 2001) - 1000.0 + 0.1234567891234567;
  const int exponent = static_cast<int>((h >> 20) % 41) - 20;
  return static_cast<Scalar>(std::ldexp(mantissa, exponent));
}

/// The documented order: s = x_0; s += x_1; ...; s += x_{N-1}; mean = s / N.
template <class Scalar>
Scalar serial(int n_ranks, int64_t i, bool mean) {
  Scalar s = value<Scalar>(0, i);
  for (int r = 1; r < n_ranks; ++r) s += value<Scalar>(r, i);
  return mean ? s / static_cast<Scalar>(n_ranks) : s;
}

/// value(rank, 0 .. n-1).
template <class Scalar>
std::vector<Scalar> own_values(int rank, int64_t n) {
  std::vector<Scalar> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = value<Scalar>(rank, i);
  return v;
}

}  // namespace normlab::dist_testing
