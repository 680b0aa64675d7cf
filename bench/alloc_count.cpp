// bench/alloc_count.cpp — counts heap allocations for the "allocs/iter" counter.
//
// Two doors into the heap are watched:
//   - the global operator new, replaced here for the whole process (every
//     form: plain, array, nothrow, aligned);
//   - the C allocation functions called from normlab_bench's own object
//     files, through the linker's --wrap (see CMakeLists.txt): normlab is
//     header-only, so its tensor storage (allocate_bytes) and Eigen's GEMM
//     buffers are compiled into these objects and their calls are redirected
//     to the __wrap_ functions below.
// Shared libraries' own malloc calls (libtorch's tensors, libc) are not seen.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

#include "common.hpp"

extern "C" {
void* __real_malloc(size_t size);
void* __real_calloc(size_t n, size_t size);
void* __real_realloc(void* p, size_t size);
void* __real_aligned_alloc(size_t alignment, size_t size);
int __real_posix_memalign(void** out, size_t alignment, size_t size);
}

namespace {
std::atomic<uint64_t> g_allocations{0};
void count() {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
}

void* new_or_null(size_t size) {
  count();
  return __real_malloc(size == 0 ? 1 : size);
}
void* aligned_new_or_null(size_t size, std::align_val_t align) {
  count();
  const size_t a =
      static_cast<size_t>(align) < sizeof(void*) ? sizeof(void*) : static_cast<size_t>(align);
  void* p = nullptr;
  return __real_posix_memalign(&p, a, size == 0 ? 1 : size) == 0 ? p : nullptr;
}
void* new_or_throw(size_t size) {
  if (void* p = new_or_null(size)) return p;
  throw std::bad_alloc();
}
void* aligned_new_or_throw(size_t size, std::align_val_t align) {
  if (void* p = aligned_new_or_null(size, align)) return p;
  throw std::bad_alloc();
}
}  // namespace

extern "C" {
void* __wrap_malloc(size_t size) {
  count();
  return __real_malloc(size);
}
void* __wrap_calloc(size_t n, size_t size) {
  count();
  return __real_calloc(n, size);
}
void* __wrap_realloc(void* p, size_t size) {
  count();
  return __real_realloc(p, size);
}
void* __wrap_aligned_alloc(size_t alignment, size_t size) {
  count();
  return __real_aligned_alloc(alignment, size);
}
int __wrap_posix_memalign(void** out, size_t alignment, size_t size) {
  count();
  return __real_posix_memalign(out, alignment, size);
}
}

void* operator new(size_t size) {
  return new_or_throw(size);
}
void* operator new[](size_t size) {
  return new_or_throw(size);
}
void* operator new(size_t size, const std::nothrow_t&) noexcept {
  return new_or_null(size);
}
void* operator new[](size_t size, const std::nothrow_t&) noexcept {
  return new_or_null(size);
}
void* operator new(size_t size, std::align_val_t a) {
  return aligned_new_or_throw(size, a);
}
void* operator new[](size_t size, std::align_val_t a) {
  return aligned_new_or_throw(size, a);
}
void* operator new(size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_new_or_null(size, a);
}
void* operator new[](size_t size, std::align_val_t a, const std::nothrow_t&) noexcept {
  return aligned_new_or_null(size, a);
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  std::free(p);
}

namespace normlab_bench {
uint64_t heap_allocations() {
  return g_allocations.load(std::memory_order_relaxed);
}
}  // namespace normlab_bench
