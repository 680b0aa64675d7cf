// normlab/optim/optim.hpp — optimizers (SGD, Adam, AdamW) with weight-decay
// groups and checkpointable state, gradient clipping by global norm, and
// learning-rate schedules.
#pragma once

#include "normlab/optim/adam.hpp"
#include "normlab/optim/clip.hpp"
#include "normlab/optim/optimizer.hpp"
#include "normlab/optim/schedule.hpp"
#include "normlab/optim/sgd.hpp"
