// normlab/core/error.hpp — the one exception type normlab throws.
#pragma once

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include "normlab/config.hpp"

namespace normlab {
inline namespace v0 {

/// Every failure that user input can cause (shape mismatch, bad axis, index
/// out of range, unreadable file, backend error) is reported as an Error whose
/// message names the operation, what it expected and what it found.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

namespace detail {

/// Streams all arguments into one string: concat("sum: axis ", 3) == "sum: axis 3".
template <class... Args>
std::string concat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

/// Throws Error(concat(args...)) unless `ok`.
template <class... Args>
void check(bool ok, const Args&... args) {
  if (!ok) throw Error(concat(args...));
}

/// int64 arithmetic on sizes that come from input, remembering whether any
/// step overflowed: compute the whole count, then test `fits` once (after an
/// overflow the results are meaningless, and `fits` stays false).
struct CheckedCount {
  bool fits = true;
  int64_t mul(int64_t a, int64_t b) {
    int64_t r = 0;
    fits = fits && !__builtin_mul_overflow(a, b, &r);
    return r;
  }
  int64_t add(int64_t a, int64_t b) {
    int64_t r = 0;
    fits = fits && !__builtin_add_overflow(a, b, &r);
    return r;
  }
};

}  // namespace detail
}  // namespace v0
}  // namespace normlab
