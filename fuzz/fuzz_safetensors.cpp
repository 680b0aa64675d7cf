// fuzz/fuzz_safetensors.cpp — libFuzzer harness for io::SafetensorsReader.
//
// Checks, for any bytes given as a whole safetensors file:
//   - SafetensorsReader::from_bytes accepts them or throws normlab::Error;
//   - of an accepted file, every tensor reads as its kind allows (F32/F64 as
//     float and double, I64/I32 as int64) with the shape its entry gives, and
//     reading it as the other kind, or reading a name the file lacks, throws
//     normlab::Error;
//   - an accepted file round-trips: SafetensorsWriter, given every tensor in
//     its stored dtype and every metadata string, writes bytes that the reader
//     accepts, with the same names, dtypes, shapes, metadata and values (NaNs
//     may change payload). Any exception in the round trip is a finding.
// Any exception other than normlab::Error (std::bad_alloc, std::out_of_range,
// ...), a crash or a sanitizer report is a finding.
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_common.hpp"
#include "normlab/backend/cpu/cpu.hpp"
#include "normlab/core/error.hpp"
#include "normlab/io/safetensors.hpp"

namespace nl = normlab;
namespace io = normlab::io;
using nl::Cpu;

namespace {

constexpr const char* kHarness = "fuzz_safetensors";

/// Calls f(), which must throw normlab::Error; `what` says what was tried.
template <class F>
void expect_error(F&& f, const std::string& what) {
  try {
    f();
  } catch (const nl::Error&) {
    return;
  }
  normlab_fuzz::finding(kHarness, what + " did not throw normlab::Error");
}

/// Reads every tensor of `r` as its kind allows, and as the other kind
/// (which must throw).
void read_all(const io::SafetensorsReader& r) {
  for (const io::TensorInfo& t : r.tensors()) {
    if (io::is_floating(t.dtype)) {
      const auto f = r.read<float, Cpu>(t.name);
      const auto d = r.read_exact<double, Cpu>(t.name, t.shape);
      if (f.shape() != t.shape || d.shape() != t.shape)
        normlab_fuzz::finding(kHarness, "tensor '" + t.name + "' read with another shape");
      expect_error([&] { (void)r.read<int64_t, Cpu>(t.name); },
                   "reading floating tensor '" + t.name + "' as int64");
    } else {
      const auto i = r.read_exact<int64_t, Cpu>(t.name, t.shape);
      if (i.shape() != t.shape)
        normlab_fuzz::finding(kHarness, "tensor '" + t.name + "' read with another shape");
      expect_error([&] { (void)r.read<float, Cpu>(t.name); },
                   "reading integer tensor '" + t.name + "' as float");
    }
  }
  const std::string absent = r.tensors().empty() ? "x" : r.tensors().back().name + "~";
  if (!r.contains(absent))
    expect_error([&] { (void)r.info(absent); }, "info() of a missing tensor");
}

/// Same values; NaN equals any NaN (a float NaN read as double may change payload).
template <class T>
bool same_values(const std::vector<T>& a, const std::vector<T>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(a[i]) && std::isnan(b[i])) continue;
      if (std::bit_cast<uint64_t>(static_cast<double>(a[i])) !=
          std::bit_cast<uint64_t>(static_cast<double>(b[i])))
        return false;
    } else if (a[i] != b[i]) {
      return false;
    }
  }
  return true;
}

/// Writes `r`'s tensors and metadata again and checks that the result reads
/// back as the same file.
void round_trip(const io::SafetensorsReader& r) {
  io::SafetensorsWriter w;
  for (const io::TensorInfo& t : r.tensors()) {
    if (io::is_floating(t.dtype))
      w.add(t.name, r.read<double, Cpu>(t.name), t.dtype);
    else
      w.add(t.name, r.read<int64_t, Cpu>(t.name), t.dtype);
  }
  for (const auto& [key, value] : r.metadata()) w.set_metadata(key, value);
  const std::vector<uint8_t> bytes = w.to_bytes();
  uint64_t header_length = 0;
  std::memcpy(&header_length, bytes.data(), 8);
  if (header_length % 8 != 0)
    normlab_fuzz::finding(kHarness, "the writer's header is not padded to a multiple of 8");
  const auto back = io::SafetensorsReader::from_bytes(bytes, "round trip");
  if (back.metadata() != r.metadata())
    normlab_fuzz::finding(kHarness, "metadata changed in the round trip");
  if (back.tensors().size() != r.tensors().size())
    normlab_fuzz::finding(kHarness, "the number of tensors changed in the round trip");
  for (size_t k = 0; k < r.tensors().size(); ++k) {
    const io::TensorInfo &a = r.tensors()[k], &b = back.tensors()[k];
    if (a.name != b.name || a.dtype != b.dtype || a.shape != b.shape)
      normlab_fuzz::finding(kHarness, "entry '" + a.name + "' changed in the round trip");
    const bool values_kept = io::is_floating(a.dtype)
                                 ? same_values(r.read<double, Cpu>(a.name).to_vector(),
                                               back.read<double, Cpu>(b.name).to_vector())
                                 : same_values(r.read<int64_t, Cpu>(a.name).to_vector(),
                                               back.read<int64_t, Cpu>(b.name).to_vector());
    if (!values_kept)
      normlab_fuzz::finding(kHarness, "values of '" + a.name + "' changed in the round trip");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::optional<io::SafetensorsReader> r;
  try {
    r.emplace(io::SafetensorsReader::from_bytes(std::vector<uint8_t>(data, data + size), "fuzz"));
    read_all(*r);
  } catch (const nl::Error&) {
    return 0;  // a refused file: the documented outcome
  }
  try {
    round_trip(*r);
  } catch (const nl::Error& e) {
    normlab_fuzz::finding(kHarness,
                          std::string("round trip of an accepted file threw: ") + e.what());
  }
  return 0;
}
