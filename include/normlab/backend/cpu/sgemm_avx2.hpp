// normlab/backend/cpu/sgemm_avx2.hpp — a packed single-precision GEMM for
// x86-64 CPUs with AVX2 and FMA, chosen at run time (kernel_path.hpp).
//
// The AVX-512 kernel's framework (sgemm_avx512.hpp) for 16 ymm registers:
// a 6 x 16 micro-tile of C in 12 accumulators, two of packed B and one
// broadcast of A (the BLIS haswell tile).
//
//   C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
//
//   depth blocks: sgemm_depth_block(K), the AVX-512 kernel's;
//   packed B: per depth block, panels of 16 columns, each (kc, 16) row-major
//             (a row is two ymm vectors), columns past N zero; packed once per
//             product (up to kSgemmPackedBlocks blocks at a time), shared by
//             the threads;
//   packed A: per depth block and task, panels of 6 rows, each (kc, 6), rows
//             past M zero; an untransposed A is read in place instead
//             where sgemm_reads_a_in_place says so, as on AVX-512 (the
//             transposing copy saved: the model's forward and input-gradient
//             GEMMs 1-6% faster, AVX2 on an AMD EPYC of family 26);
//   loops:    for each depth block, for each chunk of kSgemmNc columns (its
//             packed B, at most 512 KiB, in L2), for each A panel of the
//             task (in L1), for each B panel of the chunk: the micro-kernel.
//             (B panels outer and A panels inner, B in L1 and A streaming
//             from L2, was 3% slower.)
//
// Every element of C is summed as in the AVX-512 kernel — acc = 0, then one
// FMA per depth in order, then C = alpha * acc (+ beta * C by one FMA) (+ bias)
// per depth block, blocks in order — so the two kernels give bit-identical
// products, for any thread count.
#pragma once

#include <algorithm>
#include <cstdint>

#include "normlab/backend/cpu/kernel_path.hpp"
#include "normlab/backend/cpu/sgemm_avx512.hpp"

#ifdef NORMLAB_X86_KERNELS
#include <immintrin.h>
#endif

namespace normlab {
inline namespace v0 {
namespace cpu::detail {

#ifdef NORMLAB_X86_KERNELS

inline constexpr int64_t kSgemm2Mr = 6;   // rows of a micro-tile (broadcast from A)
inline constexpr int64_t kSgemm2Nr = 16;  // columns of a micro-tile (two vectors of packed B)
/// Depths a transposed A is packed by at a time (sgemm2_pack_transposed_a_block):
/// a group's source runs, 16 of a task's block of at most 192 rows (768
/// bytes), 12 KiB, stay in L1 while each panel takes them. On an AMD EPYC of
/// family 26, two threads, the GPT's weight gradients against one depth at a
/// time: groups of 4 took 0.94-0.95 of the time, 8 0.92-0.93, 16 0.92-0.93,
/// 32 0.91-0.92 (at N 1536 about 0.99); 16 leaves room in a 32 KiB L1. (The
/// AVX-512 kernel's packer, depth by depth, gained nothing from groups
/// there: 0.99-1.01.)
inline constexpr int64_t kSgemm2PackDepthGroup = 16;

/// C tile (rows <= 6, width <= 16) = alpha * A_tile (6, kc) b (kc, 16) (+
/// beta * C tile) (+ bias, the tile's 16 columns of it, when not null); with
/// read_c false, C is only written. A_tile is a packed panel a (kc, 6) with
/// PackedA, else the rows of A itself: row i at a + i lda (rows past `rows`
/// read row 0 again, and their sums are dropped). Full tiles are stored
/// directly; edge tiles through a local tile, so no element outside C is
/// touched.
template <bool PackedA>
__attribute__((target("avx2,fma"), noinline)) inline void sgemm_micro_kernel_6x16(
    int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int64_t rows,
    int64_t width, float alpha, float beta, bool read_c, const float* bias) {
  const float* a_row[kSgemm2Mr];  // unpacked A: each row's depths
#pragma GCC unroll 6
  for (int i = 0; i < kSgemm2Mr; ++i) a_row[i] = PackedA ? a : a + (i < rows ? i : 0) * lda;
  __m256 acc[kSgemm2Mr][2];
#pragma GCC unroll 6
  for (int i = 0; i < kSgemm2Mr; ++i) acc[i][0] = acc[i][1] = _mm256_setzero_ps();
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    // The packed B panel streams from L2 (one 64-byte row per depth): each
    // depth asks for the row 8 depths ahead. With the loop unrolled 4 times,
    // 5% more GFLOP/s on the model's shapes and 2048^3 (paired runs, AVX2 on
    // a Xeon of family 6 model 207); each element's FMAs keep their order.
    _mm_prefetch(reinterpret_cast<const char*>(b + (k + 8) * kSgemm2Nr), _MM_HINT_T0);
    const __m256 b0 = _mm256_load_ps(b + k * kSgemm2Nr);
    const __m256 b1 = _mm256_load_ps(b + k * kSgemm2Nr + 8);
#pragma GCC unroll 6
    for (int i = 0; i < kSgemm2Mr; ++i) {
      const __m256 ai = _mm256_broadcast_ss(PackedA ? a + k * kSgemm2Mr + i : a_row[i] + k);
      acc[i][0] = _mm256_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm256_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const bool full = rows == kSgemm2Mr && width == kSgemm2Nr;
  alignas(32) float edge[kSgemm2Mr * kSgemm2Nr];  // the edge tile, row stride 16
  float* out = full ? c : edge;
  const int64_t ld = full ? ldc : kSgemm2Nr;
  if (!full && read_c)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < width; ++j) edge[i * kSgemm2Nr + j] = c[i * ldc + j];
  alignas(32) float bias_tile[kSgemm2Nr] = {};
  if (bias) std::copy(bias, bias + width, bias_tile);
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  const __m256 bias0 = _mm256_load_ps(bias_tile), bias1 = _mm256_load_ps(bias_tile + 8);
#pragma GCC unroll 6
  for (int i = 0; i < kSgemm2Mr; ++i) {
    if (i >= rows) break;
    float* row = out + i * ld;
    __m256 r0 = _mm256_mul_ps(va, acc[i][0]), r1 = _mm256_mul_ps(va, acc[i][1]);
    if (read_c) {
      r0 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row), r0);
      r1 = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8), r1);
    }
    if (bias) {
      r0 = _mm256_add_ps(r0, bias0);
      r1 = _mm256_add_ps(r1, bias1);
    }
    _mm256_storeu_ps(row, r0);
    _mm256_storeu_ps(row + 8, r1);
  }
  if (!full)
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t j = 0; j < width; ++j) c[i * ldc + j] = edge[i * kSgemm2Nr + j];
}

/// Lanes [0, n) of an 8-lane mask for the masked loads and stores (n
/// clamped to [0, 8]).
__attribute__((target("avx2"))) inline __m256i lanes_below_8(int64_t n) {
  const int count = static_cast<int>(std::clamp<int64_t>(n, 0, 8));
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Transposes the 8 x 8 block held in r (row i in r[i]) in place: pairs of
/// rows interleaved, 4 x 4 blocks within each 128-bit lane, then the lanes.
__attribute__((target("avx2"))) inline void transpose_8x8(__m256 r[8]) {
  __m256 t[8], s[8];
#pragma GCC unroll 4
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
  }
#pragma GCC unroll 2
  for (int i = 0; i < 8; i += 4) {
    s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
    s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
    s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
  }
}

/// dst (kc, width 8) = rows [0, rows) of src (rows x kc, row stride ld)
/// transposed: dst[k * dst_ld + i] = src[i * ld + k], lanes past `rows`
/// zero. With dst_ld < 8 (A's 6-row panels) each dst row is stored as a
/// whole vector whose last lanes the next row overwrites, and only the last
/// row under a mask, so nothing past the panel is written.
__attribute__((target("avx2"))) inline void pack_transposed_8(const float* src, int64_t ld,
                                                              int64_t rows, int64_t kc, float* dst,
                                                              int64_t dst_ld) {
  const __m256i last_row_lanes = lanes_below_8(dst_ld);
  for (int64_t k = 0; k < kc; k += 8) {
    const __m256i depth = lanes_below_8(kc - k);
    __m256 r[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; ++i)
      r[i] = i < rows ? _mm256_maskload_ps(src + i * ld + k, depth) : _mm256_setzero_ps();
    transpose_8x8(r);
    const int64_t n = std::min<int64_t>(8, kc - k);
    for (int64_t j = 0; j < n; ++j) {
      if (dst_ld >= 8 || k + j + 1 < kc)
        _mm256_storeu_ps(dst + (k + j) * dst_ld, r[j]);
      else
        _mm256_maskstore_ps(dst + (k + j) * dst_ld, last_row_lanes, r[j]);
    }
  }
}

/// Packs depths [k0, k0 + kc) of op(B)'s column panel `panel` (16 wide) into
/// dst (kc, 16); columns past N are zeros.
__attribute__((target("avx2"))) inline void sgemm2_pack_b_panel(const SgemmArgs& g, int64_t k0,
                                                                int64_t kc, int64_t panel,
                                                                float* dst) {
  const int64_t j0 = panel * kSgemm2Nr, width = std::min(kSgemm2Nr, g.N - j0);
  if (!g.trans_b) {  // row k of the panel is contiguous in B (K, N)
    const __m256i m0 = lanes_below_8(width), m1 = lanes_below_8(width - 8);
    for (int64_t k = 0; k < kc; ++k) {
      const float* row = g.B + (k0 + k) * g.ldb + j0;
      _mm256_storeu_ps(dst + k * kSgemm2Nr, _mm256_maskload_ps(row, m0));
      _mm256_storeu_ps(dst + k * kSgemm2Nr + 8, _mm256_maskload_ps(row + 8, m1));
    }
    return;
  }
  // B stored (N, K): the panel's columns are rows of B; transpose 8 at a time.
  for (int64_t half = 0; half < kSgemm2Nr; half += 8)
    pack_transposed_8(g.B + (j0 + half) * g.ldb + k0, g.ldb, std::max<int64_t>(0, width - half), kc,
                      dst + half, kSgemm2Nr);
}

/// Packs rows [i0, i0 + 6) and depths [k0, k0 + kc) of op(A) = A, stored
/// (M, K), into dst (kc, 6); rows past M are zeros. (A transposed A is
/// packed a block at a time: sgemm2_pack_transposed_a_block.)
/// Requires: !g.trans_a.
__attribute__((target("avx2"))) inline void sgemm2_pack_a_panel(const SgemmArgs& g, int64_t i0,
                                                                int64_t k0, int64_t kc,
                                                                float* dst) {
  // The panel's rows transposed, 8 depths at a time.
  pack_transposed_8(g.A + i0 * g.lda + k0, g.lda, std::min(kSgemm2Mr, g.M - i0), kc, dst,
                    kSgemm2Mr);
}

/// Packs rows [i0, i1) and depths [k0, k0 + kc) of op(A) = A^T, A stored
/// (K, M), into the block's panels of 6 rows, (kc, 6) each and one after the
/// other; rows past M are zeros. In groups of kSgemm2PackDepthGroup depths:
/// the block's rows at one depth are one contiguous run of A, read once
/// (panel by panel, each panel read a line per depth at a stride of lda),
/// and each panel takes the group's depths at once (one depth at a time,
/// the stores went to every panel in turn, at a stride of kc * 24 bytes:
/// 12 KiB at kc 512, all in the same L1 sets).
__attribute__((target("avx2"))) inline void sgemm2_pack_transposed_a_block(const SgemmArgs& g,
                                                                           int64_t i0, int64_t i1,
                                                                           int64_t k0, int64_t kc,
                                                                           float* dst) {
  const int64_t panels = (i1 - i0 + kSgemm2Mr - 1) / kSgemm2Mr;
  const __m256i full = lanes_below_8(kSgemm2Mr);
  const __m256i last_panel_rows = lanes_below_8(g.M - (i0 + (panels - 1) * kSgemm2Mr));
  for (int64_t group = 0; group < kc; group += kSgemm2PackDepthGroup) {
    const int64_t group_end = std::min(kc, group + kSgemm2PackDepthGroup);
    for (int64_t p = 0; p < panels; ++p) {
      const __m256i rows = p + 1 < panels ? full : last_panel_rows;
      for (int64_t k = group; k < group_end; ++k) {
        const __m256 v = _mm256_maskload_ps(g.A + (k0 + k) * g.lda + i0 + p * kSgemm2Mr, rows);
        float* row = dst + (p * kc + k) * kSgemm2Mr;
        // A whole vector, whose 2 spare lanes the panel's next depth
        // overwrites; the last depth under a mask (see pack_transposed_8).
        if (k + 1 < kc)
          _mm256_storeu_ps(row, v);
        else
          _mm256_maskstore_ps(row, full, v);
      }
    }
  }
}

/// Rows [i0, i1) of C over the depths [k0, k0 + ks) whose B is packed in
/// packed_b (depth blocks of `depth`), packing A into packed_a, or reading
/// it in place when packed_a is null (sgemm_reads_a_in_place decides, as
/// for the AVX-512 kernel).
inline void sgemm2_rows(const SgemmArgs& g, const float* packed_b, int64_t padded_n, int64_t depth,
                        int64_t k0, int64_t ks, int64_t i0, int64_t i1, float* packed_a) {
  const int64_t a_panels = (i1 - i0 + kSgemm2Mr - 1) / kSgemm2Mr;
  const bool in_place = packed_a == nullptr;
  for (int64_t kb = 0; kb < ks; kb += depth) {
    const int64_t kc = std::min(depth, ks - kb);
    if (!in_place && g.trans_a)
      sgemm2_pack_transposed_a_block(g, i0, i1, k0 + kb, kc, packed_a);
    else if (!in_place)
      for (int64_t p = 0; p < a_panels; ++p)
        sgemm2_pack_a_panel(g, i0 + p * kSgemm2Mr, k0 + kb, kc, packed_a + p * kc * kSgemm2Mr);
    const float* block_b = packed_b + kb * padded_n;  // this depth block's panels
    const bool first = k0 + kb == 0;
    const float beta = first ? g.beta : 1.0f;
    const bool read_c = !(first && g.beta == 0.0f);
    const float* bias = first ? g.bias : nullptr;
    for (int64_t j0 = 0; j0 < g.N; j0 += kSgemmNc) {
      const int64_t j1 = std::min(g.N, j0 + kSgemmNc);
      for (int64_t p = 0; p < a_panels; ++p) {
        const int64_t row = i0 + p * kSgemm2Mr, rows = std::min(kSgemm2Mr, i1 - row);
        for (int64_t j = j0; j < j1; j += kSgemm2Nr) {
          const int64_t width = std::min(kSgemm2Nr, g.N - j);
          float* c = g.C + row * g.ldc + j;
          const float* b = block_b + j * kc;
          const float* tile_bias = bias ? bias + j : nullptr;
          if (in_place)
            sgemm_micro_kernel_6x16<false>(kc, g.A + row * g.lda + k0 + kb, g.lda, b, c, g.ldc,
                                           rows, width, g.alpha, beta, read_c, tile_bias);
          else
            sgemm_micro_kernel_6x16<true>(kc, packed_a + p * kc * kSgemm2Mr, kSgemm2Mr, b, c, g.ldc,
                                          rows, width, g.alpha, beta, read_c, tile_bias);
        }
      }
    }
  }
}

/// C = alpha * op(A) op(B) + beta * C (+ bias) with the AVX2 kernel, on up to
/// `threads` OpenMP threads, C's rows split as in sgemm_avx512.
///
/// Requires: the CPU has AVX2 and FMA; M, N, K > 0; the argument contract of gemm.
/// Ensures: bit-identical results for every thread count, and to sgemm_avx512's.
inline void sgemm_avx2(const SgemmArgs& g, int threads) {
  // Tasks of at most 32 tiles of 6 rows (an A block of at most 384 KiB).
  sgemm_packed_passes(
      g, threads, kSgemm2Mr, kSgemm2Nr, 2 * kSgemmTaskTiles, !sgemm_reads_a_in_place(g),
      [&](int64_t k, int64_t kc, int64_t panel, float* dst) {
        sgemm2_pack_b_panel(g, k, kc, panel, dst);
      },
      [&](const float* packed_b, int64_t padded_n, int64_t depth, int64_t k0, int64_t ks,
          int64_t i0, int64_t i1, float* packed_a) {
        sgemm2_rows(g, packed_b, padded_n, depth, k0, ks, i0, i1, packed_a);
      });
}

#endif  // NORMLAB_X86_KERNELS

}  // namespace cpu::detail
}  // namespace v0
}  // namespace normlab
