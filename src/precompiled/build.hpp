// src/precompiled/build.hpp — what every source of normlab::precompiled
// includes first: the whole library, with the instances of
// normlab/precompiled.hpp declared extern (each source then defines its share
// with `template`, after the declaration, as the standard allows).
#pragma once

#include <normlab/normlab.hpp>

#ifndef NORMLAB_PRECOMPILED
#error \
    "src/precompiled is built with NORMLAB_PRECOMPILED defined (the normlab::precompiled target defines it)"
#endif
