// normlab/dist/nccl.hpp — NcclCommunicator: the collectives of communicator.hpp
// over NCCL, on device memory (Cuda tensors). Include from a .cu file compiled by
// nvcc; link normlab::nccl (CMake: NCCL and MPI found, CUDA on).
//
//   normlab::dist::MpiCommunicator mpi;                 // bootstrap: MPI, host side
//   cudaSetDevice(local_rank);                          // before the first Cuda tensor
//   normlab::dist::NcclCommunicator comm(mpi);          // NCCL over every MPI rank
//   comm.all_reduce_mean(grad);                         // grad: Tensor<float, Cuda>
//
// Setup: rank 0 creates the ncclUniqueId and broadcasts it over the MPI
// communicator; every rank then joins with ncclCommInitRankConfig (non-blocking
// mode, polled under the timeout), on the device of normlab's CUDA context (the
// current device when the first Cuda tensor was made). All work is queued on the
// CUDA backend's stream, in order with the kernels that produced the buffers.
//
// Reduction order: NcclOrder::rank_order (the default) keeps communicator.hpp's
// contract exactly as mpi.hpp does — grouped ncclSend/ncclRecv give rank r the N
// parts of its slice, one kernel adds them in rank order 0..N-1 (then divides by
// N for the mean), and grouped ncclSend/ncclRecv copy every slice to every rank.
// NcclOrder::nccl uses ncclAllReduce (ncclSum / ncclAvg) instead: faster on
// large rings, the same bits on every rank, but its order is NCCL's (ring or
// tree, chosen by NCCL) — equal to rank order for N = 2 only.
//
// Timeouts and failures: a wait polls the operation's CUDA event and
// ncclCommGetAsyncError until `timeout()`; then it calls ncclCommAbort, which
// ends this rank's queued NCCL work, and throws Error naming the operation, this
// rank and the time waited (NCCL cannot say which ranks are missing). The other
// ranks' operations then fail or time out the same way, each on its own rank.
// The MPI bootstrap communicator stays usable. After a failure this communicator
// is unusable (its later operations throw).
//
// Unverified: this file is compiled by the test build but has not yet run on a GPU
// (tests/dist/nccl).
#pragma once

#ifndef __CUDACC__
#error "normlab/dist/nccl.hpp holds CUDA code: include it from a .cu file compiled by nvcc"
#endif

#include <nccl.h>

#include <array>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "normlab/cuda.hpp"
#include "normlab/dist/mpi.hpp"

namespace normlab {
inline namespace v0 {
namespace dist {

/// How NcclCommunicator reduces; see the header.
enum class NcclOrder { rank_order, nccl };

/// Settings of an NcclCommunicator.
struct NcclOptions {
  NcclOrder order = NcclOrder::rank_order;
  std::chrono::milliseconds timeout = Communicator::kDefaultTimeout;
};

namespace nccl_detail {

/// out[i] = ((x_0[i] + x_1[i]) + ...) + x_{N-1}[i] (then / N for the mean), where
/// x_me is `out` itself and x_r (r != me) is parts + r * len.
template <class Scalar>
__global__ void sum_in_rank_order(Scalar* out, const Scalar* parts, int64_t len, int nranks, int me,
                                  bool mean) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < len;
       i += stride) {
    Scalar s = me == 0 ? out[i] : parts[i];
    for (int r = 1; r < nranks; ++r) s += r == me ? out[i] : parts[r * len + i];
    if (mean) s /= static_cast<Scalar>(nranks);
    out[i] = s;
  }
}

inline ncclDataType_t nccl_type(ElementType t) {
  return t == ElementType::float32 ? ncclFloat32 : ncclFloat64;
}

}  // namespace nccl_detail

/// The collectives of communicator.hpp over NCCL, for device buffers (Cuda tensors).
///
/// Contract: every rank of `bootstrap` constructs it (a collective, under the
/// timeout), after choosing its device; `bootstrap` must outlive it, and handles
/// must not outlive it. Buffers are device memory of normlab's CUDA context, and
/// every collective is queued on the backend's stream (a handle's wait() waits for
/// that stream up to the collective). Order and failures: see the header.
class NcclCommunicator final : public Communicator {
 public:
  explicit NcclCommunicator(MpiCommunicator& bootstrap, NcclOptions options = {})
      : bootstrap_(bootstrap), options_(options), rank_(bootstrap.rank()), size_(bootstrap.size()) {
    set_timeout(options_.timeout);
    stream_ = cuda::context().stream();
    bootstrap_.check_same("NCCL version", std::to_string(NCCL_VERSION_CODE));
    ncclUniqueId id;
    static_assert(sizeof(ncclUniqueId) % sizeof(int64_t) == 0);
    std::array<int64_t, sizeof(ncclUniqueId) / sizeof(int64_t)> words{};
    if (rank_ == 0) {
      check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      std::memcpy(words.data(), &id, sizeof id);
    }
    bootstrap_.broadcast(words.data(), static_cast<int64_t>(words.size()), 0);
    std::memcpy(&id, words.data(), sizeof id);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // every call returns at once; settle() polls under the timeout
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, size_, id, rank_, &config);
    if (r != ncclSuccess && r != ncclInProgress) check(r, "ncclCommInitRankConfig");
    settle("ncclCommInitRankConfig");
  }

  ~NcclCommunicator() override {
    if (comm_ == nullptr) return;  // never made, or aborted after a failure
    try {
      const ncclResult_t r = ncclCommFinalize(comm_);
      if (r == ncclSuccess || r == ncclInProgress) settle("ncclCommFinalize");
      if (comm_ != nullptr) ncclCommDestroy(comm_);
    } catch (...) {  // settle aborted the communicator
    }
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "nccl"; }
  bool accepts_backend(std::string_view backend_name) const override {
    return backend_name == "cuda";
  }
  bool failed() const { return !failure_.empty(); }
  ncclComm_t comm() const { return comm_; }

 protected:
  std::unique_ptr<PendingOperation> do_start_all_reduce(void* data, int64_t n, ElementType type,
                                                        ReduceOp op) override {
    throw_if_failed();
    const std::string what = normlab::detail::concat(reduce_op_name(op), " #", seq_++, " (", n, " ",
                                                     element_type_name(type), ")");
    if (n > 0 && size_ > 1) {
      if (options_.order == NcclOrder::nccl) {
        enqueue(ncclAllReduce(data, data, static_cast<size_t>(n), nccl_detail::nccl_type(type),
                              op == ReduceOp::mean ? ncclAvg : ncclSum, comm_, stream_),
                what, "ncclAllReduce");
      } else if (type == ElementType::float32) {
        rank_order_all_reduce(static_cast<float*>(data), n, op, what);
      } else {
        rank_order_all_reduce(static_cast<double*>(data), n, op, what);
      }
    }
    return std::make_unique<Pending>(this, what);
  }
  void do_broadcast(void* data, int64_t bytes, int root) override {
    throw_if_failed();
    const std::string what =
        normlab::detail::concat("broadcast #", seq_++, " (", bytes, " bytes from rank ", root, ")");
    if (bytes > 0 && size_ > 1)
      enqueue(
          ncclBroadcast(data, data, static_cast<size_t>(bytes), ncclUint8, root, comm_, stream_),
          what, "ncclBroadcast");
    Pending(this, what).wait();
  }
  void do_barrier() override {
    throw_if_failed();
    Pending(this, normlab::detail::concat("barrier #", seq_++)).wait();  // this rank's queue
    bootstrap_.barrier();                                                // every rank
  }
  std::vector<std::string> do_all_gather_strings(const std::string& value) override {
    return bootstrap_.all_gather_strings(value);
  }

 private:
  using Clock = std::chrono::steady_clock;

  /// Waits for the stream up to where it was at construction, polling NCCL's errors.
  class Pending final : public PendingOperation {
   public:
    Pending(NcclCommunicator* comm, std::string what) : comm_(comm), what_(std::move(what)) {
      NL_CUDA_CHECK(cudaEventCreateWithFlags(&event_, cudaEventDisableTiming));
      NL_CUDA_CHECK(cudaEventRecord(event_, comm_->stream_));
    }
    ~Pending() override { cudaEventDestroy(event_); }
    bool test() override {
      comm_->throw_if_failed();
      comm_->check_async(what_);
      const cudaError_t e = cudaEventQuery(event_);
      if (e == cudaErrorNotReady) return false;
      NL_CUDA_CHECK(e);
      return true;
    }
    void wait() override {
      const auto start = Clock::now();
      for (int spins = 0; !test(); ++spins) {
        if (Clock::now() - start > comm_->timeout()) comm_->fail_timeout(what_, start);
        if (spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }

   private:
    NcclCommunicator* comm_;
    std::string what_;
    cudaEvent_t event_ = nullptr;
  };

  /// The rank-order all-reduce of the header, queued on the stream.
  template <class Scalar>
  void rank_order_all_reduce(Scalar* data, int64_t n, ReduceOp op, const std::string& what) {
    const ncclDataType_t type = nccl_detail::nccl_type(element_type_of<Scalar>());
    auto begin = [&](int r) { return mpi_detail::slice_begin(n, size_, r); };
    auto len = [&](int r) { return begin(r + 1) - begin(r); };
    const int64_t mine = len(rank_);
    // (size, mine): the parts of this rank's slice from each rank (its own unused)
    void* parts =
        mine > 0 ? allocate_bytes(cuda::Cuda{}, static_cast<size_t>(size_ * mine) * sizeof(Scalar))
                 : nullptr;
    auto* p = static_cast<Scalar*>(parts);
    group(what, "reduce-scatter (ncclSend/ncclRecv)", [&] {
      for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        if (mine > 0)
          check(ncclRecv(p + r * mine, static_cast<size_t>(mine), type, r, comm_, stream_),
                "ncclRecv", what);
        if (len(r) > 0)
          check(ncclSend(data + begin(r), static_cast<size_t>(len(r)), type, r, comm_, stream_),
                "ncclSend", what);
      }
    });
    if (mine > 0) {
      nccl_detail::sum_in_rank_order<Scalar>
          <<<cuda::detail::grid_for(mine, 256), 256, 0, stream_>>>(
              data + begin(rank_), p, mine, size_, rank_, op == ReduceOp::mean);
      NL_CUDA_LAUNCH_CHECK("sum_in_rank_order");
      deallocate_bytes(cuda::Cuda{}, parts);  // stream-ordered: after the kernel
    }
    group(what, "all-gather (ncclSend/ncclRecv)", [&] {
      for (int r = 0; r < size_; ++r) {
        if (r == rank_) continue;
        if (mine > 0)
          check(ncclSend(data + begin(rank_), static_cast<size_t>(mine), type, r, comm_, stream_),
                "ncclSend", what);
        if (len(r) > 0)
          check(ncclRecv(data + begin(r), static_cast<size_t>(len(r)), type, r, comm_, stream_),
                "ncclRecv", what);
      }
    });
  }

  template <class F>
  void group(const std::string& what, const char* step, F body) {
    check(ncclGroupStart(), "ncclGroupStart", what);
    body();
    enqueue(ncclGroupEnd(), what, step);
  }
  /// After a call that queues work: ncclInProgress means "still being queued".
  void enqueue(ncclResult_t r, const std::string& what, const char* call) {
    if (r != ncclSuccess && r != ncclInProgress) check(r, call, what);
    if (r == ncclInProgress) settle(what);
  }
  /// Polls ncclCommGetAsyncError until the last call has settled, under the timeout.
  void settle(const std::string& what) {
    const auto start = Clock::now();
    for (int spins = 0;; ++spins) {
      ncclResult_t state = ncclSuccess;
      check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", what);
      if (state == ncclSuccess) return;
      if (state != ncclInProgress) fail(what, state);
      if (Clock::now() - start > timeout()) fail_timeout(what, start);
      if (spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }
  void check_async(const std::string& what) {
    ncclResult_t state = ncclSuccess;
    check(ncclCommGetAsyncError(comm_, &state), "ncclCommGetAsyncError", what);
    if (state != ncclSuccess && state != ncclInProgress) fail(what, state);
  }
  void check(ncclResult_t r, const char* call, const std::string& what = "NcclCommunicator") {
    if (r != ncclSuccess) fail(normlab::detail::concat(what, ": ", call), r);
  }
  [[noreturn]] void fail(const std::string& what, ncclResult_t r) {
    const char* last = comm_ ? ncclGetLastError(comm_) : ncclGetLastError(nullptr);
    abort_with(normlab::detail::concat(what, " failed on rank ", rank_, " of ", size_, ": ",
                                       ncclGetErrorString(r),
                                       (last && *last) ? std::string(" (") + last + ")" : "",
                                       "; the NCCL communicator was aborted"));
  }
  [[noreturn]] void fail_timeout(const std::string& what, Clock::time_point start) {
    char waited[32];
    std::snprintf(waited, sizeof waited, "%.2f",
                  std::chrono::duration<double>(Clock::now() - start).count());
    abort_with(normlab::detail::concat(
        what, " timed out on rank ", rank_, " of ", size_, " after ", waited, " s (timeout ",
        timeout().count() / 1000.0,
        " s): some rank did not take part (NCCL cannot say which); the NCCL communicator was "
        "aborted (ncclCommAbort)"));
  }
  [[noreturn]] void abort_with(const std::string& message) {
    if (failure_.empty() && comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    failure_ = message;
    throw Error(message);
  }
  void throw_if_failed() const {
    if (!failure_.empty())
      throw Error(normlab::detail::concat("nccl communicator (rank ", rank_,
                                          "): unusable after an earlier failure: ", failure_));
  }

  MpiCommunicator& bootstrap_;
  NcclOptions options_;
  int rank_, size_;
  cudaStream_t stream_ = nullptr;
  ncclComm_t comm_ = nullptr;
  uint64_t seq_ = 0;
  std::string failure_;
};

}  // namespace dist
}  // namespace v0
}  // namespace normlab
