// normlab/core/random.hpp — counter-based Philox 4x32-10 random numbers.
//
// Philox (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11)
// maps a 128-bit counter and a 64-bit key to four 32-bit words. Because each
// element's numbers depend only on (seed, counter), a fill gives the same
// values on every backend and for every thread count.
#pragma once

#include <cmath>
#include <cstdint>

#include "normlab/config.hpp"

namespace normlab {
inline namespace v0 {

/// Four 32-bit words: one Philox counter or one Philox output block.
struct PhiloxBlock {
  uint32_t w[4];
};

/// Philox 4x32 with 10 rounds of the published constants.
NL_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxBlock ctr, uint64_t seed) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    const uint64_t p0 = static_cast<uint64_t>(kM0) * ctr.w[0];
    const uint64_t p1 = static_cast<uint64_t>(kM1) * ctr.w[2];
    const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
    const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
    ctr = PhiloxBlock{{hi1 ^ ctr.w[1] ^ k0, lo1, hi0 ^ ctr.w[3] ^ k1, lo0}};
    k0 += kW0;
    k1 += kW1;
  }
  return ctr;
}

/// The Philox output for block number `block` of a stream with key `seed`.
NL_HOST_DEVICE inline PhiloxBlock philox_block(uint64_t seed, uint64_t block) {
  return philox4x32_10(
      PhiloxBlock{{static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}},
      seed);
}

/// How a fill of element type Scalar maps elements onto Philox blocks.
///
/// float: a block gives 4 uniforms (24 random bits each) or 4 normals
/// (Box-Muller on words (0,1) and (2,3), cos then sin).
/// double: a block gives 2 uniforms (53 random bits from two words each) or 2
/// normals (one Box-Muller pair).
template <class Scalar>
struct PhiloxLayout {
  static constexpr int per_block = sizeof(Scalar) == 4 ? 4 : 2;
};

/// Uniform in [0, 1) from one 32-bit word (24 bits) or two words (53 bits).
NL_HOST_DEVICE inline double unit_from_u32(uint32_t x) {
  return static_cast<double>(x >> 8) * (1.0 / 16777216.0);
}
NL_HOST_DEVICE inline double unit_from_u64(uint32_t hi, uint32_t lo) {
  const uint64_t x = (static_cast<uint64_t>(hi) << 32 | lo) >> 11;
  return static_cast<double>(x) * (1.0 / 9007199254740992.0);
}

/// a * b rounded on its own. Device code would otherwise fuse it with a
/// following add into one FMA (nvcc contracts by default; a host build
/// without FMA instructions cannot), and the GPU's fills would differ from
/// the CPU's in the last bit.
NL_HOST_DEVICE inline double mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

/// Element `i` of a uniform [lo, hi) fill that starts at Philox block `first_block`.
template <class Scalar>
NL_HOST_DEVICE Scalar philox_uniform(uint64_t seed, uint64_t first_block, int64_t i, Scalar lo,
                                     Scalar hi) {
  constexpr int k = PhiloxLayout<Scalar>::per_block;
  const PhiloxBlock b = philox_block(seed, first_block + static_cast<uint64_t>(i / k));
  const int lane = static_cast<int>(i % k);
  const double u = sizeof(Scalar) == 4 ? unit_from_u32(b.w[lane])
                                       : unit_from_u64(b.w[2 * lane], b.w[2 * lane + 1]);
  return static_cast<Scalar>(static_cast<double>(lo) + mul_rn(static_cast<double>(hi) - lo, u));
}

/// Element `i` of a normal(mean, std) fill that starts at Philox block `first_block`.
/// Computed in double and rounded once, so float fills agree across backends.
template <class Scalar>
NL_HOST_DEVICE Scalar philox_normal(uint64_t seed, uint64_t first_block, int64_t i, Scalar mean,
                                    Scalar std) {
  constexpr int k = PhiloxLayout<Scalar>::per_block;
  const PhiloxBlock b = philox_block(seed, first_block + static_cast<uint64_t>(i / k));
  const int lane = static_cast<int>(i % k);
  double u1, u2;
  if (sizeof(Scalar) == 4) {
    const int pair = lane / 2;
    u1 = 1.0 - unit_from_u32(b.w[2 * pair]);  // (0, 1]: log(u1) is finite
    u2 = unit_from_u32(b.w[2 * pair + 1]);
  } else {
    u1 = 1.0 - unit_from_u64(b.w[0], b.w[1]);
    u2 = unit_from_u64(b.w[2], b.w[3]);
  }
  const double r = std::sqrt(-2.0 * std::log(u1));
  const double theta = 6.283185307179586 * u2;
  const double z = (lane % 2 == 0) ? r * std::cos(theta) : r * std::sin(theta);
  return static_cast<Scalar>(static_cast<double>(mean) + mul_rn(static_cast<double>(std), z));
}

/// A seeded source of random streams. Each fill reserves a fresh range of
/// Philox blocks, so successive fills are independent and a run is fully
/// determined by the seed and the sequence of fills.
///
/// Contract: not thread-safe; share one Generator per training loop.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0) : seed_(seed) {}

  uint64_t seed() const { return seed_; }
  /// The next unused Philox block; saving (seed, offset) captures the state.
  uint64_t offset() const { return next_block_; }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    next_block_ = offset;
  }

  /// Reserves the blocks for `n` elements of type Scalar; returns the first.
  template <class Scalar>
  uint64_t reserve(int64_t n) {
    constexpr int k = PhiloxLayout<Scalar>::per_block;
    const uint64_t first = next_block_;
    next_block_ += static_cast<uint64_t>((n + k - 1) / k);
    return first;
  }

 private:
  uint64_t seed_;
  uint64_t next_block_ = 0;
};

}  // namespace v0
}  // namespace normlab
