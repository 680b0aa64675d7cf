// normlab/ops/reduction.hpp — sum and mean, over everything or along one axis.
#pragma once

#include <vector>

#include "normlab/autograd/variable.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {

/// scale * sum of x over `axis` (all elements when `all`), and its backward.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> scaled_sum(const char* name, const Variable<Scalar, Backend>& x, bool all,
                                     int axis, bool keepdim, bool is_mean) {
  const Shape& s = x.shape();
  int64_t outer = 1, n = s.numel(), inner = 1;
  std::vector<int64_t> out_dims;
  if (!all) {
    axis = s.normalize_axis(name, axis);
    outer = s.outer(axis);
    n = s[axis];
    inner = s.inner(axis);
    for (int d = 0; d < s.ndim(); ++d)
      if (d != axis)
        out_dims.push_back(s[d]);
      else if (keepdim)
        out_dims.push_back(1);
  } else if (keepdim) {
    out_dims.assign(static_cast<size_t>(s.ndim()), 1);
  }
  if (is_mean)
    detail::check(n > 0, name, ": cannot average over zero elements (input shape ", s,
                  all ? "" : detail::concat(", axis ", axis), ")");
  const Scalar scale = is_mean ? Scalar(1) / static_cast<Scalar>(n) : Scalar(1);
  Tensor<Scalar, Backend> out{Shape(out_dims)};  // x without `axis` (or with it as 1)
  if (out.numel()) sum_axis_forward(Backend{}, out.data(), x.data().data(), outer, n, inner, scale);
  return make_result<Scalar, Backend>(
      name, out, {&x},
      [=](const Tensor<Scalar, Backend>& dout, const GradSlots<Scalar, Backend>& d) {
        sum_axis_backward(Backend{}, d[0]->data(), dout.data(), outer, n, inner, scale);
      });
}

}  // namespace detail

/// sum_i x_i over all elements: a 0-d tensor (0 for an empty x).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> sum(const Variable<Scalar, Backend>& x) {
  return detail::scaled_sum("sum", x, true, 0, false, false);
}
/// Sum along `axis` (negative counts from the end); the axis is dropped, or
/// kept with size 1 when `keepdim`. Throws on an axis out of range.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> sum(const Variable<Scalar, Backend>& x, int axis, bool keepdim = false) {
  return detail::scaled_sum("sum", x, false, axis, keepdim, false);
}
/// (1/n) sum_i x_i over all n elements: a 0-d tensor. Throws when x is empty.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> mean(const Variable<Scalar, Backend>& x) {
  return detail::scaled_sum("mean", x, true, 0, false, true);
}
/// Mean along `axis`, like sum(x, axis, keepdim). Throws when that axis is empty.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> mean(const Variable<Scalar, Backend>& x, int axis, bool keepdim = false) {
  return detail::scaled_sum("mean", x, false, axis, keepdim, true);
}

}  // namespace v0
}  // namespace normlab
