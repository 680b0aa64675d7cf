// normlab/backend/index_check.hpp — what an index range check reports: the
// parts of its message, shared by the host check (ops/embedding.hpp) and the
// device checks of a backend with HasDeviceIndexChecks (backend/backend.hpp),
// so that a bad index reads the same wherever it was found.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/core/shape.hpp"

namespace normlab {
inline namespace v0 {

/// One range check of an index tensor: every element must be in [0, bound)
/// or equal ignore_index (when given). The strings name the op ("embedding"),
/// an element ("index") and the tensor ("indices"); they must outlive the
/// check (string literals).
struct IndexCheck {
  const char* op = "";
  const char* noun = "index";
  const char* name = "indices";
  Shape shape;  ///< of the checked tensor, to name a position
  int64_t bound = 0;
  std::optional<int64_t> ignore_index;
};

namespace detail {

/// "3" for an index into a 1-d tensor, "(1, 2)" for the multi-index of flat
/// position `flat` in a tensor of any other rank.
inline std::string position_string(const Shape& s, int64_t flat) {
  if (s.ndim() == 1) return std::to_string(flat);
  std::vector<int64_t> idx(static_cast<size_t>(s.ndim()));
  for (int d = s.ndim() - 1; d >= 0; --d) {
    idx[static_cast<size_t>(d)] = flat % s[d];
    flat /= s[d];
  }
  std::string out = "(";
  for (size_t d = 0; d < idx.size(); ++d) out += (d ? ", " : "") + std::to_string(idx[d]);
  return out + ")";
}

/// The message of `check` failing: `value` found at flat position `flat`,
/// e.g. "embedding: index 300 out of range [0, 256) at position (1, 3) of
/// indices shape (2, 4)".
inline std::string index_range_message(const IndexCheck& check, int64_t value, int64_t flat) {
  return concat(
      check.op, ": ", check.noun, " ", value, " out of range [0, ", check.bound, ") at position ",
      position_string(check.shape, flat), " of ", check.name, " shape ", check.shape,
      check.ignore_index ? concat(" (ignore_index is ", *check.ignore_index, ")") : std::string());
}

}  // namespace detail
}  // namespace v0
}  // namespace normlab
