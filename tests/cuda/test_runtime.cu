// The CUDA runtime layer: error mapping, the no-GPU message, allocation
// failures, copies, fills and Philox parity with the CPU, dropout masks.
#include <cstring>
#include <limits>

#include "cuda_testing.cuh"

namespace normlab::testing {
namespace {

// ---- without a GPU too -----------------------------------------------------

TEST(CudaErrors, RuntimeErrorNamesCallFileLineAndCudaError) {
  expect_error(
      [] {
        normlab::detail::cuda_check(cudaErrorInvalidValue, "cudaMemcpy(dst, src, n)", "x.cu", 42);
      },
      {"cuda: ", "cudaMemcpy(dst, src, n)", "x.cu:42", "cudaErrorInvalidValue"});
}

TEST(CudaErrors, CublasErrorNamesCallFileLineAndStatus) {
  expect_error(
      [] {
        normlab::detail::cublas_check(CUBLAS_STATUS_INVALID_VALUE, "cublasSgemm(h, ...)", "y.cu",
                                      7);
      },
      {"cuda: ", "cublasSgemm(h, ...)", "y.cu:7", "CUBLAS_STATUS_INVALID_VALUE"});
}

TEST(CudaErrors, SuccessDoesNotThrow) {
  EXPECT_NO_THROW(normlab::detail::cuda_check(cudaSuccess, "cudaFree(p)", "z.cu", 1));
  EXPECT_NO_THROW(
      normlab::detail::cublas_check(CUBLAS_STATUS_SUCCESS, "cublasCreate(&h)", "z.cu", 2));
}

TEST(CudaErrors, WithoutDeviceATensorAllocationSaysSo) {
  if (cuda::device_count() > 0) GTEST_SKIP() << "a CUDA device is visible";
  expect_error([] { Tensor<float, Cuda> t(Shape{4}); }, {"no CUDA device is visible"});
}

// ---- on a GPU ----------------------------------------------------------------

class CudaRuntime : public CudaTest {};

TEST_F(CudaRuntime, AllocationFailureNamesTheRequestedSize) {
  const size_t huge = size_t{1} << 50;  // 1 PiB
  expect_error([&] { (void)allocate_bytes(Cuda{}, huge); },
               {"cannot allocate 1125899906842624 bytes", "cudaMallocAsync"});
  // Not sticky: the next allocation and kernel work.
  const auto t = Tensor<float, Cuda>::full({5}, 2.5f);
  EXPECT_EQ(t.to_vector(), (std::vector<float>(5, 2.5f)));
}

TEST_F(CudaRuntime, LaunchErrorsBecomeErrors) {
  // A kernel launch with an impossible configuration (0 threads) is reported.
  expect_error(
      [] {
        cuda::detail::sum_rows_kernel<float>
            <<<1, 0, 0, cuda::context().stream()>>>(nullptr, nullptr, 0, 0, 1.f);
        NL_CUDA_LAUNCH_CHECK("sum_rows_kernel");
      },
      {"launch of sum_rows_kernel", "cudaErrorInvalidConfiguration"});
  const auto ones = Tensor<float, Cuda>::full({3}, 1.f);
  EXPECT_EQ(ones.to_vector(), (std::vector<float>(3, 1.f)));
}

TEST_F(CudaRuntime, CopiesRoundTripEveryElementType) {
  const std::vector<float> f = {1.5f, -2.f, 3.25f, 1e-30f};
  const std::vector<double> d = {1.0 / 3, -1e300, 7.0};
  const std::vector<int64_t> i = {int64_t{1} << 40, -3, 0, 9};
  using TF = Tensor<float, Cuda>;
  using TD = Tensor<double, Cuda>;
  using TI = Tensor<int64_t, Cuda>;
  EXPECT_EQ(TF::from_vector(Shape{4}, f).to_vector(), f);
  EXPECT_EQ(TD::from_vector(Shape{3}, d).clone().to_vector(), d);
  EXPECT_EQ(TI::from_vector(Shape{2, 2}, i).clone().to_vector(), i);
  const auto t = TI::full(Shape{3}, -7);
  EXPECT_EQ(t.to_vector(), (std::vector<int64_t>(3, -7)));
  EXPECT_EQ(TF::scalar(4.f).item(), 4.f);
}

TEST_F(CudaRuntime, HostReadsWaitForQueuedKernels) {
  // Many queued kernels, then an immediate host read: the read must see them all.
  const int64_t n = int64_t{1} << 22;
  auto t = Tensor<float, Cuda>::zeros({n});
  const auto one = Tensor<float, Cuda>::ones({n});
  for (int k = 0; k < 50; ++k) accumulate(Cuda{}, t.data(), one.data(), n, 1.f);
  const std::vector<float> v = t.to_vector();
  EXPECT_EQ(v.front(), 50.f);
  EXPECT_EQ(v[static_cast<size_t>(n / 2) + 3], 50.f);
  EXPECT_EQ(v.back(), 50.f);
  EXPECT_EQ(sum_of_squares(Cuda{}, t.data(), n), 2500.0 * static_cast<double>(n));
}

template <class T>
void expect_fills_match_cpu() {
  // Sizes that are not multiples of a Philox block, from a generator that has
  // already drawn (first_block > 0).
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1000003}}) {
    Generator gc(99), gg(99);
    (void)Tensor<T, Cpu>::uniform({5}, gc);
    (void)Tensor<T, Cuda>::uniform({5}, gg);
    const auto uc = Tensor<T, Cpu>::uniform({n}, gc, T(-2), T(3)).to_vector();
    const auto ug = Tensor<T, Cuda>::uniform({n}, gg, T(-2), T(3)).to_vector();
    EXPECT_EQ(0, std::memcmp(uc.data(), ug.data(), uc.size() * sizeof(T)))
        << "uniform fill of " << n << " " << dtype_name<T>() << " differs from the CPU's";
    const auto nc = Tensor<T, Cpu>::normal({n}, gc, T(0.5), T(2)).to_vector();
    const auto ng = Tensor<T, Cuda>::normal({n}, gg, T(0.5), T(2)).to_vector();
    // log/cos/sin in double may differ by an ulp or two between the host's
    // libm and the device's; the value is then rounded once to T, so floats
    // almost always agree exactly.
    const double tol = sizeof(T) == 4 ? 4 * std::numeric_limits<float>::epsilon() : 1e-13;
    int64_t differ = 0;
    for (size_t i = 0; i < nc.size(); ++i) {
      if (nc[i] != ng[i]) ++differ;
      ASSERT_NEAR(static_cast<double>(ng[i]), static_cast<double>(nc[i]),
                  tol * std::max(1.0, std::abs(static_cast<double>(nc[i]))))
          << "normal fill element " << i;
    }
    if (sizeof(T) == 4) EXPECT_LE(differ, n / 100000 + 1) << "float normals that differ";
    EXPECT_EQ(gc.offset(), gg.offset());
  }
}

TEST_F(CudaRuntime, PhiloxFillsMatchTheCpuFloat) {
  expect_fills_match_cpu<float>();
}
TEST_F(CudaRuntime, PhiloxFillsMatchTheCpuDouble) {
  expect_fills_match_cpu<double>();
}

TEST_F(CudaRuntime, DropoutMaskMatchesTheCpuBitForBit) {
  for (double p : {0.0, 0.1, 0.5, 1.0}) {
    const int64_t n = 100001;
    Tensor<float, Cpu> mc(Shape{n});
    Tensor<float, Cuda> mg(Shape{n});
    dropout_mask(Cpu{}, mc.data(), n, 1234, 17, p);
    dropout_mask(Cuda{}, mg.data(), n, 1234, 17, p);
    EXPECT_EQ(mc.to_vector(), mg.to_vector()) << "p = " << p;
    Tensor<double, Cpu> dc(Shape{n});
    Tensor<double, Cuda> dg(Shape{n});
    dropout_mask(Cpu{}, dc.data(), n, 5, 0, p);
    dropout_mask(Cuda{}, dg.data(), n, 5, 0, p);
    EXPECT_EQ(dc.to_vector(), dg.to_vector()) << "p = " << p;
  }
}

TEST_F(CudaRuntime, FreedMemoryIsReusedWithoutGrowth) {
  // Stream-ordered frees return blocks to the pool; a loop of equal-sized
  // tensors must not grow the device's used memory.
  (void)Tensor<float, Cuda>::zeros({1 << 20});
  cuda::synchronize();
  size_t free0 = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free0, &total), cudaSuccess);
  for (int k = 0; k < 200; ++k) (void)Tensor<float, Cuda>::zeros({1 << 20});
  cuda::synchronize();
  size_t free1 = 0;
  ASSERT_EQ(cudaMemGetInfo(&free1, &total), cudaSuccess);
  EXPECT_LE(free0 - std::min(free0, free1), size_t{64} << 20) << "device memory grew";
}

}  // namespace
}  // namespace normlab::testing
