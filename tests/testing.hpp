// tests/testing.hpp — helpers shared by the normlab tests.
#pragma once

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "normlab/normlab.hpp"

namespace normlab::testing {

using TensorF = Tensor<float, Cpu>;
using TensorD = Tensor<double, Cpu>;
using TensorI = Tensor<int64_t, Cpu>;
using VarF = Variable<float, Cpu>;
using VarD = Variable<double, Cpu>;

/// Runs the enclosing scope with `n` OpenMP threads, then restores the count.
/// The test command runs every test with one thread (OMP_NUM_THREADS=1,
/// because ctest runs one test per core); tests of the threaded paths ask for
/// threads with this guard.
class ThreadCountGuard {
 public:
  explicit ThreadCountGuard(int n) {
#ifdef _OPENMP
    saved_ = omp_get_max_threads();
    omp_set_num_threads(n);
#else
    (void)n;
#endif
  }
  ~ThreadCountGuard() {
#ifdef _OPENMP
    omp_set_num_threads(saved_);
#endif
  }
  ThreadCountGuard(const ThreadCountGuard&) = delete;
  ThreadCountGuard& operator=(const ThreadCountGuard&) = delete;

 private:
  int saved_ = 1;
};

/// Every CPU kernel path this machine runs, lowest first.
inline std::vector<cpu::CpuKernels> available_kernel_paths() {
  std::vector<cpu::CpuKernels> paths;
  for (const auto k : {cpu::CpuKernels::portable, cpu::CpuKernels::avx2, cpu::CpuKernels::avx512})
    if (k <= cpu::best_cpu_kernels()) paths.push_back(k);
  return paths;
}

/// Sets the CPU kernel path (backend/cpu/kernel_path.hpp) for a scope.
class KernelPathGuard {
 public:
  explicit KernelPathGuard(cpu::CpuKernels k) : before_(cpu::set_cpu_kernels(k)) {}
  ~KernelPathGuard() { cpu::set_cpu_kernels(before_); }
  KernelPathGuard(const KernelPathGuard&) = delete;
  KernelPathGuard& operator=(const KernelPathGuard&) = delete;

 private:
  cpu::CpuKernels before_;
};

/// Element-wise |actual - expected| <= tol * max(1, |expected|).
template <class T>
void expect_close(const std::vector<T>& actual, const std::vector<double>& expected,
                  double tol = 1e-6) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(static_cast<double>(actual[i]), expected[i],
                tol * std::max(1.0, std::abs(expected[i])))
        << "at flat index " << i;
}

/// Runs `f`, expects a normlab::Error whose message contains every fragment.
template <class F>
void expect_error(F&& f, const std::vector<std::string>& fragments) {
  try {
    f();
    ADD_FAILURE() << "expected normlab::Error, nothing was thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const auto& frag : fragments)
      EXPECT_NE(msg.find(frag), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << frag << "\"";
  }
}

/// A double leaf of `shape` with normal(0, 1) values from `seed`, requiring grad.
inline VarD random_var(const Shape& shape, uint64_t seed, double mean = 0, double std = 1) {
  Generator gen(seed);
  return VarD(TensorD::normal(shape, gen, mean, std), true);
}

/// The same values in double precision (to compare a float computation with a
/// double one on identical inputs).
inline TensorD to_double(const TensorF& t) {
  const std::vector<float> v = t.to_vector();
  return TensorD::from_vector(t.shape(), std::vector<double>(v.begin(), v.end()));
}

/// gradcheck with the tolerance the project asks for (max relative error <= 1e-6).
template <class F>
void expect_gradcheck(F&& f, std::vector<VarD> inputs, const GradcheckOptions& opt = {}) {
  const GradcheckResult r = gradcheck<Cpu>(f, std::move(inputs), opt);
  EXPECT_TRUE(r.ok) << r.report();
  EXPECT_GT(r.checked, 0) << "gradcheck compared no element";
}

/// The sizes of the tests' small models (defaults: the smallest model most tests use).
struct ModelSizes {
  int64_t vocab = 11, d_model = 8, heads = 2, layers = 2, d_ff = 12, max_seq_len = 6;
};

/// A ModelConfig of `policy` (a name or composition) with `sizes` and `dropout`.
inline ModelConfig model_config(const std::string& policy, const ModelSizes& sizes = {},
                                double dropout = 0) {
  ModelConfig c;
  c.vocab_size = sizes.vocab;
  c.d_model = sizes.d_model;
  c.n_heads = sizes.heads;
  c.n_layers = sizes.layers;
  c.d_ff = sizes.d_ff;
  c.max_seq_len = sizes.max_seq_len;
  c.policy = policy;
  c.dropout = dropout;
  return c;
}

}  // namespace normlab::testing
