// normlab/ops/shape.hpp — reshape, transpose, permute, slice, concat.
//
// reshape is a view (no copy); the others produce new contiguous tensors.
#pragma once

#include <algorithm>
#include <numeric>
#include <vector>

#include "normlab/autograd/variable.hpp"

namespace normlab {
inline namespace v0 {

/// The same elements viewed in shape `dims` (one dim may be -1, inferred).
/// The result shares x's storage; its gradient flows back unchanged.
/// Throws when the element counts differ.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> reshape(const Variable<Scalar, Backend>& x,
                                  const std::vector<int64_t>& dims) {
  const Tensor<Scalar, Backend> y = x.data().reshape(dims);
  Variable<Scalar, Backend> result = make_result<Scalar, Backend>(
      "reshape", y, {&x},
      [](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        accumulate(Backend{}, d[0]->data(), dy.data(), dy.numel(), Scalar(1));
      });
  // The engine may hand dy's buffer to x instead (see Node::gradient_is_view).
  if (const auto& node = result.state_ptr()->grad_fn) node->gradient_is_view = true;
  return result;
}

/// y with y.shape[d] = x.shape[perm[d]]: the dims of x reordered (a copy).
/// Throws unless perm is a permutation of [0, x.ndim()); negative entries
/// count from the end.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> permute(const Variable<Scalar, Backend>& x, std::vector<int> perm) {
  const Shape& s = x.shape();
  auto describe = [&] {
    std::string p = "(";
    for (size_t i = 0; i < perm.size(); ++i) p += (i ? ", " : "") + std::to_string(perm[i]);
    return p + ")";
  };
  detail::check(static_cast<int>(perm.size()) == s.ndim(), "permute: ", describe(),
                " is not a permutation of the ", s.ndim(), " dims of a tensor of shape ", s);
  std::vector<bool> used(perm.size(), false);
  for (int& p : perm) {
    detail::check(
        p >= -s.ndim() && p < s.ndim() && !used[static_cast<size_t>((p + s.ndim()) % s.ndim())],
        "permute: ", describe(), " is not a permutation of the ", s.ndim(),
        " dims of a tensor of shape ", s);
    if (p < 0) p += s.ndim();
    used[static_cast<size_t>(p)] = true;
  }
  std::vector<int> inverse(perm.size());
  for (size_t d = 0; d < perm.size(); ++d)
    inverse[static_cast<size_t>(perm[d])] = static_cast<int>(d);

  const StridedPlan forward = make_permute_plan(s, perm);
  std::vector<int64_t> out_dims(forward.sizes, forward.sizes + forward.ndim);
  Tensor<Scalar, Backend> y{Shape(out_dims)};  // x's dims in the order perm
  gather_strided(Backend{}, y.data(), x.data().data(), forward, y.numel(), false);
  const StridedPlan backward = make_permute_plan(y.shape(), inverse);
  return make_result<Scalar, Backend>(
      "permute", y, {&x},
      [backward](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        gather_strided(Backend{}, d[0]->data(), dy.data(), backward, dy.numel(), true);
      });
}

/// x with dims `dim0` and `dim1` swapped (a copy). Negative dims count from the end.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> transpose(const Variable<Scalar, Backend>& x, int dim0, int dim1) {
  dim0 = x.shape().normalize_axis("transpose", dim0);
  dim1 = x.shape().normalize_axis("transpose", dim1);
  std::vector<int> perm(static_cast<size_t>(x.ndim()));
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[static_cast<size_t>(dim0)], perm[static_cast<size_t>(dim1)]);
  return permute(x, std::move(perm));
}

/// The elements with index in [start, stop) along `axis` (a copy), like
/// torch.narrow. Negative start/stop count from the end of the axis; unlike
/// Python slicing, bounds outside the axis are an error rather than clamped.
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> slice(const Variable<Scalar, Backend>& x, int axis, int64_t start,
                                int64_t stop) {
  const Shape& s = x.shape();
  axis = s.normalize_axis("slice", axis);
  const int64_t n = s[axis];
  const int64_t begin = start < 0 ? start + n : start, end = stop < 0 ? stop + n : stop;
  detail::check(0 <= begin && begin <= end && end <= n, "slice: [", start, ", ", stop,
                ") is not a range within axis ", axis, " of size ", n, " (shape ", s, ")");
  const int64_t outer = s.outer(axis), inner = s.inner(axis), len = end - begin;
  std::vector<int64_t> out_dims = s.dims();
  out_dims[static_cast<size_t>(axis)] = len;
  Tensor<Scalar, Backend> y{Shape(out_dims)};  // x with `axis` cut to len
  const int64_t offset = begin * inner;
  if (y.numel())
    copy_rows(Backend{}, y.data(), len * inner, x.data().data() + offset, n * inner, outer,
              len * inner, false);
  return make_result<Scalar, Backend>(
      "slice", y, {&x},
      [=](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        if (dy.numel())
          copy_rows(Backend{}, d[0]->data() + offset, n * inner, dy.data(), len * inner, outer,
                    len * inner, true);
      });
}

/// The inputs joined along `axis`; all must have the same shape except along it.
/// Throws on an empty list or mismatched shapes (naming the first offender).
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> concat(const std::vector<Variable<Scalar, Backend>>& xs, int axis) {
  detail::check(!xs.empty(), "concat: needs at least one tensor");
  const Shape& first = xs[0].shape();
  axis = first.normalize_axis("concat", axis);
  std::vector<int64_t> out_dims = first.dims();
  std::vector<int64_t> lengths;  // each input's size along axis
  int64_t total = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    const Shape& s = xs[k].shape();
    bool same = s.ndim() == first.ndim();
    for (int d = 0; same && d < s.ndim(); ++d) same = d == axis || s[d] == first[d];
    detail::check(same, "concat: input ", k, " has shape ", s, " but input 0 has shape ", first,
                  "; they may differ only along axis ", axis);
    lengths.push_back(s[axis]);
    total += s[axis];
  }
  out_dims[static_cast<size_t>(axis)] = total;
  Tensor<Scalar, Backend> y{Shape(out_dims)};  // inputs side by side along axis
  const int64_t outer = first.outer(axis), inner = first.inner(axis);
  std::vector<int64_t> offsets;  // where each input starts in a row of y
  int64_t at = 0;
  for (size_t k = 0; k < xs.size(); ++k) {
    offsets.push_back(at);
    if (lengths[k] * inner * outer != 0)
      copy_rows(Backend{}, y.data() + at, total * inner, xs[k].data().data(), lengths[k] * inner,
                outer, lengths[k] * inner, false);
    at += lengths[k] * inner;
  }
  return make_result<Scalar, Backend>(
      "concat", y, xs, [=](const Tensor<Scalar, Backend>& dy, const GradSlots<Scalar, Backend>& d) {
        for (size_t k = 0; k < d.size(); ++k)
          if (d[k] && lengths[k] * inner * outer != 0)
            copy_rows(Backend{}, d[k]->data(), lengths[k] * inner, dy.data() + offsets[k],
                      total * inner, outer, lengths[k] * inner, true);
      });
}

}  // namespace v0
}  // namespace normlab
