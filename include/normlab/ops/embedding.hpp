// normlab/ops/embedding.hpp — embedding lookup.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/index_check.hpp"

namespace normlab {
inline namespace v0 {

namespace detail {

/// Checks on the host that every element of `indices` is in [0, v) or equals
/// `ignore_index` (when given); returns how many are not ignored.
/// Throws an Error naming `op`, the first bad value (called `noun`), its
/// position in the tensor (called `name`) and v. Kernels rely on this: they
/// must not throw.
template <class Backend>
int64_t check_index_range(const char* op, const char* noun, const char* name,
                          const Tensor<int64_t, Backend>& indices, int64_t v,
                          std::optional<int64_t> ignore_index = std::nullopt) {
  const std::vector<int64_t> idx = indices.to_vector();
  int64_t kept = 0;
  for (size_t i = 0; i < idx.size(); ++i) {
    if (ignore_index && idx[i] == *ignore_index) continue;
    if (idx[i] < 0 || idx[i] >= v)  // the message is built only on failure
      throw Error(index_range_message(IndexCheck{op, noun, name, indices.shape(), v, ignore_index},
                                      idx[i], static_cast<int64_t>(i)));
    ++kept;
  }
  return kept;
}

}  // namespace detail

/// out[p, :] = weight[indices[p], :] for every position p of `indices`: a row
/// lookup (torch's F.embedding). Backward scatter-adds: dweight[indices[p], :]
/// += dout[p, :], so an index used k times receives the sum of k rows — except
/// row `padding_idx` when one is given (torch's F.embedding(..., padding_idx),
/// fairseq's pad tokens): its lookups add nothing to its gradient (what other
/// uses of the weight, a tied output projection, add to it stays).
///
/// Requires: weight is 2-D (V, C); every index is in [0, V); padding_idx, when
/// given, in [0, V); indices has fewer than kMaxDims dims. Throws Error naming the bad index, its
/// position and V: here on a backend that checks on the host (the CPU); on one with
/// HasDeviceIndexChecks (CUDA), which checks on the device without a host
/// synchronization, at the backend's next read to the host (e.g. the loss's
/// value), the bad index's output row being 0 until then.
/// Ensures: out has shape (indices..., C); the indices are copied, so the
/// caller may refill its buffer before backward().
template <FloatingElement Scalar, class Backend>
Variable<Scalar, Backend> embedding(const Tensor<int64_t, Backend>& indices /*(...)*/,
                                    const Variable<Scalar, Backend>& weight /*(V, C)*/,
                                    std::optional<int64_t> padding_idx = std::nullopt) {
  detail::check(indices.defined(), "embedding: indices is an undefined tensor");
  detail::check(weight.ndim() == 2, "embedding: weight must be 2-D (V, C), got shape ",
                weight.shape());
  detail::check(indices.ndim() < kMaxDims, "embedding: indices of shape ", indices.shape(),
                " would give an output of more than ", kMaxDims, " dims");
  const int64_t v = weight.size(0), c = weight.size(1), n = indices.numel();
  detail::check(!padding_idx || (*padding_idx >= 0 && *padding_idx < v), "embedding: padding_idx ",
                padding_idx.value_or(0), " is outside [0, ", v, "), the rows of the weight");
  constexpr bool on_device = HasDeviceIndexChecks<Backend, Scalar>;
  if constexpr (!on_device) detail::check_index_range("embedding", "index", "indices", indices, v);
  const Tensor<int64_t, Backend> idx = indices.clone();  // (N)
  std::vector<int64_t> dims = indices.shape().dims();
  dims.push_back(c);
  Tensor<Scalar, Backend> out{Shape(std::move(dims))};  // (..., C)
  if constexpr (on_device)
    embedding_forward_checked(Backend{}, out.data(), weight.data().data(), idx.data(), n, c,
                              IndexCheck{"embedding", "index", "indices", indices.shape(), v, {}});
  else
    embedding_forward(Backend{}, out.data(), weight.data().data(), idx.data(), n, c);
  return make_result<Scalar, Backend>(
      "embedding", out, {&weight},
      [idx, n, c, v, padding_idx](const Tensor<Scalar, Backend>& dout,
                                  const GradSlots<Scalar, Backend>& d) {
        Tensor<Scalar, Backend> pad_row;  // (C) the pad row's gradient before the scatter-add
        Scalar* const pad_grad = padding_idx ? d[0]->data() + *padding_idx * c : nullptr;
        if (pad_grad) {
          pad_row = Tensor<Scalar, Backend>{Shape({c})};
          copy(Backend{}, pad_row.data(), pad_grad, c);
        }
        if constexpr (on_device) {
          embedding_backward_checked(Backend{}, d[0]->data(), dout.data(), idx.data(), n, c, v);
        } else {
          (void)v;  // checked on the host in the forward pass
          embedding_backward(Backend{}, d[0]->data(), dout.data(), idx.data(), n, c);
        }
        if (pad_grad) copy(Backend{}, pad_grad, pad_row.data(), c);  // the lookups' part dropped
      });
}

}  // namespace v0
}  // namespace normlab
