// src/precompiled/models.cpp — part of the optional library normlab::precompiled
// (see normlab/precompiled.hpp): GPT, TransformerStack and TransformerLayer for the PostLN, PreLN,
// NormFormer and RuntimePolicy policies, float on Cpu, compiled once. The library is split in four
// translation units so that they build in parallel; each sees the others' instances as extern.
#include "build.hpp"

namespace normlab {
inline namespace v0 {
NORMLAB_MODEL_INSTANCES(template, PostLN, float, Cpu)
NORMLAB_MODEL_INSTANCES(template, PreLN, float, Cpu)
NORMLAB_MODEL_INSTANCES(template, NormFormer, float, Cpu)
NORMLAB_MODEL_INSTANCES(template, RuntimePolicy, float, Cpu)
}  // namespace v0
}  // namespace normlab
