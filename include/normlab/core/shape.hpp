// normlab/core/shape.hpp — tensor shapes, axes and broadcasting (pure shape logic).
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {

/// The most dimensions a tensor may have. Kernels index with fixed-size arrays
/// of this length so that index plans can be passed by value to device code.
inline constexpr int kMaxDims = 8;

/// The sizes of a row-major tensor, outermost first. A Shape with no dims is
/// a scalar (numel 1).
///
/// Contract: every dim is >= 0, ndim <= kMaxDims and the product of the dims
/// fits an int64 (so numel() cannot overflow); the constructors throw Error
/// otherwise.
class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims) : dims_(dims) { validate(); }
  explicit Shape(std::vector<int64_t> dims) : dims_(std::move(dims)) { validate(); }

  int ndim() const { return static_cast<int>(dims_.size()); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : dims_) n *= d;
    return n;
  }
  /// Size of `axis`; negative axes count from the end. Throws on a bad axis.
  int64_t size(int axis) const { return dims_[static_cast<size_t>(normalize_axis("size", axis))]; }
  int64_t operator[](int i) const { return dims_[static_cast<size_t>(i)]; }
  const std::vector<int64_t>& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }

  /// Maps `axis` in [-ndim, ndim) to [0, ndim); throws an Error naming `op` otherwise.
  int normalize_axis(const char* op, int axis) const {
    detail::check(axis >= -ndim() && axis < ndim(), op, ": axis ", axis,
                  " is out of range for a tensor of shape ", to_string(), " (valid: ", -ndim(),
                  " to ", ndim() - 1, ")");
    return axis < 0 ? axis + ndim() : axis;
  }

  /// Product of the dims before `axis` / after `axis` (axis already normalized).
  int64_t outer(int axis) const {
    int64_t n = 1;
    for (int i = 0; i < axis; ++i) n *= dims_[static_cast<size_t>(i)];
    return n;
  }
  int64_t inner(int axis) const {
    int64_t n = 1;
    for (int i = axis + 1; i < ndim(); ++i) n *= dims_[static_cast<size_t>(i)];
    return n;
  }

  std::string to_string() const {
    std::string s = "(";
    for (size_t i = 0; i < dims_.size(); ++i) {
      if (i) s += ", ";
      s += std::to_string(dims_[i]);
    }
    if (dims_.size() == 1) s += ",";
    return s + ")";
  }

  friend bool operator==(const Shape&, const Shape&) = default;
  friend std::ostream& operator<<(std::ostream& os, const Shape& s) { return os << s.to_string(); }

 private:
  void validate() const {
    detail::check(ndim() <= kMaxDims, "Shape: at most ", kMaxDims, " dims are supported, got ",
                  ndim());
    int64_t n = 1;
    for (int64_t d : dims_) {
      detail::check(d >= 0, "Shape: dims must be >= 0, got ", to_string());
      detail::check(!__builtin_mul_overflow(n, d, &n), "Shape: ", to_string(),
                    " has more elements than an int64 can count");
    }
  }
  std::vector<int64_t> dims_;
};

/// Row-major strides of `shape` in elements.
inline std::vector<int64_t> contiguous_strides(const Shape& shape) {
  std::vector<int64_t> s(static_cast<size_t>(shape.ndim()));
  int64_t acc = 1;
  for (int i = shape.ndim() - 1; i >= 0; --i) {
    s[static_cast<size_t>(i)] = acc;
    acc *= shape[i];
  }
  return s;
}

/// NumPy broadcasting: shapes are aligned at their last dim; two dims are
/// compatible when equal or when one of them is 1; the result takes the
/// larger. Throws an Error naming `op` and both shapes when incompatible.
inline Shape broadcast_shapes(const char* op, const Shape& a, const Shape& b) {
  const int n = a.ndim() > b.ndim() ? a.ndim() : b.ndim();
  std::vector<int64_t> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    const int ia = a.ndim() - n + i, ib = b.ndim() - n + i;
    const int64_t da = ia >= 0 ? a[ia] : 1, db = ib >= 0 ? b[ib] : 1;
    detail::check(da == db || da == 1 || db == 1, op, ": shapes ", a, " and ", b,
                  " cannot be broadcast together (dim ", i - n, " is ", da, " vs ", db, ")");
    out[static_cast<size_t>(i)] = da == 1 ? db : da;
  }
  return Shape(std::move(out));
}

/// Index plan for an element-wise op over `out` whose operands are broadcast
/// to it: for output element with multi-index (i_0..i_{n-1}), operand k lives
/// at sum_d i_d * stride[k][d] (stride 0 along broadcast dims). Plain data so
/// that it can be passed by value to device kernels.
struct BroadcastPlan {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t stride_a[kMaxDims] = {};
  int64_t stride_b[kMaxDims] = {};

  /// Offsets of operand a and b for flat output index `i`.
  NL_HOST_DEVICE void offsets(int64_t i, int64_t& oa, int64_t& ob) const {
    oa = 0;
    ob = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      const int64_t idx = i % sizes[d];
      i /= sizes[d];
      oa += idx * stride_a[d];
      ob += idx * stride_b[d];
    }
  }

  /// True when the plan maps output element i to element i of both operands
  /// (no broadcast: a plain element-wise loop will do).
  bool is_elementwise_identity() const {
    int64_t sa = 1, sb = 1;
    for (int d = ndim - 1; d >= 0; --d) {
      if (sizes[d] == 1) continue;
      if (stride_a[d] != sa || stride_b[d] != sb) return false;
      sa *= sizes[d];
      sb *= sizes[d];
    }
    return true;
  }
};

/// Builds the plan for broadcasting `a` and `b` to `out` (out = broadcast_shapes(a, b)).
inline BroadcastPlan make_broadcast_plan(const Shape& out, const Shape& a, const Shape& b) {
  BroadcastPlan p;
  p.ndim = out.ndim();
  const auto sa = contiguous_strides(a), sb = contiguous_strides(b);
  for (int d = 0; d < out.ndim(); ++d) {
    p.sizes[d] = out[d];
    const int ia = a.ndim() - out.ndim() + d, ib = b.ndim() - out.ndim() + d;
    p.stride_a[d] = (ia >= 0 && a[ia] != 1) ? sa[static_cast<size_t>(ia)] : 0;
    p.stride_b[d] = (ib >= 0 && b[ib] != 1) ? sb[static_cast<size_t>(ib)] : 0;
  }
  return p;
}

/// Index plan for reading a contiguous destination of shape `sizes` out of a
/// strided source: destination element with multi-index (i_0..i_{n-1}) reads
/// the source at sum_d i_d * strides[d]. Plain data, like BroadcastPlan.
struct StridedPlan {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  /// Source offset of flat destination index `i`.
  NL_HOST_DEVICE int64_t offset(int64_t i) const {
    int64_t o = 0;
    for (int d = ndim - 1; d >= 0; --d) {
      o += (i % sizes[d]) * strides[d];
      i /= sizes[d];
    }
    return o;
  }
};

/// The plan of y = x.permute(perm): y's dim d is x's dim perm[d], so y reads
/// x with x's stride of dim perm[d] along its dim d.
/// Requires: perm is a permutation of [0, x.ndim()) (checked by the caller).
inline StridedPlan make_permute_plan(const Shape& x, const std::vector<int>& perm) {
  StridedPlan p;
  p.ndim = x.ndim();
  const auto strides = contiguous_strides(x);
  for (int d = 0; d < x.ndim(); ++d) {
    p.sizes[d] = x[perm[static_cast<size_t>(d)]];
    p.strides[d] = strides[static_cast<size_t>(perm[static_cast<size_t>(d)])];
  }
  return p;
}

}  // namespace v0
}  // namespace normlab
