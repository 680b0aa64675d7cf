// The float row-wise and element-wise CPU kernels on every kernel path this
// CPU has (backend/cpu/row_kernels_x86.hpp, chosen by cpu_kernels()) against
// the portable path, their reference: LayerNorm, RMSNorm, GELU (exact and
// tanh, plain and fused with a bias and a LayerNorm), softmax backward and SGD
// give the same bits; softmax forward and cross-entropy are within the few ulp
// that the exp of the elements Eigen leaves to std::exp (and the order of
// cross-entropy's sum) explain; log-softmax is its formula given each path's
// sums; AdamW gives the scalar element update's bits, within a few ulp of the
// portable path's. Row lengths cover one element, primes, lengths around the
// 8- and 16-float vectors and the 64-lane sums, and long rows; values cover
// exp's range ends, -inf, large magnitudes. Every path gives the same bits at
// one and two threads, and the avx2 and avx512 paths the same as each other.
#include <array>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>

#include "testing.hpp"

namespace normlab::testing {
namespace {

using cpu::CpuKernels;

/// Row lengths: 1, primes, around one vector (8) and one lane block (64), long rows.
const std::vector<int64_t> kLengths = {1,  2,  3,  5,  7,   8,   9,   13,  15,  16,   17,  31,
                                       63, 64, 65, 97, 127, 128, 129, 257, 768, 1031, 4099};

/// n normal floats times scale, with the values in `special` spread over it.
std::vector<float> random_floats(int64_t n, uint64_t seed, float scale = 1.0f,
                                 const std::vector<float>& special = {}) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = normal(gen);
  for (size_t k = 0; k < special.size() && k < v.size(); ++k)
    v[(k * 7919 + seed) % v.size()] = special[k];
  return v;
}

/// The float bits of v, for messages and exact comparison (-0 != +0).
std::vector<uint32_t> bits(const std::vector<float>& v) {
  std::vector<uint32_t> b(v.size());
  std::memcpy(b.data(), v.data(), v.size() * sizeof(float));
  return b;
}

/// Runs `run` (which fills its outputs from scratch) on every path at one and
/// two threads; expects every run's outputs to have the portable path's bits
/// (NaN where it has NaN: not necessarily the same NaN).
void expect_same_bits_on_every_path(const std::string& what,
                                    const std::function<std::vector<std::vector<float>>()>& run) {
  std::vector<std::vector<float>> reference;
  {
    const KernelPathGuard guard(CpuKernels::portable);
    reference = run();
  }
  for (const CpuKernels path : available_kernel_paths())
    for (int threads : {1, 2}) {
      const KernelPathGuard guard(path);
      const ThreadCountGuard thread_guard(threads);
      const auto out = run();
      ASSERT_EQ(out.size(), reference.size());
      for (size_t k = 0; k < out.size(); ++k) {
        const auto got = bits(out[k]), want = bits(reference[k]);
        ASSERT_EQ(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i)
          if (got[i] != want[i] && !(std::isnan(out[k][i]) && std::isnan(reference[k][i]))) {
            ADD_FAILURE() << what << ", output " << k << ", path " << cpu::to_string(path) << ", "
                          << threads << " threads: element " << i << " is " << out[k][i]
                          << ", portable " << reference[k][i];
            break;
          }
      }
    }
}

/// |a - b| <= rel * |b| + abs for every element, on every path and thread
/// count, against the portable path; the same bits at one and two threads;
/// and the same bits on the avx2 and avx512 paths (the same operations on 8
/// or 16 lanes).
void expect_close_on_every_path(const std::string& what,
                                const std::function<std::vector<std::vector<float>>()>& run,
                                double rel, double abs) {
  std::vector<std::vector<float>> reference;
  {
    const KernelPathGuard guard(CpuKernels::portable);
    reference = run();
  }
  std::vector<std::vector<float>> first_wide;  // the first avx path's outputs
  for (const CpuKernels path : available_kernel_paths()) {
    const KernelPathGuard guard(path);
    std::vector<std::vector<float>> one;
    for (int threads : {1, 2}) {
      const ThreadCountGuard thread_guard(threads);
      const auto out = run();
      if (threads == 1)
        one = out;
      else
        EXPECT_EQ(bits(one[0]), bits(out[0])) << what << ": 1 vs 2 threads";
      if (path != CpuKernels::portable && cpu::wide_row_kernels<float>() == path) {
        if (first_wide.empty())
          first_wide = out;
        else
          for (size_t k = 0; k < out.size(); ++k)
            EXPECT_EQ(bits(out[k]), bits(first_wide[k]))
                << what << ", output " << k << ": path " << cpu::to_string(path)
                << " against the other wide path";
      }
      ASSERT_EQ(out.size(), reference.size());
      for (size_t k = 0; k < out.size(); ++k)
        for (size_t i = 0; i < out[k].size(); ++i) {
          const double a = out[k][i], b = reference[k][i];
          if (a == b || (std::isnan(a) && std::isnan(b))) continue;  // infinities, NaN
          if (!(std::abs(a - b) <= rel * std::abs(b) + abs)) {
            ADD_FAILURE() << what << ", output " << k << ", path " << cpu::to_string(path)
                          << ": element " << i << " is " << a << ", portable " << b;
            break;
          }
        }
    }
  }
}

constexpr float kInf = std::numeric_limits<float>::infinity();

// Eigen's pexp without FMA (its packets are SSE2's in a build without -march),
// which the wide exp follows on each instruction set.
#if defined(NORMLAB_X86_KERNELS) && !defined(__AVX2__) && !defined(__FMA__)
TEST(RowKernels, TheWideExpHasEigensBitsAndIsWithinTwoUlpOfStdExp) {
  if (cpu::best_cpu_kernels() < CpuKernels::avx2) GTEST_SKIP() << "needs AVX2";
  // Every 97th float in [-100, 100] (both signs, every binade down to 2^-126),
  // and the range ends.
  std::vector<float> xs = {0.0f,      -0.0f,  88.72f,  88.7228f, 88.723f, 89.0f,   -87.0f,
                           -87.3365f, -88.0f, -88.72f, -88.723f, -89.0f,  -103.0f, 1e-30f,
                           -1e-30f,   kInf,   -kInf,   1e30f,    -1e30f};
  for (uint32_t u = 0; u < 0x42c80000u; u += 97)
    for (const uint32_t sign : {0u, 0x80000000u}) {
      float x;
      const uint32_t b = u | sign;
      std::memcpy(&x, &b, sizeof x);
      xs.push_back(x);
    }
  while (xs.size() % 64) xs.push_back(1.0f);  // whole packets of any width
  std::vector<float> eigen(xs.size());
  using Packet = Eigen::internal::packet_traits<float>::type;
  constexpr size_t kEigenLanes = Eigen::internal::packet_traits<float>::size;
  for (size_t i = 0; i < xs.size(); i += kEigenLanes)
    Eigen::internal::pstoreu(eigen.data() + i,
                             Eigen::internal::pexp(Eigen::internal::ploadu<Packet>(xs.data() + i)));
  std::vector<float> ours;
  for (const CpuKernels path : available_kernel_paths()) {
    if (path == CpuKernels::portable) continue;
    std::vector<float> on_path(xs.size());
    cpu::run_wide_row_kernel<float>(path, [&](auto isa) {
      exp_n(isa, on_path.data(), xs.data(), static_cast<int64_t>(xs.size()));
    });
    EXPECT_EQ(bits(on_path), bits(eigen))
        << "the " << cpu::to_string(path) << " exp is Eigen's pexp, bit for bit";
    ours = on_path;
  }
  double worst_ulp = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (!(xs[i] > -87.0f && xs[i] < 88.0f)) continue;
    const double want = std::exp(static_cast<double>(xs[i]));
    const double ulp = std::ldexp(1.0, std::ilogb(static_cast<float>(want)) - 23);
    worst_ulp = std::max(worst_ulp, std::abs(ours[i] - want) / ulp);
  }
  EXPECT_LE(worst_ulp, 2.0);
  // Under exp's range: below the smallest normal float; -inf too.
  for (size_t i = 0; i < xs.size(); ++i)
    if (xs[i] <= -88.0f) {
      EXPECT_LT(ours[i], 1.2e-38f) << xs[i];
    }
  EXPECT_EQ(ours[15], kInf);  // +inf
}
#endif

TEST(RowKernels, TheWideKernelsRunForFloatOnTheAvxPathsOnlyInABuildWithoutAvx2OrFma) {
#if defined(__AVX2__) || defined(__FMA__)
  constexpr bool kBuildHasAvx2OrFma = true;
#else
  constexpr bool kBuildHasAvx2OrFma = false;
#endif
  for (const CpuKernels path : available_kernel_paths()) {
    const KernelPathGuard guard(path);
    EXPECT_EQ(cpu::wide_row_kernels<float>(), kBuildHasAvx2OrFma ? CpuKernels::portable : path)
        << cpu::to_string(path);
    EXPECT_EQ(cpu::wide_row_kernels<double>(), CpuKernels::portable);
    bool ran = false;
    const bool returned =
        cpu::run_wide_row_kernel<float>(cpu::wide_row_kernels<float>(), [&](auto) { ran = true; });
    EXPECT_EQ(returned, ran);
    EXPECT_EQ(ran, path != CpuKernels::portable && !kBuildHasAvx2OrFma) << cpu::to_string(path);
    EXPECT_FALSE(cpu::run_wide_row_kernel<double>(path, [&](auto) { ran = false; }));
  }
}

TEST(RowKernels, LayerNormForwardAndBackwardHaveThePortableBits) {
  uint64_t seed = 1;
  for (const int64_t C : kLengths)
    for (const bool affine : {false, true})
      for (const bool overwrite : {false, true}) {
        const int64_t rows = C > 1000 ? 5 : 37;
        const auto x = random_floats(rows * C, seed++, 3.0f, {1e4f, -1e4f, 1e-20f});
        const auto w = random_floats(C, seed++), b = random_floats(C, seed++);
        const auto dy = random_floats(rows * C, seed++);
        const auto dx0 = random_floats(rows * C, seed++);
        expect_same_bits_on_every_path(
            "layer_norm C " + std::to_string(C) + (affine ? " affine" : "") +
                (overwrite ? " overwrite" : ""),
            [&] {
              std::vector<float> y(x.size()), mean(rows), rstd(rows), dx = dx0, dw(C, 0.5f),
                                                                      db(C, -0.25f);
              cpu::layer_norm_forward(Cpu{}, y.data(), mean.data(), rstd.data(), x.data(),
                                      affine ? w.data() : nullptr, affine ? b.data() : nullptr,
                                      rows, C, 1e-5f);
              cpu::layer_norm_backward(Cpu{}, dx.data(), affine ? dw.data() : nullptr,
                                       affine ? db.data() : nullptr, dy.data(), x.data(),
                                       affine ? w.data() : nullptr, mean.data(), rstd.data(), rows,
                                       C, overwrite);
              return std::vector<std::vector<float>>{y, mean, rstd, dx, dw, db};
            });
      }
  // In place (y = x), dx skipped.
  const int64_t rows = 300, C = 77;  // rows * C past kParallelGrain
  const auto x = random_floats(rows * C, 99), dy = random_floats(rows * C, 98);
  expect_same_bits_on_every_path("layer_norm in place", [&] {
    std::vector<float> y = x, mean(rows), rstd(rows), dw(C, 0.0f), db(C, 0.0f);
    cpu::layer_norm_forward(Cpu{}, y.data(), mean.data(), rstd.data(), y.data(),
                            static_cast<const float*>(nullptr), static_cast<const float*>(nullptr),
                            rows, C, 1e-5f);
    cpu::layer_norm_backward(Cpu{}, static_cast<float*>(nullptr), dw.data(), db.data(), dy.data(),
                             x.data(), static_cast<const float*>(nullptr), mean.data(), rstd.data(),
                             rows, C);
    return std::vector<std::vector<float>>{y, mean, rstd, dw, db};
  });
}

TEST(RowKernels, RmsNormForwardAndBackwardHaveThePortableBits) {
  uint64_t seed = 200;
  for (const int64_t C : kLengths)
    for (const bool weighted : {false, true})
      for (const bool overwrite : {false, true}) {
        const int64_t rows = C > 1000 ? 5 : 29;
        const auto x = random_floats(rows * C, seed++, 2.0f, {3e3f, -1e-30f});
        const auto w = random_floats(C, seed++), dy = random_floats(rows * C, seed++);
        const auto dx0 = random_floats(rows * C, seed++);
        expect_same_bits_on_every_path(
            "rms_norm C " + std::to_string(C) + (weighted ? " weighted" : "") +
                (overwrite ? " overwrite" : ""),
            [&] {
              std::vector<float> y(x.size()), rstd(rows), dx = dx0, dw(C, 1.5f);
              const float* wp = weighted ? w.data() : nullptr;
              cpu::rms_norm_forward(Cpu{}, y.data(), rstd.data(), x.data(), wp, rows, C, 1e-6f);
              cpu::rms_norm_backward(Cpu{}, dx.data(), dw.data(), dy.data(), x.data(), wp,
                                     rstd.data(), rows, C, overwrite);
              return std::vector<std::vector<float>>{y, rstd, dx, dw};
            });
      }
}

/// GELU's arguments: normal, wide, and the ends of exp's range inside erfc
/// and the sigmoid.
std::vector<float> gelu_inputs(int64_t n, uint64_t seed) {
  return random_floats(n, seed, 4.0f,
                       {0.0f, -0.0f, 10.0f, -10.0f, 13.5f, -13.5f, 30.0f, -30.0f, 100.0f, -100.0f,
                        1e-3f, -1e-3f, 1e-30f, 5.5f, -5.5f});
}

TEST(RowKernels, GeluForwardAndBackwardHaveThePortableBits) {
  uint64_t seed = 300;
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{8}, int64_t{13}, int64_t{64},
                          int64_t{101}, int64_t{4096 + 13}, int64_t{40000}})
    for (const bool tanh_form : {false, true}) {
      const auto x = gelu_inputs(n, seed++), dy = random_floats(n, seed++);
      const auto dx0 = random_floats(n, seed++);
      expect_same_bits_on_every_path(
          "gelu n " + std::to_string(n) + (tanh_form ? " tanh" : " erf"), [&] {
            std::vector<float> y(x.size()), dx = dx0;
            if (tanh_form) {
              cpu::map_unary_forward(Cpu{}, y.data(), x.data(), n, fn::GeluTanh{});
              cpu::map_unary_backward(Cpu{}, dx.data(), dy.data(), x.data(), y.data(), n,
                                      fn::GeluTanh{});
            } else {
              cpu::map_unary_forward(Cpu{}, y.data(), x.data(), n, fn::GeluErf{});
              cpu::map_unary_backward(Cpu{}, dx.data(), dy.data(), x.data(), y.data(), n,
                                      fn::GeluErf{});
            }
            return std::vector<std::vector<float>>{y, dx};
          });
    }
}

TEST(RowKernels, FusedBiasGeluAndItsLayerNormHaveThePortableBits) {
  uint64_t seed = 400;
  for (const int64_t C : {int64_t{1}, int64_t{9}, int64_t{65}, int64_t{1031}, int64_t{4096 + 5}})
    for (const bool tanh_form : {false, true})
      for (const bool overwrite : {false, true}) {
        const int64_t rows = C > 1000 ? 3 : 41;
        const auto x = gelu_inputs(rows * C, seed++), bias = random_floats(C, seed++);
        const auto w = random_floats(C, seed++), lb = random_floats(C, seed++);
        const auto dy = random_floats(rows * C, seed++), dx0 = random_floats(rows * C, seed++);
        expect_same_bits_on_every_path(
            "bias_gelu C " + std::to_string(C) + (tanh_form ? " tanh" : " erf") +
                (overwrite ? " overwrite" : ""),
            [&] {
              std::vector<float> y(x.size()), dx = dx0, dbias(C, 0.0f), z(x.size()), mean(rows),
                                              rstd(rows), dx2 = dx0, dbias2(C, 0.0f), dw(C, 0.0f),
                                              dlb(C, 0.0f);
              cpu::bias_gelu_forward(Cpu{}, y.data(), x.data(), bias.data(), rows, C, tanh_form);
              cpu::bias_gelu_backward(Cpu{}, dx.data(), dbias.data(), dy.data(), x.data(),
                                      bias.data(), rows, C, tanh_form, overwrite);
              cpu::bias_gelu_layer_norm_forward(Cpu{}, z.data(), mean.data(), rstd.data(), x.data(),
                                                bias.data(), w.data(), lb.data(), rows, C, 1e-5f,
                                                tanh_form);
              cpu::bias_gelu_layer_norm_backward(
                  Cpu{}, dx2.data(), dbias2.data(), dw.data(), dlb.data(), dy.data(), x.data(),
                  bias.data(), w.data(), mean.data(), rstd.data(), rows, C, tanh_form, overwrite);
              // Only the bias gradient, or only the input's.
              std::vector<float> dbias_only(C, 0.0f), dx_only = dx0;
              cpu::bias_gelu_backward(Cpu{}, static_cast<float*>(nullptr), dbias_only.data(),
                                      dy.data(), x.data(), bias.data(), rows, C, tanh_form,
                                      overwrite);
              cpu::bias_gelu_backward(Cpu{}, dx_only.data(), static_cast<float*>(nullptr),
                                      dy.data(), x.data(), bias.data(), rows, C, tanh_form,
                                      overwrite);
              return std::vector<std::vector<float>>{y,   dx,     dbias, z,   mean,       rstd,
                                                     dx2, dbias2, dw,    dlb, dbias_only, dx_only};
            });
      }
}

/// AdamW's arguments for step `step` of lr 3e-4, betas (0.9, 0.98), eps 1e-8,
/// and decoupled weight decay 0.01 or (coupled) L2 0.01.
AdamWStepArgs adamw_args(int step, bool coupled) {
  AdamWStepArgs a{};
  a.lr = 3e-4;
  a.beta1 = 0.9;
  a.beta2 = 0.98;
  a.eps = 1e-8;
  a.weight_decay = coupled ? 0.0 : 0.01;
  a.l2 = coupled ? 0.01 : 0.0;
  a.bias_correction1 = 1 - std::pow(a.beta1, step);
  a.bias_correction2 = 1 - std::pow(a.beta2, step);
  return a;
}

// The wide update is AdamWElementUpdate (the scalar update, std::sqrt) bit for
// bit. The portable one runs on Eigen arrays, whose float sqrt (EIGEN_FAST_MATH)
// is rsqrt with one Newton step on whole packets and std::sqrt on the elements
// around them: within a few ulp of it (of the value, or of lr = 3e-4, the size
// of a step, where the step cancels most of the value).
TEST(RowKernels, AdamWIsTheScalarUpdateOnTheAvxPathsAndCloseToItOnThePortableOne) {
  uint64_t seed = 500;
  for (const int64_t n : {int64_t{1}, int64_t{5}, int64_t{8}, int64_t{23}, int64_t{4096},
                          int64_t{4096 + 7}, int64_t{3 * 4096 + 1000}, int64_t{70001}})
    for (const bool coupled : {false, true}) {
      const auto p0 = random_floats(n, seed++), g = random_floats(n, seed++, 1e-2f, {0.0f, 1e-30f});
      const auto steps = [&] {
        std::vector<float> p = p0, m(n, 0.0f), v(n, 0.0f);
        for (int step = 1; step <= 3; ++step)
          cpu::adamw_step(Cpu{}, p.data(), g.data(), m.data(), v.data(), n,
                          adamw_args(step, coupled));
        return std::vector<std::vector<float>>{p, m, v};
      };
      std::vector<float> p = p0, m(n, 0.0f), v(n, 0.0f);
      for (int step = 1; step <= 3; ++step) {
        const AdamWElementUpdate<float> update(adamw_args(step, coupled));
        for (int64_t i = 0; i < n; ++i) update(p.data(), g.data(), m.data(), v.data(), i);
      }
      const std::string what = "adamw n " + std::to_string(n) + (coupled ? " coupled" : "");
      for (const CpuKernels path : available_kernel_paths()) {
        const KernelPathGuard guard(path);
        for (int threads : {1, 2}) {
          const ThreadCountGuard thread_guard(threads);
          const auto out = steps();
          const std::vector<std::vector<float>> scalar = {p, m, v};
          for (size_t k = 0; k < 3; ++k)
            for (size_t i = 0; i < out[k].size(); ++i) {
              const float a = out[k][i], b = scalar[k][i];
              const bool ok = path == CpuKernels::portable
                                  ? std::abs(a - b) <= 4 * 0x1p-23 * (std::abs(b) + 3e-4f)
                                  : bits({a}) == bits({b});
              if (!ok) {
                ADD_FAILURE() << what << ", output " << k << ", path " << cpu::to_string(path)
                              << ", " << threads << " threads: element " << i << " is " << a
                              << ", the scalar update's " << b;
                break;
              }
            }
        }
      }
    }
}

// SGD in its variants (plain, weight decay, momentum from the first step on,
// dampening, Nesterov): every path has the portable path's bits, which are the
// scalar update's (SgdElementUpdate).
TEST(RowKernels, SgdHasThePortableBitsInEveryVariant) {
  uint64_t seed = 550;
  for (const int64_t n : {int64_t{1}, int64_t{7}, int64_t{16}, int64_t{4096 + 9}, int64_t{70001}})
    for (const double momentum : {0.0, 0.9})
      for (const double dampening : {0.0, 0.1})
        for (const bool nesterov : {false, true}) {
          if ((nesterov && (momentum == 0 || dampening != 0)) || (momentum == 0 && dampening != 0))
            continue;  // torch.optim.SGD's Nesterov wants momentum and no dampening
          const auto p0 = random_floats(n, seed++), g = random_floats(n, seed++, 1e-2f);
          const std::string what = "sgd n " + std::to_string(n) + " momentum " +
                                   std::to_string(momentum) + " dampening " +
                                   std::to_string(dampening) + (nesterov ? " nesterov" : "");
          expect_same_bits_on_every_path(what, [&] {
            std::vector<float> p = p0, buf(static_cast<size_t>(n), 0.0f);
            for (int step = 1; step <= 3; ++step) {
              SgdStepArgs a;
              a.lr = 0.05;
              a.momentum = momentum;
              a.dampening = dampening;
              a.weight_decay = step == 2 ? 0.0 : 0.01;  // with and without the decay term
              a.nesterov = nesterov;
              a.first_step = step == 1;
              cpu::sgd_step(Cpu{}, p.data(), g.data(), momentum == 0 ? nullptr : buf.data(), n, a);
            }
            return std::vector<std::vector<float>>{p, buf};
          });
        }
}

/// Softmax rows: normal logits, wide ones, and rows with -inf, exp's range
/// ends and a huge entry.
std::vector<float> softmax_inputs(int64_t n, uint64_t seed) {
  return random_floats(n, seed, 8.0f, {-kInf, 80.0f, -90.0f, 1e4f, -1e4f, 200.0f});
}

TEST(RowKernels, SoftmaxBackwardHasThePortableBitsAndForwardIsWithinAFewUlp) {
  uint64_t seed = 600;
  for (const int64_t n : kLengths)
    for (const int64_t causal : {int64_t{0}, int64_t{1}}) {
      const int64_t rows = n > 1000 ? 6 : 30, tq = causal ? (n > 1000 ? 6 : 15) : 0;
      const auto x = softmax_inputs(rows * n, seed++), dy = random_floats(rows * n, seed++);
      const auto dx0 = random_floats(rows * n, seed++);
      const std::string what = "softmax n " + std::to_string(n) + (causal ? " causal" : "");
      // Forward: each exp within 2 ulp of the other path's, so an output within
      // 8 ulp (2^-23 each) relative; outputs under exp's range within 1e-37.
      expect_close_on_every_path(
          what,
          [&] {
            std::vector<float> y(x.size());
            cpu::softmax_forward(Cpu{}, y.data(), x.data(), rows, n, tq);
            return std::vector<std::vector<float>>{y};
          },
          8 * 0x1p-23, 1e-37);
      // Backward of one forward result: the same bits.
      std::vector<float> y(x.size());
      cpu::softmax_forward(Cpu{}, y.data(), x.data(), rows, n, tq);
      expect_same_bits_on_every_path(what + " backward", [&] {
        std::vector<float> dx = dx0;
        cpu::softmax_backward(Cpu{}, dx.data(), dy.data(), y.data(), rows, n, tq);
        return std::vector<std::vector<float>>{dx};
      });
    }
}

/// The float sum of t(0), ..., t(n - 1) in the order the log-softmax code of
/// `path` adds them: element order on the portable path, lane_sum's lanes on
/// the wide ones (the tests are compiled without -march, where the path
/// chooses the code).
float sum_in_path_order(CpuKernels path, int64_t n, const std::function<float(int64_t)>& t) {
  if (path != CpuKernels::portable) return cpu::lane_sum<float>(n, t);
  float sum = 0;
  for (int64_t j = 0; j < n; ++j) sum += t(j);
  return sum;
}

// Log-softmax on every path against its formula in double, with the float
// sums each path makes (in its own order) taken as given: what is left is
// its exp (std::exp, or Eigen's within 2 ulp: a few ulp of the sum of exp,
// an absolute few ulp of its log) and a few roundings of the last steps.
TEST(RowKernels, LogSoftmaxIsItsFormulaOnEveryPathGivenThePathsSums) {
  constexpr double kEps = 0x1p-23;
  uint64_t seed = 650;
  for (const int64_t n : kLengths) {
    const int64_t rows = n > 1000 ? 6 : 30;
    const auto x = softmax_inputs(rows * n, seed++), dy = random_floats(rows * n, seed++);
    const auto dx0 = random_floats(rows * n, seed++);
    std::vector<uint32_t> wide_y, wide_dx;  // the first wide path's bits: every wide path's
    for (const CpuKernels path : available_kernel_paths())
      for (int threads : {1, 2}) {
        const KernelPathGuard guard(path);
        const ThreadCountGuard thread_guard(threads);
        const std::string what = "log_softmax n " + std::to_string(n) + ", path " +
                                 cpu::to_string(path) + ", " + std::to_string(threads) + " threads";
        std::vector<float> y(x.size()), dx = dx0;
        cpu::log_softmax_forward(Cpu{}, y.data(), x.data(), rows, n);
        cpu::log_softmax_backward(Cpu{}, dx.data(), dy.data(), y.data(), rows, n);
        if (path != CpuKernels::portable) {
          if (wide_y.empty()) {
            wide_y = bits(y);
            wide_dx = bits(dx);
          }
          EXPECT_EQ(bits(y), wide_y) << what;
          EXPECT_EQ(bits(dx), wide_dx) << what;
        }
        int failures = 0;
        for (int64_t r = 0; r < rows && failures < 3; ++r) {
          const float* xr = x.data() + r * n;
          const float mx = *std::max_element(xr, xr + n);
          const double log_sum =
              std::log(static_cast<double>(sum_in_path_order(path, n, [&](int64_t j) {
                return static_cast<float>(std::exp(double{xr[j] - mx}));
              })));
          const float dy_sum = sum_in_path_order(path, n, [&](int64_t j) { return dy[r * n + j]; });
          for (int64_t j = 0; j < n && failures < 3; ++j) {
            const int64_t i = r * n + j;
            const double shifted = double{xr[j] - mx}, want_y = shifted - log_sum;
            const double y_bound = 8 * kEps * (std::abs(shifted) + std::abs(log_sum) + 1);
            if (!(y[i] == want_y || std::abs(y[i] - want_y) <= y_bound ||
                  (std::isnan(y[i]) && std::isnan(want_y)))) {  // a row of -inf: NaN
              ADD_FAILURE() << what << ": y[" << i << "] is " << y[i] << ", formula " << want_y;
              ++failures;
            }
            const double e = std::exp(double{y[i]});
            const double want_dx = double{dx0[i]} + double{dy[i]} - e * double{dy_sum};
            const double dx_bound =
                8 * kEps * (std::abs(dx0[i]) + std::abs(dy[i]) + e * std::abs(dy_sum)) + 1e-37;
            if (!(std::abs(dx[i] - want_dx) <= dx_bound ||
                  (std::isnan(dx[i]) && std::isnan(want_dx)))) {
              ADD_FAILURE() << what << ": dx[" << i << "] is " << dx[i] << ", formula " << want_dx;
              ++failures;
            }
          }
        }
      }
  }
}

TEST(RowKernels, SoftmaxMasksAndAllMaskedRowsAreExactZerosOnEveryPath) {
  const int64_t tq = 5, n = 3, rows = 2 * tq;  // queries 0, 1 see no key
  const auto x = softmax_inputs(rows * n, 7);
  for (const CpuKernels path : available_kernel_paths()) {
    const KernelPathGuard guard(path);
    std::vector<float> y(x.size(), 1.0f);
    cpu::softmax_forward(Cpu{}, y.data(), x.data(), rows, n, tq);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t len = cpu::causal_row_length(r, n, tq);
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) {
        if (j >= len) {
          EXPECT_EQ(bits({y[r * n + j]})[0], 0u) << cpu::to_string(path);
        }
        sum += y[r * n + j];
      }
      EXPECT_NEAR(sum, len > 0 ? 1.0 : 0.0, 1e-6) << cpu::to_string(path) << " row " << r;
    }
  }
}

TEST(RowKernels, CrossEntropyIsWithinRoundingOfThePortablePath) {
  uint64_t seed = 700;
  for (const int64_t v : kLengths) {
    const int64_t n = v > 1000 ? 8 : 40;
    const auto logits = softmax_inputs(n * v, seed++);
    std::vector<int64_t> targets(n);
    for (int64_t r = 0; r < n; ++r) targets[r] = r % 7 == 3 ? -100 : (r * 31 + 5) % v;
    const float dtotal = 0.75f;
    // lse = m + log(s): s differs by the order of its sum and the exp of some
    // terms, so lse by a few ulp of max(|m|, 1); the losses and the total by
    // as much absolutely. dlogits = g exp(x - lse) within 8 ulp, or 1e-37.
    const auto run = [&] {
      std::vector<float> total(1), losses(n), lse(n);
      cpu::cross_entropy_forward(Cpu{}, total.data(), losses.data(), lse.data(), logits.data(),
                                 targets.data(), n, v, int64_t{-100}, 1.0f / n);
      return std::vector<std::vector<float>>{total, losses, lse};
    };
    const auto grads = [&] {
      std::vector<float> lse(n), losses(n), total(1), dlogits(n * v, 0.125f);
      {  // the portable path's lse, so the gradient compares exp alone
        const KernelPathGuard guard(CpuKernels::portable);
        cpu::cross_entropy_forward(Cpu{}, total.data(), losses.data(), lse.data(), logits.data(),
                                   targets.data(), n, v, int64_t{-100}, 1.0f / n);
      }
      cpu::cross_entropy_backward(Cpu{}, dlogits.data(), &dtotal, logits.data(), lse.data(),
                                  targets.data(), n, v, int64_t{-100}, 1.0f / n);
      return std::vector<std::vector<float>>{dlogits};
    };
    // |logits| reach 1e4 (and the sum of a row's exp at most v): 4 ulp of 1e4.
    expect_close_on_every_path("cross_entropy V " + std::to_string(v), run, 4 * 0x1p-23,
                               4 * 0x1p-23 * 1e4);
    expect_close_on_every_path("cross_entropy backward V " + std::to_string(v), grads, 8 * 0x1p-23,
                               1e-37);
  }
}

}  // namespace
}  // namespace normlab::testing
