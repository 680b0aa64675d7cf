// normlab/ops/linalg.hpp — matmul.
#pragma once
