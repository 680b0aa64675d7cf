// normlab/ops/embedding.hpp — embedding lookup.
#pragma once
