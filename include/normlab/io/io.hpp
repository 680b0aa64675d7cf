// normlab/io/io.hpp — file formats, below the tensors' users: JSON (configs,
// headers), safetensors (tensors interchangeable with PyTorch / Hugging
// Face), and under them files that survive a crash (atomic writes, bounded
// reads, mappings). Model checkpoints are models/checkpoint.hpp; a trainer's,
// train/trainer.hpp.
#pragma once

#include "normlab/io/file.hpp"
#include "normlab/io/json.hpp"
#include "normlab/io/safetensors.hpp"
