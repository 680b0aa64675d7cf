// normlab/backend/cpu/embedding.hpp — embedding gather and scatter-add kernels.
#pragma once
