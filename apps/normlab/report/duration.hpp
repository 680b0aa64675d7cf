// apps/normlab/report/duration.hpp — a time span as people read it, for the
// progress lines of `normlab compare` and its report alike.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

namespace normlab {
inline namespace v0 {

/// "1m05s" for 65 seconds, "42s" below a minute (rounded to whole seconds,
/// negative as 0); "n/a" when `seconds` is not finite.
inline std::string duration_text(double seconds) {
  if (!std::isfinite(seconds)) return "n/a";
  const auto s = static_cast<long long>(std::max(0.0, seconds) + 0.5);
  char b[48];
  if (s >= 60)
    std::snprintf(b, sizeof b, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(b, sizeof b, "%llds", s);
  return b;
}

}  // namespace v0
}  // namespace normlab
