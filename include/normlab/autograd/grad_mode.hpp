// normlab/autograd/grad_mode.hpp — switching graph recording off (NoGradGuard).
#pragma once

#include "normlab/config.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {
inline bool& grad_enabled_flag() {
  thread_local bool enabled = true;
  return enabled;
}
}  // namespace detail

/// Whether ops on this thread record a graph for backward().
inline bool grad_enabled() {
  return detail::grad_enabled_flag();
}

/// While alive, ops on this thread record no graph: their results do not
/// require grad (evaluation, optimizer updates). Restores the previous mode
/// on destruction, so guards nest.
class NoGradGuard {
 public:
  NoGradGuard() : previous_(detail::grad_enabled_flag()) { detail::grad_enabled_flag() = false; }
  ~NoGradGuard() { detail::grad_enabled_flag() = previous_; }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace v0
}  // namespace normlab
