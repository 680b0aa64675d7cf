// normlab/backend/cpu/softmax.hpp — softmax and log-softmax forward/backward kernels.
#pragma once
