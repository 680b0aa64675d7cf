// normlab/ops/dropout.hpp — dropout.
#pragma once
