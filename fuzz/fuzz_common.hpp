// fuzz/fuzz_common.hpp — what the libFuzzer harnesses in fuzz/ share: reporting
// a finding, and a structural comparison of JSON values that is stricter than
// json::Value's operator== (ints stay ints, doubles compare bit for bit).
//
// A harness catches normlab::Error where the library promises to throw it on
// bad input; anything else (another exception, an abort, a sanitizer report)
// ends the run, and libFuzzer saves the input as a crash file. A broken
// contract that is not a crash (a round trip that changes a value) calls
// finding(), which prints what broke and aborts.
#pragma once

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "normlab/io/json.hpp"

namespace normlab_fuzz {

/// Prints "FINDING: <harness>: <what>" to stderr and aborts, so that
/// libFuzzer records the input.
[[noreturn]] inline void finding(const char* harness, const std::string& what) {
  std::fprintf(stderr, "\nFINDING: %s: %s\n", harness, what.c_str());
  std::fflush(stderr);
  std::abort();
}

/// Whether `a` and `b` are the same JSON value: same kinds (an int is not a
/// double), doubles with the same bits, object members in the same order.
inline bool identical(const normlab::json::Value& a, const normlab::json::Value& b) {
  using normlab::json::Type;
  if (a.type() != b.type() || a.is_int() != b.is_int()) return false;
  switch (a.type()) {
    case Type::null:
      return true;
    case Type::boolean:
      return a.as_bool() == b.as_bool();
    case Type::number:
      if (a.is_int()) return a.as_int() == b.as_int();
      return std::bit_cast<uint64_t>(a.as_double()) == std::bit_cast<uint64_t>(b.as_double());
    case Type::string:
      return a.as_string() == b.as_string();
    case Type::array: {
      const auto &x = a.as_array(), &y = b.as_array();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i)
        if (!identical(x[i], y[i])) return false;
      return true;
    }
    case Type::object: {
      const auto &x = a.as_object(), &y = b.as_object();
      if (x.size() != y.size()) return false;
      for (auto i = x.begin(), j = y.begin(); i != x.end(); ++i, ++j)
        if (i->first != j->first || !identical(i->second, j->second)) return false;
      return true;
    }
  }
  return false;
}

}  // namespace normlab_fuzz
