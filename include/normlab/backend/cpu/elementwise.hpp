// normlab/backend/cpu/elementwise.hpp — element-wise map kernels with broadcasting.
//
// Backward kernels accumulate into their gradient outputs (+=); the autograd
// engine zero-initializes a gradient before the first node writes to it.
#pragma once

#include <cstdint>

#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/core/shape.hpp"

namespace normlab::inline v0::cpu {

/// out[i] = f(in[i]) for i < n.
template <class T, class F>
void map_unary_forward(Cpu, T* out, const T* in, int64_t n, F f) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) out[i] = f(in[i]);
}

/// din[i] += dout[i] * f.grad(in[i], out[i]).
template <class T, class F>
void map_unary_backward(Cpu, T* din, const T* dout, const T* in, const T* out, int64_t n, F f) {
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) din[i] += dout[i] * f.grad(in[i], out[i]);
}

/// True when the plan maps output element i to element i of both operands.
inline bool is_elementwise_identity(const BroadcastPlan& p) {
  int64_t sa = 1, sb = 1;
  for (int d = p.ndim - 1; d >= 0; --d) {
    if (p.sizes[d] == 1) continue;
    if (p.stride_a[d] != sa || p.stride_b[d] != sb) return false;
    sa *= p.sizes[d];
    sb *= p.sizes[d];
  }
  return true;
}

/// out[i] = f(a[oa(i)], b[ob(i)]) for the n output elements of plan `p`.
template <class T, class F>
void map_binary_forward(Cpu, T* out, const T* a, const T* b, const BroadcastPlan& p, int64_t n,
                        F f) {
  if (is_elementwise_identity(p)) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) out[i] = f(a[i], b[i]);
    return;
  }
#pragma omp parallel for if (n > kParallelGrain)
  for (int64_t i = 0; i < n; ++i) {
    int64_t oa, ob;
    p.offsets(i, oa, ob);
    out[i] = f(a[oa], b[ob]);
  }
}

/// da[oa(i)] += dout[i] * f.grad_a(a, b) and db[ob(i)] += dout[i] * f.grad_b(a, b);
/// a null da or db is skipped. Broadcast operands receive the sum over the
/// output elements that read them.
template <class T, class F>
void map_binary_backward(Cpu, T* da, T* db, const T* dout, const T* a, const T* b,
                         const BroadcastPlan& p, int64_t n, F f) {
  if (is_elementwise_identity(p)) {
#pragma omp parallel for if (n > kParallelGrain)
    for (int64_t i = 0; i < n; ++i) {
      if (da) da[i] += dout[i] * f.grad_a(a[i], b[i]);
      if (db) db[i] += dout[i] * f.grad_b(a[i], b[i]);
    }
    return;
  }
  // Several output elements may read one operand element: accumulate serially.
  for (int64_t i = 0; i < n; ++i) {
    int64_t oa, ob;
    p.offsets(i, oa, ob);
    if (da) da[oa] += dout[i] * f.grad_a(a[oa], b[ob]);
    if (db) db[ob] += dout[i] * f.grad_b(a[oa], b[ob]);
  }
}

}  // namespace normlab::inline v0::cpu
