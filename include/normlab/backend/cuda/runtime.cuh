// normlab/backend/cuda/runtime.cuh — the CUDA backend tag, its context (one
// device, one stream, one cuBLAS handle, the stream-ordered memory pool), error
// mapping, memory, copies, fills and the launch helpers the kernels share.
//
// Every function here enqueues its work on the context's stream, so work is
// ordered as the host issued it; a host read (copy_to_host, sum_of_squares)
// synchronizes that stream before it returns. Device memory comes from the
// device's default memory pool through cudaMallocAsync / cudaFreeAsync on the
// same stream (never managed memory); the pool keeps freed blocks for reuse.
// Index range checks run inside the kernels that read the indices and leave
// the first bad index in device memory (Context::begin_index_check);
// copy_to_host and synchronize() raise it, so a training step checks its
// indices at its one read of the loss, without a synchronization of its own.
//
// Compiled by nvcc only: include <normlab/cuda.hpp> from a .cu file.
#pragma once

#ifdef __CUDACC__

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <thrust/execution_policy.h>
#include <thrust/fill.h>
#include <thrust/for_each.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/system_error.h>

#include <cstdint>
#include <cstdio>
#include <limits>
#include <utility>
#include <vector>

#include "normlab/backend/index_check.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {
namespace detail {

/// Throws Error naming `call`, where it was made and CUDA's name and text for
/// `e`, unless e is cudaSuccess. Clears the thread's last-error state first, so
/// a non-sticky failure (an allocation, a bad argument) is not reported again
/// by the next launch check.
inline void cuda_check(cudaError_t e, const char* call, const char* file, int line) {
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  throw Error(concat("cuda: ", call, " failed at ", file, ":", line, ": ", cudaGetErrorName(e),
                     " (", cudaGetErrorString(e), ")"));
}

/// Throws Error naming `call`, file, line and cuBLAS's status, unless s is success.
inline void cublas_check(cublasStatus_t s, const char* call, const char* file, int line) {
  if (s == CUBLAS_STATUS_SUCCESS) return;
  throw Error(concat("cuda: ", call, " failed at ", file, ":", line, ": ", cublasGetStatusName(s),
                     " (", cublasGetStatusString(s), ")"));
}

}  // namespace detail
}  // namespace v0
}  // namespace normlab

// The call's text and place can only be captured by a macro.
#define NL_CUDA_CHECK(call) ::normlab::detail::cuda_check((call), #call, __FILE__, __LINE__)
#define NL_CUBLAS_CHECK(call) ::normlab::detail::cublas_check((call), #call, __FILE__, __LINE__)
/// After a kernel launch: a bad configuration or an earlier asynchronous fault.
#define NL_CUDA_LAUNCH_CHECK(kernel) \
  ::normlab::detail::cuda_check(cudaGetLastError(), "launch of " kernel, __FILE__, __LINE__)

namespace normlab {
inline namespace v0 {
namespace cuda {

/// CUDA backend: cuBLAS for GEMM, Thrust and normlab's own kernels for the
/// rest, all on the stream of the process-wide Context.
struct Cuda {
  static constexpr const char* name = "cuda";
};

/// The number of CUDA devices this process can use (0 when there is no device
/// or no driver). Asks once.
inline int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

namespace detail {

/// The first bad index found by the device checks since the last report, in
/// device memory. `candidate` is the lowest bad position the running check
/// found (atomicMin); index_error_settle then records it with its check's
/// id and value, and later checks leave the record alone (the first bad
/// check in stream order wins, at its first bad position).
struct DeviceIndexError {
  unsigned long long candidate;  ///< ~0: none
  long long value;
  int check;  ///< 0: none; else 1 + the check's place in Context's pending checks
};

/// What a kernel that reads indices needs to report a bad one.
struct IndexErrorSink {
  DeviceIndexError* record = nullptr;  ///< null: the caller checked already
  __device__ void report(int64_t position) const {
    if (record == nullptr || record->check != 0) return;  // an earlier check failed
    atomicMin(&record->candidate, static_cast<unsigned long long>(position));
  }
};

/// One thread, after a checking kernel: records its first bad position.
inline __global__ void index_error_settle(DeviceIndexError* record, int check,
                                          const int64_t* indices) {
  if (record->check == 0 && record->candidate != ~0ull) {
    record->check = check;
    record->value = indices[record->candidate];
  }
}

}  // namespace detail

/// The process-wide CUDA state: the current device at first use, a
/// non-blocking stream, a cuBLAS handle bound to it, and the device's default
/// memory pool set to keep freed memory for reuse.
///
/// Contract: created on first use (throws Error when no device is visible);
/// never destroyed, so tensors freed during static destruction still find
/// their stream. Not meant to be used from several host threads at once.
class Context {
 public:
  static Context& get() {
    static Context* ctx = new Context();  // leaked on purpose, see above
    return *ctx;
  }
  cudaStream_t stream() const { return stream_; }
  cublasHandle_t cublas() const { return cublas_; }
  int device() const { return device_; }
  /// Streaming multiprocessors: grid-stride loops launch a few blocks per SM.
  int sm_count() const { return sm_count_; }

  /// Starts a device index check: returns the sink its kernel reports to;
  /// settle_index_check must follow the kernel. Every kMaxPending checks
  /// the record is read (a synchronization), so a program that never reads
  /// from the device still holds a bounded list.
  detail::IndexErrorSink begin_index_check(IndexCheck check) {
    if (pending_.size() >= kMaxPending) raise_index_error();
    pending_.push_back(std::move(check));
    return detail::IndexErrorSink{index_error_};
  }
  /// Records the first bad position of the check begun last (its kernel is
  /// queued); `indices` must be alive until the stream gets there.
  void settle_index_check(const int64_t* indices) {
    detail::index_error_settle<<<1, 1, 0, stream_>>>(index_error_,
                                                     static_cast<int>(pending_.size()), indices);
    NL_CUDA_LAUNCH_CHECK("index_error_settle");
  }
  /// Throws Error with the message of the first bad index the device checks
  /// found since the last call (index_range_message), and forgets it; waits
  /// for the stream when checks are pending, returns at once otherwise.
  void raise_index_error() {
    if (pending_.empty()) return;
    detail::DeviceIndexError found{};
    NL_CUDA_CHECK(
        cudaMemcpyAsync(&found, index_error_, sizeof found, cudaMemcpyDeviceToHost, stream_));
    NL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    std::vector<IndexCheck> checks = std::exchange(pending_, {});
    if (found.check == 0) return;
    NL_CUDA_CHECK(cudaMemcpyAsync(index_error_, &kNoIndexError, sizeof kNoIndexError,
                                  cudaMemcpyHostToDevice, stream_));
    NL_CUDA_CHECK(cudaStreamSynchronize(stream_));
    throw Error(normlab::detail::index_range_message(checks[static_cast<size_t>(found.check - 1)],
                                                     found.value,
                                                     static_cast<int64_t>(found.candidate)));
  }

  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

 private:
  Context() {
    normlab::detail::check(device_count() > 0,
                           "cuda: no CUDA device is visible (cudaGetDeviceCount found none); "
                           "use the Cpu backend or run on a machine with a GPU");
    NL_CUDA_CHECK(cudaGetDevice(&device_));
    NL_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device_));
    cudaMemPool_t pool;
    NL_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
    uint64_t keep = std::numeric_limits<uint64_t>::max();
    NL_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    NL_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    NL_CUBLAS_CHECK(cublasCreate(&cublas_));
    NL_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    // Full float32 products (no TF32), so float runs match the CPU to 1e-5.
    NL_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
    NL_CUDA_CHECK(cudaMalloc(&index_error_, sizeof(detail::DeviceIndexError)));
    NL_CUDA_CHECK(
        cudaMemcpy(index_error_, &kNoIndexError, sizeof kNoIndexError, cudaMemcpyHostToDevice));
  }

  static constexpr size_t kMaxPending = 4096;
  static constexpr detail::DeviceIndexError kNoIndexError{~0ull, 0, 0};

  int device_ = 0;
  int sm_count_ = 1;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  detail::DeviceIndexError* index_error_ = nullptr;
  std::vector<IndexCheck> pending_;  ///< the checks begun since the last read
};

inline Context& context() {
  return Context::get();
}

/// Waits until every operation issued so far has finished; throws Error if
/// one of them failed or if a device index check found a bad index.
inline void synchronize() {
  NL_CUDA_CHECK(cudaStreamSynchronize(context().stream()));
  context().raise_index_error();
}

/// Throws Error naming the first bad index (op, value, position, bound) that
/// the device checks of embedding and cross_entropy found since the last
/// report; waits for the stream when checks are pending. copy_to_host and
/// synchronize() call it, so a training step reports at its read of the loss.
inline void check_index_errors() {
  context().raise_index_error();
}

// ---- memory -------------------------------------------------------------

/// `bytes` of device memory from the stream-ordered pool.
/// Throws Error naming the requested size (and the device's free memory) when
/// the pool cannot provide it.
inline void* allocate_bytes(Cuda, size_t bytes) {
  Context& ctx = context();
  void* p = nullptr;
  const cudaError_t e = cudaMallocAsync(&p, bytes, ctx.stream());
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    size_t free_bytes = 0, total_bytes = 0;
    if (cudaMemGetInfo(&free_bytes, &total_bytes) != cudaSuccess) (void)cudaGetLastError();
    throw Error(normlab::detail::concat(
        "cuda: cannot allocate ", bytes, " bytes (", bytes >> 20, " MiB) on device ", ctx.device(),
        ": cudaMallocAsync failed at ", __FILE__, ":", __LINE__, ": ", cudaGetErrorName(e), " (",
        cudaGetErrorString(e), "); ", free_bytes >> 20, " of ", total_bytes >> 20, " MiB free"));
  }
  return p;
}

/// Returns memory to the pool once the stream's work so far has finished.
/// Never throws (it runs in destructors); a failure other than the runtime
/// shutting down is printed to stderr.
inline void deallocate_bytes(Cuda, void* p) {
  if (p == nullptr) return;
  const cudaError_t e = cudaFreeAsync(p, context().stream());
  if (e == cudaSuccess) return;
  (void)cudaGetLastError();
  if (e != cudaErrorCudartUnloading)
    std::fprintf(stderr, "normlab: cuda: cudaFreeAsync failed: %s (%s)\n", cudaGetErrorName(e),
                 cudaGetErrorString(e));
}

// ---- copies (any element type: float, double, int64 indices) --------------

namespace detail {
/// Copies `bytes` between host and device on the context's stream and waits
/// for it (and all earlier work) to finish.
inline void copy_and_wait(void* dst, const void* src, int64_t bytes, cudaMemcpyKind kind) {
  if (bytes <= 0) return;
  const cudaStream_t s = context().stream();
  NL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(bytes), kind, s));
  NL_CUDA_CHECK(cudaStreamSynchronize(s));
}
}  // namespace detail

/// host_dst[0, n) = src[0, n); returns when the copy (and all earlier work) is done.
/// Then throws Error if a device index check found a bad index (check_index_errors).
template <class Scalar>
void copy_to_host(Cuda, Scalar* host_dst, const Scalar* src, int64_t n) {
  detail::copy_and_wait(host_dst, src, n * static_cast<int64_t>(sizeof(Scalar)),
                        cudaMemcpyDeviceToHost);
  context().raise_index_error();
}
/// dst[0, n) = host_src[0, n); returns when host_src may be reused.
template <class Scalar>
void copy_from_host(Cuda, Scalar* dst, const Scalar* host_src, int64_t n) {
  detail::copy_and_wait(dst, host_src, n * static_cast<int64_t>(sizeof(Scalar)),
                        cudaMemcpyHostToDevice);
}
/// dst[0, n) = src[0, n) on the device (the ranges must not overlap).
template <class Scalar>
void copy(Cuda, Scalar* dst, const Scalar* src, int64_t n) {
  if (n <= 0 || dst == src) return;
  NL_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * sizeof(Scalar),
                                cudaMemcpyDeviceToDevice, context().stream()));
}

// ---- launch helpers -------------------------------------------------------

namespace detail {

/// Runs f(i) for i in [0, n) on the context's stream (Thrust, without a host
/// synchronization); a Thrust failure becomes an Error naming `what`.
template <class F>
void for_each_index(const char* what, int64_t n, F f) {
  if (n <= 0) return;
  try {
    thrust::for_each_n(thrust::cuda::par_nosync.on(context().stream()),
                       thrust::counting_iterator<int64_t>(0), n, f);
  } catch (const thrust::system_error& e) {
    throw Error(
        normlab::detail::concat("cuda: ", what, " (thrust::for_each_n) failed: ", e.what()));
  }
  NL_CUDA_LAUNCH_CHECK("thrust::for_each_n");
}

/// Blocks for a grid-stride loop over `work` items with `threads` per block:
/// enough to fill the device, never more than the items need.
inline unsigned grid_for(int64_t work, int threads) {
  const int64_t need = (work + threads - 1) / threads;
  const int64_t cap = int64_t{32} * context().sm_count();
  return static_cast<unsigned>(need < 1 ? 1 : (need < cap ? need : cap));
}

/// Threads for one block per row of `n` elements: a multiple of 32 in [32, 256].
inline int row_threads(int64_t n) {
  const int64_t t = (n + 31) / 32 * 32;
  return static_cast<int>(t < 32 ? 32 : (t > 256 ? 256 : t));
}

/// Blocks for one block per row over `rows` rows (grid-stride beyond the cap).
inline unsigned row_blocks(int64_t rows) {
  constexpr int64_t kCap = int64_t{1} << 20;
  return static_cast<unsigned>(rows < 1 ? 1 : (rows < kCap ? rows : kCap));
}

/// The sum of v over the block, returned to every thread. Requires a 1-d block
/// whose size is a multiple of 32 and `scratch` of 32 shared elements; every
/// thread of the block must call it. Warps add by a fixed butterfly and the
/// warp totals are added in warp order, so the result is the same every run.
template <class Scalar>
__device__ Scalar block_sum(Scalar v, Scalar* scratch) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  __syncthreads();  // the previous call's readers are done with scratch
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  Scalar total = scratch[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) total += scratch[w];
  return total;
}

/// The maximum of v over the block, returned to every thread (as block_sum).
template <class Scalar>
__device__ Scalar block_max(Scalar v, Scalar* scratch) {
  for (int o = 16; o > 0; o >>= 1) {
    const Scalar u = __shfl_xor_sync(0xffffffffu, v, o);
    v = u > v ? u : v;
  }
  __syncthreads();
  if (threadIdx.x % 32 == 0) scratch[threadIdx.x / 32] = v;
  __syncthreads();
  Scalar total = scratch[0];
  for (unsigned w = 1; w < blockDim.x / 32; ++w) total = scratch[w] > total ? scratch[w] : total;
  return total;
}

/// std::numeric_limits<Scalar>::quiet_NaN() (the same bits) for device code.
template <class Scalar>
__device__ Scalar quiet_nan() {
  if constexpr (sizeof(Scalar) == sizeof(float))
    return __int_as_float(0x7fc00000);
  else
    return __longlong_as_double(0x7ff8000000000000LL);
}

/// Thrust's temporary storage from the backend's pool, on the backend's stream.
struct PoolAllocator {
  using value_type = char;
  char* allocate(std::ptrdiff_t n) {
    return static_cast<char*>(allocate_bytes(Cuda{}, static_cast<size_t>(n)));
  }
  void deallocate(char* p, size_t) { deallocate_bytes(Cuda{}, p); }
};

template <class Scalar>
struct FillOp {
  Scalar* dst;
  Scalar value;
  __device__ void operator()(int64_t i) const { dst[i] = value; }
};
template <class Scalar>
struct UniformOp {
  Scalar* dst;
  uint64_t seed, first_block;
  Scalar lo, hi;
  __device__ void operator()(int64_t i) const {
    dst[i] = philox_uniform<Scalar>(seed, first_block, i, lo, hi);
  }
};
template <class Scalar>
struct NormalOp {
  Scalar* dst;
  uint64_t seed, first_block;
  Scalar mean, std;
  __device__ void operator()(int64_t i) const {
    dst[i] = philox_normal<Scalar>(seed, first_block, i, mean, std);
  }
};
template <class Scalar>
struct AxpyOp {
  Scalar* dst;
  const Scalar* src;
  Scalar alpha;
  __device__ void operator()(int64_t i) const { dst[i] += alpha * src[i]; }
};

}  // namespace detail

// ---- fills ---------------------------------------------------------------

/// dst[i] = value for i < n (any element type).
template <class Scalar>
void fill(Cuda, Scalar* dst, int64_t n, Scalar value) {
  detail::for_each_index("fill", n, detail::FillOp<Scalar>{dst, value});
}
/// dst[i] = philox_uniform(seed, first_block, i, lo, hi): the CPU's values (core/random.hpp).
template <class Scalar>
void fill_uniform(Cuda, Scalar* dst, int64_t n, uint64_t seed, uint64_t first_block, Scalar lo,
                  Scalar hi) {
  detail::for_each_index("fill_uniform", n,
                         detail::UniformOp<Scalar>{dst, seed, first_block, lo, hi});
}
/// dst[i] = philox_normal(seed, first_block, i, mean, std) (core/random.hpp).
template <class Scalar>
void fill_normal(Cuda, Scalar* dst, int64_t n, uint64_t seed, uint64_t first_block, Scalar mean,
                 Scalar std) {
  detail::for_each_index("fill_normal", n,
                         detail::NormalOp<Scalar>{dst, seed, first_block, mean, std});
}
/// dst[i] += alpha * src[i]
template <class Scalar>
void accumulate(Cuda, Scalar* dst, const Scalar* src, int64_t n, Scalar alpha) {
  detail::for_each_index("accumulate", n, detail::AxpyOp<Scalar>{dst, src, alpha});
}

}  // namespace cuda
}  // namespace v0
}  // namespace normlab

namespace normlab {
inline namespace v0 {
using cuda::Cuda;
}  // namespace v0
}  // namespace normlab

#endif  // __CUDACC__
