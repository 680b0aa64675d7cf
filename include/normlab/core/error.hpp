// normlab/core/error.hpp — the one exception type normlab throws.
#pragma once

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

}  // namespace detail
}  // namespace v0
}  // namespace normlab
