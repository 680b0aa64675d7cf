// normlab/data/split.hpp — a deterministic train/validation split of token positions.
//
// The rule (split_train_val), exactly:
//   1. Cut positions [0, n) into chunks of `chunk_size` tokens:
//      chunk i = [i * chunk_size, min((i + 1) * chunk_size, n)), i < n_chunks =
//      ceil(n / chunk_size); only the last chunk may be shorter.
//   2. The validation split gets n_val = clamp(round(val_fraction * n_chunks),
//      1, n_chunks - 1) chunks (round half away from zero), so neither split
//      is empty.
//   3. Each chunk has the key k(i) = (w0 << 32) | w1 of the Philox 4x32-10
//      block philox_block(seed, i); the n_val chunks with the smallest
//      (k(i), i) are validation, all others are training.
// The keys are a seeded hash of the chunk index alone, so validation chunks
// are spread over the corpus (every file and topic contributes to both
// splits), the split depends only on (n, chunk_size, val_fraction, seed) —
// not on the text, the machine or any thread count — and each position is in
// exactly one split. Adjacent chunks of one split are merged into segments;
// a window for training or evaluation must lie inside one segment so that no
// window mixes training and validation tokens.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {

/// Token positions [begin, end) of a corpus.
struct Segment {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const Segment&) const = default;
};

/// A set of token positions: sorted, disjoint, non-adjacent, non-empty segments.
class Split {
 public:
  Split() = default;
  /// Requires: segments sorted by begin, non-overlapping, each begin <= end;
  /// throws Error otherwise. Empty segments are dropped, touching ones merged.
  explicit Split(const std::vector<Segment>& segments) {
    for (const Segment& s : segments) {
      detail::check(s.begin >= 0 && s.begin <= s.end, "Split: segment [", s.begin, ", ", s.end,
                    ") is not a range of positions");
      if (s.size() == 0) continue;
      if (!segments_.empty()) {
        Segment& last = segments_.back();
        detail::check(s.begin >= last.end, "Split: segment [", s.begin, ", ", s.end,
                      ") overlaps or precedes [", last.begin, ", ", last.end,
                      "); segments must be sorted and disjoint");
        if (s.begin == last.end) {
          last.end = s.end;
          size_ += s.size();
          continue;
        }
      }
      segments_.push_back(s);
      size_ += s.size();
    }
  }
  /// All of [0, n).
  static Split whole(int64_t n) { return Split({Segment{0, n}}); }

  const std::vector<Segment>& segments() const { return segments_; }
  /// Number of positions.
  int64_t size() const { return size_; }
  /// One past the last position (0 for an empty split).
  int64_t end() const { return segments_.empty() ? 0 : segments_.back().end; }
  /// Length of the longest segment: the longest window that fits in the split.
  int64_t longest_segment() const {
    int64_t n = 0;
    for (const Segment& s : segments_) n = std::max(n, s.size());
    return n;
  }
  /// Whether [begin, end) lies inside one segment (and so inside the split).
  bool contains(int64_t begin, int64_t end) const {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), begin,
                               [](int64_t pos, const Segment& s) { return pos < s.begin; });
    if (it == segments_.begin()) return false;
    --it;
    return begin >= it->begin && end <= it->end && begin <= end;
  }
  bool contains(int64_t pos) const { return contains(pos, pos + 1); }

 private:
  std::vector<Segment> segments_;
  int64_t size_ = 0;
};

/// Parameters of split_train_val.
struct SplitOptions {
  double val_fraction = 0.1;  ///< share of the chunks given to validation, in (0, 1)
  int64_t chunk_size = 4096;  ///< tokens per chunk, > 0
  uint64_t seed = 0;          ///< Philox key of the chunk hash
};

/// The two disjoint splits that together cover [0, n).
struct TrainValSplit {
  Split train;
  Split val;
};

/// Splits positions [0, n_tokens) by the rule at the top of this file.
/// Requires: n_tokens >= 0, 0 < val_fraction < 1, chunk_size > 0 and at least
/// two chunks; throws Error saying what was expected and found otherwise.
/// Ensures: train and val are disjoint, cover [0, n_tokens), are non-empty,
/// and the result is the same for the same arguments everywhere.
inline TrainValSplit split_train_val(int64_t n_tokens, const SplitOptions& opt = {}) {
  detail::check(opt.val_fraction > 0.0 && opt.val_fraction < 1.0,
                "split_train_val: val_fraction must be in (0, 1), got ", opt.val_fraction);
  detail::check(opt.chunk_size > 0, "split_train_val: chunk_size must be positive, got ",
                opt.chunk_size);
  detail::check(n_tokens >= 0, "split_train_val: n_tokens must be >= 0, got ", n_tokens);
  const int64_t n_chunks = (n_tokens + opt.chunk_size - 1) / opt.chunk_size;
  detail::check(n_chunks >= 2, "split_train_val: a corpus of ", n_tokens, " tokens makes ",
                n_chunks, " chunk(s) of chunk_size ", opt.chunk_size,
                "; a train/validation split needs at least 2 (use a smaller chunk_size or a "
                "longer corpus)");
  const int64_t n_val = std::clamp<int64_t>(
      std::llround(opt.val_fraction * static_cast<double>(n_chunks)), 1, n_chunks - 1);

  struct Keyed {
    uint64_t key;
    int64_t chunk;
  };
  std::vector<Keyed> keyed(static_cast<size_t>(n_chunks));
  for (int64_t i = 0; i < n_chunks; ++i) {
    const PhiloxBlock b = philox_block(opt.seed, static_cast<uint64_t>(i));
    keyed[static_cast<size_t>(i)] = {static_cast<uint64_t>(b.w[0]) << 32 | b.w[1], i};
  }
  std::nth_element(keyed.begin(), keyed.begin() + n_val, keyed.end(),
                   [](const Keyed& a, const Keyed& b) {
                     return a.key != b.key ? a.key < b.key : a.chunk < b.chunk;
                   });
  std::vector<char> is_val(static_cast<size_t>(n_chunks), 0);
  for (int64_t j = 0; j < n_val; ++j)
    is_val[static_cast<size_t>(keyed[static_cast<size_t>(j)].chunk)] = 1;

  std::vector<Segment> train, val;
  for (int64_t i = 0; i < n_chunks; ++i) {
    const Segment s{i * opt.chunk_size, std::min((i + 1) * opt.chunk_size, n_tokens)};
    (is_val[static_cast<size_t>(i)] ? val : train).push_back(s);
  }
  return {Split(train), Split(val)};
}

}  // namespace v0
}  // namespace normlab
