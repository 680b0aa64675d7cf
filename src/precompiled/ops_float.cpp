// src/precompiled/ops_float.cpp — part of the optional library normlab::precompiled
// (see normlab/precompiled.hpp): the differentiable ops for float on Cpu,
// compiled once. The library is split in four translation units so that they
// build in parallel; each sees the others' instances as extern.
#include "build.hpp"

namespace normlab {
inline namespace v0 {
NORMLAB_OP_INSTANCES(template, float, Cpu)
}  // namespace v0
}  // namespace normlab
