// normlab/backend/cpu/dropout.hpp — dropout mask kernels.
#pragma once
