// normlab/ops/softmax.hpp — softmax and log_softmax.
#pragma once
