// normlab/backend/cpu/gemm.hpp — GEMM kernels on Eigen maps (plain and strided-batched).
//
// Row-major with cuBLAS-like arguments, so that the CUDA backend can mirror
// the signatures: op(X) is X or X^T as stored, `ld` is the distance between
// rows of the stored matrix, and C = alpha * op(A) op(B) + beta * C.
// Eigen parallelizes one large product with OpenMP; batches of small
// products are spread over threads instead (Eigen then runs each product on
// its thread alone, as it does inside any OpenMP parallel region).
#pragma once

// normlab threads its GEMMs itself (see gemm below): Eigen's own threading
// starts at about 1e5 multiply-adds and spin-waits, which made the training
// steps of small transformers three times slower on two cores than on one.
// (Without effect when the including program has included Eigen before.)
#ifndef EIGEN_DONT_PARALLELIZE
#define EIGEN_DONT_PARALLELIZE
#endif
#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/kernel_path.hpp"
#include "normlab/backend/cpu/layout.hpp"
#include "normlab/backend/cpu/sgemm_avx2.hpp"
#include "normlab/backend/cpu/sgemm_avx512.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// Row-major Eigen views of our storage, with a row stride.
template <class Scalar>
using RowMajorMatrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
template <class Scalar>
using ConstMatrixMap = Eigen::Map<const RowMajorMatrix<Scalar>, 0, Eigen::OuterStride<>>;
template <class Scalar>
using MatrixMap = Eigen::Map<RowMajorMatrix<Scalar>, 0, Eigen::OuterStride<>>;

/// One GEMM on the calling thread (see gemm for the arguments).
template <class Scalar>
void gemm_on_this_thread(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, Scalar alpha,
                         const Scalar* A, int64_t lda, const Scalar* B, int64_t ldb, Scalar beta,
                         Scalar* C, int64_t ldc) {
  MatrixMap<Scalar> c(C, M, N, Eigen::OuterStride<>(ldc));  // (M, N)
  if (K == 0) {                                             // empty product: C = beta * C
    if (beta == Scalar(0))
      c.setZero();
    else
      c *= beta;
    return;
  }
  const ConstMatrixMap<Scalar> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  const ConstMatrixMap<Scalar> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  auto run = [&](const auto& op_a, const auto& op_b) {
    if (beta == Scalar(0)) {
      c.noalias() = alpha * op_a * op_b;
    } else {
      if (beta != Scalar(1)) c *= beta;
      c.noalias() += alpha * op_a * op_b;
    }
  };
  if (!trans_a && !trans_b)
    run(a, b);
  else if (!trans_a && trans_b)
    run(a, b.transpose());
  else if (trans_a && !trans_b)
    run(a.transpose(), b);
  else
    run(a.transpose(), b.transpose());
}

/// Products with fewer multiply-adds than this run on one thread.
inline constexpr int64_t kGemmParallelWork = int64_t{1} << 24;

/// Whether float products run normlab's AVX-512 kernel (sgemm_avx512.hpp):
/// cpu_kernels() is avx512 (kernel_path.hpp).
inline bool sgemm_uses_avx512_kernel() {
  return cpu_kernels() == CpuKernels::avx512;
}

namespace detail {
/// Runs C = alpha op(A) op(B) + beta C (+ bias, when not null) on normlab's
/// packed kernel of the path cpu_kernels() names (float, K > 0, path avx512
/// or avx2), threaded for products of at least kGemmParallelWork
/// multiply-adds. Returns whether it ran; false leaves C untouched.
template <class Scalar>
bool gemm_on_packed_kernel(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                           Scalar alpha, const Scalar* A, int64_t lda, const Scalar* B, int64_t ldb,
                           Scalar beta, Scalar* C, int64_t ldc, const Scalar* bias) {
  if constexpr (std::is_same_v<Scalar, float>) {
#ifdef NORMLAB_X86_KERNELS
    const CpuKernels path = K > 0 ? cpu_kernels() : CpuKernels::portable;
    if (path == CpuKernels::portable) return false;
    const int threads = thread_count();
    const int use = threads > 1 && M * N * K >= kGemmParallelWork ? threads : 1;
    SgemmArgs args{trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc};
    args.bias = bias;
#ifdef NORMLAB_AVX512_GEMM
    if (path == CpuKernels::avx512) {
      sgemm_avx512(args, use);
      return true;
    }
#endif
    sgemm_avx2(args, use);
    return true;
#endif
  }
  (void)trans_a, (void)trans_b, (void)M, (void)N, (void)K, (void)alpha, (void)A, (void)lda;
  (void)B, (void)ldb, (void)beta, (void)C, (void)ldc, (void)bias;
  return false;
}
}  // namespace detail

/// C (M, N) = alpha * op(A) op(B) + beta * C, where op(A) is (M, K) and op(B) is (K, N).
///
/// Requires: A holds (M, K) with row stride lda >= K, or (K, M) with lda >= M
/// when trans_a; likewise B; ldc >= N. With beta == 0, C is only written
/// (it may hold garbage or NaN before).
/// Ensures: float products run the packed kernel of the path cpu_kernels()
/// names (sgemm_avx512.hpp, sgemm_avx2.hpp), its row blocks spread over the
/// OpenMP threads. Other products (double, the portable path) are Eigen's: large ones split C's
/// rows into blocks, about four per thread, which the threads take in turn (schedule dynamic): on a
/// machine shared with other processes, a thread the OS deschedules does not
/// hold the others up at the barrier. Each block is one Eigen product on its
/// thread; Eigen's depth blocking depends on K alone. Either way every
/// element of C is summed in the same order however the rows are split:
/// results do not depend on the thread count.
template <class Scalar>
void gemm(Cpu, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, Scalar alpha,
          const Scalar* A, int64_t lda, const Scalar* B, int64_t ldb, Scalar beta, Scalar* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (detail::gemm_on_packed_kernel(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc,
                                    static_cast<const Scalar*>(nullptr)))
    return;
  const int threads = thread_count();
  if (threads == 1 || M * N * K < kGemmParallelWork || M < 2 * threads) {
    gemm_on_this_thread(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  // Blocks of a multiple of 48 rows (Eigen's register block is 48 rows of
  // float, or 24 of double, with AVX-512), at least 96 so that re-packing B
  // for each block stays a small cost.
  const int64_t target = (M + 4 * threads - 1) / (4 * threads);
  const int64_t rows = std::max<int64_t>(96, (target + 47) / 48 * 48);
  const int64_t blocks = (M + rows - 1) / rows;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk * rows, r1 = std::min(M, r0 + rows);  // this block's rows of C
    gemm_on_this_thread(trans_a, trans_b, r1 - r0, N, K, alpha, trans_a ? A + r0 : A + r0 * lda,
                        lda, B, ldb, beta, C + r0 * ldc, ldc);
  }
}

/// C (M, N) = alpha * op(A) op(B) + bias, with bias (N,) added to every row:
/// a linear layer's forward (an optional kernel, see backend/backend.hpp).
///
/// Requires: the operands as for gemm; bias holds N values. C is only
/// written (it may hold garbage or NaN before).
/// Ensures: the float products of the packed kernels add the bias in the
/// epilogue of the first depth block, so C is written once and never read;
/// elsewhere C is filled with the bias and gemm adds the product (beta 1).
/// Each element equals alpha * (the product's sum) + bias, rounded as in
/// that second form, and does not depend on the thread count.
template <class Scalar>
void gemm_bias(Cpu, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, Scalar alpha,
               const Scalar* A, int64_t lda, const Scalar* B, int64_t ldb, const Scalar* bias,
               Scalar* C, int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (detail::gemm_on_packed_kernel(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, Scalar(0), C,
                                    ldc, bias))
    return;
  copy_rows(Cpu{}, C, ldc, bias, int64_t{0}, M, N, false);  // every row of C starts as the bias
  gemm(Cpu{}, trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, Scalar(1), C, ldc);
}

/// For p in [0, batch): C_p = alpha * op(A_p) op(B_p) + beta * C_p, where
/// X_p = X + p * stride_x. A stride of 0 reuses one matrix for the whole
/// batch; a C stride of 0 sums every product into one C (beta applies once).
///
/// Two common cases become one large GEMM: a shared B under untransposed,
/// back-to-back A_p (a linear layer over (batch, M, K) input) stacks the A_p
/// along M; and a shared C fed by back-to-back A_p^T and B_p (its weight
/// gradient) stacks them along K.
template <class Scalar>
void gemm_strided_batched(Cpu, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                          Scalar alpha, const Scalar* A, int64_t lda, int64_t stride_a,
                          const Scalar* B, int64_t ldb, int64_t stride_b, Scalar beta, Scalar* C,
                          int64_t ldc, int64_t stride_c, int64_t batch) {
  if (batch == 0) return;
  if (batch > 1 && stride_b == 0 && stride_c != 0 && !trans_a && lda == K && stride_a == M * K &&
      ldc == N && stride_c == M * N) {
    gemm(Cpu{}, false, trans_b, M * batch, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (batch > 1 && stride_c == 0 && trans_a && !trans_b && lda == M && stride_a == K * M &&
      ldb == N && stride_b == K * N) {
    gemm(Cpu{}, true, false, M, N, K * batch, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (stride_c == 0) {  // every product adds into the same C: in order, on one thread
    for (int64_t p = 0; p < batch; ++p)
      gemm(Cpu{}, trans_a, trans_b, M, N, K, alpha, A + p * stride_a, lda, B + p * stride_b, ldb,
           p == 0 ? beta : Scalar(1), C, ldc);
    return;
  }
  // Spread the batch over threads when it has enough members for all of
  // them, or when each product is too small for Eigen to parallelize well.
  [[maybe_unused]] const bool over_batch =
      batch >= thread_count() || M * N * K < int64_t{128} * 128 * 128;
#pragma omp parallel for schedule(dynamic, 1) if (over_batch && batch > 1)
  for (int64_t p = 0; p < batch; ++p)
    gemm(Cpu{}, trans_a, trans_b, M, N, K, alpha, A + p * stride_a, lda, B + p * stride_b, ldb,
         beta, C + p * stride_c, ldc);
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
