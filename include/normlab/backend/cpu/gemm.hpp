// normlab/backend/cpu/gemm.hpp — GEMM kernels on Eigen maps (plain and strided-batched).
#pragma once
