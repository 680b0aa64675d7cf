// normlab/backend/cpu/normalization.hpp — LayerNorm and RMSNorm forward/backward kernels.
#pragma once
