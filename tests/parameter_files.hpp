// tests/parameter_files.hpp — helpers for tests that write a model's
// parameters to safetensors and read them back: a fixed batch, bitwise
// comparison, a model's logits, and in-memory parameter files.
#pragma once

#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "normlab/io/io.hpp"
#include "testing.hpp"

namespace normlab::testing {

/// Two batches of five tokens in [0, 11).
inline TensorI tokens() {
  return TensorI::from_vector({2, 5}, {1, 4, 7, 10, 0, 3, 3, 9, 2, 6});
}

/// Each element's bits equal (not only its value).
template <class T>
void expect_bitwise_equal(const std::vector<T>& actual, const std::vector<T>& expected) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_EQ(std::memcmp(&actual[i], &expected[i], sizeof(T)), 0)
        << "at flat index " << i << ": " << actual[i] << " vs " << expected[i];
}

template <class P, class T>
std::vector<T> logits_of(const GPT<P, T, Cpu>& model) {
  return model.forward(tokens()).data().to_vector();
}

/// A writer holding every parameter of `model`, stored as `as` (default: its dtype).
template <class T>
io::SafetensorsWriter parameters_of(Module<T, Cpu>& model, std::optional<io::DType> as = {}) {
  io::SafetensorsWriter w;
  for (const auto& p : model.named_parameters()) w.add(p.name, p.value.data(), as);
  return w;
}

inline io::SafetensorsReader reader(const io::SafetensorsWriter& w,
                                    const std::string& name = "params.st") {
  return io::SafetensorsReader::from_bytes(w.to_bytes(), name);
}

}  // namespace normlab::testing
