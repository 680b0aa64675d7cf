// tests/cuda/cuda_testing.cuh — helpers of the CUDA tests: skip without a GPU,
// move tensors between backends, compare CUDA results with their oracles.
#pragma once

#include <normlab/cuda.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "testing.hpp"

namespace normlab::testing {

/// Base of every test that needs a GPU: skipped (reported as skipped, not
/// passed) when no CUDA device is visible.
class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (cuda::device_count() == 0) GTEST_SKIP() << "no CUDA device visible";
  }
};

/// The same values on the other backend.
template <class To, class T, class From>
Tensor<T, To> to_backend(const Tensor<T, From>& t) {
  return Tensor<T, To>::from_vector(t.shape(), t.to_vector());
}

/// ||actual - expected|| / ||expected|| <= rel, and element-wise
/// |actual - expected| <= rel * (|expected| + max|expected|): a broad error and a
/// single wrong element both fail; NaN never passes.
template <class A, class E>
void expect_rel_close(const std::vector<A>& actual, const std::vector<E>& expected, double rel,
                      const std::string& what = "") {
  ASSERT_EQ(actual.size(), expected.size()) << what;
  double diff2 = 0, ref2 = 0, ref_max = 0;
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = static_cast<double>(expected[i]), a = static_cast<double>(actual[i]);
    diff2 += (a - e) * (a - e);
    ref2 += e * e;
    ref_max = std::max(ref_max, std::abs(e));
  }
  const double norm_rel = ref2 > 0 ? std::sqrt(diff2 / ref2) : std::sqrt(diff2);
  EXPECT_LE(norm_rel, rel) << what << ": relative error of the whole tensor (" << expected.size()
                           << " elements)";
  int reported = 0;
  for (size_t i = 0; i < expected.size() && reported < 5; ++i) {
    const double e = static_cast<double>(expected[i]), a = static_cast<double>(actual[i]);
    if (!(std::abs(a - e) <= rel * (std::abs(e) + ref_max))) {
      ADD_FAILURE() << what << ": at flat index " << i << " got " << a << ", expected " << e;
      ++reported;
    }
  }
}

/// Tensor overload: same shapes, then expect_rel_close on the values.
template <class T, class B1, class B2>
void expect_tensor_close(const Tensor<T, B1>& actual, const Tensor<T, B2>& expected, double rel,
                         const std::string& what = "") {
  ASSERT_EQ(actual.shape(), expected.shape()) << what;
  expect_rel_close(actual.to_vector(), expected.to_vector(), rel, what);
}

}  // namespace normlab::testing
