// normlab/ops/shape.hpp — reshape, transpose, permute, slice, concat.
#pragma once
