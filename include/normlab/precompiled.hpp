// normlab/precompiled.hpp — the instances the optional precompiled library holds.
//
// normlab is header-only by default: each translation unit instantiates the
// templates it uses, for the element type and backend it uses, and compiles
// them. A program built from many translation units pays that in each. The
// optional library normlab::precompiled (CMake; sources in src/precompiled/)
// holds the common CPU instances compiled once:
//
//   ops        every differentiable op of ops/ for float and double on Cpu
//              (and through them every CPU kernel they call)
//   classes    Tensor (float, double, int64_t), Variable, the modules of nn/
//              (Linear, LayerNorm, RMSNorm, Normalization, Embedding,
//              FeedForward, MultiHeadAttention), the optimizers (SGD, Adam,
//              AdamW), grad_norm / clip_grad_norm and the initialization
//              schemes (initialize), for float and double on Cpu
//   models     GPT, its TransformerStack and TransformerLayer, for PostLN,
//              PreLN, NormFormer and RuntimePolicy, float on Cpu
//
// A program that links normlab::precompiled compiles with NORMLAB_PRECOMPILED
// defined (the target defines it); <normlab/normlab.hpp> then ends with the
// explicit instantiation declarations below (`extern template`), which tell
// the compiler not to instantiate those definitions but to call the
// library's. Everything else — other policies (a user's own compose<...>),
// other element types, the CUDA backend, the application code — is
// instantiated in the user's translation unit exactly as without the library,
// and computes bit for bit what header-only use computes (the library is
// compiled from the same headers; tools/compile_time.sh and the test
// precompiled/same_losses_as_header_only check it).
//
// Contract: NORMLAB_PRECOMPILED must be defined in every translation unit of a
// program or in none (the CMake target does this), and the library must be
// built with the same compiler flags that change code (-march, -ffast-math)
// as the program — as any static library of templates. Without the define this
// header declares nothing and header-only use is unchanged.
//
// Each list below names one signature per instance; the library's sources
// expand the same lists with `template` (explicit instantiation definitions),
// so a list that no longer matches its template fails to compile there.
#pragma once

#include <cstdint>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/cpu.hpp"
#include "normlab/core/random.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/modules/attention.hpp"
#include "normlab/modules/init.hpp"
#include "normlab/modules/layers.hpp"
#include "normlab/modules/module.hpp"
#include "normlab/ops/attention.hpp"
#include "normlab/ops/dropout.hpp"
#include "normlab/ops/elementwise.hpp"
#include "normlab/ops/embedding.hpp"
#include "normlab/ops/linalg.hpp"
#include "normlab/ops/loss.hpp"
#include "normlab/ops/normalization.hpp"
#include "normlab/ops/reduction.hpp"
#include "normlab/ops/shape.hpp"
#include "normlab/ops/softmax.hpp"
#include "normlab/optim/adam.hpp"
#include "normlab/optim/clip.hpp"
#include "normlab/optim/sgd.hpp"
#include "normlab/policy/compose.hpp"

/// The differentiable ops of ops/ for element type Scalar on backend Backend, each
/// preceded by EXPLICIT (`extern template` or `template`).
#define NORMLAB_OP_INSTANCES(EXPLICIT, Scalar, Backend)                                            \
  EXPLICIT Variable<Scalar, Backend> multi_head_attention<Scalar, Backend>(                        \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&,                          \
      const Variable<Scalar, Backend>&, int64_t, double, bool);                                    \
  EXPLICIT Variable<Scalar, Backend> dropout<Scalar, Backend>(const Variable<Scalar, Backend>&,    \
                                                              double, Generator&, bool);           \
  EXPLICIT Variable<Scalar, Backend> add<Scalar, Backend>(const Variable<Scalar, Backend>&,        \
                                                          const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> sub<Scalar, Backend>(const Variable<Scalar, Backend>&,        \
                                                          const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> mul<Scalar, Backend>(const Variable<Scalar, Backend>&,        \
                                                          const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> div<Scalar, Backend>(const Variable<Scalar, Backend>&,        \
                                                          const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> add_scalar<Scalar, Backend>(const Variable<Scalar, Backend>&, \
                                                                 double);                          \
  EXPLICIT Variable<Scalar, Backend> mul_scalar<Scalar, Backend>(const Variable<Scalar, Backend>&, \
                                                                 double);                          \
  EXPLICIT Variable<Scalar, Backend> rsub_scalar<Scalar, Backend>(                                 \
      const Variable<Scalar, Backend>&, double);                                                   \
  EXPLICIT Variable<Scalar, Backend> rdiv_scalar<Scalar, Backend>(                                 \
      const Variable<Scalar, Backend>&, double);                                                   \
  EXPLICIT Variable<Scalar, Backend> pow<Scalar, Backend>(const Variable<Scalar, Backend>&,        \
                                                          double);                                 \
  EXPLICIT Variable<Scalar, Backend> neg<Scalar, Backend>(const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> exp<Scalar, Backend>(const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> log<Scalar, Backend>(const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> sqrt<Scalar, Backend>(const Variable<Scalar, Backend>&);      \
  EXPLICIT Variable<Scalar, Backend> tanh<Scalar, Backend>(const Variable<Scalar, Backend>&);      \
  EXPLICIT Variable<Scalar, Backend> relu<Scalar, Backend>(const Variable<Scalar, Backend>&);      \
  EXPLICIT Variable<Scalar, Backend> gelu<Scalar, Backend>(const Variable<Scalar, Backend>&,       \
                                                           GeluApproximation);                     \
  EXPLICIT Variable<Scalar, Backend> bias_gelu<Scalar, Backend>(                                   \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&, GeluApproximation);      \
  EXPLICIT Variable<Scalar, Backend> embedding<Scalar, Backend>(                                   \
      const Tensor<int64_t, Backend>&, const Variable<Scalar, Backend>&, std::optional<int64_t>);  \
  EXPLICIT Variable<Scalar, Backend> matmul<Scalar, Backend>(                                      \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&, bool, bool);             \
  EXPLICIT Variable<Scalar, Backend> linear<Scalar, Backend>(const Variable<Scalar, Backend>&,     \
                                                             const Variable<Scalar, Backend>&,     \
                                                             const Variable<Scalar, Backend>&);    \
  EXPLICIT Variable<Scalar, Backend> cross_entropy<Scalar, Backend>(                               \
      const Variable<Scalar, Backend>&, const Tensor<int64_t, Backend>&, int64_t);                 \
  EXPLICIT Variable<Scalar, Backend> layer_norm<Scalar, Backend>(                                  \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&,                          \
      const Variable<Scalar, Backend>&, double);                                                   \
  EXPLICIT Variable<Scalar, Backend> rms_norm<Scalar, Backend>(                                    \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&, double);                 \
  EXPLICIT Variable<Scalar, Backend> bias_gelu_layer_norm<Scalar, Backend>(                        \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&,                          \
      const Variable<Scalar, Backend>&, const Variable<Scalar, Backend>&, double,                  \
      GeluApproximation);                                                                          \
  EXPLICIT Variable<Scalar, Backend> sum<Scalar, Backend>(const Variable<Scalar, Backend>&);       \
  EXPLICIT Variable<Scalar, Backend> sum<Scalar, Backend>(const Variable<Scalar, Backend>&, int,   \
                                                          bool);                                   \
  EXPLICIT Variable<Scalar, Backend> mean<Scalar, Backend>(const Variable<Scalar, Backend>&);      \
  EXPLICIT Variable<Scalar, Backend> mean<Scalar, Backend>(const Variable<Scalar, Backend>&, int,  \
                                                           bool);                                  \
  EXPLICIT Variable<Scalar, Backend> reshape<Scalar, Backend>(const Variable<Scalar, Backend>&,    \
                                                              const std::vector<int64_t>&);        \
  EXPLICIT Variable<Scalar, Backend> permute<Scalar, Backend>(const Variable<Scalar, Backend>&,    \
                                                              std::vector<int>);                   \
  EXPLICIT Variable<Scalar, Backend> transpose<Scalar, Backend>(const Variable<Scalar, Backend>&,  \
                                                                int, int);                         \
  EXPLICIT Variable<Scalar, Backend> slice<Scalar, Backend>(const Variable<Scalar, Backend>&, int, \
                                                            int64_t, int64_t);                     \
  EXPLICIT Variable<Scalar, Backend> concat<Scalar, Backend>(                                      \
      const std::vector<Variable<Scalar, Backend>>&, int);                                         \
  EXPLICIT Variable<Scalar, Backend> softmax<Scalar, Backend>(const Variable<Scalar, Backend>&,    \
                                                              bool);                               \
  EXPLICIT Variable<Scalar, Backend> log_softmax<Scalar, Backend>(const Variable<Scalar, Backend>&);

/// The classes and the gradient-norm functions for element type Scalar on backend Backend.
#define NORMLAB_CLASS_INSTANCES(EXPLICIT, Scalar, Backend)                                         \
  EXPLICIT class Tensor<Scalar, Backend>;                                                          \
  EXPLICIT class Variable<Scalar, Backend>;                                                        \
  EXPLICIT class Module<Scalar, Backend>;                                                          \
  EXPLICIT class Linear<Scalar, Backend>;                                                          \
  EXPLICIT class LayerNorm<Scalar, Backend>;                                                       \
  EXPLICIT class RMSNorm<Scalar, Backend>;                                                         \
  EXPLICIT class Normalization<Scalar, Backend>;                                                   \
  EXPLICIT class Embedding<Scalar, Backend>;                                                       \
  EXPLICIT class FeedForward<Scalar, Backend>;                                                     \
  EXPLICIT class MultiHeadAttention<Scalar, Backend>;                                              \
  EXPLICIT class Optimizer<Scalar, Backend>;                                                       \
  EXPLICIT class SGD<Scalar, Backend>;                                                             \
  EXPLICIT class detail::AdamFamily<Scalar, Backend>;                                              \
  EXPLICIT class Adam<Scalar, Backend>;                                                            \
  EXPLICIT class AdamW<Scalar, Backend>;                                                           \
  EXPLICIT double grad_norm<Scalar, Backend>(const std::vector<Variable<Scalar, Backend>>&);       \
  EXPLICIT double clip_grad_norm<Scalar, Backend>(const std::vector<Variable<Scalar, Backend>>&,   \
                                                  double);                                         \
  EXPLICIT double grad_norm<Scalar, Backend>(const std::vector<NamedParameter<Scalar, Backend>>&); \
  EXPLICIT double clip_grad_norm<Scalar, Backend>(                                                 \
      const std::vector<NamedParameter<Scalar, Backend>>&, double);                                \
  EXPLICIT void initialize<Scalar, Backend>(Module<Scalar, Backend>&, InitScheme, int64_t,         \
                                            uint64_t);

/// A model class for policy P, element type Scalar on backend Backend.
#define NORMLAB_MODEL_INSTANCES(EXPLICIT, P, Scalar, Backend) \
  EXPLICIT class TransformerLayer<P, Scalar, Backend>;        \
  EXPLICIT class TransformerStack<P, Scalar, Backend>;        \
  EXPLICIT class GPT<P, Scalar, Backend>;

/// Every instance of the library, each preceded by EXPLICIT.
#define NORMLAB_PRECOMPILED_INSTANCES(EXPLICIT)             \
  NORMLAB_OP_INSTANCES(EXPLICIT, float, Cpu)                \
  NORMLAB_OP_INSTANCES(EXPLICIT, double, Cpu)               \
  EXPLICIT class Tensor<int64_t, Cpu>;                      \
  NORMLAB_CLASS_INSTANCES(EXPLICIT, float, Cpu)             \
  NORMLAB_CLASS_INSTANCES(EXPLICIT, double, Cpu)            \
  NORMLAB_MODEL_INSTANCES(EXPLICIT, PostLN, float, Cpu)     \
  NORMLAB_MODEL_INSTANCES(EXPLICIT, PreLN, float, Cpu)      \
  NORMLAB_MODEL_INSTANCES(EXPLICIT, NormFormer, float, Cpu) \
  NORMLAB_MODEL_INSTANCES(EXPLICIT, RuntimePolicy, float, Cpu)

#ifdef NORMLAB_PRECOMPILED
namespace normlab {
inline namespace v0 {
NORMLAB_PRECOMPILED_INSTANCES(extern template)
}  // namespace v0
}  // namespace normlab
#endif
