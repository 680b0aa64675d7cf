// normlab/dist/communicator.hpp — the communicator interface for data-parallel
// training, and SingleProcessCommunicator (the default: one rank, no dependency).
//
// A Communicator connects the `size()` processes ("ranks") of one job. Every
// rank calls the same collectives in the same order, with the same sizes:
//
//   normlab::dist::SingleProcessCommunicator comm;       // or MpiCommunicator (dist/mpi.hpp),
//                                                        // NcclCommunicator (dist/nccl.hpp)
//   comm.check_same("model config", cfg_text);           // every rank throws if one differs
//   comm.broadcast(params.data(), params.numel(), 0);    // rank 0's values everywhere
//   auto h = comm.start_all_reduce_mean(grad.data(), grad.numel());   // (n,) gradient bucket
//   ...                                                  // more backward work meanwhile
//   h.wait();                                            // grad: the mean over the ranks
//
// The reduction order (the contract every implementation keeps unless it says
// otherwise): element i of an all-reduce over ranks 0..N-1 holding x_0 .. x_{N-1} is
//
//   sum[i]  = (...((x_0[i] + x_1[i]) + x_2[i]) + ... ) + x_{N-1}[i]   in the buffer's type
//   mean[i] = sum[i] / N                                               (one IEEE division)
//
// — a left fold in rank order, the serial loop `s = x_0; for r in 1..N-1: s += x_r` —
// and every rank ends with exactly the same bits. The order does not depend on the
// message sizes, the chunking or the MPI library's algorithms, so N ranks reproduce a
// serial sum in rank order bit for bit.
//
// Failures: every collective finishes within `timeout()` of its wait or throws
// normlab::Error naming the operation, this rank, the elapsed time and, where the
// implementation knows them, the ranks that did not take part. After such an error
// the communicator is unusable (its later operations throw); see each implementation
// for what happens to the other ranks.
//
// This header includes no MPI or NCCL header: code that includes only it (or
// normlab/normlab.hpp) links nothing new.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "normlab/core/dtype.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/tensor.hpp"

namespace normlab {
inline namespace v0 {
namespace dist {

/// What an all-reduce computes; see the reduction order in this file's header.
enum class ReduceOp { sum, mean };

inline const char* reduce_op_name(ReduceOp op) {
  return op == ReduceOp::sum ? "all_reduce_sum" : "all_reduce_mean";
}

/// The element types a communicator reduces.
enum class ElementType { float32, float64 };

template <FloatingElement Scalar>
constexpr ElementType element_type_of() {
  return std::is_same_v<Scalar, float> ? ElementType::float32 : ElementType::float64;
}
inline const char* element_type_name(ElementType t) {
  return t == ElementType::float32 ? "float32" : "float64";
}
inline int64_t element_size(ElementType t) {
  return t == ElementType::float32 ? 4 : 8;
}

/// One operation in flight, as an implementation sees it.
class PendingOperation {
 public:
  virtual ~PendingOperation() = default;
  /// Advances the operation without blocking; true once it has finished.
  /// Throws Error when it failed.
  virtual bool test() = 0;
  /// Blocks until the operation has finished; throws Error when it failed or
  /// did not finish within the communicator's timeout.
  virtual void wait() = 0;
};

/// The handle of a started collective (start_all_reduce_*): test() polls, wait()
/// blocks until the result is in the buffer.
///
/// Contract: the buffer must stay alive and untouched until wait() returned or
/// test() returned true. A handle destroyed before that waits in its destructor;
/// an error found there is not thrown (destructors do not throw) but left in the
/// communicator, whose next operation throws it. Move-only.
class CommHandle {
 public:
  CommHandle() = default;
  explicit CommHandle(std::unique_ptr<PendingOperation> op) : op_(std::move(op)) {}
  CommHandle(CommHandle&&) noexcept = default;
  CommHandle& operator=(CommHandle&& o) noexcept {
    if (this != &o) {
      finish_quietly();
      op_ = std::move(o.op_);
    }
    return *this;
  }
  ~CommHandle() { finish_quietly(); }

  /// True once the operation has finished (a default handle has). Throws Error on failure.
  bool test() {
    if (op_ && op_->test()) op_.reset();
    return !op_;
  }
  /// Blocks until the operation has finished; throws Error on failure or timeout.
  void wait() {
    if (!op_) return;
    std::unique_ptr<PendingOperation> op = std::move(op_);
    op->wait();
  }
  bool done() const { return !op_; }

 private:
  void finish_quietly() noexcept {
    if (!op_) return;
    try {
      op_->wait();
    } catch (...) {  // the communicator keeps the failure; see the contract
    }
    op_.reset();
  }
  std::unique_ptr<PendingOperation> op_;
};

/// The collectives of data-parallel training over `size()` ranks.
///
/// Contract for every collective: all ranks call it, in the same order, with the
/// same element type, count (and root); buffers live where memory_space() says
/// (host memory for Cpu tensors, device memory for Cuda tensors). Violations are
/// reported as Error where the implementation can see them (a size mismatch, a
/// timeout), never as a silent wrong result. Not thread-safe: one thread calls a
/// communicator at a time.
class Communicator {
 public:
  /// The default timeout of every collective's wait.
  static constexpr std::chrono::milliseconds kDefaultTimeout{std::chrono::minutes(5)};

  virtual ~Communicator() = default;
  Communicator() = default;
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  /// This process's rank in [0, size()).
  virtual int rank() const = 0;
  /// The number of ranks.
  virtual int size() const = 0;
  /// "single", "mpi" or "nccl": names the implementation in messages.
  virtual const char* name() const = 0;
  /// Whether this communicator reduces memory of the backend named `backend_name`
  /// (the backend tag's `name`: "cpu", "cuda").
  virtual bool accepts_backend(std::string_view backend_name) const = 0;

  /// How long a wait may block before it throws. Requires timeout > 0.
  std::chrono::milliseconds timeout() const { return timeout_; }
  void set_timeout(std::chrono::milliseconds timeout) {
    detail::check(timeout.count() > 0, name(), " communicator: set_timeout expects a positive ",
                  "timeout, found ", timeout.count(), " ms");
    timeout_ = timeout;
  }

  // ---- all-reduce ----------------------------------------------------------
  /// Starts an all-reduce of data[0, n) in place on every rank; the result (in
  /// the documented rank order) is there once the handle's wait() returns.
  /// Requires n >= 0 and data valid for n elements when n > 0.
  template <FloatingElement Scalar>
  CommHandle start_all_reduce(Scalar* data, int64_t n, ReduceOp op) {
    check_buffer(reduce_op_name(op), data, n, sizeof(Scalar));
    return CommHandle(do_start_all_reduce(data, n, element_type_of<Scalar>(), op));
  }
  template <FloatingElement Scalar>
  CommHandle start_all_reduce_sum(Scalar* data, int64_t n) {
    return start_all_reduce(data, n, ReduceOp::sum);
  }
  template <FloatingElement Scalar>
  CommHandle start_all_reduce_mean(Scalar* data, int64_t n) {
    return start_all_reduce(data, n, ReduceOp::mean);
  }
  /// Blocking all-reduce: start_all_reduce(...).wait().
  template <FloatingElement Scalar>
  void all_reduce_sum(Scalar* data, int64_t n) {
    start_all_reduce(data, n, ReduceOp::sum).wait();
  }
  template <FloatingElement Scalar>
  void all_reduce_mean(Scalar* data, int64_t n) {
    start_all_reduce(data, n, ReduceOp::mean).wait();
  }

  /// The same on every element of a tensor (any shape). Requires a defined tensor
  /// on a backend this communicator accepts.
  template <FloatingElement Scalar, class Backend>
  CommHandle start_all_reduce(Tensor<Scalar, Backend>& t, ReduceOp op) {
    check_tensor(reduce_op_name(op), t);
    return start_all_reduce(t.data(), t.numel(), op);
  }
  template <FloatingElement Scalar, class Backend>
  void all_reduce_sum(Tensor<Scalar, Backend>& t) {
    start_all_reduce(t, ReduceOp::sum).wait();
  }
  template <FloatingElement Scalar, class Backend>
  void all_reduce_mean(Tensor<Scalar, Backend>& t) {
    start_all_reduce(t, ReduceOp::mean).wait();
  }

  // ---- broadcast, barrier, agreement ------------------------------------------
  /// Copies rank `root`'s data[0, n) to every rank. Requires 0 <= root < size().
  template <Element Scalar>
  void broadcast(Scalar* data, int64_t n, int root) {
    check_buffer("broadcast", data, n, sizeof(Scalar));
    check_root("broadcast", root);
    do_broadcast(data, n * static_cast<int64_t>(sizeof(Scalar)), root);
  }
  template <Element Scalar, class Backend>
  void broadcast(Tensor<Scalar, Backend>& t, int root) {
    check_tensor("broadcast", t);
    broadcast(t.data(), t.numel(), root);
  }

  /// Returns once every rank has called barrier() (or throws on timeout, naming
  /// the ranks that did not arrive where known).
  void barrier() { do_barrier(); }

  /// Every rank's `value`, indexed by rank, on every rank: how ranks that
  /// computed different things (independent runs, results) share them. The
  /// strings may differ in length and hold any bytes. Blocks until every rank
  /// has called it (or throws on timeout).
  std::vector<std::string> all_gather_strings(const std::string& value) {
    std::vector<std::string> all = do_all_gather_strings(value);
    detail::check(static_cast<int>(all.size()) == size(), name(),
                  " communicator: all_gather_strings gathered ", all.size(), " values from ",
                  size(), " ranks");
    return all;
  }

  /// Checks that every rank passes the same `value` (a configuration, a model
  /// hash, a data-set name). Throws Error on every rank when they differ, naming
  /// `what` and each distinct value with the ranks that hold it; the
  /// communicator stays usable after that error.
  void check_same(const std::string& what, const std::string& value) {
    const std::vector<std::string> all = all_gather_strings(value);
    std::vector<std::pair<std::string, std::vector<int>>> groups;  // value, its ranks
    for (int r = 0; r < size(); ++r) {
      const std::string& v = all[static_cast<size_t>(r)];
      auto it = groups.begin();
      while (it != groups.end() && it->first != v) ++it;
      if (it == groups.end())
        groups.push_back({v, {r}});
      else
        it->second.push_back(r);
    }
    if (groups.size() == 1) return;
    std::string msg = detail::concat("check_same(", what, "): the ", size(),
                                     " ranks must agree, found ", groups.size(), " values:");
    for (const auto& [v, ranks] : groups) {
      msg += ranks.size() == 1 ? " rank" : " ranks";
      for (size_t i = 0; i < ranks.size(); ++i) msg += detail::concat(i ? "," : " ", ranks[i]);
      std::string shown = v;  // long values cut at 200 characters
      if (shown.size() > 200) {
        shown.resize(200);
        shown += "...";
      }
      msg += detail::concat(" have \"", shown, "\";");
    }
    msg.back() = '.';
    msg += detail::concat(" (this is rank ", rank(), ")");
    throw Error(msg);
  }

 protected:
  /// Implementations: start the all-reduce of n elements of `type` at `data`
  /// (arguments already checked).
  virtual std::unique_ptr<PendingOperation> do_start_all_reduce(void* data, int64_t n,
                                                                ElementType type, ReduceOp op) = 0;
  /// Copies root's `bytes` bytes at `data` to every rank; blocks.
  virtual void do_broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void do_barrier() = 0;
  /// Every rank's `value`, indexed by rank, on every rank.
  virtual std::vector<std::string> do_all_gather_strings(const std::string& value) = 0;

 private:
  void check_buffer(const char* op, const void* data, int64_t n, size_t element_bytes) const {
    detail::check(n >= 0, op, ": the element count must be >= 0, found ", n, " (rank ", rank(),
                  ")");
    detail::check(n == 0 || data != nullptr, op, ": ", n, " elements at a null pointer (rank ",
                  rank(), ")");
    detail::CheckedCount c;
    c.mul(n, static_cast<int64_t>(element_bytes));
    detail::check(c.fits, op, ": ", n, " elements of ", element_bytes,
                  " bytes do not fit an int64 byte count (rank ", rank(), ")");
  }
  void check_root(const char* op, int root) const {
    detail::check(root >= 0 && root < size(), op, ": root must be a rank in [0, ", size(),
                  "), found ", root, " (rank ", rank(), ")");
  }
  template <class Scalar, class Backend>
  void check_tensor(const char* op, const Tensor<Scalar, Backend>& t) const {
    detail::check(t.defined(), op, ": expects a defined tensor, found an undefined one (rank ",
                  rank(), ")");
    detail::check(accepts_backend(Backend::name), op, ": the ", name(),
                  " communicator does not reduce ", Backend::name, " tensors (found a ",
                  Backend::name, " tensor of shape ", t.shape(), " on rank ", rank(), ")");
  }

  std::chrono::milliseconds timeout_ = kDefaultTimeout;
};

/// One rank: every collective leaves the buffers as they are (the sum and the
/// mean over one rank are its values), barrier and check_same return at once.
/// The default communicator; accepts every backend.
class SingleProcessCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* name() const override { return "single"; }
  bool accepts_backend(std::string_view) const override { return true; }

 protected:
  std::unique_ptr<PendingOperation> do_start_all_reduce(void*, int64_t, ElementType,
                                                        ReduceOp) override {
    return nullptr;  // already done: a default handle
  }
  void do_broadcast(void*, int64_t, int) override {}
  void do_barrier() override {}
  std::vector<std::string> do_all_gather_strings(const std::string& value) override {
    return {value};
  }
};

}  // namespace dist
}  // namespace v0
}  // namespace normlab
