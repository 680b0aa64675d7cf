// normlab/backend/cpu/elementwise.hpp — element-wise map kernels with broadcasting.
//
// Backward kernels accumulate into their gradient outputs (+=); the autograd
// engine zero-initializes a gradient before the first node writes to it.
#pragma once

#include <cstdint>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/core/shape.hpp"

namespace normlab {
inline namespace v0 {
namespace cpu {

/// out[i] = f(in[i]) for i < n.
template <class Scalar, class F>
void map_unary_forward(Cpu, Scalar* out, const Scalar* in, int64_t n, F f) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = f(in[i]);
}

/// din[i] += dout[i] * f.grad(in[i], out[i]).
template <class Scalar, class F>
void map_unary_backward(Cpu, Scalar* din, const Scalar* dout, const Scalar* in, const Scalar* out,
                        int64_t n, F f) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) din[i] += dout[i] * f.grad(in[i], out[i]);
}

/// True when operand `stride` (one of the plan's) reads every output element
/// once, in order: no broadcasting on that side.
inline bool is_full_operand(const BroadcastPlan& p, const int64_t* stride) {
  int64_t expect = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    if (p.sizes[d] != 1 && stride[d] != expect) return false;
    expect *= p.sizes[d];
  }
  return true;
}

/// Calls row_fn(r, first, oa, ob, step_a, step_b) for each output row r of the
/// plan's last dim (first = r * width; oa, ob the operands' offsets of its
/// first element; step_a, step_b their strides along the row), so the inner
/// loops run without index arithmetic. Rows run in parallel when `parallel`.
template <class RowFn>
void for_each_broadcast_row(const BroadcastPlan& p, int64_t n, [[maybe_unused]] bool parallel,
                            RowFn row_fn) {
  const int last = p.ndim - 1;
  const int64_t width = p.ndim ? p.sizes[last] : 1;
  if (width == 0) return;
  const int64_t step_a = p.ndim ? p.stride_a[last] : 0, step_b = p.ndim ? p.stride_b[last] : 0;
  const int64_t rows = n / width;
#pragma omp parallel for schedule(static) if (parallel && n > kParallelGrain)
  for (int64_t r = 0; r < rows; ++r) {
    int64_t oa, ob;
    p.offsets(r * width, oa, ob);
    row_fn(r * width, width, oa, ob, step_a, step_b);
  }
}

/// Calls body(ia, ib) with ia(i) = i * sa and ib(i) = i * sb, the operands'
/// offsets along a row, as functions whose unit or zero stride is known at
/// compile time for the common rows (both operands full, or one of them one
/// element repeated), so that the row loops vectorize.
template <class Body>
void with_row_strides(int64_t sa, int64_t sb, Body body) {
  constexpr auto unit = [](int64_t i) { return i; };
  constexpr auto zero = [](int64_t) { return int64_t{0}; };
  if (sa == 1 && sb == 1)
    body(unit, unit);
  else if (sa == 1 && sb == 0)
    body(unit, zero);
  else if (sa == 0 && sb == 1)
    body(zero, unit);
  else
    body([sa](int64_t i) { return i * sa; }, [sb](int64_t i) { return i * sb; });
}

/// out[i] = f(a[oa(i)], b[ob(i)]) for the n output elements of plan `p`.
template <class Scalar, class F>
void map_binary_forward(Cpu, Scalar* out, const Scalar* a, const Scalar* b, const BroadcastPlan& p,
                        int64_t n, F f) {
  if (p.is_elementwise_identity()) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
    return;
  }
  for_each_broadcast_row(
      p, n, true,
      [&](int64_t first, int64_t width, int64_t oa, int64_t ob, int64_t sa, int64_t sb) {
        Scalar* o = out + first;
        const Scalar *ar = a + oa, *br = b + ob;
        with_row_strides(sa, sb, [&](auto ia, auto ib) {
          for (int64_t i = 0; i < width; ++i) o[i] = f(ar[ia(i)], br[ib(i)]);
        });
      });
}

/// da[oa(i)] += dout[i] * f.grad_a(a, b) and db[ob(i)] += dout[i] * f.grad_b(a, b);
/// a null da or db is skipped. Broadcast operands receive the sum over the
/// output elements that read them, added on one thread in an order fixed by
/// the plan (the result does not depend on the thread count; a row of output
/// that reads a single element of b is summed in lanes, see lane_sum); an
/// operand that is not broadcast is written in parallel.
template <class Scalar, class F>
void map_binary_backward(Cpu, Scalar* da, Scalar* db, const Scalar* dout, const Scalar* a,
                         const Scalar* b, const BroadcastPlan& p, int64_t n, F f) {
  if (p.is_elementwise_identity()) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      if (da) da[i] += dout[i] * f.grad_a(a[i], b[i]);
      if (db) db[i] += dout[i] * f.grad_b(a[i], b[i]);
    }
    return;
  }
  const bool full_a = is_full_operand(p, p.stride_a), full_b = is_full_operand(p, p.stride_b);
  for (const bool parallel : {true, false}) {  // the full operands, then the broadcast ones
    Scalar* ga = da && full_a == parallel ? da : nullptr;
    Scalar* gb = db && full_b == parallel ? db : nullptr;
    if (!ga && !gb) continue;
    for_each_broadcast_row(
        p, n, parallel,
        [&](int64_t first, int64_t width, int64_t oa, int64_t ob, int64_t sa, int64_t sb) {
          const Scalar* g = dout + first;
          const Scalar *ar = a + oa, *br = b + ob;
          Scalar* gar = ga ? ga + oa : nullptr;
          Scalar* gbr = gb ? gb + ob : nullptr;
          with_row_strides(sa, sb, [&](auto ia, auto ib) {
            if (!parallel && sb == 0 && !gar) {  // the row feeds one element of b
              gbr[0] += lane_sum<Scalar>(
                  width, [&](int64_t i) { return g[i] * f.grad_b(ar[ia(i)], br[0]); });
              return;
            }
            if (gar && !gbr)
              for (int64_t i = 0; i < width; ++i)
                gar[ia(i)] += g[i] * f.grad_a(ar[ia(i)], br[ib(i)]);
            else if (gbr && !gar)
              for (int64_t i = 0; i < width; ++i)
                gbr[ib(i)] += g[i] * f.grad_b(ar[ia(i)], br[ib(i)]);
            else
              for (int64_t i = 0; i < width; ++i) {
                const Scalar x = ar[ia(i)], y = br[ib(i)];
                gar[ia(i)] += g[i] * f.grad_a(x, y);
                gbr[ib(i)] += g[i] * f.grad_b(x, y);
              }
          });
        });
  }
}

}  // namespace cpu
}  // namespace v0
}  // namespace normlab
