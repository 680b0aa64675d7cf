// normlab/backend/cpu.hpp — the CPU backend: the Cpu tag and every CPU kernel
// (OpenMP threads, the AVX-512 GEMM with Eigen as the portable path). The
// library above the backend layer reaches these kernels only through its
// backend template parameter (argument-dependent lookup on Cpu); a program
// that computes on the CPU includes this header (normlab.hpp does).
#pragma once

#include "normlab/backend/cpu/activation.hpp"
#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/backend/cpu/dropout.hpp"
#include "normlab/backend/cpu/elementwise.hpp"
#include "normlab/backend/cpu/embedding.hpp"
#include "normlab/backend/cpu/gemm.hpp"
#include "normlab/backend/cpu/layout.hpp"
#include "normlab/backend/cpu/loss.hpp"
#include "normlab/backend/cpu/normalization.hpp"
#include "normlab/backend/cpu/optim.hpp"
#include "normlab/backend/cpu/reduce.hpp"
#include "normlab/backend/cpu/softmax.hpp"
