// The CPU caching allocator: size classes, reuse, counting, thread safety,
// and a training step that allocates nothing from the system once warm.
#include <cstring>
#include <thread>

#include "testing.hpp"

namespace normlab::testing {
namespace {

using cpu::CachingAllocator;

TEST(CachingAllocator, SizeClassesCoverTheRequestAndWasteAtMostAQuarter) {
  for (size_t bytes : {size_t{1}, size_t{64}, size_t{65}, size_t{4096}, size_t{4097}, size_t{5000},
                       size_t{1} << 20, (size_t{1} << 20) + 1, size_t{123456789}}) {
    const size_t cls = CachingAllocator::size_class(bytes);
    EXPECT_GE(cls, bytes);
    EXPECT_EQ(cls % 64, 0u) << bytes;
    if (bytes > 4096) {
      EXPECT_LE(cls, bytes + bytes / 4) << bytes;
    }
  }
  EXPECT_EQ(CachingAllocator::size_class(0), 64u);
}

TEST(CachingAllocator, FreedBlockIsReusedWithoutASystemAllocation) {
  CachingAllocator pool;  // a private pool: counts are this test's alone
  void* a = pool.allocate(100000);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a) % 64, 0u);
  std::memset(a, 1, 100000);
  pool.deallocate(a);
  cpu::AllocatorStats s = pool.stats();
  EXPECT_EQ(s.requests, 1);
  EXPECT_EQ(s.system_allocations, 1);
  EXPECT_EQ(s.bytes_in_use, 0);
  EXPECT_EQ(s.bytes_cached, static_cast<int64_t>(CachingAllocator::size_class(100000)));

  void* b = pool.allocate(99000);  // same size class: the cached block
  EXPECT_EQ(b, a);
  s = pool.stats();
  EXPECT_EQ(s.requests, 2);
  EXPECT_EQ(s.system_allocations, 1);
  EXPECT_EQ(s.cache_hits, 1);
  EXPECT_EQ(s.bytes_cached, 0);
  void* c = pool.allocate(99000);  // the block is taken: a new one
  EXPECT_NE(c, b);
  EXPECT_EQ(pool.stats().system_allocations, 2);
  EXPECT_EQ(pool.stats().peak_bytes_in_use,
            2 * static_cast<int64_t>(CachingAllocator::size_class(99000)));
  pool.deallocate(b);
  pool.deallocate(c);
  pool.release_cached();
  EXPECT_EQ(pool.stats().bytes_cached, 0);
  pool.reset_counters();
  EXPECT_EQ(pool.stats().requests, 0);
  pool.deallocate(nullptr);  // ignored
}

TEST(CachingAllocator, ThreadsAllocateAndFreeConcurrently) {
  CachingAllocator pool;
  constexpr int kThreads = 4, kRounds = 2000;
  std::vector<std::thread> threads;
  std::vector<int> bad(kThreads, 0);
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&pool, &bad, t] {
      std::vector<unsigned char*> held;
      for (int i = 0; i < kRounds; ++i) {
        const size_t bytes = 64 + static_cast<size_t>((i * 7919 + t * 104729) % 20000);
        auto* p = static_cast<unsigned char*>(pool.allocate(bytes));
        std::memset(p, t + 1, bytes);  // a block shared by two threads would show here
        held.push_back(p);
        if (held.size() == 8) {
          for (unsigned char* q : held)
            if (q[0] != t + 1 || q[63] != t + 1) ++bad[static_cast<size_t>(t)];
          for (unsigned char* q : held) pool.deallocate(q);
          held.clear();
        }
      }
      for (unsigned char* q : held) pool.deallocate(q);
    });
  for (auto& th : threads) th.join();
  const cpu::AllocatorStats s = pool.stats();
  EXPECT_EQ(s.requests, kThreads * kRounds);
  EXPECT_EQ(s.requests, s.system_allocations + s.cache_hits);
  EXPECT_GT(s.cache_hits, 0);
  EXPECT_EQ(s.bytes_in_use, 0);
  for (int t = 0; t < kThreads; ++t) EXPECT_EQ(bad[static_cast<size_t>(t)], 0) << "thread " << t;
  pool.release_cached();
}

TEST(CachingAllocator, WarmTrainingStepMakesNoSystemAllocation) {
  ModelConfig cfg;
  cfg.d_model = 32;
  cfg.n_heads = 4;
  cfg.d_ff = 64;
  cfg.n_layers = 2;
  cfg.max_seq_len = 16;
  cfg.vocab_size = 50;
  cfg.policy = "normformer";
  GPT<NormFormer, float, Cpu> model(cfg, 3);
  AdamW<float, Cpu> opt(model);
  std::vector<int64_t> tok(2 * 16);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int64_t>(i * 7 % 50);
  const TensorI tokens = TensorI::from_vector({2, 16}, tok);
  auto step = [&] {
    opt.zero_grad();
    model.loss(tokens, tokens).backward();
    opt.step();
  };
  step();
  step();
  cpu::reset_allocator_counters();
  step();
  const cpu::AllocatorStats s = cpu::allocator_stats();
  EXPECT_GT(s.requests, 50);           // every op allocates its output...
  EXPECT_EQ(s.system_allocations, 0);  // ...and the cache serves all of them
  EXPECT_EQ(s.cache_hits, s.requests);
}

TEST(CachingAllocator, AnImpossibleRequestIsAnErrorNotAHang) {
  // Size classes round up to a quarter of a power of two; above 2^60 bytes
  // that rounding would overflow (and once looped forever).
  EXPECT_EQ(cpu::CachingAllocator::size_class(cpu::CachingAllocator::kMaxRequest),
            cpu::CachingAllocator::kMaxRequest);
  for (size_t bytes : {(size_t(1) << 60) + 1, (size_t(1) << 63) + 1, ~size_t(0)})
    expect_error([&] { (void)cpu::CachingAllocator::size_class(bytes); },
                 {"cpu: cannot allocate ", "more than 2^60"});
}

#if defined(NORMLAB_ASAN)
// Under AddressSanitizer the cache keeps ASan's guarantees for tensor
// buffers: a freed block and the slack past a request are unaddressable.
TEST(CachingAllocatorDeathTest, AnOverrunIntoTheSlackOfTheSizeClassIsReported) {
  EXPECT_DEATH(
      {
        CachingAllocator a;
        volatile char* p = static_cast<char*>(a.allocate(100));  // class 128
        p[104] = 1;  // a whole granule past the 100 bytes asked for
      },
      "AddressSanitizer");
}

TEST(CachingAllocatorDeathTest, AUseOfACachedBlockIsReported) {
  EXPECT_DEATH(
      {
        CachingAllocator a;
        volatile char* p = static_cast<char*>(a.allocate(256));
        a.deallocate(const_cast<char*>(p));
        p[0] = 1;
      },
      "AddressSanitizer");
}
#endif

}  // namespace
}  // namespace normlab::testing
