// src/precompiled/classes.cpp — part of the optional library normlab::precompiled
// (see normlab/precompiled.hpp): Tensor, Variable, the modules and the optimizers for float and
// double on Cpu (and Tensor<int64_t, Cpu>), compiled once. The library is split in four translation
// units so that they build in parallel; each sees the others' instances as extern.
#include "build.hpp"

namespace normlab {
inline namespace v0 {
template class Tensor<int64_t, Cpu>;
NORMLAB_CLASS_INSTANCES(template, float, Cpu)
NORMLAB_CLASS_INSTANCES(template, double, Cpu)
}  // namespace v0
}  // namespace normlab
