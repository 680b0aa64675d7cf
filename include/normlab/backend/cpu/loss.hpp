// normlab/backend/cpu/loss.hpp — cross-entropy forward/backward kernels.
#pragma once
