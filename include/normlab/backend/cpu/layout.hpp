// normlab/backend/cpu/layout.hpp — layout kernels: permute copies and strided row blocks (slice, concat).
#pragma once
