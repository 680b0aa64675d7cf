// normlab/backend/cpu/reduce.hpp — reductions along an axis and their broadcast-back.
#pragma once
