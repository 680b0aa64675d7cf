// normlab/core/tensor.hpp — Tensor<T, Backend>: contiguous row-major storage
// shared by views.
//
// A Tensor is a cheap handle: copying it shares the storage (like
// torch.Tensor). `reshape` returns a view of the same storage; `clone` and
// `copy_from` copy elements. The element memory belongs to the backend and is
// only touched through the backend's functions (found by argument-dependent
// lookup on the backend tag `Backend`), so host code never dereferences it.
//
// What a backend tag Backend must provide (checked by the Backend concept in
// normlab/backend/backend.hpp):
//   void* allocate_bytes(B, size_t bytes);         void deallocate_bytes(B, void*);
//   copy_to_host(B, Scalar* host, const Scalar* src, n);     copy_from_host(B, Scalar* dst, const
//   Scalar* host, n); copy(B, Scalar* dst, const Scalar* src, n);              fill(B, Scalar* dst,
//   n, Scalar value); fill_uniform(B, Scalar* dst, n, seed, first_block, lo, hi); fill_normal(B,
//   Scalar* dst, n, seed, first_block, mean, std);
#pragma once

#include <cstdint>
#include <initializer_list>
#include <memory>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "normlab/core/dtype.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"
#include "normlab/core/shape.hpp"

namespace normlab {
inline namespace v0 {

/// A block of backend memory holding `size` elements of Scalar; frees it on destruction.
template <Element Scalar, class Backend>
class Storage {
 public:
  /// Throws Error when `size` elements of Scalar do not fit a size_t of bytes.
  explicit Storage(int64_t size) : size_(size), data_(size > 0 ? allocate(size) : nullptr) {}
  ~Storage() {
    if (data_) deallocate_bytes(Backend{}, data_);
  }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  int64_t size() const { return size_; }
  Scalar* data() const { return data_; }

 private:
  static Scalar* allocate(int64_t size) {
    size_t bytes = 0;
    detail::check(!__builtin_mul_overflow(static_cast<size_t>(size), sizeof(Scalar), &bytes),
                  "Storage: ", size, " elements of ", sizeof(Scalar),
                  " bytes do not fit the address space");
    return static_cast<Scalar*>(allocate_bytes(Backend{}, bytes));
  }

 public:
 private:
  int64_t size_;
  Scalar* data_;
};

/// A dense, contiguous, row-major array of Scalar on backend Backend.
///
/// Contract: a default-constructed Tensor is *undefined* (`defined()` is
/// false) and only `defined()`, `shape()` and assignment may be used on it.
template <Element Scalar, class Backend>
class Tensor {
 public:
  using value_type = Scalar;
  using backend_type = Backend;

  Tensor() = default;
  /// Allocates an uninitialized tensor of `shape`.
  explicit Tensor(const Shape& shape)
      : storage_(std::make_shared<Storage<Scalar, Backend>>(shape.numel())), shape_(shape) {}

  // ---- factories -------------------------------------------------------
  static Tensor empty(const Shape& shape) { return Tensor(shape); }
  static Tensor full(const Shape& shape, Scalar value) {
    Tensor t(shape);
    fill(Backend{}, t.data(), t.numel(), value);
    return t;
  }
  static Tensor zeros(const Shape& shape) { return full(shape, Scalar(0)); }
  static Tensor ones(const Shape& shape) { return full(shape, Scalar(1)); }
  /// A 0-d tensor holding `value`.
  static Tensor scalar(Scalar value) { return full(Shape{}, value); }
  /// [start, start + step, ...) up to but excluding `stop`, as a 1-d tensor.
  static Tensor arange(Scalar start, Scalar stop, Scalar step = Scalar(1)) {
    detail::check(step != Scalar(0), "arange: step must be non-zero");
    std::vector<Scalar> v;
    for (Scalar x = start; step > 0 ? x < stop : x > stop; x += step) v.push_back(x);
    const int64_t n = static_cast<int64_t>(v.size());
    return from_vector(Shape{n}, v);
  }
  /// Copies `values` (row-major) into a new tensor of `shape`.
  static Tensor from_vector(const Shape& shape, const std::vector<Scalar>& values) {
    detail::check(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: shape ",
                  shape, " needs ", shape.numel(), " values, got ", values.size());
    Tensor t(shape);
    if (!values.empty()) copy_from_host(Backend{}, t.data(), values.data(), shape.numel());
    return t;
  }
  /// A 1-d tensor: Tensor::from({1, 2, 3}).
  static Tensor from(std::initializer_list<Scalar> values) {
    return from_vector(Shape{static_cast<int64_t>(values.size())}, std::vector<Scalar>(values));
  }
  /// A 2-d tensor: Tensor::from({{1, 2}, {3, 4}}); rows must have equal length.
  static Tensor from(std::initializer_list<std::initializer_list<Scalar>> rows) {
    std::vector<Scalar> v;
    const int64_t cols = rows.size() ? static_cast<int64_t>(rows.begin()->size()) : 0;
    for (const auto& r : rows) {
      detail::check(static_cast<int64_t>(r.size()) == cols,
                    "from: all rows must have the same length, expected ", cols, ", found ",
                    r.size());
      v.insert(v.end(), r.begin(), r.end());
    }
    return from_vector(Shape{static_cast<int64_t>(rows.size()), cols}, v);
  }
  /// Uniform [lo, hi) values drawn from `gen` (same values on every backend).
  static Tensor uniform(const Shape& shape, Generator& gen, Scalar lo = Scalar(0),
                        Scalar hi = Scalar(1)) requires FloatingElement<Scalar> {
    Tensor t(shape);
    fill_uniform(Backend{}, t.data(), t.numel(), gen.seed(), gen.reserve<Scalar>(t.numel()), lo,
                 hi);
    return t;
  }
  /// Normal(mean, std) values drawn from `gen` (same values on every backend).
  static Tensor normal(const Shape& shape, Generator& gen, Scalar mean = Scalar(0),
                       Scalar std = Scalar(1)) requires FloatingElement<Scalar> {
    Tensor t(shape);
    fill_normal(Backend{}, t.data(), t.numel(), gen.seed(), gen.reserve<Scalar>(t.numel()), mean,
                std);
    return t;
  }

  // ---- properties ------------------------------------------------------
  bool defined() const { return storage_ != nullptr; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return shape_.ndim(); }
  int64_t numel() const { return shape_.numel(); }
  int64_t size(int axis) const { return shape_.size(axis); }
  /// Backend pointer to the first element; for backend kernels only.
  Scalar* data() const { return storage_ ? storage_->data() + offset_ : nullptr; }
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }

  // ---- views and copies -----------------------------------------------
  /// A view with the same elements in a new shape; one dim may be -1 (inferred).
  /// Throws when the element counts differ.
  Tensor reshape(const std::vector<int64_t>& dims) const {
    std::vector<int64_t> d = dims;
    int infer = -1;
    int64_t known = 1;
    for (size_t i = 0; i < d.size(); ++i) {
      if (d[i] == -1) {
        detail::check(infer < 0, "reshape: only one dim may be -1, got more in a view of shape ",
                      shape_);
        infer = static_cast<int>(i);
      } else {
        detail::check(d[i] >= 0, "reshape: dims must be >= 0 or -1, got ", d[i]);
        known *= d[i];
      }
    }
    if (infer >= 0) {
      detail::check(known > 0 && numel() % known == 0, "reshape: cannot infer the -1 dim of a ",
                    "view of ", numel(), " elements (shape ", shape_, ")");
      d[static_cast<size_t>(infer)] = numel() / known;
    }
    Shape s(std::move(d));
    detail::check(s.numel() == numel(), "reshape: cannot view a tensor of shape ", shape_, " (",
                  numel(), " elements) as ", s, " (", s.numel(), " elements)");
    Tensor v = *this;
    v.shape_ = s;
    return v;
  }
  Tensor reshape(std::initializer_list<int64_t> dims) const {
    return reshape(std::vector<int64_t>(dims));
  }
  Tensor reshape(const Shape& s) const { return reshape(s.dims()); }

  /// A view of rows [first, first + count) along dim 0: shape (count, ...),
  /// sharing this tensor's storage (rows are contiguous).
  /// Throws unless the tensor has a dim 0 and the range lies within it.
  Tensor rows(int64_t first, int64_t count) const {
    detail::check(ndim() >= 1, "rows: a tensor of shape ", shape_, " has no rows");
    detail::check(first >= 0 && count >= 0 && first <= size(0) && count <= size(0) - first,
                  "rows: range [", first, ", ", first, " + ", count, ") is outside the rows [0, ",
                  size(0), ") of a tensor of shape ", shape_);
    std::vector<int64_t> dims = shape_.dims();
    const int64_t row = size(0) > 0 ? numel() / size(0) : 0;  // elements per row
    dims[0] = count;
    Tensor v = *this;
    v.offset_ += first * row;
    v.shape_ = Shape(std::move(dims));
    return v;
  }

  /// A new tensor with a copy of the elements.
  Tensor clone() const {
    Tensor t(shape_);
    if (numel()) copy(Backend{}, t.data(), data(), numel());
    return t;
  }
  /// Copies the elements of `src` into this tensor's storage (shapes must match).
  void copy_from(const Tensor& src) {
    detail::check(src.shape() == shape_, "copy_from: destination shape ", shape_,
                  " differs from source shape ", src.shape());
    if (numel() && data() != src.data()) copy(Backend{}, data(), src.data(), numel());
  }
  /// Sets every element to `value`.
  void fill_(Scalar value) {
    if (numel()) fill(Backend{}, data(), numel(), value);
  }

  /// The elements, row-major, on the host.
  std::vector<Scalar> to_vector() const {
    std::vector<Scalar> v(static_cast<size_t>(numel()));
    if (numel()) copy_to_host(Backend{}, v.data(), data(), numel());
    return v;
  }
  /// The single element of a tensor with numel 1.
  Scalar item() const {
    detail::check(numel() == 1, "item: needs a tensor with one element, got shape ", shape_);
    return to_vector()[0];
  }

 private:
  std::shared_ptr<Storage<Scalar, Backend>> storage_;
  int64_t offset_ = 0;
  Shape shape_;
};

namespace detail {
template <class Scalar>
void print_elements(std::ostream& os, const std::vector<Scalar>& v, const Shape& s, int dim,
                    int64_t offset, int64_t stride, int indent) {
  constexpr int64_t kEdge = 3;  // elements shown at each end of a long dim
  const int64_t n = s[dim];
  const int64_t inner = stride / (n ? n : 1);
  os << '[';
  for (int64_t i = 0; i < n; ++i) {
    if (n > 2 * kEdge + 1 && i == kEdge) {
      os << "...";
      i = n - kEdge - 1;
      os << (dim + 1 == s.ndim() ? ", "
                                 : ",\n" + std::string(static_cast<size_t>(indent + 1), ' '));
      continue;
    }
    if (dim + 1 == s.ndim())
      os << v[static_cast<size_t>(offset + i)];
    else
      print_elements(os, v, s, dim + 1, offset + i * inner, inner, indent + 1);
    if (i + 1 < n)
      os << (dim + 1 == s.ndim() ? ", "
                                 : ",\n" + std::string(static_cast<size_t>(indent + 1), ' '));
  }
  os << ']';
}
}  // namespace detail

/// Prints `Tensor(shape=(2, 3), dtype=float32, backend=cpu)` followed by the
/// values, nested like NumPy, eliding the middle of dims longer than 7.
template <Element Scalar, class Backend>
std::ostream& operator<<(std::ostream& os, const Tensor<Scalar, Backend>& t) {
  if (!t.defined()) return os << "Tensor(undefined)";
  os << "Tensor(shape=" << t.shape() << ", dtype=" << dtype_name<Scalar>()
     << ", backend=" << Backend::name << ")\n";
  const auto v = t.to_vector();
  if (t.ndim() == 0) return os << v[0];
  if (t.numel() == 0) return os << "[]";
  detail::print_elements(os, v, t.shape(), 0, 0, t.numel(), 0);
  return os;
}

}  // namespace v0
}  // namespace normlab
