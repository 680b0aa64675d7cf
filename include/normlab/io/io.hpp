// normlab/io/io.hpp — file formats: JSON (configs, headers) and safetensors
// (checkpoints interchangeable with PyTorch / Hugging Face).
#pragma once

#include "normlab/io/json.hpp"
#include "normlab/io/safetensors.hpp"
