// normlab/ops/loss.hpp — cross_entropy.
#pragma once
