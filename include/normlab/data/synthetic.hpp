// normlab/data/synthetic.hpp — a seeded toy language for tests and quick runs.
//
// synthetic_corpus(n, seed) is n bytes of lines of simple English sentences:
//
//   sentence := subject " " verb " " object [" and " subject " " verb " " object] "."
//   subject, object := "the " [adjective " "] noun      (noun plural: + "s")
//   verb agrees with its subject: singular subject -> verb + "s", plural -> bare verb
//   line := sentence (" " sentence){0..2} "\n"
//
// from 8 adjectives, 8 nouns and 8 verbs. Spelling and word order are quick
// to learn; spelling the verb right needs the subject's plural "s" a word
// back, more than bigram statistics; and the word choices are random, so the
// loss flattens at the grammar's entropy, never at zero.
//
// Choices are driven by one Philox stream: choice j uses
// philox_uniform<double>(seed, 0, j, 0, 1). The text depends only on the seed,
// and synthetic_corpus(n, s) is a prefix of synthetic_corpus(m, s) for n <= m.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {

/// Draws the grammar's choices in order from one Philox stream.
class SyntheticWriter {
 public:
  explicit SyntheticWriter(uint64_t seed) : seed_(seed) {}

  void line(std::string& out) {
    const int64_t sentences = 1 + pick(3);
    for (int64_t s = 0; s < sentences; ++s) {
      if (s) out += ' ';
      sentence(out);
    }
    out += '\n';
  }

 private:
  static constexpr std::array<std::string_view, 8> kAdjectives = {
      "red", "old", "small", "quiet", "happy", "green", "brave", "lazy"};
  static constexpr std::array<std::string_view, 8> kNouns = {"cat",  "dog",   "bird",  "frog",
                                                             "king", "robot", "horse", "girl"};
  static constexpr std::array<std::string_view, 8> kVerbs = {"see",  "like",   "chase", "find",
                                                             "help", "follow", "paint", "hear"};

  int64_t pick(int64_t n) {
    const double u = philox_uniform<double>(seed_, 0, draws_++, 0.0, 1.0);
    const int64_t k = static_cast<int64_t>(u * static_cast<double>(n));
    return k < n ? k : n - 1;
  }
  template <size_t N>
  std::string_view pick(const std::array<std::string_view, N>& words) {
    return words[static_cast<size_t>(pick(static_cast<int64_t>(N)))];
  }

  /// Appends "the [adj ]noun[s]"; returns whether the noun is plural.
  bool noun_phrase(std::string& out) {
    out += "the ";
    if (pick(2)) {
      out += pick(kAdjectives);
      out += ' ';
    }
    out += pick(kNouns);
    const bool plural = pick(2) == 1;
    if (plural) out += 's';
    return plural;
  }
  void clause(std::string& out) {
    const bool plural = noun_phrase(out);
    out += ' ';
    out += pick(kVerbs);
    if (!plural) out += 's';
    out += ' ';
    noun_phrase(out);
  }
  void sentence(std::string& out) {
    clause(out);
    if (pick(4) == 0) {
      out += " and ";
      clause(out);
    }
    out += '.';
  }

  uint64_t seed_;
  int64_t draws_ = 0;
};

}  // namespace detail

/// Exactly `n_bytes` bytes of the toy language above, for `seed`.
/// Requires n_bytes >= 0 (throws Error otherwise). Ensures: the same text for
/// the same (n_bytes, seed) everywhere; a prefix of every longer text of the seed.
inline std::string synthetic_corpus(int64_t n_bytes, uint64_t seed = 0) {
  detail::check(n_bytes >= 0, "synthetic_corpus: n_bytes must be >= 0, got ", n_bytes);
  std::string text;
  text.reserve(static_cast<size_t>(n_bytes) + 256);
  detail::SyntheticWriter writer(seed);
  while (static_cast<int64_t>(text.size()) < n_bytes) writer.line(text);
  text.resize(static_cast<size_t>(n_bytes));
  return text;
}

}  // namespace v0
}  // namespace normlab
