// normlab/config.hpp — version, portability decorations, ABI namespace.
//
// Every public name lives in `normlab { inline namespace v0 {`, so two
// incompatible normlab versions linked into one program cannot silently mix
// their types. (Spelled out rather than as C++20's `normlab::inline v0`,
// which common indexers such as Universal Ctags do not understand.)
#pragma once

#define NORMLAB_VERSION_MAJOR 0
#define NORMLAB_VERSION_MINOR 1
#define NORMLAB_VERSION_PATCH 0

// Functions that must be callable from host code and from CUDA kernels.
#if defined(__CUDACC__)
#define NL_HOST_DEVICE __host__ __device__
#define NL_KERNEL __global__
#else
#define NL_HOST_DEVICE
#define NL_KERNEL
#endif

namespace normlab {
inline namespace v0 {

inline constexpr int version_major = NORMLAB_VERSION_MAJOR;
inline constexpr int version_minor = NORMLAB_VERSION_MINOR;
inline constexpr int version_patch = NORMLAB_VERSION_PATCH;

}  // namespace v0
}  // namespace normlab
