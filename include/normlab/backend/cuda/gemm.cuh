// normlab/backend/cuda/gemm.cuh — GEMM on cuBLAS (plain and strided-batched).
//
// Our matrices are row-major; cuBLAS's are column-major. A row-major (R, C)
// matrix with row stride ld is the column-major (C, R) matrix of its
// transpose with the same ld, so the row-major product C = op(A) op(B) is the
// column-major product C^T = op(B)^T op(A)^T: cuBLAS is called with the
// operands swapped, the same transpose flags, and (N, M) for (M, N). No copy
// and no explicit transpose is made.
#pragma once

#ifdef __CUDACC__

#include <cstdint>
#include <limits>
#include <type_traits>

#include "normlab/backend/cuda/runtime.cuh"

namespace normlab {
inline namespace v0 {
namespace cuda {
namespace detail {

/// `v` as a cuBLAS int; throws Error naming `what` when it does not fit.
inline int blas_int(int64_t v, const char* what) {
  normlab::detail::check(v >= 0 && v <= std::numeric_limits<int>::max(), "cuda gemm: ", what, " ",
                         v, " does not fit cuBLAS's 32-bit sizes");
  return static_cast<int>(v);
}

inline cublasOperation_t blas_op(bool trans) {
  return trans ? CUBLAS_OP_T : CUBLAS_OP_N;
}

/// C[r * ldc + c] = beta * C[...] (exactly 0 when beta == 0) for r < M, c < N:
/// an empty product (K == 0).
template <class Scalar>
struct ScaleMatrixOp {
  Scalar* c;
  int64_t ldc, n;
  Scalar beta;
  __device__ void operator()(int64_t j) const {
    Scalar& x = c[(j / n) * ldc + j % n];
    x = beta == Scalar(0) ? Scalar(0) : beta * x;
  }
};

template <class Scalar>
void blas_gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, Scalar alpha,
               const Scalar* A, int64_t lda, const Scalar* B, int64_t ldb, Scalar beta, Scalar* C,
               int64_t ldc) {
  const int m = blas_int(M, "M"), n = blas_int(N, "N"), k = blas_int(K, "K");
  const int ia = blas_int(lda, "lda"), ib = blas_int(ldb, "ldb"), ic = blas_int(ldc, "ldc");
  cublasHandle_t h = context().cublas();
  if constexpr (std::is_same_v<Scalar, float>)
    NL_CUBLAS_CHECK(cublasSgemm(h, blas_op(trans_b), blas_op(trans_a), n, m, k, &alpha, B, ib, A,
                                ia, &beta, C, ic));
  else
    NL_CUBLAS_CHECK(cublasDgemm(h, blas_op(trans_b), blas_op(trans_a), n, m, k, &alpha, B, ib, A,
                                ia, &beta, C, ic));
}

}  // namespace detail

/// C (M, N) = alpha * op(A) op(B) + beta * C, where op(A) is (M, K) and op(B) is (K, N).
///
/// Requires: A holds (M, K) with row stride lda >= K, or (K, M) with lda >= M
/// when trans_a; likewise B; ldc >= N; every size fits in 32 bits. With
/// beta == 0, C is only written. Float products are full float32 (no TF32).
template <class Scalar>
void gemm(Cuda, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, Scalar alpha,
          const Scalar* A, int64_t lda, const Scalar* B, int64_t ldb, Scalar beta, Scalar* C,
          int64_t ldc) {
  if (M == 0 || N == 0) return;
  if (K == 0) {
    detail::for_each_index("gemm (K = 0)", M * N, detail::ScaleMatrixOp<Scalar>{C, ldc, N, beta});
    return;
  }
  detail::blas_gemm(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

/// For p in [0, batch): C_p = alpha * op(A_p) op(B_p) + beta * C_p, where
/// X_p = X + p * stride_x. A stride of 0 reuses one matrix for the whole
/// batch; a C stride of 0 sums every product into one C (beta applies once).
///
/// As on the CPU, a shared B under back-to-back untransposed A_p is one GEMM
/// with the A_p stacked along M, and a shared C fed by back-to-back A_p^T and
/// B_p is one GEMM with them stacked along K; other batches are one
/// cublas<t>gemmStridedBatched call (a shared C: one GEMM per member, in order).
template <class Scalar>
void gemm_strided_batched(Cuda, bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K,
                          Scalar alpha, const Scalar* A, int64_t lda, int64_t stride_a,
                          const Scalar* B, int64_t ldb, int64_t stride_b, Scalar beta, Scalar* C,
                          int64_t ldc, int64_t stride_c, int64_t batch) {
  if (batch == 0 || M == 0 || N == 0) return;
  if (batch > 1 && stride_b == 0 && stride_c != 0 && !trans_a && lda == K && stride_a == M * K &&
      ldc == N && stride_c == M * N) {
    gemm(Cuda{}, false, trans_b, M * batch, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (batch > 1 && stride_c == 0 && trans_a && !trans_b && lda == M && stride_a == K * M &&
      ldb == N && stride_b == K * N) {
    gemm(Cuda{}, true, false, M, N, K * batch, alpha, A, lda, B, ldb, beta, C, ldc);
    return;
  }
  if (stride_c == 0 || K == 0 || batch == 1) {
    for (int64_t p = 0; p < batch; ++p)
      gemm(Cuda{}, trans_a, trans_b, M, N, K, alpha, A + p * stride_a, lda, B + p * stride_b, ldb,
           stride_c == 0 && p > 0 ? Scalar(1) : beta, C + p * stride_c, ldc);
    return;
  }
  const int m = detail::blas_int(M, "M"), n = detail::blas_int(N, "N"),
            k = detail::blas_int(K, "K"), count = detail::blas_int(batch, "batch");
  const int ia = detail::blas_int(lda, "lda"), ib = detail::blas_int(ldb, "ldb"),
            ic = detail::blas_int(ldc, "ldc");
  cublasHandle_t h = context().cublas();
  const cublasOperation_t op_a = detail::blas_op(trans_a), op_b = detail::blas_op(trans_b);
  if constexpr (std::is_same_v<Scalar, float>)
    NL_CUBLAS_CHECK(cublasSgemmStridedBatched(h, op_b, op_a, n, m, k, &alpha, B, ib, stride_b, A,
                                              ia, stride_a, &beta, C, ic, stride_c, count));
  else
    NL_CUBLAS_CHECK(cublasDgemmStridedBatched(h, op_b, op_a, n, m, k, &alpha, B, ib, stride_b, A,
                                              ia, stride_a, &beta, C, ic, stride_c, count));
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
