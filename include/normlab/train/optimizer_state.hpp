// normlab/train/optimizer_state.hpp — an optimizer's state in a safetensors
// file, so a trainer can checkpoint and resume exactly.
//
//   io::SafetensorsWriter w;
//   write_state(w, opt.state(), "optim.");       // next to the model's tensors
//   w.write("checkpoint.safetensors");
//   ...
//   auto r = io::SafetensorsReader::open("checkpoint.safetensors");
//   opt.load_state(read_state<float, Cpu>(r, "optim."));
#pragma once

#include <cstdint>
#include <string>

#include "normlab/core/error.hpp"
#include "normlab/io/safetensors.hpp"
#include "normlab/optim/optimizer.hpp"

namespace normlab {
inline namespace v0 {

/// Adds every entry of `s` to `w` under `prefix` + key: tensors in their own
/// dtype (F32 for float, F64 for double: bit-exact), counters as I64 scalars
/// (shape ()).
/// Requires: no key of `w` collides (the writer throws Error on a duplicate).
template <FloatingElement Scalar, class Backend>
void write_state(io::SafetensorsWriter& w, const OptimizerState<Scalar, Backend>& s,
                 const std::string& prefix = "") {
  for (const auto& [key, t] : s.tensors) w.add(prefix + key, t);
  for (const auto& [key, v] : s.counters)
    w.add(prefix + key, Tensor<int64_t, Backend>::scalar(v), io::DType::I64);
}

/// The state written by write_state: every tensor of `r` whose name starts
/// with `prefix` (all of them when it is empty), with the prefix removed.
/// Floating tensors become state tensors (converted to T), integer ones
/// counters. Throws Error naming the tensor when an integer entry does not
/// hold exactly one value. Which keys an optimizer accepts is checked by its
/// load_state.
template <FloatingElement Scalar, class Backend>
OptimizerState<Scalar, Backend> read_state(const io::SafetensorsReader& r,
                                           const std::string& prefix = "") {
  OptimizerState<Scalar, Backend> s;
  for (const io::TensorInfo& info : r.tensors()) {
    if (info.name.compare(0, prefix.size(), prefix) != 0) continue;
    const std::string key = info.name.substr(prefix.size());
    if (io::is_floating(info.dtype)) {
      s.tensors[key] = r.read<Scalar, Backend>(info.name);
    } else {
      detail::check(info.shape.numel() == 1, r.source_name(), ": optimizer counter '", info.name,
                    "' must hold one integer, found shape ", info.shape);
      s.counters[key] = r.read<int64_t, Backend>(info.name).item();
    }
  }
  return s;
}

}  // namespace v0
}  // namespace normlab
