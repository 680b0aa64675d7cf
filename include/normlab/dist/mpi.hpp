// normlab/dist/mpi.hpp — MpiCommunicator: the collectives of communicator.hpp over
// MPI, on host memory (Cpu tensors). Link normlab::mpi (CMake) to use it.
//
//   #include <normlab/dist/mpi.hpp>
//   int main() {
//     normlab::dist::MpiCommunicator comm;   // MPI_Init here (unless already done),
//     ...                                     // MPI_Finalize when comm is destroyed
//   }
//   $ mpirun -np 4 ./train
//
// How the reduction order of communicator.hpp is kept: an all-reduce splits the
// buffer into size() slices, slice r owned by rank r. Every rank sends its part of
// slice r to rank r (point-to-point); rank r adds the N parts of its slice in rank
// order 0, 1, ..., N-1 (a left fold, in the element type), then sends the result to
// every rank, which stores it unchanged. So each element is summed once, by one
// rank, in rank order, and every rank ends with those bits — whatever MPI's own
// collective algorithms would have chosen (MPI_Allreduce's order is left to the
// implementation for N > 2). Traffic per rank: 2 (N-1)/N of the buffer, like a
// ring; extra host memory: (N-1)/N of the buffer while the all-reduce runs.
// MPI counts are int: buffers above MpiOptions::max_message_bytes go in several
// messages (the order of the sums does not change).
//
// Timeouts and failures: every collective is built from non-blocking MPI calls,
// polled (MPI_Testsome) until done or until `timeout()` has passed since its wait
// began. Then wait() throws Error naming the operation (and its sequence number),
// this rank, the time waited and the ranks whose messages did not arrive. A
// message of the wrong size (ranks that called a collective with different counts,
// types or roots) is an Error naming the rank that sent it. After either, the
// communicator is unusable: its later operations throw, and destroying it ends
// the process with exit status 1 (std::_Exit, after printing the error to stderr;
// unless MpiOptions::exit_on_failure is false). The launcher then ends the other
// ranks — which may be blocked in a collective that will never finish — and mpirun
// exits non-zero. (Not MPI_Abort: with OpenMPI 4.1, mpirun hung in 2 of 8 runs
// when two ranks called MPI_Abort at once; a rank that exits without MPI_Finalize
// ended the job in every run.) A rank that dies makes mpirun end the job
// the same way. check_same's mismatch error is not a failure: all ranks throw it
// and the communicator stays usable.
//
// Only this header includes <mpi.h>; communicator.hpp and normlab.hpp do not.
#pragma once

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "normlab/dist/communicator.hpp"

namespace normlab {
inline namespace v0 {
namespace dist {

/// Settings of an MpiCommunicator.
struct MpiOptions {
  /// The largest message in bytes, in (0, INT_MAX]: MPI counts are int, so a
  /// larger buffer is sent in several messages. Small values test the chunking.
  int64_t max_message_bytes = int64_t{1} << 30;
  /// Whether destroying a communicator after a failure (timeout, size mismatch)
  /// ends the process with status 1, which makes the launcher end every rank (see
  /// the header). When false the destructor only skips MPI_Finalize (which could
  /// wait forever for the failed messages) and the program decides.
  bool exit_on_failure = true;
  /// The timeout of every wait (Communicator::set_timeout changes it later).
  std::chrono::milliseconds timeout = Communicator::kDefaultTimeout;
};

namespace mpi_detail {

inline std::string mpi_error_string(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

/// "1, 3, 4" from {1, 3, 4}.
inline std::string rank_list(const std::vector<int>& ranks) {
  std::string s;
  for (size_t i = 0; i < ranks.size(); ++i) s += normlab::detail::concat(i ? ", " : "", ranks[i]);
  return s;
}

/// One collective as a sequence of rounds of non-blocking point-to-point
/// messages; `advance` posts the next round (or finishes) when one completes.
class MpiOperation {
 public:
  MpiOperation(std::string what, int tag) : what_(std::move(what)), tag_(tag) {}
  virtual ~MpiOperation() = default;

  const std::string& what() const { return what_; }
  bool done() const { return done_; }

  /// Called with no request pending: posts the next round or sets done.
  virtual void advance(MPI_Comm comm) = 0;

  /// Tests the pending requests; returns "" or the error message for a failed or
  /// wrongly sized message.
  std::string poll(int rank) {
    if (pending_ == 0) return "";
    int completed = 0;
    indices_.resize(requests_.size());
    statuses_.resize(requests_.size());
    const int rc = MPI_Testsome(static_cast<int>(requests_.size()), requests_.data(), &completed,
                                indices_.data(), statuses_.data());
    if (completed == MPI_UNDEFINED) completed = 0;
    for (int k = 0; k < completed; ++k) {
      const size_t i = static_cast<size_t>(indices_[static_cast<size_t>(k)]);
      const MPI_Status& st = statuses_[static_cast<size_t>(k)];
      --pending_;
      if (rc == MPI_ERR_IN_STATUS && st.MPI_ERROR != MPI_SUCCESS)
        return message_error(i, st.MPI_ERROR, rank);
      if (expected_[i] >= 0) {
        int count = 0;
        MPI_Get_count(&st, MPI_BYTE, &count);
        if (count != expected_[i])
          return normlab::detail::concat(
              what_, ": rank ", peers_[i], " sent ", count, " bytes where rank ", rank,
              " expected ", expected_[i],
              ": the ranks called this collective with different counts, types or roots, or "
              "called different collectives");
      }
    }
    if (rc != MPI_SUCCESS && rc != MPI_ERR_IN_STATUS)
      return normlab::detail::concat(what_, ": MPI_Testsome failed on rank ", rank, ": ",
                                     mpi_error_string(rc));
    return "";
  }
  bool round_done() const { return pending_ == 0; }

  /// The ranks whose messages of the current round have not completed.
  std::vector<int> missing_ranks() const {
    std::vector<int> ranks;
    for (size_t i = 0; i < requests_.size(); ++i)
      if (requests_[i] != MPI_REQUEST_NULL) ranks.push_back(peers_[i]);
    std::sort(ranks.begin(), ranks.end());
    ranks.erase(std::unique(ranks.begin(), ranks.end()), ranks.end());
    return ranks;
  }

 protected:
  /// Posts a receive of `bytes` bytes (sent in messages of at most `max_message`)
  /// from `peer`; the sender must post the matching send_bytes.
  void recv_bytes(void* data, int64_t bytes, int peer, int round, int64_t max_message,
                  MPI_Comm comm) {
    auto* p = static_cast<char*>(data);
    int64_t at = 0;
    do {  // one message at least: a zero-byte one says "arrived"
      const int count = static_cast<int>(std::min(bytes - at, max_message));
      post(MPI_Irecv(p + at, count, MPI_BYTE, peer, tag_ + round, comm, &next_request()), peer,
           count);
      at += count;
    } while (at < bytes);
  }
  void send_bytes(const void* data, int64_t bytes, int peer, int round, int64_t max_message,
                  MPI_Comm comm) {
    const auto* p = static_cast<const char*>(data);
    int64_t at = 0;
    do {
      const int count = static_cast<int>(std::min(bytes - at, max_message));
      post(MPI_Isend(p + at, count, MPI_BYTE, peer, tag_ + round, comm, &next_request()), peer, -1);
      at += count;
    } while (at < bytes);
  }
  void start_round() {
    requests_.clear();
    peers_.clear();
    expected_.clear();
    pending_ = 0;
  }
  void finish() { done_ = true; }

 private:
  MPI_Request& next_request() {
    requests_.push_back(MPI_REQUEST_NULL);
    return requests_.back();
  }
  void post(int rc, int peer, int expected) {
    normlab::detail::check(rc == MPI_SUCCESS, what_, ": posting a message to/from rank ", peer,
                           " failed: ", mpi_error_string(rc));
    peers_.push_back(peer);
    expected_.push_back(expected);
    ++pending_;
  }
  std::string message_error(size_t i, int code, int rank) const {
    if (expected_[i] >= 0 && code == MPI_ERR_TRUNCATE)
      return normlab::detail::concat(
          what_, ": rank ", peers_[i], " sent more than the ", expected_[i], " bytes rank ", rank,
          " expected: the ranks called this collective with different counts, types or roots, "
          "or called different collectives");
    return normlab::detail::concat(what_, ": a message ", expected_[i] >= 0 ? "from" : "to",
                                   " rank ", peers_[i], " failed on rank ", rank, ": ",
                                   mpi_error_string(code));
  }

  std::string what_;
  int tag_;
  bool done_ = false;
  size_t pending_ = 0;
  std::vector<MPI_Request> requests_;
  std::vector<int> peers_;
  std::vector<int> expected_;  ///< bytes expected from a receive; -1 for a send
  std::vector<int> indices_;
  std::vector<MPI_Status> statuses_;
};

/// Start (slice begin) of slice r when `len` elements are split into `parts`
/// near-equal slices; no intermediate product, so no overflow.
inline int64_t slice_begin(int64_t len, int parts, int r) {
  return r * (len / parts) + std::min<int64_t>(r, len % parts);
}

/// The all-reduce of mpi.hpp's header: round 0 sends every rank its part of the
/// slice it owns; then this rank sums its slice in rank order; round 1 sends the
/// sums to every rank.
class MpiAllReduce final : public MpiOperation {
 public:
  MpiAllReduce(std::string what, int tag, char* data, int64_t n, ElementType type, ReduceOp op,
               int rank, int size, int64_t max_message_bytes)
      : MpiOperation(std::move(what), tag),
        data_(data),
        n_(n),
        type_(type),
        op_(op),
        rank_(rank),
        size_(size),
        elem_(element_size(type)) {
    // Segments of size() messages of at most max_message_bytes each.
    max_message_ = std::max<int64_t>(max_message_bytes / elem_, 1) * elem_;
    segment_ = (max_message_ / elem_) * size_;
    for (int64_t s = 0; s < n_; s += segment_) {
      const int64_t len = std::min(segment_, n_ - s);
      mine_ += slice_begin(len, size_, rank_ + 1) - slice_begin(len, size_, rank_);
    }
  }

  void advance(MPI_Comm comm) override {
    if (round_ == 0) {
      round_ = 1;
      if (size_ == 1 || n_ == 0) return finish();  // nothing to exchange; mean over 1 = values
      scratch_.resize(static_cast<size_t>((size_ - 1) * mine_ * elem_));
      start_round();
      for_each_slice([&](int owner, int64_t begin, int64_t len, int64_t mine_at) {
        if (owner == rank_) {  // receive every peer's part of my slice
          for (int r = 0; r < size_; ++r)
            if (r != rank_ && len > 0)
              recv_bytes(piece(r) + mine_at * elem_, len * elem_, r, 0, max_message_, comm);
        } else if (len > 0) {
          send_bytes(data_ + begin * elem_, len * elem_, owner, 0, max_message_, comm);
        }
      });
    } else if (round_ == 1) {
      round_ = 2;
      if (type_ == ElementType::float32)
        reduce<float>();
      else
        reduce<double>();
      scratch_.clear();
      scratch_.shrink_to_fit();
      start_round();
      for_each_slice([&](int owner, int64_t begin, int64_t len, int64_t) {
        if (len == 0) return;
        if (owner != rank_) {
          recv_bytes(data_ + begin * elem_, len * elem_, owner, 1, max_message_, comm);
          return;
        }
        for (int r = 0; r < size_; ++r)
          if (r != rank_) send_bytes(data_ + begin * elem_, len * elem_, r, 1, max_message_, comm);
      });
    } else {
      finish();
    }
  }

 private:
  /// Calls f(owner, begin, len, mine_at) for every slice of every segment, in
  /// order; mine_at is the offset of this rank's slices within its scratch pieces.
  template <class F>
  void for_each_slice(F f) const {
    int64_t mine_at = 0;
    for (int64_t s = 0; s < n_; s += segment_) {
      const int64_t len = std::min(segment_, n_ - s);
      for (int owner = 0; owner < size_; ++owner) {
        const int64_t b = slice_begin(len, size_, owner);
        const int64_t l = slice_begin(len, size_, owner + 1) - b;
        f(owner, s + b, l, mine_at);
        if (owner == rank_) mine_at += l;
      }
    }
  }
  /// Rank r's parts of this rank's slices (r != rank_).
  char* piece(int r) { return scratch_.data() + (r < rank_ ? r : r - 1) * mine_ * elem_; }
  /// Sums this rank's slices in rank order: acc = x_0; acc += x_1; ...; then / N.
  template <class Scalar>
  void reduce() {
    for_each_slice([&](int owner, int64_t begin, int64_t len, int64_t mine_at) {
      if (owner != rank_ || len == 0) return;
      Scalar* own = reinterpret_cast<Scalar*>(data_) + begin;  // (len,)
      auto part = [&](int r) {
        return r == rank_ ? own : reinterpret_cast<Scalar*>(piece(r)) + mine_at;  // (len,)
      };
      Scalar* acc = part(0);  // rank 0's part: this rank's buffer or its scratch piece
      for (int r = 1; r < size_; ++r) {
        const Scalar* x = part(r);
        for (int64_t i = 0; i < len; ++i) acc[i] += x[i];
      }
      if (op_ == ReduceOp::mean) {
        const Scalar n = static_cast<Scalar>(size_);
        for (int64_t i = 0; i < len; ++i) acc[i] /= n;
      }
      if (acc != own) std::memcpy(own, acc, static_cast<size_t>(len * elem_));
    });
  }

  char* data_;
  int64_t n_;
  ElementType type_;
  ReduceOp op_;
  int rank_, size_;
  int64_t elem_;
  int64_t max_message_ = 0;  ///< bytes, a multiple of elem_
  int64_t segment_ = 0;      ///< elements
  int64_t mine_ = 0;         ///< elements of this rank's slices, all segments
  int round_ = 0;
  std::vector<char> scratch_;  ///< (size-1, mine) parts of the peers
};

/// Root sends its bytes to every rank.
class MpiBroadcast final : public MpiOperation {
 public:
  MpiBroadcast(std::string what, int tag, void* data, int64_t bytes, int root, int rank, int size,
               int64_t max_message)
      : MpiOperation(std::move(what), tag),
        data_(data),
        bytes_(bytes),
        root_(root),
        rank_(rank),
        size_(size),
        max_message_(max_message) {}
  void advance(MPI_Comm comm) override {
    if (posted_ || size_ == 1 || bytes_ == 0) return finish();
    posted_ = true;
    start_round();
    if (rank_ == root_) {
      for (int r = 0; r < size_; ++r)
        if (r != root_) send_bytes(data_, bytes_, r, 0, max_message_, comm);
    } else {
      recv_bytes(data_, bytes_, root_, 0, max_message_, comm);
    }
  }

 private:
  void* data_;
  int64_t bytes_;
  int root_, rank_, size_;
  int64_t max_message_;
  bool posted_ = false;
};

/// Every rank sends its string to every rank: round 0 the lengths, round 1 the
/// bytes. An empty string makes this a barrier that knows who did not arrive.
class MpiGatherStrings final : public MpiOperation {
 public:
  MpiGatherStrings(std::string what, int tag, std::string value, int rank, int size,
                   int64_t max_message)
      : MpiOperation(std::move(what), tag),
        rank_(rank),
        size_(size),
        max_message_(max_message),
        mine_(static_cast<int64_t>(value.size())),
        lengths_(static_cast<size_t>(size), 0),
        values_(static_cast<size_t>(size)) {
    values_[static_cast<size_t>(rank)] = std::move(value);
    lengths_[static_cast<size_t>(rank)] = mine_;
  }
  std::vector<std::string> take() { return std::move(values_); }

  void advance(MPI_Comm comm) override {
    if (round_ == 2 || size_ == 1) return finish();
    start_round();
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      const size_t ri = static_cast<size_t>(r);
      if (round_ == 0) {
        recv_bytes(&lengths_[ri], sizeof(int64_t), r, 0, max_message_, comm);
        send_bytes(&mine_, sizeof(int64_t), r, 0, max_message_, comm);
      } else {
        normlab::detail::check(lengths_[ri] >= 0 && lengths_[ri] < (int64_t{1} << 40), what(),
                               ": rank ", r, " announced a string of ", lengths_[ri], " bytes");
        values_[ri].resize(static_cast<size_t>(lengths_[ri]));
        if (lengths_[ri] > 0)
          recv_bytes(values_[ri].data(), lengths_[ri], r, 1, max_message_, comm);
        if (mine_ > 0)
          send_bytes(values_[static_cast<size_t>(rank_)].data(), mine_, r, 1, max_message_, comm);
      }
    }
    ++round_;
  }

 private:
  int rank_, size_;
  int64_t max_message_;
  int64_t mine_;
  std::vector<int64_t> lengths_;
  std::vector<std::string> values_;
  int round_ = 0;
};

}  // namespace mpi_detail

/// The collectives of communicator.hpp over MPI, for host buffers (Cpu tensors).
///
/// Contract: constructing it initializes MPI when MPI is not initialized yet
/// (MPI_Init_thread, MPI_THREAD_FUNNELED) and then owns MPI: its destructor calls
/// MPI_Finalize (owns_mpi() is true). When the program initialized MPI itself, the
/// communicator leaves MPI_Finalize to the program, which must destroy the
/// communicator first. It works on a duplicate of `comm` (MPI_COMM_WORLD by
/// default), so its messages never match the program's own. Every rank of `comm`
/// constructs it (a collective, under the timeout). At most one MpiCommunicator
/// that owns MPI may exist at a time. Handles must not outlive the communicator.
/// The reduction order and the failure behaviour are in this file's header.
class MpiCommunicator final : public Communicator {
 public:
  explicit MpiCommunicator(MpiOptions options = {}, MPI_Comm comm = MPI_COMM_WORLD)
      : options_(options) {
    normlab::detail::check(options_.max_message_bytes > 0 && options_.max_message_bytes <= INT_MAX,
                           "MpiCommunicator: max_message_bytes must be in (0, ", INT_MAX,
                           "], found ", options_.max_message_bytes);
    set_timeout(options_.timeout);
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    normlab::detail::check(!finalized,
                           "MpiCommunicator: MPI is already finalized; create the communicator "
                           "before MPI_Finalize");
    if (!initialized) {
      int provided = 0;
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      normlab::detail::check(rc == MPI_SUCCESS, "MpiCommunicator: MPI_Init_thread failed: ",
                             mpi_detail::mpi_error_string(rc));
      owns_mpi_ = true;
    }
    MPI_Comm_rank(comm, &rank_);
    MPI_Comm_size(comm, &size_);
    // MPI guarantees tags up to at least 32767; each operation uses 4.
    int* tag_ub = nullptr;
    int flag = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &flag);
    tag_cycle_ = std::max(((flag && tag_ub) ? *tag_ub : 32767) / 4, 1);
    MPI_Request dup = MPI_REQUEST_NULL;
    const int rc = MPI_Comm_idup(comm, &comm_, &dup);
    normlab::detail::check(rc == MPI_SUCCESS, "MpiCommunicator: MPI_Comm_idup failed on rank ",
                           rank_, ": ", mpi_detail::mpi_error_string(rc));
    const auto start = Clock::now();
    for (int spins = 0;; ++spins) {
      int done = 0;
      MPI_Test(&dup, &done, MPI_STATUS_IGNORE);
      if (done) break;
      if (Clock::now() - start > timeout()) {
        failure_ = normlab::detail::concat(
            "MpiCommunicator: rank ", rank_, " of ", size_, " waited ", seconds(start),
            " s for every rank to construct the communicator (MPI_Comm_idup)");
        throw Error(failure_);
      }
      pause(spins);
    }
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
  }

  ~MpiCommunicator() override {
    if (failure_.empty()) {
      try {
        drain();
      } catch (...) {  // the failure is in failure_ now
      }
    }
    if (!failure_.empty()) {
      if (options_.exit_on_failure) {
        std::fprintf(stderr, "normlab: rank %d: exiting after a communicator failure: %s\n", rank_,
                     failure_.c_str());
        std::fflush(nullptr);
        std::_Exit(1);
      }
      return;  // messages may be pending: neither free the communicator nor finalize
    }
    if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  bool accepts_backend(std::string_view backend_name) const override {
    return backend_name == "cpu";
  }
  /// True when this communicator initialized MPI and finalizes it.
  bool owns_mpi() const { return owns_mpi_; }
  /// The duplicated communicator the collectives use.
  MPI_Comm comm() const { return comm_; }
  /// Whether a collective failed (see the header); later operations throw.
  bool failed() const { return !failure_.empty(); }

  /// Advances every operation in flight without blocking. MPI moves large
  /// messages only inside MPI calls: a program that starts an all-reduce and
  /// then computes for long may call this now and then.
  void progress() {
    throw_if_failed();
    for (auto& op : in_flight_) {
      while (!op->done()) {
        const std::string error = op->poll(rank_);
        if (!error.empty()) fail(error);
        if (!op->round_done()) break;
        op->advance(comm_);
      }
    }
    in_flight_.erase(std::remove_if(in_flight_.begin(), in_flight_.end(),
                                    [](const auto& op) { return op->done(); }),
                     in_flight_.end());
  }

 protected:
  std::unique_ptr<PendingOperation> do_start_all_reduce(void* data, int64_t n, ElementType type,
                                                        ReduceOp op) override {
    const uint64_t seq = next_seq();
    return start(std::make_shared<mpi_detail::MpiAllReduce>(
        normlab::detail::concat(reduce_op_name(op), " #", seq, " (", n, " ",
                                element_type_name(type), ")"),
        tag_for(seq), static_cast<char*>(data), n, type, op, rank_, size_,
        options_.max_message_bytes));
  }
  void do_broadcast(void* data, int64_t bytes, int root) override {
    const uint64_t seq = next_seq();
    start(std::make_shared<mpi_detail::MpiBroadcast>(
              normlab::detail::concat("broadcast #", seq, " (", bytes, " bytes from rank ", root,
                                      ")"),
              tag_for(seq), data, bytes, root, rank_, size_, options_.max_message_bytes))
        ->wait();
  }
  void do_barrier() override {
    const uint64_t seq = next_seq();
    start(std::make_shared<mpi_detail::MpiGatherStrings>(normlab::detail::concat("barrier #", seq),
                                                         tag_for(seq), std::string(), rank_, size_,
                                                         options_.max_message_bytes))
        ->wait();
  }
  std::vector<std::string> do_all_gather_strings(const std::string& value) override {
    const uint64_t seq = next_seq();
    auto op = std::make_shared<mpi_detail::MpiGatherStrings>(
        normlab::detail::concat("all-gather #", seq), tag_for(seq), value, rank_, size_,
        options_.max_message_bytes);
    start(op)->wait();
    return op->take();
  }

 private:
  using Clock = std::chrono::steady_clock;

  class Pending final : public PendingOperation {
   public:
    Pending(MpiCommunicator* comm, std::shared_ptr<mpi_detail::MpiOperation> op)
        : comm_(comm), op_(std::move(op)) {}
    bool test() override {
      comm_->progress();
      return op_->done();
    }
    void wait() override {
      const auto start = Clock::now();
      for (int spins = 0;; ++spins) {
        comm_->progress();
        if (op_->done()) return;
        if (Clock::now() - start > comm_->timeout()) comm_->fail_timeout(*op_, start);
        pause(spins);
      }
    }

   private:
    MpiCommunicator* comm_;
    std::shared_ptr<mpi_detail::MpiOperation> op_;
  };

  std::unique_ptr<PendingOperation> start(std::shared_ptr<mpi_detail::MpiOperation> op) {
    throw_if_failed();
    op->advance(comm_);  // posts the first round
    if (!op->done()) in_flight_.push_back(op);
    return std::make_unique<Pending>(this, std::move(op));
  }
  uint64_t next_seq() {
    throw_if_failed();
    return seq_++;
  }
  int tag_for(uint64_t seq) const {
    return static_cast<int>(seq % static_cast<uint64_t>(tag_cycle_)) * 4;
  }
  void drain() {
    const auto start = Clock::now();
    for (int spins = 0; !in_flight_.empty(); ++spins) {
      progress();
      if (!in_flight_.empty() && Clock::now() - start > timeout())
        fail_timeout(*in_flight_.front(), start);
      pause(spins);
    }
  }
  void throw_if_failed() const {
    if (!failure_.empty())
      throw Error(normlab::detail::concat("mpi communicator (rank ", rank_,
                                          "): unusable after an earlier failure: ", failure_));
  }
  [[noreturn]] void fail(const std::string& message) {
    failure_ = message;
    throw Error(message);
  }
  [[noreturn]] void fail_timeout(const mpi_detail::MpiOperation& op, Clock::time_point start) {
    const std::vector<int> missing = op.missing_ranks();
    fail(normlab::detail::concat(
        op.what(), " timed out on rank ", rank_, " of ", size_, " after ", seconds(start),
        " s (timeout ", timeout().count() / 1000.0, " s): ",
        missing.empty() ? std::string("no rank is known to be missing")
                        : normlab::detail::concat(missing.size() == 1 ? "rank " : "ranks ",
                                                  mpi_detail::rank_list(missing),
                                                  " did not take part (exited, hung, or called "
                                                  "a different collective)"),
        "; the communicator is unusable now"));
  }
  static std::string seconds(Clock::time_point start) {
    const double s = std::chrono::duration<double>(Clock::now() - start).count();
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", s);
    return text;
  }
  /// Polling pace: spin with yields for a while, then sleep briefly so that
  /// waiting ranks leave the cores to those still computing.
  static void pause(int spins) {
    if (spins < 2000)
      std::this_thread::yield();
    else
      std::this_thread::sleep_for(std::chrono::microseconds(50));
  }

  MpiOptions options_;
  bool owns_mpi_ = false;
  int rank_ = 0, size_ = 1;
  int tag_cycle_ = 1;
  MPI_Comm comm_ = MPI_COMM_NULL;
  uint64_t seq_ = 0;
  std::vector<std::shared_ptr<mpi_detail::MpiOperation>> in_flight_;  ///< in start order
  std::string failure_;
};

}  // namespace dist
}  // namespace v0
}  // namespace normlab
