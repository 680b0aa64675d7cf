// cpu::gemm in float and double: every transpose, edge tiles, strides, alpha
// and beta, depths past one packed block, and bit-equal results for every
// thread count. Float products run the packed kernel of the CPU's best path
// (backend/cpu/kernel_path.hpp: AVX-512, AVX2 or Eigen's portable one); the
// CpuKernelPaths tests run the float cases again on every path this CPU
// has, and hold the two packed kernels bit-equal.
#include <cmath>
#include <limits>

#include "testing.hpp"

namespace normlab::testing {
namespace {

/// One product's operands, stored row-major with padded rows, filled with
/// values of both signs; C's padding holds a sentinel that must survive.
template <class T>
struct GemmCase {
  bool ta, tb;
  int64_t M, N, K, lda, ldb, ldc;
  std::vector<T> a, b, c;
  static constexpr T kSentinel = T(12345);

  /// lda is op(A)'s stored row length + 3 unless given.
  GemmCase(bool ta_, bool tb_, int64_t M_, int64_t N_, int64_t K_, uint64_t seed, int64_t lda_ = 0)
      : ta(ta_), tb(tb_), M(M_), N(N_), K(K_) {
    lda = lda_ > 0 ? lda_ : (ta ? M : K) + 3;
    ldb = (tb ? K : N) + 5;
    ldc = N + 7;
    Generator gen(seed);
    const auto fill = [&](std::vector<T>& v, int64_t rows, int64_t cols, int64_t ld) {
      const auto values = TensorD::normal({rows, cols}, gen).to_vector();
      v.assign(static_cast<size_t>(rows * ld), kSentinel);
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < cols; ++q)
          v[static_cast<size_t>(r * ld + q)] =
              static_cast<T>(values[static_cast<size_t>(r * cols + q)]);
    };
    fill(a, ta ? K : M, ta ? M : K, lda);
    fill(b, tb ? N : K, tb ? K : N, ldb);
    fill(c, M, N, ldc);
  }

  T at_a(int64_t i, int64_t k) const {
    return a[static_cast<size_t>(ta ? k * lda + i : i * lda + k)];
  }
  T at_b(int64_t k, int64_t j) const {
    return b[static_cast<size_t>(tb ? j * ldb + k : k * ldb + j)];
  }

  /// Runs cpu::gemm on a copy of C and returns it.
  std::vector<T> run(T alpha, T beta, std::vector<T> out) const {
    cpu::gemm(Cpu{}, ta, tb, M, N, K, alpha, a.data(), lda, b.data(), ldb, beta, out.data(), ldc);
    return out;
  }

  /// Checks `out` against alpha * op(A) op(B) + beta * c0 in double: each
  /// element within rel * (sum of the absolute terms), padding untouched.
  void expect_matches(const std::vector<T>& out, T alpha, T beta, const std::vector<T>& c0,
                      double rel, const std::string& what) const {
    int64_t bad = 0;
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        double sum = 0, magnitude = 0;
        for (int64_t k = 0; k < K; ++k) {
          const double term = double(at_a(i, k)) * double(at_b(k, j));
          sum += term;
          magnitude += std::abs(term);
        }
        const double before =
            beta == T(0) ? 0.0 : double(beta) * double(c0[static_cast<size_t>(i * ldc + j)]);
        const double want = double(alpha) * sum + before;
        const double scale = std::abs(double(alpha)) * magnitude + std::abs(before);
        const double got = double(out[static_cast<size_t>(i * ldc + j)]);
        if (!(std::abs(got - want) <= rel * scale + 1e-30) && bad++ < 5)
          ADD_FAILURE() << what << ": C(" << i << ", " << j << ") = " << got << ", expected "
                        << want;
      }
      for (int64_t j = N; j < ldc && i < M - 1; ++j)
        if (out[static_cast<size_t>(i * ldc + j)] != kSentinel && bad++ < 5)
          ADD_FAILURE() << what << ": padding C(" << i << ", " << j << ") was written";
    }
    EXPECT_EQ(bad, 0) << what;
  }
};

std::string case_name(bool ta, bool tb, int64_t M, int64_t N, int64_t K) {
  return "op(A)" + std::string(ta ? "^T" : "") + " op(B)" + (tb ? "^T" : "") + " M " +
         std::to_string(M) + " N " + std::to_string(N) + " K " + std::to_string(K);
}

// Sizes around the kernel's tiles (12 rows, 32 columns, depth blocks of at
// most 512: one block up to K 512, two of 272 and 241 at K 513, three of
// 512, 512 and 76 at K 1100).
const std::vector<std::array<int64_t, 3>> kShapes = {
    {1, 1, 1},     {12, 32, 1},    {13, 33, 7},  {11, 16, 256}, {25, 65, 257},
    {50, 31, 300}, {97, 130, 513}, {2, 200, 40}, {200, 3, 64},  {15, 47, 1100}};

template <class T>
void every_transpose_and_edge_shape(double rel) {
  uint64_t seed = 1;
  for (const auto& [M, N, K] : kShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const GemmCase<T> g(ta, tb, M, N, K, seed++);
        const std::string name = case_name(ta, tb, M, N, K);
        g.expect_matches(g.run(T(1), T(0), g.c), T(1), T(0), g.c, rel, name + " alpha 1 beta 0");
        g.expect_matches(g.run(T(0.5), T(1), g.c), T(0.5), T(1), g.c, rel,
                         name + " alpha 0.5 beta 1");
        g.expect_matches(g.run(T(-2), T(-0.75), g.c), T(-2), T(-0.75), g.c, rel,
                         name + " alpha -2 beta -0.75");
      }
}

TEST(CpuGemm, FloatEveryTransposeAndEdgeShapeMatchesDouble) {
  if (cpu::sgemm_uses_avx512_kernel()) RecordProperty("kernel", "normlab AVX-512");
  every_transpose_and_edge_shape<float>(1e-5);
}

TEST(CpuGemm, DoubleEveryTransposeAndEdgeShapeMatchesDouble) {
  every_transpose_and_edge_shape<double>(1e-13);
}

TEST(CpuGemm, BetaZeroOverwritesNaN) {
  const GemmCase<float> g(false, true, 37, 45, 70, 3);
  std::vector<float> nan_c = g.c;
  for (int64_t i = 0; i < g.M; ++i)
    for (int64_t j = 0; j < g.N; ++j)
      nan_c[static_cast<size_t>(i * g.ldc + j)] = std::numeric_limits<float>::quiet_NaN();
  const auto out = g.run(1.5f, 0.0f, nan_c);
  g.expect_matches(out, 1.5f, 0.0f, nan_c, 1e-5, "beta 0 over NaN");
}

TEST(CpuGemm, DepthPastThePackedLimitSumsEveryBlock) {
  // Past cpu::detail::kSgemmPackedBlocks depth blocks the kernel packs B in
  // several passes; beta must apply once, at the first.
  const int64_t K = 4096 + 300;
  for (bool ta : {false, true}) {
    const GemmCase<float> g(ta, false, 14, 40, K, 4);
    g.expect_matches(g.run(1.0f, 0.5f, g.c), 1.0f, 0.5f, g.c, 1e-5,
                     case_name(ta, false, 14, 40, K));
  }
}

TEST(CpuGemm, RowStridesOfWholePagesAreReadInPlaceOrPacked) {
  // An untransposed A whose row stride is a multiple of 4 KiB (1024 floats)
  // is read in place for at most three column chunks of kSgemmNc and packed
  // beyond (cpu::detail::sgemm_reads_a_in_place): both paths, edge tiles
  // included.
  const int64_t K = 1000, lda = 1024;
  for (const int64_t N : {int64_t{100}, 3 * cpu::detail::kSgemmNc + 40})
    for (bool tb : {false, true}) {
      const GemmCase<float> g(false, tb, 37, N, K, 9, lda);
      g.expect_matches(g.run(0.5f, 1.0f, g.c), 0.5f, 1.0f, g.c, 1e-5,
                       case_name(false, tb, 37, N, K) + " lda 1024");
    }
}

/// Checks cpu::gemm_bias on g against the product plus the bias in double,
/// over a C full of NaN (only written), and against fill-then-gemm bit for bit.
template <class T>
void expect_gemm_bias_matches(const GemmCase<T>& g, T alpha, uint64_t seed) {
  Generator gen(seed);
  const auto values = TensorD::normal({g.N}, gen).to_vector();
  const std::vector<T> bias(values.begin(), values.end());
  std::vector<T> out = g.c, rows_of_bias = g.c;
  for (int64_t i = 0; i < g.M; ++i)
    for (int64_t j = 0; j < g.N; ++j) {
      out[static_cast<size_t>(i * g.ldc + j)] = std::numeric_limits<T>::quiet_NaN();
      rows_of_bias[static_cast<size_t>(i * g.ldc + j)] = bias[static_cast<size_t>(j)];
    }
  cpu::gemm_bias(Cpu{}, g.ta, g.tb, g.M, g.N, g.K, alpha, g.a.data(), g.lda, g.b.data(), g.ldb,
                 bias.data(), out.data(), g.ldc);
  const std::string name = case_name(g.ta, g.tb, g.M, g.N, g.K) + " gemm_bias";
  g.expect_matches(out, alpha, T(1), rows_of_bias, std::is_same_v<T, float> ? 1e-5 : 1e-13, name);
  EXPECT_EQ(out, g.run(alpha, T(1), rows_of_bias)) << name << " vs fill then gemm";
}

TEST(CpuGemm, GemmBiasAddsTheBiasToEveryRowAndNeverReadsC) {
  uint64_t seed = 40;
  for (const auto& [M, N, K] : kShapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        expect_gemm_bias_matches(GemmCase<float>(ta, tb, M, N, K, seed), 0.5f, seed);
        expect_gemm_bias_matches(GemmCase<double>(ta, tb, M, N, K, seed), 0.5, seed);
        ++seed;
      }
}

TEST(CpuGemm, ThreadCountDoesNotChangeABit) {
  // Large enough (M N K >= kGemmParallelWork) for the rows to be split.
  const int64_t M = 301, N = 262, K = 600;
  ASSERT_GE(M * N * K, cpu::kGemmParallelWork);
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      const GemmCase<float> g(ta, tb, M, N, K, 5);
      std::vector<float> one, two;
      {
        const ThreadCountGuard threads(1);
        one = g.run(0.5f, 1.0f, g.c);
      }
      {
        const ThreadCountGuard threads(2);
        two = g.run(0.5f, 1.0f, g.c);
      }
      EXPECT_EQ(one, two) << case_name(ta, tb, M, N, K);
      g.expect_matches(two, 0.5f, 1.0f, g.c, 1e-5, case_name(ta, tb, M, N, K) + " 2 threads");
    }
}

TEST(CpuGemm, StridedBatchedFloatMatchesEachProduct) {
  // Batches spread over threads: each product runs on one thread, with that
  // thread's packing buffers.
  const ThreadCountGuard threads(2);
  const int64_t M = 70, N = 50, K = 64, batch = 6;
  const GemmCase<float> g(false, true, M * batch, N * batch, K, 6);  // room for every member
  std::vector<float> out = g.c;
  const int64_t stride_a = M * g.lda, stride_b = N * g.ldb, stride_c = M * g.ldc + N;
  cpu::gemm_strided_batched(Cpu{}, false, true, M, N, K, 1.0f, g.a.data(), g.lda, stride_a,
                            g.b.data(), g.ldb, stride_b, 0.0f, out.data(), g.ldc, stride_c, batch);
  for (int64_t p = 0; p < batch; ++p)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double want = 0;
        for (int64_t k = 0; k < K; ++k)
          want += double(g.at_a(p * M + i, k)) * double(g.at_b(k, p * N + j));
        const double got = out[static_cast<size_t>(p * stride_c + i * g.ldc + j)];
        ASSERT_NEAR(got, want, 1e-4) << "member " << p << " C(" << i << ", " << j << ")";
      }
}

TEST(CpuKernelPaths, EveryPathMatchesDoubleOnEveryShapeStrideAndBias) {
  for (const cpu::CpuKernels path : available_kernel_paths()) {
    const KernelPathGuard guard(path);
    ASSERT_EQ(cpu::cpu_kernels(), path);
    SCOPED_TRACE(std::string("path ") + cpu::to_string(path));
    every_transpose_and_edge_shape<float>(1e-5);
    for (bool ta : {false, true}) {  // past kSgemmPackedBlocks depth blocks
      const GemmCase<float> g(ta, false, 14, 40, 4096 + 300, 4);
      g.expect_matches(g.run(1.0f, 0.5f, g.c), 1.0f, 0.5f, g.c, 1e-5, "deep");
    }
    for (const int64_t N : {int64_t{100}, 3 * cpu::detail::kSgemmNc + 40})
      for (bool tb : {false, true}) {  // row strides of whole pages: A in place, then packed
        const GemmCase<float> g(false, tb, 37, N, 1000, 9, 1024);
        g.expect_matches(g.run(0.5f, 1.0f, g.c), 0.5f, 1.0f, g.c, 1e-5,
                         "lda 1024, N " + std::to_string(N));
      }
    uint64_t seed = 60;
    for (const auto& [M, N, K] : kShapes)
      for (bool ta : {false, true}) {
        expect_gemm_bias_matches(GemmCase<float>(ta, !ta, M, N, K, seed), 0.5f, seed);
        ++seed;
      }
  }
}

TEST(CpuKernelPaths, ThePackedKernelsAreBitIdenticalAtEveryThreadCount) {
  if (cpu::best_cpu_kernels() < cpu::CpuKernels::avx512)
    GTEST_SKIP() << "needs a CPU with AVX-512F to run both packed kernels (best here: "
                 << cpu::to_string(cpu::best_cpu_kernels()) << ")";
  std::vector<std::array<int64_t, 3>> shapes = kShapes;
  shapes.push_back({301, 262, 600});  // split over threads
  uint64_t seed = 80;
  for (const auto& [M, N, K] : shapes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        const GemmCase<float> g(ta, tb, M, N, K, seed++);
        std::vector<float> wide, narrow_one, narrow_two;
        {
          const KernelPathGuard guard(cpu::CpuKernels::avx512);
          wide = g.run(0.5f, 1.0f, g.c);
        }
        const KernelPathGuard guard(cpu::CpuKernels::avx2);
        {
          const ThreadCountGuard threads(1);
          narrow_one = g.run(0.5f, 1.0f, g.c);
        }
        {
          const ThreadCountGuard threads(2);
          narrow_two = g.run(0.5f, 1.0f, g.c);
        }
        EXPECT_EQ(wide, narrow_one) << case_name(ta, tb, M, N, K) << ": avx512 vs avx2";
        EXPECT_EQ(narrow_one, narrow_two) << case_name(ta, tb, M, N, K) << ": avx2, 1 vs 2 threads";
      }
}

TEST(CpuKernelPaths, TheEnvironmentWordIsCheckedAndLoweredToTheCpu) {
  EXPECT_EQ(cpu::detail::requested_cpu_kernels("portable"), cpu::CpuKernels::portable);
  EXPECT_LE(cpu::detail::requested_cpu_kernels("avx512"), cpu::best_cpu_kernels());
  EXPECT_EQ(cpu::detail::requested_cpu_kernels("avx512"), cpu::best_cpu_kernels());
  EXPECT_EQ(cpu::detail::requested_cpu_kernels("avx2"),
            std::min(cpu::CpuKernels::avx2, cpu::best_cpu_kernels()));
  expect_error([] { (void)cpu::detail::requested_cpu_kernels("AVX2"); },
               {"NORMLAB_CPU_KERNELS must be avx512, avx2 or portable", "got 'AVX2'"});
  // Asking for more than the CPU has gives the best it has.
  const KernelPathGuard guard(cpu::CpuKernels::avx512);
  EXPECT_EQ(cpu::cpu_kernels(), cpu::best_cpu_kernels());
}

}  // namespace
}  // namespace normlab::testing
