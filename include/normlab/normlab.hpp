// normlab/normlab.hpp — the whole library in one include.
//
// normlab is a header-only C++20 tensor and autograd library for transformer
// research. Tensors live on a backend chosen by template parameter (Cpu here;
// Cuda when compiled with nvcc), and every op records itself for reverse-mode
// differentiation:
//
//   #include <normlab/normlab.hpp>
//   using V = normlab::Variable<float, normlab::Cpu>;
//   using T = normlab::Tensor<float, normlab::Cpu>;
//   normlab::Generator gen(42);
//   V x(T::normal({4, 8}, gen));                       // (B, C) input
//   V w(T::normal({8, 8}, gen, 0.f, 0.1f), true);      // (C, C) weight, needs grad
//   V gamma(T::ones({8}), true), beta(T::zeros({8}), true);
//   V h = normlab::layer_norm(normlab::matmul(x, w), gamma, beta);   // (B, C)
//   V loss = normlab::mean(normlab::gelu(h) * h);                    // ()
//   loss.backward();                                   // w.grad(), gamma.grad(), ...
//
// Transformer models are configured by a normalization-placement policy: a
// placement (PostLN, PreLN, NoLN) and extras at named sites of the layer, as a
// type, or by name at run time (RuntimePolicy):
//
//   normlab::ModelConfig cfg;                              // sizes and policy keys
//   cfg.policy = "normformer";
//   normlab::GPT<normlab::NormFormer, float, normlab::Cpu> model(cfg, /*seed=*/1);
//   V loss = model.loss(tokens, targets);                  // tokens, targets: int64 (B, T)
//   cfg.set_policy_spec("post_ln+attn_ln+ffn_ln");        // any composition, by name
//   normlab::GPT<normlab::RuntimePolicy, float, normlab::Cpu> other(cfg, /*seed=*/1);
//
// Layers, each including only those before it: core (Tensor, Shape, RNG)
// and io (crash-safe files, JSON, safetensors: core only) <- backend (the
// kernels; backend/cpu.hpp, cuda.hpp; the optional kernels' concepts in
// backend/backend.hpp) <- autograd (Variable, backward, gradcheck) <- ops
// (differentiable functions) <- modules (Module, Linear, norms, attention,
// init) <- policy (placements, extras, their registry) <- models
// (ModelConfig, TransformerLayer, GPT, Encoder, checkpoints) <- optim and
// data <- diag <- train (the Trainer and its checkpoints, generate); dist
// (core only: the Communicator interface and SingleProcessCommunicator; the MPI
// and NCCL communicators are dist/mpi.hpp and dist/nccl.hpp, outside this
// header, so that a program links MPI or NCCL only when it includes them). The
// `normlab` command, its experiments and reports are an
// application built on this header, not part of it: apps/normlab/.
//
// Header-only is the default. A program of many translation units may link
// the optional library normlab::precompiled instead (CMake), which holds the
// common float/double CPU instances compiled once: see normlab/precompiled.hpp.
#pragma once

#include "normlab/autograd/grad_mode.hpp"
#include "normlab/autograd/gradcheck.hpp"
#include "normlab/autograd/variable.hpp"
#include "normlab/backend/backend.hpp"
#include "normlab/backend/cpu.hpp"
#include "normlab/config.hpp"
#include "normlab/core/dtype.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"
#include "normlab/core/shape.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/data/data.hpp"
#include "normlab/diag/diagnostics.hpp"
#include "normlab/dist/communicator.hpp"
#include "normlab/io/io.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/models/config.hpp"
#include "normlab/models/encoder.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/models/transformer_layer.hpp"
#include "normlab/modules/attention.hpp"
#include "normlab/modules/init.hpp"
#include "normlab/modules/layers.hpp"
#include "normlab/modules/module.hpp"
#include "normlab/modules/norm_kind.hpp"
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
#include "normlab/optim/optim.hpp"
#include "normlab/policy/compose.hpp"
#include "normlab/policy/extras.hpp"
#include "normlab/policy/policy.hpp"
#include "normlab/policy/registry.hpp"
#include "normlab/train/generate.hpp"
#include "normlab/train/optimizer_state.hpp"
#include "normlab/train/trainer.hpp"
// Last: with NORMLAB_PRECOMPILED, the instances the precompiled library holds.
#include "normlab/precompiled.hpp"

static_assert(normlab::Backend<normlab::Cpu>, "the CPU backend must satisfy normlab::Backend");
