// normlab/ops/reduction.hpp — sum and mean.
#pragma once
