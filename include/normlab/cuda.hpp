// normlab/cuda.hpp — normlab with the CUDA backend (compile with nvcc).
//
// Everything in normlab/normlab.hpp, plus the tag `normlab::Cuda`, so that
// Tensor<float, Cuda>, GPT<NormFormer, float, Cuda> and AdamW<float, Cuda>
// run on the GPU with the code that runs them on the CPU:
//
//   #include <normlab/cuda.hpp>   // in a .cu file
//   normlab::GPT<normlab::NormFormer, float, normlab::Cuda> model(cfg, /*seed=*/1);
//
// A model initialized with a seed holds the same parameters on either backend
// (the device draws the CPU's Philox numbers). Kernels: cuBLAS GEMMs, Thrust
// for element-wise maps, normlab's own kernels for normalization, softmax,
// cross-entropy, embedding scatter-add, dropout masks and optimizer steps,
// all on one stream; device memory from the stream-ordered pool. CUDA and
// cuBLAS failures are normlab::Error naming the call, file and line.
#pragma once

#ifndef __CUDACC__
#error "normlab/cuda.hpp holds CUDA code: include it from a .cu file compiled by nvcc"
#endif

// Eigen (the CPU backend) stays host-only code inside CUDA translation units.
#ifndef EIGEN_NO_CUDA
#define EIGEN_NO_CUDA
#endif

#include "normlab/backend/cuda/elementwise.cuh"
#include "normlab/backend/cuda/embedding.cuh"
#include "normlab/backend/cuda/gemm.cuh"
#include "normlab/backend/cuda/normalization.cuh"
#include "normlab/backend/cuda/optim.cuh"
#include "normlab/backend/cuda/runtime.cuh"
#include "normlab/backend/cuda/softmax.cuh"
#include "normlab/normlab.hpp"

static_assert(normlab::Backend<normlab::Cuda>, "the CUDA backend must satisfy normlab::Backend");
