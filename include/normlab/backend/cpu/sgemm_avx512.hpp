// normlab/backend/cpu/sgemm_avx512.hpp — a packed single-precision GEMM for
// x86-64 CPUs with AVX-512F, chosen at run time.
//
// The structure is the one of BLIS and of the GEMM in llm.c's and ggml's
// CPU paths: operands are copied ("packed") into panels that the inner
// kernel reads contiguously, and a register-blocked micro-kernel computes a
// 12 x 32 tile of C with 24 vector accumulators. Eigen's float kernel keeps
// 12 accumulators (a 48 x 4 tile), which measured 134 GFLOP/s on one core of
// the machine the benchmarks run on, against 220 GFLOP/s for this tile (and
// 215-220 for a loop of independent FMAs, the core's peak).
//
//   C (M, N) = alpha * op(A) (M, K) * op(B) (K, N) + beta * C
//
//   depth blocks: K split into ceil(K / 512) blocks of equal depth kc
//             (sgemm_depth_block): one block for the K of 384 of a small
//             model's projections, so that C is read and written once;
//   packed B: for each depth block, panels of 32 columns, each (kc, 32)
//             row-major: a row of a panel is two AVX-512 vectors;
//   packed A: for the depth block, panels of 12 rows, each (kc, 12):
//             the 12 values of one depth broadcast in turn; an untransposed
//             A is mostly read in place instead, each of the 12 rows' depths
//             broadcast from A itself (sgemm_reads_a_in_place); a
//             transposed A is packed a task's block at a time, depth by
//             depth (sgemm_pack_transposed_a_block);
//   micro-kernel: acc (12, 32) = sum over the kc depths of a (12) x b (32),
//             then C tile = alpha * acc + beta' * C tile (+ bias), beta' =
//             beta for the first depth block and 1 after it; an optional
//             bias (N,) is added to every row at the first block, so that a
//             linear layer's forward writes C once instead of filling it
//             with the bias and reading it back.
//
// Every element of C is summed in the same order — depth blocks in order
// (their depth a function of K alone), each block's products in depth
// order — whatever the split of C's rows over threads: results are
// bit-identical for any thread count, as for the Eigen path.
//
// The kernel is compiled with a target attribute, so that it is available
// without -mavx512f (the library stays usable on any x86-64 build) and runs
// only where the CPU reports AVX-512F (kernel_path.hpp); elsewhere gemm runs
// the AVX2 kernel of sgemm_avx2.hpp, which gives the same bits, or Eigen.
// Define NORMLAB_NO_AVX512_GEMM to leave it out. CUDA translation units
// (nvcc's front end does not take GCC's loop pragmas) leave it out too: a
// program that mixes them with C++ ones gets either GEMM for the CPU's float
// products, both correct, and should not expect bit-equal CPU results across
// the two kinds of files.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#if defined(__GNUC__) && defined(__x86_64__) && !defined(__CUDACC__) && \
    !defined(NORMLAB_NO_AVX512_GEMM)
#define NORMLAB_AVX512_GEMM 1
#include <immintrin.h>
#endif

namespace normlab {
inline namespace v0 {
namespace cpu::detail {

inline constexpr int64_t kSgemmMr = 12;      // rows of a micro-tile (broadcast from A)
inline constexpr int64_t kSgemmNr = 32;      // columns of a micro-tile (two vectors of packed B)
inline constexpr int64_t kSgemmKcMax = 512;  // the deepest packed block
// Columns of packed B streamed per pass over an A panel: 8 panels of at most
// (512, 32) floats, 512 KiB, stay in L2 while one A panel of at most 24 KiB
// stays in L1.
inline constexpr int64_t kSgemmNc = 256;
// The most micro-tiles (of 12 rows) of C one task computes.
inline constexpr int64_t kSgemmTaskTiles = 16;
// Depth blocks packed at once: the packed B buffer holds at most this many
// blocks (4096 rows of B at the deepest).
inline constexpr int64_t kSgemmPackedBlocks = 8;

/// The depth of the packed blocks of a product of depth K: K split into
/// ceil(K / kSgemmKcMax) blocks of about equal depth, rounded up to a
/// multiple of 16 (whole 16 x 16 transposes); the last block takes the rest.
/// A function of K alone, so the order of the sums is too.
inline int64_t sgemm_depth_block(int64_t K) {
  const int64_t blocks = (K + kSgemmKcMax - 1) / kSgemmKcMax;
  const int64_t depth = (K + blocks - 1) / blocks;
  return std::min(kSgemmKcMax, (depth + 15) / 16 * 16);
}

/// A 64-byte aligned float buffer per thread that grows and is kept: after
/// the first products of a given size, packing allocates nothing.
class PackBuffer {
 public:
  float* get(int64_t floats) {
    if (floats > capacity_) {
      storage_.reset(new float[static_cast<size_t>(floats) + 16]);
      capacity_ = floats;
    }
    const auto address = reinterpret_cast<uintptr_t>(storage_.get());
    return reinterpret_cast<float*>((address + 63) & ~uintptr_t{63});
  }

 private:
  std::unique_ptr<float[]> storage_;
  int64_t capacity_ = 0;
};

/// This thread's buffer for packed A blocks.
inline PackBuffer& thread_a_pack_buffer() {
  static thread_local PackBuffer buffer;
  return buffer;
}

/// This thread's buffer for packed B.
inline PackBuffer& thread_b_pack_buffer() {
  static thread_local PackBuffer buffer;
  return buffer;
}

/// The operands of one product, as gemm's arguments.
struct SgemmArgs {
  bool trans_a, trans_b;
  int64_t M, N, K;
  float alpha;
  const float* A;
  int64_t lda;
  const float* B;
  int64_t ldb;
  float beta;
  float* C;
  int64_t ldc;
  const float* bias = nullptr;  ///< (N,) added to every row of C, or null

  int64_t padded_n() const { return (N + kSgemmNr - 1) / kSgemmNr * kSgemmNr; }
};

/// C's rows in tasks of whole micro-tiles of `mr` rows: the fewest tasks of at
/// most `task_tiles` tiles whose number is a multiple of the thread count,
/// the tiles dealt out evenly (task t takes tiles [t P / T, (t + 1) P / T) of
/// P), so that the threads finish within one tile of each other. (Tasks of a
/// fixed size left one thread 6-12% more rows than the other at M 2048 and 384.)
struct SgemmRowTasks {
  int64_t mr, tiles, tasks;
  int64_t most_rows() const { return (tiles + tasks - 1) / tasks * mr; }
  int64_t first_row(int64_t task) const { return task * tiles / tasks * mr; }
};
inline SgemmRowTasks sgemm_row_tasks(int64_t M, int64_t mr, int64_t task_tiles, int threads) {
  const int64_t tiles = (M + mr - 1) / mr;
  const int64_t per_round = int64_t{threads} * task_tiles;
  return {mr, tiles, (tiles + per_round - 1) / per_round * threads};
}

/// The loops both packed kernels share, for micro-tiles of mr x nr: B packed
/// kSgemmPackedBlocks depth blocks at a time (pack_panel(k, kc, panel, dst)
/// writes depths [k, k + kc) of column panel `panel` as (kc, nr) at dst),
/// shared by the threads; then C's rows in tasks of at most task_tiles tiles
/// (sgemm_row_tasks), rows(packed_b, padded_n, depth, k0, ks, i0, i1,
/// packed_a) computing rows [i0, i1) over depths [k0, k0 + ks), each thread
/// with its own buffer for packed A (null without pack_a). On one thread no
/// OpenMP call is made at all (attention's small products are many).
template <class PackPanel, class Rows>
void sgemm_packed_passes(const SgemmArgs& g, int threads, int64_t mr, int64_t nr,
                         int64_t task_tiles, bool pack_a, const PackPanel& pack_panel,
                         const Rows& rows) {
  const int64_t padded_n = (g.N + nr - 1) / nr * nr, b_panels = padded_n / nr;
  const SgemmRowTasks row_tasks = sgemm_row_tasks(g.M, mr, task_tiles, threads);
  const int use = threads > 1 && row_tasks.tiles > 1 ? threads : 1;
  const int64_t depth = sgemm_depth_block(g.K), packed_depth = kSgemmPackedBlocks * depth;
  float* packed_b = thread_b_pack_buffer().get(std::min(g.K, packed_depth) * padded_n);
  const int64_t a_floats = pack_a ? row_tasks.most_rows() * depth : 0;
  auto a_buffer = [&] { return a_floats > 0 ? thread_a_pack_buffer().get(a_floats) : nullptr; };
  for (int64_t k0 = 0; k0 < g.K; k0 += packed_depth) {
    const int64_t ks = std::min(packed_depth, g.K - k0);
    const int64_t b_tasks = (ks + depth - 1) / depth * b_panels;
    auto pack_b = [&](int64_t task) {  // one (depth block, column panel) of B
      const int64_t kb = task / b_panels * depth, panel = task % b_panels;
      const int64_t kc = std::min(depth, ks - kb);
      pack_panel(k0 + kb, kc, panel, packed_b + kb * padded_n + panel * kc * nr);
    };
    auto rows_of_c = [&](int64_t task, float* packed_a) {
      const int64_t i0 = row_tasks.first_row(task);
      const int64_t i1 = std::min(g.M, row_tasks.first_row(task + 1));
      if (i0 < i1) rows(packed_b, padded_n, depth, k0, ks, i0, i1, packed_a);
    };
    if (use == 1) {
      float* packed_a = a_buffer();
      for (int64_t task = 0; task < b_tasks; ++task) pack_b(task);
      for (int64_t task = 0; task < row_tasks.tasks; ++task) rows_of_c(task, packed_a);
      continue;
    }
#pragma omp parallel num_threads(use)
    {
#pragma omp for schedule(dynamic, 1)
      for (int64_t task = 0; task < b_tasks; ++task) pack_b(task);
      float* packed_a = a_buffer();
#pragma omp for schedule(dynamic, 1)
      for (int64_t task = 0; task < row_tasks.tasks; ++task) rows_of_c(task, packed_a);
    }
  }
}

#ifdef NORMLAB_AVX512_GEMM

/// Whether this CPU runs AVX-512F (asked once).
inline bool cpu_has_avx512f() {
  static const bool has = __builtin_cpu_supports("avx512f");
  return has;
}

/// Lanes [0, n) of a 16-lane mask (n clamped to [0, 16]).
inline __mmask16 lanes_below(int64_t n) {
  return static_cast<__mmask16>(n >= 16 ? 0xFFFF : n <= 0 ? 0 : (1u << n) - 1);
}

/// C tile (rows <= 12, columns given by the two lane masks) =
/// alpha * A_tile (12, kc) b (kc, 32) + beta * C tile (+ bias, the tile's 32
/// columns of it, when not null); with read_c false, C is only written (beta
/// is 0 and C may hold NaN). A_tile is a packed panel a (kc, 12) with
/// PackedA, else the rows of A itself: row i at a + i lda (rows past `rows`
/// read row 0 again, and their sums are dropped).
///
/// Not inlined: a call computes 12 x 32 x kc products, and with its
/// forms inlined into sgemm_rows GCC 12 compiled the loops 10-15% slower.
template <bool PackedA>
__attribute__((target("avx512f,fma"), noinline)) inline void sgemm_micro_kernel_12x32(
    int64_t kc, const float* a, int64_t lda, const float* b, float* c, int64_t ldc, int64_t rows,
    __mmask16 mask0, __mmask16 mask1, float alpha, float beta, bool read_c, const float* bias) {
  // The C tile is read or written only after the kc depths: ask for its
  // lines now, so that their misses overlap the FMAs instead of following them.
#pragma GCC unroll 12
  for (int i = 0; i < kSgemmMr; ++i) {
    if (i >= rows) break;
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 31), _MM_HINT_T0);
  }
  const float* a_row[kSgemmMr];  // unpacked A: each row's depths
#pragma GCC unroll 12
  for (int i = 0; i < kSgemmMr; ++i) a_row[i] = PackedA ? a : a + (i < rows ? i : 0) * lda;
  __m512 acc[kSgemmMr][2];
#pragma GCC unroll 12
  for (int i = 0; i < kSgemmMr; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int64_t k = 0; k < kc; ++k) {
    // The packed B panel streams from L2 (two 64-byte lines per depth):
    // each depth asks for the lines 8 depths ahead, which runs into the next
    // panel at the end. 4% more GFLOP/s over the GPT's 15 GEMM shapes on two
    // threads (3-way interleaved runs, 9 rounds, every shape but one faster;
    // a Xeon of family 6 model 207); distances 16 and 24 gave the same.
    _mm_prefetch(reinterpret_cast<const char*>(b + (k + 8) * kSgemmNr), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(b + (k + 8) * kSgemmNr + 16), _MM_HINT_T0);
    const __m512 b0 = _mm512_load_ps(b + k * kSgemmNr);
    const __m512 b1 = _mm512_load_ps(b + k * kSgemmNr + 16);
#pragma GCC unroll 12
    for (int i = 0; i < kSgemmMr; ++i) {
      const __m512 ai = _mm512_set1_ps(PackedA ? a[k * kSgemmMr + i] : a_row[i][k]);
      acc[i][0] = _mm512_fmadd_ps(ai, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(ai, b1, acc[i][1]);
    }
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
  if (bias) {
    bias0 = _mm512_maskz_loadu_ps(mask0, bias);
    bias1 = _mm512_maskz_loadu_ps(mask1, bias + 16);
  }
#pragma GCC unroll 12
  for (int i = 0; i < kSgemmMr; ++i) {
    if (i >= rows) break;
    float* row = c + i * ldc;
    __m512 r0 = _mm512_mul_ps(va, acc[i][0]), r1 = _mm512_mul_ps(va, acc[i][1]);
    if (read_c) {
      r0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask0, row), r0);
      r1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(mask1, row + 16), r1);
    }
    if (bias) {
      r0 = _mm512_add_ps(r0, bias0);
      r1 = _mm512_add_ps(r1, bias1);
    }
    _mm512_mask_storeu_ps(row, mask0, r0);
    _mm512_mask_storeu_ps(row + 16, mask1, r1);
  }
}

/// Transposes the 16 x 16 block held in r (row i in r[i]) in place: the
/// usual three stages of unpacks and lane shuffles.
__attribute__((target("avx512f"))) inline void transpose_16x16(__m512 r[16]) {
  // The zero-masked forms with every lane set are the plain instructions;
  // the plain intrinsics pass _mm512_undefined_ps(), which GCC 12 reports as
  // maybe uninitialized once inlined (PR 105593), past any pragma.
  constexpr __mmask16 kAll = 0xFFFF;
  __m512 t[16];
#pragma GCC unroll 8
  for (int i = 0; i < 16; i += 2) {  // interleave pairs of rows
    t[i] = _mm512_maskz_unpacklo_ps(kAll, r[i], r[i + 1]);
    t[i + 1] = _mm512_maskz_unpackhi_ps(kAll, r[i], r[i + 1]);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 16; i += 4) {  // 4 x 4 blocks within each 128-bit lane
    r[i] = _mm512_maskz_shuffle_ps(kAll, t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_maskz_shuffle_ps(kAll, t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_maskz_shuffle_ps(kAll, t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_maskz_shuffle_ps(kAll, t[i + 1], t[i + 3], 0xEE);
  }
#pragma GCC unroll 4
  for (int i = 0; i < 4; ++i) {  // 128-bit lanes of rows 4 apart
    t[i] = _mm512_maskz_shuffle_f32x4(kAll, r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_maskz_shuffle_f32x4(kAll, r[i], r[i + 4], 0xDD);
    t[i + 8] = _mm512_maskz_shuffle_f32x4(kAll, r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_maskz_shuffle_f32x4(kAll, r[i + 8], r[i + 12], 0xDD);
  }
#pragma GCC unroll 8
  for (int i = 0; i < 8; ++i) {  // and of rows 8 apart
    r[i] = _mm512_maskz_shuffle_f32x4(kAll, t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_maskz_shuffle_f32x4(kAll, t[i], t[i + 8], 0xDD);
  }
}

/// dst (kc, width 16) = rows [0, rows) of src (rows x kc, row stride ld)
/// transposed: dst[k * dst_ld + i] = src[i * ld + k], lanes past `rows`
/// zero. With dst_ld < 16 (A's 12-row panels) each dst row is stored as a
/// whole vector whose last lanes the next row overwrites, and only the last
/// row is stored under a mask: masked stores that cross cache lines are
/// several times slower than plain ones.
__attribute__((target("avx512f"))) inline void pack_transposed_16(const float* src, int64_t ld,
                                                                  int64_t rows, int64_t kc,
                                                                  float* dst, int64_t dst_ld) {
  const __mmask16 last_row_lanes = lanes_below(dst_ld);
  for (int64_t k = 0; k < kc; k += 16) {
    const __mmask16 depth = lanes_below(kc - k);
    __m512 r[16];
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i)
      r[i] = i < rows ? _mm512_maskz_loadu_ps(depth, src + i * ld + k) : _mm512_setzero_ps();
    transpose_16x16(r);
    const int64_t n = std::min<int64_t>(16, kc - k);
    for (int64_t j = 0; j < n; ++j) {
      if (k + j + 1 < kc)
        _mm512_storeu_ps(dst + (k + j) * dst_ld, r[j]);
      else
        _mm512_mask_storeu_ps(dst + (k + j) * dst_ld, last_row_lanes, r[j]);
    }
  }
}

/// Packs depths [k0, k0 + kc) of op(B)'s column panel `panel` into
/// dst (kc, 32); columns past N are zeros.
__attribute__((target("avx512f"))) inline void sgemm_pack_b_panel(const SgemmArgs& g, int64_t k0,
                                                                  int64_t kc, int64_t panel,
                                                                  float* dst) {
  const int64_t j0 = panel * kSgemmNr, width = std::min(kSgemmNr, g.N - j0);
  if (!g.trans_b) {  // row k of the panel is contiguous in B (K, N)
    const __mmask16 m0 = lanes_below(width), m1 = lanes_below(width - 16);
    for (int64_t k = 0; k < kc; ++k) {
      const float* row = g.B + (k0 + k) * g.ldb + j0;
      _mm512_store_ps(dst + k * kSgemmNr, _mm512_maskz_loadu_ps(m0, row));
      _mm512_store_ps(dst + k * kSgemmNr + 16, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    return;
  }
  // B stored (N, K): the panel's columns are rows of B; transpose 16 at a time.
  for (int64_t half = 0; half < kSgemmNr; half += 16)
    pack_transposed_16(g.B + (j0 + half) * g.ldb + k0, g.ldb, width - half, kc, dst + half,
                       kSgemmNr);
}

/// Packs rows [i0, i0 + 12) and depths [k0, k0 + kc) of op(A) = A, stored
/// (M, K), into dst (kc, 12); rows past M are zeros. (A transposed A is
/// packed a block at a time: sgemm_pack_transposed_a_block.)
/// Requires: !g.trans_a.
__attribute__((target("avx512f"))) inline void sgemm_pack_a_panel(const SgemmArgs& g, int64_t i0,
                                                                  int64_t k0, int64_t kc,
                                                                  float* dst) {
  // The panel's rows transposed, 16 depths at a time.
  pack_transposed_16(g.A + i0 * g.lda + k0, g.lda, std::min(kSgemmMr, g.M - i0), kc, dst, kSgemmMr);
}

/// Depths ahead whose source run sgemm_pack_transposed_a_block asks for
/// while it packs one: the runs are lda apart, each up to 768 bytes, and the
/// hardware's prefetchers left most loads of a weight gradient's A (dY^T, a
/// few MiB) waiting on memory (the packing was 3% of a layer's fwd + bwd at
/// S2). On an AMD EPYC of family 26, two threads, against no prefetch: the
/// weight gradients of the S2 layer and the GPT 0.94-0.99 of the time at
/// distance 4 (2, 8 and 12 about the same), the other products unchanged.
inline constexpr int64_t kSgemmPackAheadDepths = 4;

/// Packs rows [i0, i1) and depths [k0, k0 + kc) of op(A) = A^T, A stored
/// (K, M), into the block's panels of 12 rows, (kc, 12) each and one after
/// the other; rows past M are zeros. Depth by depth: the block's rows at one
/// depth are one contiguous run of A, read once, whose lines were asked for
/// kSgemmPackAheadDepths depths before. (Panel by panel, each panel read a
/// line per depth at a stride of lda, and most lines twice; prefetching a
/// panel's sources during the tiles of the one before took 2-8% longer on
/// the GPT's weight gradients, on two threads.)
__attribute__((target("avx512f"))) inline void sgemm_pack_transposed_a_block(const SgemmArgs& g,
                                                                             int64_t i0, int64_t i1,
                                                                             int64_t k0, int64_t kc,
                                                                             float* dst) {
  const int64_t panels = (i1 - i0 + kSgemmMr - 1) / kSgemmMr;
  const __mmask16 full = lanes_below(kSgemmMr);
  const __mmask16 last_panel_rows = lanes_below(g.M - (i0 + (panels - 1) * kSgemmMr));
  const int64_t run_bytes = (i1 - i0) * int64_t{sizeof(float)};
  for (int64_t k = 0; k < kc; ++k) {
    const float* src = g.A + (k0 + k) * g.lda + i0;
    if (k + kSgemmPackAheadDepths < kc) {  // every line of the run ahead, the last included
      const char* ahead = reinterpret_cast<const char*>(src + kSgemmPackAheadDepths * g.lda);
      for (int64_t byte = 0; byte < run_bytes; byte += 64) _mm_prefetch(ahead + byte, _MM_HINT_T0);
      _mm_prefetch(ahead + run_bytes - 1, _MM_HINT_T0);
    }
    for (int64_t p = 0; p < panels; ++p) {
      const __m512 v =
          _mm512_maskz_loadu_ps(p + 1 < panels ? full : last_panel_rows, src + p * kSgemmMr);
      float* row = dst + (p * kc + k) * kSgemmMr;
      // A whole vector, whose 4 spare lanes the panel's next depth
      // overwrites; the last depth under a mask (see pack_transposed_16).
      if (k + 1 < kc)
        _mm512_storeu_ps(row, v);
      else
        _mm512_mask_storeu_ps(row, full, v);
    }
  }
}

/// Whether the micro-kernel reads op(A) = A in place instead of packed: A
/// untransposed (a row's depths are contiguous), and either a row stride
/// that is not a multiple of 4 KiB or at most three column chunks
/// (N <= 3 kSgemmNc). An A panel is read by every column chunk; unpacked,
/// the transposing copy is saved (5% of the linear layers' GEMM time). With
/// a stride of a multiple of 4 KiB its 12 rows share the same cache sets and
/// each chunk reads the panel from further out: packing paid from four
/// chunks on (measured at M 2048, K 2048: in place was 5% faster at N 512,
/// 3% at N 768, even at N 1024, 2.5% slower at N 2048).
inline bool sgemm_reads_a_in_place(const SgemmArgs& g) {
  return !g.trans_a && (g.lda % 1024 != 0 || g.N <= 3 * kSgemmNc);
}

/// Rows [i0, i1) of C over depths [k0, k0 + ks), in depth blocks of
/// `depth`, from packed B (see sgemm_avx512) and A packed here into
/// `packed_a`, or read in place when packed_a is null
/// (sgemm_reads_a_in_place decides, in sgemm_avx512).
///
/// A is packed whole per depth block, before its products: a transposed A
/// depth by depth (sgemm_pack_transposed_a_block), an untransposed one panel
/// by panel, its transposing copy reading whole lines (and only when read by
/// four chunks or more: sgemm_reads_a_in_place).
inline void sgemm_rows(const SgemmArgs& g, const float* packed_b, int64_t depth, int64_t k0,
                       int64_t ks, int64_t i0, int64_t i1, float* packed_a) {
  const int64_t padded_n = g.padded_n();
  const int64_t a_panels = (i1 - i0 + kSgemmMr - 1) / kSgemmMr;
  const bool in_place = packed_a == nullptr;
  for (int64_t kb = 0; kb < ks; kb += depth) {
    const int64_t kc = std::min(depth, ks - kb);
    auto panel_of_a = [&](int64_t p) { return packed_a + p * kc * kSgemmMr; };
    if (!in_place && g.trans_a)
      sgemm_pack_transposed_a_block(g, i0, i1, k0 + kb, kc, packed_a);
    else if (!in_place)
      for (int64_t p = 0; p < a_panels; ++p)
        sgemm_pack_a_panel(g, i0 + p * kSgemmMr, k0 + kb, kc, panel_of_a(p));
    const float* block_b = packed_b + kb * padded_n;  // this depth block's panels
    const bool first = k0 + kb == 0;
    const float beta = first ? g.beta : 1.0f;
    const bool read_c = !(first && g.beta == 0.0f);
    const float* bias = first ? g.bias : nullptr;
    for (int64_t j0 = 0; j0 < g.N; j0 += kSgemmNc) {
      const int64_t j1 = std::min(g.N, j0 + kSgemmNc);
      for (int64_t p = 0; p < a_panels; ++p) {
        const int64_t row = i0 + p * kSgemmMr, rows = std::min(kSgemmMr, i1 - row);
        for (int64_t j = j0; j < j1; j += kSgemmNr) {
          const int64_t width = std::min(kSgemmNr, g.N - j);
          const __mmask16 mask0 = lanes_below(width), mask1 = lanes_below(width - 16);
          float* c = g.C + row * g.ldc + j;
          const float* b = block_b + j * kc;
          const float* tile_bias = bias ? bias + j : nullptr;
          if (in_place)
            sgemm_micro_kernel_12x32<false>(kc, g.A + row * g.lda + k0 + kb, g.lda, b, c, g.ldc,
                                            rows, mask0, mask1, g.alpha, beta, read_c, tile_bias);
          else
            sgemm_micro_kernel_12x32<true>(kc, panel_of_a(p), kSgemmMr, b, c, g.ldc, rows, mask0,
                                           mask1, g.alpha, beta, read_c, tile_bias);
        }
      }
    }
  }
}

/// C = alpha * op(A) op(B) + beta * C with the AVX-512 kernel, on up to
/// `threads` OpenMP threads (see the file comment).
///
/// Requires: cpu_has_avx512f(); M, N, K > 0; the argument contract of gemm.
/// Ensures: bit-identical results for every thread count.
inline void sgemm_avx512(const SgemmArgs& g, int threads) {
  // Tasks of at most 16 tiles (192 rows: an A block of at most 384 KiB, in
  // L2 beside B's panels); no A buffers when A is read in place.
  sgemm_packed_passes(
      g, threads, kSgemmMr, kSgemmNr, kSgemmTaskTiles, !sgemm_reads_a_in_place(g),
      [&](int64_t k, int64_t kc, int64_t panel, float* dst) {
        sgemm_pack_b_panel(g, k, kc, panel, dst);
      },
      [&](const float* packed_b, int64_t, int64_t depth, int64_t k0, int64_t ks, int64_t i0,
          int64_t i1,
          float* packed_a) { sgemm_rows(g, packed_b, depth, k0, ks, i0, i1, packed_a); });
}

#endif  // NORMLAB_AVX512_GEMM

}  // namespace cpu::detail
}  // namespace v0
}  // namespace normlab
