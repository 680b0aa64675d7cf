// normlab/data/tokenizer.hpp — the byte-level tokenizer: one token per byte.
//
// Byte tokens need no vocabulary file, cover every input (any encoding, any
// binary), and decode(encode(s)) == s for every string. Their price is long
// sequences, which the small models of this library can afford.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {

/// Maps each byte of a string to its unsigned value in [0, 256) and back.
struct ByteTokenizer {
  /// Number of distinct token ids (ModelConfig::vocab_size for byte models).
  static constexpr int64_t vocab_size = 256;

  /// Ensures: result.size() == text.size() and result[i] == (unsigned char)text[i],
  /// so bytes >= 0x80 (UTF-8 continuation bytes, Latin-1) give ids 128..255.
  static std::vector<int64_t> encode(std::string_view text) {
    std::vector<int64_t> ids(text.size());
    for (size_t i = 0; i < text.size(); ++i) ids[i] = static_cast<unsigned char>(text[i]);
    return ids;
  }

  /// Requires: every id in [0, 256); otherwise throws Error naming the first
  /// bad id and its position. Ensures: encode(decode(ids)) == ids.
  static std::string decode(std::span<const int64_t> ids) {
    std::string text(ids.size(), '\0');
    for (size_t i = 0; i < ids.size(); ++i) {
      detail::check(ids[i] >= 0 && ids[i] < vocab_size, "ByteTokenizer::decode: token id ", ids[i],
                    " at position ", i, " is outside the byte vocabulary [0, ", vocab_size, ")");
      text[i] = static_cast<char>(static_cast<unsigned char>(ids[i]));
    }
    return text;
  }
};

}  // namespace v0
}  // namespace normlab
