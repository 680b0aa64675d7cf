// normlab/io/io.hpp — file formats: JSON (configs, headers), safetensors
// (checkpoints interchangeable with PyTorch / Hugging Face), checkpoints, and
// the file-driven forward pass of `normlab forward`; under them, files that
// survive a crash (atomic writes, bounded reads, mappings).
#pragma once

#include "normlab/io/file.hpp"
#include "normlab/io/json.hpp"
#include "normlab/io/safetensors.hpp"
#include "normlab/io/checkpoint.hpp"
#include "normlab/io/forward.hpp"
