// normlab/backend/cpu/allocator.hpp — the CPU backend's caching allocator.
//
// Every op allocates its output, and a training step frees the same tensors
// it allocated the step before. Served by malloc, each large block is a fresh
// mmap whose pages fault in on first touch and go back to the kernel on free
// (on a small transformer layer that was a quarter of the step). The cache
// keeps freed blocks in free lists by size class and hands them out again, so
// a steady-state step makes no system allocation at all.
//
// Size classes: a request is rounded up to a multiple of 64 bytes below
// 4 KiB, and above it to the next of 2^k * {1, 1.25, 1.5, 1.75}, which wastes
// at most a quarter of a block. Blocks stay cached until release_cached()
// (or program exit); the bytes held are reported by stats().
//
// Thread-safe: one mutex guards the free lists and counters (an op allocates
// once, outside its parallel loops, so the lock is not contended).
// Under AddressSanitizer (GCC's or Clang's), cached blocks are poisoned, so
// a use after free still reports, and so is the slack between the bytes
// asked for and the end of their size class, so an overrun by a few bytes
// reports too (ASan's 8-byte granules: an overrun inside the last partial
// granule of a request goes unseen).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <mutex>
#include <vector>

// GCC defines __SANITIZE_ADDRESS__; Clang 14 only answers __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define NORMLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define NORMLAB_ASAN 1
#endif
#endif
#if defined(NORMLAB_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// Marks a cached block unaddressable for AddressSanitizer (no-op without it).
inline void asan_poison(void* p, size_t n) {
#if defined(NORMLAB_ASAN)
  __asan_poison_memory_region(p, n);
#else
  (void)p, (void)n;
#endif
}
/// Makes a block addressable again when the cache hands it out.
inline void asan_unpoison(void* p, size_t n) {
#if defined(NORMLAB_ASAN)
  __asan_unpoison_memory_region(p, n);
#else
  (void)p, (void)n;
#endif
}

/// Counters of the CPU caching allocator (all since the start or reset_counters()).
struct AllocatorStats {
  int64_t requests = 0;            ///< allocate_bytes calls
  int64_t system_allocations = 0;  ///< requests the cache could not serve (went to the system)
  int64_t cache_hits = 0;          ///< requests served from the cache
  int64_t bytes_in_use = 0;        ///< bytes of blocks handed out and not yet freed
  int64_t peak_bytes_in_use = 0;   ///< high-water mark of bytes_in_use
  int64_t bytes_cached = 0;        ///< bytes of freed blocks held for reuse
};

/// A process-wide pool of 64-byte-aligned blocks, cached by size class.
class CachingAllocator {
 public:
  /// Bytes before each block that record its size class (keeps 64-byte alignment).
  static constexpr size_t kHeader = 64;

  /// The largest request served: larger ones cannot be rounded to a class
  /// without overflow, and no machine has that much memory.
  static constexpr size_t kMaxRequest = size_t(1) << 60;

  /// The size class `bytes` is rounded up to (see the file comment). Throws
  /// Error above kMaxRequest.
  static size_t size_class(size_t bytes) {
    if (bytes <= 4096) return bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
    normlab::detail::check(bytes <= kMaxRequest, "cpu: cannot allocate ", bytes,
                           " bytes (more than 2^60, the most one block can hold)");
    size_t pow2 = 4096;
    while (pow2 * 2 < bytes) pow2 *= 2;  // pow2 < bytes <= 2 pow2
    const size_t quarter = pow2 / 4;
    return (bytes + quarter - 1) / quarter * quarter;
  }

  /// A block of at least `bytes` bytes, aligned to 64. Throws Error when the
  /// system has no memory left even after the cache is released.
  void* allocate(size_t bytes) {
    const size_t cls = size_class(bytes);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      ++stats_.requests;
      auto it = free_.find(cls);
      if (it != free_.end() && !it->second.empty()) {
        void* block = it->second.back();
        it->second.pop_back();
        ++stats_.cache_hits;
        stats_.bytes_cached -= static_cast<int64_t>(cls);
        note_in_use(static_cast<int64_t>(cls));
        hand_out(block, bytes, cls);
        return block;
      }
      ++stats_.system_allocations;
      note_in_use(static_cast<int64_t>(cls));
    }
    void* raw = std::aligned_alloc(64, cls + kHeader);
    if (raw == nullptr) {  // the cache may hold what the system lacks
      release_cached();
      raw = std::aligned_alloc(64, cls + kHeader);
    }
    if (raw == nullptr) {
      std::lock_guard<std::mutex> lock(mutex_);
      stats_.bytes_in_use -= static_cast<int64_t>(cls);
      normlab::detail::check(false, "cpu: cannot allocate ", bytes, " bytes");
    }
    *static_cast<size_t*>(raw) = cls;
    void* block = static_cast<char*>(raw) + kHeader;
    hand_out(block, bytes, cls);
    return block;
  }

  /// Returns a block from allocate() to the cache; null is ignored.
  void deallocate(void* block) {
    if (block == nullptr) return;
    asan_unpoison(static_cast<char*>(block) - kHeader, kHeader);
    const size_t cls = *reinterpret_cast<const size_t*>(static_cast<char*>(block) - kHeader);
    std::lock_guard<std::mutex> lock(mutex_);
    free_[cls].push_back(block);
    stats_.bytes_in_use -= static_cast<int64_t>(cls);
    stats_.bytes_cached += static_cast<int64_t>(cls);
    asan_poison(block, cls);
  }

  /// Gives every cached block back to the system; blocks in use are untouched.
  void release_cached() {
    std::map<size_t, std::vector<void*>> drop;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      drop.swap(free_);
      stats_.bytes_cached = 0;
    }
    for (auto& [cls, blocks] : drop)
      for (void* b : blocks) {
        asan_unpoison(static_cast<char*>(b) - kHeader, cls + kHeader);
        std::free(static_cast<char*>(b) - kHeader);
      }
  }

  /// A snapshot of the counters.
  AllocatorStats stats() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }
  /// Zeroes the event counters (requests, system_allocations, cache_hits) and
  /// sets the peak to the bytes in use now; the byte gauges are kept.
  void reset_counters() {
    std::lock_guard<std::mutex> lock(mutex_);
    stats_.requests = stats_.system_allocations = stats_.cache_hits = 0;
    stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

  /// The process-wide instance. Never destroyed, so tensors that outlive
  /// main (static ones) can still free their blocks at exit.
  static CachingAllocator& instance() {
    static CachingAllocator* pool = new CachingAllocator();
    return *pool;
  }

 private:
  /// Under ASan: the `bytes` asked for addressable, the rest of the class and
  /// the header not (see the file comment).
  static void hand_out(void* block, size_t bytes, size_t cls) {
    asan_unpoison(block, bytes);
    asan_poison(static_cast<char*>(block) + bytes, cls - bytes);
    asan_poison(static_cast<char*>(block) - kHeader, kHeader);
  }

  void note_in_use(int64_t bytes) {  // under mutex_
    stats_.bytes_in_use += bytes;
    if (stats_.bytes_in_use > stats_.peak_bytes_in_use)
      stats_.peak_bytes_in_use = stats_.bytes_in_use;
  }

  mutable std::mutex mutex_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  AllocatorStats stats_;
};

/// The CPU allocator's counters (see AllocatorStats).
inline AllocatorStats allocator_stats() {
  return CachingAllocator::instance().stats();
}
/// Zeroes the CPU allocator's event counters (see CachingAllocator::reset_counters).
inline void reset_allocator_counters() {
  CachingAllocator::instance().reset_counters();
}
/// Frees the CPU allocator's cached blocks (memory in use is untouched).
inline void release_cached_memory() {
  CachingAllocator::instance().release_cached();
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
