// normlab/data/sampler.hpp — (B, T) batches of contiguous windows for next-token training.
//
// A window is T + 1 consecutive tokens inside one segment of a split; its
// first T are the inputs and its last T the targets, so
// targets[b][t] == tokens[b][t + 1] for t < T - 1 and both come from the corpus
// at the window's start: tokens[b][t] == corpus[start_b + t],
// targets[b][t] == corpus[start_b + t + 1].
//
// WindowSampler draws training batches at random, reproducibly: batch k of a
// sampler seeded with s is the same on every machine and thread count, and
// restoring a saved state() makes a resumed run draw exactly the batches the
// uninterrupted run would have drawn. EvalBatches walks the validation split
// in a fixed order, the same batches every call.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "normlab/backend/backend.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/data/corpus.hpp"
#include "normlab/data/split.hpp"

namespace normlab {
inline namespace v0 {

/// Inputs and next-token targets of a batch of windows.
template <class Backend = Cpu>
struct Batch {
  Tensor<int64_t, Backend> tokens;   // (B, T) corpus[start_b + t]
  Tensor<int64_t, Backend> targets;  // (B, T) corpus[start_b + t + 1]
  std::vector<int64_t> starts;       // (B,) corpus position of each window's first token
};

/// A sampler's random state: the Generator's (seed, offset). Saving it after
/// batch k and restoring it continues with batch k + 1.
struct SamplerState {
  uint64_t seed = 0;
  uint64_t offset = 0;  ///< next unused Philox block
  bool operator==(const SamplerState&) const = default;
};

namespace detail {

/// Checks the window parameters shared by the samplers; `op` names the caller.
inline void check_windows(const char* op, const TextCorpus& corpus, const Split& split,
                          int64_t batch_size, int64_t seq_len) {
  check(batch_size > 0, op, ": batch size B must be positive, got ", batch_size);
  check(seq_len > 0, op, ": sequence length T must be positive, got ", seq_len);
  check(split.end() <= corpus.size(), op, ": the split reaches position ", split.end(),
        " but the corpus has only ", corpus.size(), " tokens");
  check(split.size() >= seq_len + 1, op, ": the split has ", split.size(),
        " tokens, fewer than the T + 1 = ", seq_len + 1, " a window needs");
  check(split.longest_segment() >= seq_len + 1, op, ": a window needs T + 1 = ", seq_len + 1,
        " contiguous tokens, but the longest segment of the split has ", split.longest_segment(),
        " (use a larger chunk_size or a smaller T)");
}

/// Builds the (B, T) batch of the windows starting at `starts`.
template <class Backend>
Batch<Backend> gather_windows(const TextCorpus& corpus, std::vector<int64_t> starts,
                              int64_t seq_len) {
  const int64_t rows = static_cast<int64_t>(starts.size());
  std::vector<int64_t> tokens(static_cast<size_t>(rows * seq_len));
  std::vector<int64_t> targets(tokens.size());
  for (int64_t b = 0; b < rows; ++b)
    for (int64_t t = 0; t < seq_len; ++t) {
      const int64_t pos = starts[static_cast<size_t>(b)] + t;
      tokens[static_cast<size_t>(b * seq_len + t)] = corpus[pos];
      targets[static_cast<size_t>(b * seq_len + t)] = corpus[pos + 1];
    }
  return {Tensor<int64_t, Backend>::from_vector(Shape{rows, seq_len}, tokens),
          Tensor<int64_t, Backend>::from_vector(Shape{rows, seq_len}, targets), std::move(starts)};
}

}  // namespace detail

/// Random (B, T) training batches from one split of a corpus.
///
/// Each batch takes the next ceil(B / 2) Philox blocks of its Generator; row
/// b's window start is the floor(u_b * W)-th of the W valid starts of the
/// split (every position p with [p, p + T + 1) inside one segment, in
/// increasing order), where u_b = philox_uniform<double>(seed, first_block, b,
/// 0, 1). So every valid window is equally likely, rows are independent
/// (windows may repeat or overlap), and batches depend only on (seed, offset).
///
/// Contract: the corpus must outlive the sampler (it keeps a reference; a
/// temporary corpus is rejected at compile time); the split is copied from.
/// Not thread-safe.
class WindowSampler {
 public:
  /// Throws Error unless B > 0, T > 0, the split lies inside the corpus and
  /// one of its segments holds T + 1 tokens.
  WindowSampler(const TextCorpus& corpus, const Split& split, int64_t batch_size, int64_t seq_len,
                uint64_t seed)
      : corpus_(&corpus), batch_size_(batch_size), seq_len_(seq_len), gen_(seed) {
    detail::check_windows("WindowSampler", corpus, split, batch_size, seq_len);
    int64_t total = 0;
    for (const Segment& s : split.segments()) {
      if (s.size() < seq_len + 1) continue;
      runs_.push_back({s.begin, total});
      total += s.size() - seq_len;  // starts s.begin .. s.end - T - 1
    }
    n_starts_ = total;
  }
  WindowSampler(TextCorpus&&, const Split&, int64_t, int64_t, uint64_t) = delete;

  /// The next batch on backend `Backend`: tokens and targets (B, T), starts (B,).
  template <class Backend = Cpu>
  Batch<Backend> next() {
    const uint64_t first = gen_.reserve<double>(batch_size_);
    std::vector<int64_t> starts(static_cast<size_t>(batch_size_));
    for (int64_t b = 0; b < batch_size_; ++b) {
      const double u = philox_uniform<double>(gen_.seed(), first, b, 0.0, 1.0);
      const int64_t k =
          std::min(static_cast<int64_t>(u * static_cast<double>(n_starts_)), n_starts_ - 1);
      starts[static_cast<size_t>(b)] = start_of(k);
    }
    return detail::gather_windows<Backend>(*corpus_, std::move(starts), seq_len_);
  }

  /// The state to save with a checkpoint.
  SamplerState state() const { return {gen_.seed(), gen_.offset()}; }
  /// Restores a saved state: the next batch is the one that followed it.
  void set_state(const SamplerState& s) { gen_.set_state(s.seed, s.offset); }

  int64_t batch_size() const { return batch_size_; }
  int64_t seq_len() const { return seq_len_; }
  /// Number of distinct windows the sampler can draw.
  int64_t num_windows() const { return n_starts_; }

 private:
  struct Run {
    int64_t first_pos;  // corpus position of the run's first valid start
    int64_t first_k;    // index of that start among all valid starts
  };
  int64_t start_of(int64_t k) const {
    auto it = std::upper_bound(runs_.begin(), runs_.end(), k,
                               [](int64_t v, const Run& r) { return v < r.first_k; });
    --it;
    return it->first_pos + (k - it->first_k);
  }

  const TextCorpus* corpus_;
  int64_t batch_size_, seq_len_;
  Generator gen_;
  std::vector<Run> runs_;
  int64_t n_starts_ = 0;
};

/// Fixed evaluation batches over one split (usually validation).
///
/// Windows: in each segment, in order, the non-overlapping windows starting at
/// segment.begin + j * T for every j with start + T + 1 <= segment.end; so each
/// position of a segment except its first token and a tail of fewer than T
/// tokens is a target exactly once. With max_windows > 0 and more windows
/// than that, the windows kept are those of index floor(i * n / max_windows),
/// i < max_windows: evenly spread over the split. Batch i holds windows
/// [i * B, min((i + 1) * B, n)): all batches have B rows but the last, which
/// may have fewer. Everything is fixed at construction: batch(i) is the same
/// on every call.
///
/// Contract: as WindowSampler, the corpus must outlive this object.
class EvalBatches {
 public:
  /// Throws Error as WindowSampler, or when max_windows < 0.
  EvalBatches(const TextCorpus& corpus, const Split& split, int64_t batch_size, int64_t seq_len,
              int64_t max_windows = 0)
      : corpus_(&corpus), batch_size_(batch_size), seq_len_(seq_len) {
    detail::check_windows("EvalBatches", corpus, split, batch_size, seq_len);
    detail::check(max_windows >= 0, "EvalBatches: max_windows must be >= 0 (0: all), got ",
                  max_windows);
    std::vector<int64_t> all;
    for (const Segment& s : split.segments())
      for (int64_t p = s.begin; p + seq_len + 1 <= s.end; p += seq_len) all.push_back(p);
    const int64_t n = static_cast<int64_t>(all.size());
    if (max_windows == 0 || max_windows >= n) {
      starts_ = std::move(all);
    } else {
      for (int64_t i = 0; i < max_windows; ++i)
        starts_.push_back(all[static_cast<size_t>(i * n / max_windows)]);
    }
  }
  EvalBatches(TextCorpus&&, const Split&, int64_t, int64_t, int64_t = 0) = delete;

  int64_t num_windows() const { return static_cast<int64_t>(starts_.size()); }
  int64_t num_batches() const { return (num_windows() + batch_size_ - 1) / batch_size_; }
  /// Window starts, in batch order.
  const std::vector<int64_t>& starts() const { return starts_; }

  /// Batch i in [0, num_batches()); throws Error otherwise.
  template <class Backend = Cpu>
  Batch<Backend> batch(int64_t i) const {
    detail::check(i >= 0 && i < num_batches(), "EvalBatches::batch: index ", i,
                  " is out of range [0, ", num_batches(), ")");
    const auto first = starts_.begin() + i * batch_size_;
    const auto last = starts_.begin() + std::min((i + 1) * batch_size_, num_windows());
    return detail::gather_windows<Backend>(*corpus_, std::vector<int64_t>(first, last), seq_len_);
  }

 private:
  const TextCorpus* corpus_;
  int64_t batch_size_, seq_len_;
  std::vector<int64_t> starts_;
};

}  // namespace v0
}  // namespace normlab
