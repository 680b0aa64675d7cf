// normlab/ops/normalization.hpp — layer_norm and rms_norm.
#pragma once
