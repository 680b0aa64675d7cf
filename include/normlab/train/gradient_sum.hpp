// normlab/train/gradient_sum.hpp — the sum of a step's gradients over its
// micro-batches (in slice order) and its ranks (in rank order): gradient
// accumulation and data parallelism for the Trainer.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/dist/communicator.hpp"

namespace normlab {
inline namespace v0 {

/// Adds up the gradients of one optimizer step's slices. A step runs slices
/// j = 0..M-1 on this rank (M micro-batches), each backward writing fresh
/// gradients g_j; the parameters end the step holding
///
///   G_r = (...((g_0 + g_1) + g_2) + ...) + g_{M-1}     on rank r (slice order)
///   G   = (...((G_0 + G_1) + G_2) + ...) + G_{N-1}     over the N ranks (rank order)
///
/// each + one rounding in the gradient's type. So one process running N
/// micro-batches and N processes running one each end with the same bits
/// (the communicator's rank-order sum is the same left fold).
///
/// Across ranks the parameters' gradients travel in buckets of about
/// `bucket_bytes`, filled in reverse registration order (the order backward
/// finishes them). During the last slice's backward a gradient-ready hook
/// (Variable::set_gradient_ready_hook) counts each bucket down and starts its
/// all-reduce as soon as all its gradients are final and the buckets before
/// it have started (every rank starts them in the same order: a collective's
/// sequence must match across ranks), while backward goes on through earlier
/// layers; later hooks poll the buckets already started, so the communicator
/// moves their messages meanwhile. finish() starts what is left, waits for
/// every bucket in order and writes the sums into the parameters' gradients.
///
/// Contract: the parameters outlive this object, which owns their hooks
/// while it lives; the communicator (when given) outlives it and every rank
/// builds it over the same parameters (names, shapes) and calls the same
/// sequence of begin_step / backward_* / finish. Not copyable or movable
/// (the hooks point at it).
template <FloatingElement Scalar, class Backend>
class GradientSum {
 public:
  using Var = Variable<Scalar, Backend>;
  using TensorType = Tensor<Scalar, Backend>;
  static constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;  // PyTorch DDP's default

  /// Sums over micro-batches only when `comm` is null or has one rank.
  /// Requires bucket_bytes > 0.
  GradientSum(std::vector<Var> params, dist::Communicator* comm,
              int64_t bucket_bytes = kDefaultBucketBytes)
      : params_(std::move(params)),
        comm_(comm != nullptr && comm->size() > 1 ? comm : nullptr),
        sums_(params_.size()) {
    detail::check(bucket_bytes > 0, "GradientSum: bucket_bytes must be positive, got ",
                  bucket_bytes);
    if (!comm_) return;
    const int64_t per_bucket = std::max<int64_t>(1, bucket_bytes / int64_t{sizeof(Scalar)});
    bucket_of_.assign(params_.size(), 0);
    for (size_t k = params_.size(); k-- > 0;) {  // reverse registration order
      const int64_t n = params_[k].numel();
      if (buckets_.empty() || (buckets_.back().numel > 0 && buckets_.back().numel + n > per_bucket))
        buckets_.emplace_back();
      Bucket& b = buckets_.back();
      b.params.push_back(k);
      b.offsets.push_back(b.numel);
      b.numel += n;
      bucket_of_[k] = buckets_.size() - 1;
    }
    for (Bucket& b : buckets_) b.buffer = TensorType(Shape({b.numel}));
    for (size_t k = 0; k < params_.size(); ++k)
      params_[k].set_gradient_ready_hook([this, k](const TensorType& grad) { ready(k, grad); });
  }
  ~GradientSum() {
    for (Var& p : params_)
      if (p.requires_grad() && p.is_leaf()) p.set_gradient_ready_hook({});
  }
  GradientSum(const GradientSum&) = delete;
  GradientSum& operator=(const GradientSum&) = delete;

  /// The number of buckets the gradients cross the ranks in (0 on one rank).
  size_t bucket_count() const { return buckets_.size(); }

  /// Seconds of this step (since begin_step) that the calling thread spent on
  /// the exchange across ranks rather than on compute: filling buckets and
  /// starting and polling their collectives in the gradient-ready hooks, and
  /// finish()'s wait and copies. The part of the collectives that overlapped
  /// backward is not in it; 0 on one rank.
  double exchange_seconds() const { return exchange_seconds_; }

  /// Starts a step: the parameters must hold no gradient (zero_grad with
  /// set_to_none) and no slice has run.
  void begin_step() {
    for (TensorType& s : sums_) s = TensorType();
    for (Bucket& b : buckets_) {
      b.pending = b.params.size();
      b.started = false;
    }
    next_start_ = 0;
    last_slice_ = false;
    exchange_seconds_ = 0;
  }

  /// Before a slice's backward; `last` when it is this rank's last slice of
  /// the step (its backward starts the buckets).
  void before_backward(bool last) { last_slice_ = last && comm_ != nullptr; }

  /// After a slice's backward: folds the gradients it wrote into the running
  /// sums (the hooks did for the last slice across ranks) and drops them, so
  /// that the next backward writes fresh ones.
  void after_backward() {
    if (!last_slice_)
      for (size_t k = 0; k < params_.size(); ++k) fold(k, params_[k].grad());
    for (Var& p : params_) p.clear_grad();
    last_slice_ = false;
  }

  /// Ends the step: the buckets not started yet start (their parameters'
  /// sums, zeros where a parameter got no gradient), every bucket is waited
  /// for in order, and each parameter's gradient becomes its sum (on one
  /// rank: left without a gradient when no slice reached it).
  /// Throws the communicator's Error on a timeout or a failed rank.
  void finish() {
    if (!comm_) {
      for (size_t k = 0; k < params_.size(); ++k)
        if (sums_[k].defined()) set_grad(params_[k], sums_[k]);
      return;
    }
    const ExchangeTimer timer(exchange_seconds_);
    while (next_start_ < buckets_.size()) start(buckets_[next_start_++]);
    for (Bucket& b : buckets_) {
      b.handle.wait();
      for (size_t i = 0; i < b.params.size(); ++i) {
        Var& p = params_[b.params[i]];
        TensorType g(p.shape());  // (shape of p) the sum over the ranks
        copy(Backend{}, g.data(), b.buffer.data() + b.offsets[i], g.numel());
        set_grad(p, g);
      }
    }
    for (TensorType& s : sums_) s = TensorType();
  }

 private:
  struct Bucket {
    std::vector<size_t> params;    // indices into params_, reverse registration order
    std::vector<int64_t> offsets;  // each one's first element in buffer
    int64_t numel = 0;
    TensorType buffer;  // (numel) the parameters' sums, reduced in place
    size_t pending = 0;
    bool started = false;
    dist::CommHandle handle;
  };

  /// Adds the wall time of its scope to `seconds`.
  class ExchangeTimer {
   public:
    explicit ExchangeTimer(double& seconds)
        : seconds_(seconds), start_(std::chrono::steady_clock::now()) {}
    ~ExchangeTimer() {
      seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    }
    ExchangeTimer(const ExchangeTimer&) = delete;
    ExchangeTimer& operator=(const ExchangeTimer&) = delete;

   private:
    double& seconds_;
    std::chrono::steady_clock::time_point start_;
  };

  /// sums_[k] += grad (or = grad for the first slice that reached k).
  void fold(size_t k, const TensorType& grad) {
    if (!grad.defined()) return;
    if (!sums_[k].defined())
      sums_[k] = grad;  // the buffer itself: after_backward drops the parameter's handle
    else
      accumulate(Backend{}, sums_[k].data(), grad.data(), grad.numel(), Scalar(1));
  }

  /// The gradient-ready hook of parameter k.
  void ready(size_t k, const TensorType& grad) {
    if (!last_slice_) return;
    fold(k, grad);
    --buckets_[bucket_of_[k]].pending;
    const ExchangeTimer timer(exchange_seconds_);
    while (next_start_ < buckets_.size() && buckets_[next_start_].pending == 0)
      start(buckets_[next_start_++]);
    for (Bucket& b : buckets_)  // let the communicator move the messages of those started
      if (b.started && !b.handle.done()) (void)b.handle.test();
  }

  void start(Bucket& b) {
    for (size_t i = 0; i < b.params.size(); ++i) {
      const TensorType& s = sums_[b.params[i]];
      Scalar* dst = b.buffer.data() + b.offsets[i];
      const int64_t n = params_[b.params[i]].numel();
      if (s.defined())
        copy(Backend{}, dst, s.data(), n);
      else
        fill(Backend{}, dst, n, Scalar(0));  // no slice of this rank reached the parameter
    }
    b.handle = comm_->start_all_reduce_sum(b.buffer.data(), b.numel);
    b.started = true;
  }

  /// Makes `g` the gradient of leaf `p` (a handle: no copy).
  static void set_grad(Var& p, const TensorType& g) { p.state_ptr()->grad = g; }

  std::vector<Var> params_;
  dist::Communicator* comm_;      // null: one rank
  std::vector<TensorType> sums_;  // per parameter: the slices' sum so far, or undefined
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;
  size_t next_start_ = 0;  // the first bucket not started this step
  bool last_slice_ = false;
  double exchange_seconds_ = 0;  // see exchange_seconds()
};

}  // namespace v0
}  // namespace normlab
