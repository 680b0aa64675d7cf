// The Backend concept: the CPU tag satisfies it, an incomplete tag does not.
#include "testing.hpp"

namespace normlab::testing {
namespace {

namespace incomplete {
/// Has a name and memory functions but no kernels.
struct HalfBackend {
  static constexpr const char* name = "half";
};
inline void* allocate_bytes(HalfBackend, size_t) { return nullptr; }
inline void deallocate_bytes(HalfBackend, void*) {}
}  // namespace incomplete

static_assert(Backend<Cpu>);
static_assert(!Backend<incomplete::HalfBackend>);
static_assert(!Backend<int>);

TEST(BackendConcept, CpuTagNamesItself) { EXPECT_STREQ(Cpu::name, "cpu"); }

TEST(CpuKernels, BroadcastPlanIdentityDetection) {
  const Shape s{2, 3};
  EXPECT_TRUE(make_broadcast_plan(s, s, s).is_elementwise_identity());
  EXPECT_FALSE(make_broadcast_plan(s, s, Shape{3}).is_elementwise_identity());
  // Size-1 dims do not break the identity: (2, 1, 3) with itself.
  const Shape t{2, 1, 3};
  EXPECT_TRUE(make_broadcast_plan(t, t, t).is_elementwise_identity());
}

TEST(CpuKernels, BroadcastPlanOffsets) {
  // out (2, 3) from a (2, 1) and b (3,): element (1, 2) reads a[1] and b[2].
  const BroadcastPlan p = make_broadcast_plan(Shape{2, 3}, Shape{2, 1}, Shape{3});
  int64_t oa = -1, ob = -1;
  p.offsets(5, oa, ob);
  EXPECT_EQ(oa, 1);
  EXPECT_EQ(ob, 2);
}

TEST(CpuKernels, AllocationIsCacheLineAligned) {
  void* p = allocate_bytes(Cpu{}, 3);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % 64, 0u);
  deallocate_bytes(Cpu{}, p);
}

}  // namespace
}  // namespace normlab::testing
