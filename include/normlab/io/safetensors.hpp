// normlab/io/safetensors.hpp — read and write tensors in the safetensors
// format (https://github.com/huggingface/safetensors), the format PyTorch and
// Hugging Face checkpoints use, so a normlab model's weights can be compared
// with a PyTorch model's directly.
//
// Layout of a file:
//   8 bytes    N, the header length: little-endian uint64
//   N bytes    UTF-8 JSON header:
//              {"__metadata__": {"key": "value", ...},
//               "<name>": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
//   rest       the data buffer; each tensor's bytes are [begin, end) of it,
//              row-major and little-endian.
//
//   io::SafetensorsWriter w;
//   w.add("layers.0.fc1.weight", weight);           // Tensor<float, Cpu> -> F32
//   w.set_metadata("format", "pt");
//   w.write("model.safetensors");
//   auto r = io::SafetensorsReader::open("model.safetensors");
//   auto w0 = r.read_exact<float, Cpu>("layers.0.fc1.weight", Shape{512, 128});
#pragma once

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "normlab/core/dtype.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/shape.hpp"
#include "normlab/core/tensor.hpp"
#include "normlab/io/file.hpp"
#include "normlab/io/json.hpp"

namespace normlab {
inline namespace v0 {
namespace io {

static_assert(std::endian::native == std::endian::little,
              "normlab::io copies safetensors' little-endian data with memcpy; a big-endian "
              "host needs byte swaps in io/safetensors.hpp");

/// The safetensors element types normlab reads and writes (F16, BF16, bool,
/// and the small integer types of the format are not supported).
enum class DType { F32, F64, I64, I32 };

/// The name a safetensors header uses: "F32", "F64", "I64", "I32".
constexpr std::string_view to_string(DType d) {
  switch (d) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I64:
      return "I64";
    case DType::I32:
      return "I32";
  }
  return "?";
}

/// Bytes per element.
constexpr uint64_t dtype_size(DType d) {
  return d == DType::F64 || d == DType::I64 ? 8 : 4;
}

constexpr bool is_floating(DType d) {
  return d == DType::F32 || d == DType::F64;
}

/// The DType named `s`, or nullopt when normlab does not support it.
inline std::optional<DType> parse_dtype(std::string_view s) {
  for (DType d : {DType::F32, DType::F64, DType::I64, DType::I32})
    if (to_string(d) == s) return d;
  return std::nullopt;
}

/// The DType a Tensor<Scalar> is written as by default: float F32, double F64, int64 I64.
template <Element Scalar>
constexpr DType default_dtype() {
  if constexpr (std::is_same_v<Scalar, float>)
    return DType::F32;
  else if constexpr (std::is_same_v<Scalar, double>)
    return DType::F64;
  else
    return DType::I64;
}

/// One tensor of a file: its bytes are [begin, end) of the data buffer.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;
};

namespace detail {

/// `n` values of type Stored copied out of little-endian bytes at `p`.
template <class Stored>
std::vector<Stored> load(const uint8_t* p, size_t n) {
  std::vector<Stored> v(n);
  if (n) std::memcpy(v.data(), p, n * sizeof(Stored));
  return v;
}

template <class To, class From>
std::vector<To> convert(const std::vector<From>& v) {
  if constexpr (std::is_same_v<To, From>)
    return v;
  else
    return std::vector<To>(v.begin(), v.end());
}

/// The `n` elements at `p`, stored as `d`, converted by value to Scalar.
/// Requires: is_floating(d) == FloatingElement<Scalar>.
template <Element Scalar>
std::vector<Scalar> decode(const uint8_t* p, size_t n, DType d) {
  if constexpr (FloatingElement<Scalar>)
    return d == DType::F32 ? convert<Scalar>(load<float>(p, n))
                           : convert<Scalar>(load<double>(p, n));
  else
    return d == DType::I64 ? load<int64_t>(p, n) : convert<Scalar>(load<int32_t>(p, n));
}

template <class Stored, class Scalar>
void append(std::vector<uint8_t>& out, const std::vector<Scalar>& v) {
  const std::vector<Stored> s = convert<Stored>(v);
  const size_t at = out.size();
  out.resize(at + s.size() * sizeof(Stored));
  if (!s.empty()) std::memcpy(out.data() + at, s.data(), s.size() * sizeof(Stored));
}

/// `v` as little-endian bytes of dtype `d`; int64 -> I32 checks every value's range.
/// Requires: is_floating(d) == FloatingElement<Scalar>.
template <Element Scalar>
std::vector<uint8_t> encode(const std::vector<Scalar>& v, DType d, const std::string& name) {
  std::vector<uint8_t> out;
  if constexpr (FloatingElement<Scalar>) {
    if (d == DType::F32)
      append<float>(out, v);
    else
      append<double>(out, v);
  } else if (d == DType::I64) {
    append<int64_t>(out, v);
  } else {
    for (size_t i = 0; i < v.size(); ++i)
      normlab::detail::check(std::in_range<int32_t>(v[i]), "safetensors: tensor '", name,
                             "' cannot be written as I32: element ", i, " is ", v[i], ", outside [",
                             std::numeric_limits<int32_t>::min(), ", ",
                             std::numeric_limits<int32_t>::max(), "]");
    append<int32_t>(out, v);
  }
  return out;
}

inline bool valid_utf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = json::detail::utf8_sequence_length(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// A JSON value as it appeared, cut short for a message.
inline std::string excerpt(const json::Value& v) {
  constexpr size_t kMax = 60;
  std::string s = json::dump_compact(v);
  return s.size() <= kMax ? s : s.substr(0, kMax) + "...";
}

}  // namespace detail

/// Reads a safetensors file, held in memory whole.
///
/// Validation happens once, when the reader is made, and follows the
/// reference implementation: the header must be a JSON object whose entries
/// each have "dtype", "shape" (non-negative integers) and "data_offsets"
/// ([begin, end], end - begin == numel * dtype size); "__metadata__", when
/// present, maps strings to strings; and the tensors' byte ranges must cover
/// the data buffer exactly — no overlaps and no gaps, in any order in the
/// header. Unknown keys inside a tensor entry are ignored, as the reference
/// does. Every violation throws Error naming the file and saying what was
/// expected and what was found.
class SafetensorsReader {
 public:
  /// Maps and validates the file at `path`; every error names the path.
  ///
  /// The length prefix and the header are checked (offsets against the
  /// file's real size) before any tensor data is touched, and the data is not
  /// read at all until read() asks for a tensor: the file is memory-mapped,
  /// so opening a checkpoint costs its header, and a file whose header is
  /// wrong is refused at once however large it is. The file must not be
  /// truncated while the reader lives (files written by SafetensorsWriter
  /// are replaced by a rename, which leaves a mapped file intact).
  static SafetensorsReader open(const std::string& path) {
    auto file = std::make_shared<MappedFile>(MappedFile::open(path, "safetensors"));
    SafetensorsReader r;
    r.source_ = path;
    r.bytes_ = {reinterpret_cast<const uint8_t*>(file->bytes().data()), file->size()};
    r.owner_ = std::move(file);
    r.parse(r.bytes_.size());
    return r;
  }

  /// Validates `bytes`, a whole safetensors file; errors name `source_name`.
  static SafetensorsReader from_bytes(std::vector<uint8_t> bytes, std::string source_name) {
    auto owned = std::make_shared<const std::vector<uint8_t>>(std::move(bytes));
    SafetensorsReader r;
    r.bytes_ = {owned->data(), owned->size()};
    r.owner_ = std::move(owned);
    r.source_ = std::move(source_name);
    r.parse(r.bytes_.size());
    return r;
  }

  /// The file's name as errors give it.
  const std::string& source_name() const { return source_; }
  /// Every tensor, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool contains(const std::string& name) const { return index_.contains(name); }
  /// The entry of `name`; throws Error naming the key and the closest names present.
  const TensorInfo& info(const std::string& name) const {
    const auto it = index_.find(name);
    if (it == index_.end()) throw Error(missing_message(name));
    return tensors_[it->second];
  }
  /// The "__metadata__" strings (empty when the header has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  /// Tensor `name` as a Tensor<Scalar, Backend>.
  ///
  /// Requires: the stored dtype is floating (F32, F64) for floating Scalar and an
  /// integer (I64, I32) for int64 Scalar; throws Error otherwise.
  /// Ensures: F32 <-> F64 and I32 -> I64 convert by value (F64 -> float
  /// rounds); the shape is the stored shape.
  template <Element Scalar, class Backend>
  Tensor<Scalar, Backend> read(const std::string& name) const {
    const TensorInfo& t = info(name);
    normlab::detail::check(is_floating(t.dtype) == FloatingElement<Scalar>, source_, ": tensor '",
                           name, "' has dtype ", to_string(t.dtype), ", which cannot be read as ",
                           dtype_name<Scalar>(), " (floating and integer types do not convert)");
    const uint8_t* p = bytes_.data() + data_start_ + t.begin;
    return Tensor<Scalar, Backend>::from_vector(
        t.shape, detail::decode<Scalar>(p, static_cast<size_t>(t.shape.numel()), t.dtype));
  }

  /// read(name), after checking that the stored shape is `expected`; the
  /// error names the key, the expected and the found shape.
  template <Element Scalar, class Backend>
  Tensor<Scalar, Backend> read_exact(const std::string& name, const Shape& expected) const {
    const TensorInfo& t = info(name);
    normlab::detail::check(t.shape == expected, source_, ": tensor '", name, "' has shape ",
                           t.shape, ", expected ", expected);
    return read<Scalar, Backend>(name);
  }

 private:
  SafetensorsReader() = default;

  /// Checks the prefix and the header of bytes_, a file of `file_size` bytes.
  void parse(uint64_t file_size) {
    const std::string& src = source_;
    normlab::detail::check(file_size >= 8, src,
                           ": not a safetensors file: expected at least 8 bytes (the "
                           "little-endian header length), found ",
                           file_size, " bytes");
    uint64_t n = 0;
    std::memcpy(&n, bytes_.data(), 8);
    const uint64_t after_prefix = file_size - 8;
    normlab::detail::check(n <= after_prefix, src, ": header length ", n,
                           " is larger than the file: only ", after_prefix,
                           " bytes follow the 8-byte length prefix");
    normlab::detail::check(n <= kMaxHeaderBytes, src, ": header length ", n,
                           " exceeds the limit of ", kMaxHeaderBytes,
                           " bytes (the reference reader's limit too)");
    data_start_ = 8 + static_cast<size_t>(n);
    const uint64_t data_size = file_size - data_start_;

    json::Value header;
    try {
      header = json::parse(std::string_view(reinterpret_cast<const char*>(bytes_.data() + 8),
                                            static_cast<size_t>(n)),
                           "header");
    } catch (const Error& e) {
      throw Error(normlab::detail::concat(src, ": header is not valid JSON: ", e.what()));
    }
    normlab::detail::check(header.is_object(), src, ": header must be a JSON object, found ",
                           header.describe());
    for (const auto& [key, value] : header.as_object()) {
      if (key == "__metadata__")
        parse_metadata(value);
      else
        tensors_.push_back(parse_entry(key, value, data_size));
    }
    check_coverage(data_size);
    std::sort(tensors_.begin(), tensors_.end(),
              [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
    for (size_t i = 0; i < tensors_.size(); ++i) index_.emplace(tensors_[i].name, i);
  }

  void parse_metadata(const json::Value& m) {
    normlab::detail::check(m.is_object(), source_,
                           ": \"__metadata__\" must be an object of string values, found ",
                           m.describe());
    for (const auto& [key, value] : m.as_object()) {
      normlab::detail::check(value.is_string(), source_, ": \"__metadata__\" value of key '", key,
                             "' must be a string, found ", value.describe());
      metadata_.emplace(key, value.as_string());
    }
  }

  /// The entry `name` of the header, checked against itself and the data size.
  TensorInfo parse_entry(const std::string& name, const json::Value& e, uint64_t data_size) const {
    const std::string where = normlab::detail::concat(source_, ": tensor '", name, "'");
    normlab::detail::check(e.is_object(), where,
                           ": expected an object with \"dtype\", \"shape\" and "
                           "\"data_offsets\", found ",
                           e.describe());
    const json::Object& o = e.as_object();
    for (const char* key : {"dtype", "shape", "data_offsets"})
      normlab::detail::check(o.contains(key), where, " has no \"", key,
                             "\" (a tensor entry needs \"dtype\", \"shape\" and \"data_offsets\"",
                             "; found ", e.describe(), ")");
    TensorInfo t;
    t.name = name;

    const json::Value& dtype = o.at("dtype");
    normlab::detail::check(dtype.is_string(), where,
                           ": \"dtype\" must be a string such as \"F32\", found ",
                           dtype.describe());
    const std::optional<DType> d = parse_dtype(dtype.as_string());
    normlab::detail::check(d.has_value(), where, " has dtype \"", dtype.as_string(),
                           "\", which normlab does not support (expected F32, F64, I64 or I32)");
    t.dtype = *d;

    // Checked by hand so that a huge shape cannot overflow numel().
    const json::Value& shape = o.at("shape");
    const auto non_negative_ints = [](const json::Value& v) {
      return v.is_array() &&
             std::all_of(v.as_array().begin(), v.as_array().end(),
                         [](const json::Value& x) { return x.is_int() && x.as_int() >= 0; });
    };
    normlab::detail::check(non_negative_ints(shape), where,
                           ": \"shape\" must be an array of non-negative integers, found ",
                           detail::excerpt(shape));
    normlab::detail::check(shape.size() <= static_cast<size_t>(kMaxDims), where, " has ",
                           shape.size(), " dims, more than the ", kMaxDims, " normlab supports");
    std::vector<int64_t> dims;
    for (const json::Value& x : shape.as_array()) dims.push_back(x.as_int());
    const bool empty = std::find(dims.begin(), dims.end(), 0) != dims.end();
    uint64_t numel = 1;
    const uint64_t max_numel =
        static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) / dtype_size(t.dtype);
    for (int64_t x : dims) {
      if (empty) break;
      normlab::detail::check(numel <= max_numel / static_cast<uint64_t>(x), where, ": shape ",
                             detail::excerpt(shape), " is too large (over 2^63 bytes)");
      numel *= static_cast<uint64_t>(x);
    }
    t.shape = Shape(std::move(dims));

    const json::Value& offsets = o.at("data_offsets");
    normlab::detail::check(non_negative_ints(offsets) && offsets.size() == 2 &&
                               offsets.at(size_t{0}).as_int() <= offsets.at(1).as_int(),
                           where,
                           ": \"data_offsets\" must be [begin, end] with integers 0 <= begin "
                           "<= end, found ",
                           detail::excerpt(offsets));
    t.begin = static_cast<uint64_t>(offsets.at(size_t{0}).as_int());
    t.end = static_cast<uint64_t>(offsets.at(1).as_int());

    const uint64_t nbytes = static_cast<uint64_t>(t.shape.numel()) * dtype_size(t.dtype);
    normlab::detail::check(t.end - t.begin == nbytes, where, " with dtype ", to_string(t.dtype),
                           " and shape ", t.shape, " needs ", nbytes,
                           " bytes, but its data_offsets [", t.begin, ", ", t.end, "] span ",
                           t.end - t.begin, " bytes");
    normlab::detail::check(t.end <= data_size, source_, ": truncated file: tensor '", name,
                           "' needs bytes [", t.begin, ", ", t.end, ") but the data buffer holds ",
                           data_size, " bytes");
    return t;
  }

  /// The tensors' byte ranges, sorted, must tile [0, data_size) exactly.
  void check_coverage(uint64_t data_size) const {
    std::vector<const TensorInfo*> by_offset;
    for (const TensorInfo& t : tensors_) by_offset.push_back(&t);
    std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
      return std::pair(a->begin, a->end) < std::pair(b->begin, b->end);
    });
    constexpr const char* kRule =
        " (safetensors requires the tensors to cover the data buffer exactly, with no gaps)";
    uint64_t next = 0;
    const TensorInfo* prev = nullptr;
    for (const TensorInfo* t : by_offset) {
      normlab::detail::check(t->begin >= next, source_, ": tensors '", prev ? prev->name : "",
                             "' [", prev ? prev->begin : 0, ", ", next, ") and '", t->name, "' [",
                             t->begin, ", ", t->end, ") overlap in the data buffer");
      normlab::detail::check(t->begin == next, source_, ": bytes [", next, ", ", t->begin,
                             ") of the data buffer belong to no tensor", kRule);
      next = t->end;
      prev = t;
    }
    normlab::detail::check(next == data_size, source_, ": bytes [", next, ", ", data_size,
                           ") at the end of the data buffer belong to no tensor", kRule);
  }

  /// "no tensor named 'x'" plus the present names sharing the longest prefix with it.
  std::string missing_message(const std::string& name) const {
    std::string msg = normlab::detail::concat(source_, ": no tensor named '", name, "'");
    if (tensors_.empty()) return msg + "; the file holds no tensors";
    const auto shared = [&](const std::string& s) {
      return std::mismatch(s.begin(), s.end(), name.begin(), name.end()).first - s.begin();
    };
    std::vector<const TensorInfo*> close;
    for (const TensorInfo& t : tensors_) close.push_back(&t);
    std::stable_sort(close.begin(), close.end(), [&](const TensorInfo* a, const TensorInfo* b) {
      return shared(a->name) > shared(b->name);
    });
    constexpr size_t kListed = 5;
    msg += normlab::detail::concat("; the file holds ", tensors_.size(), " tensors, ",
                                   tensors_.size() <= kListed ? "" : "closest: ");
    for (size_t i = 0; i < close.size() && i < kListed; ++i)
      msg += (i ? ", '" : "'") + close[i]->name + "'";
    return msg;
  }

  /// The longest header accepted: 100 MB, as in the reference implementation.
  static constexpr uint64_t kMaxHeaderBytes = 100'000'000;

  std::string source_;
  std::shared_ptr<const void> owner_;  // the vector or the mapping bytes_ views
  std::span<const uint8_t> bytes_;     // the whole file
  size_t data_start_ = 0;              // offset of the data buffer in bytes_
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

/// Builds a safetensors file.
///
/// Ensures (of the output): the header is compact JSON with "__metadata__"
/// first (when set) and the tensors in name order, padded with spaces to a
/// multiple of 8 bytes, as the reference writer does; the data buffer holds
/// the tensors in name order, contiguous, with no gaps (the reference writer
/// orders by dtype alignment, then name; readers accept any order).
class SafetensorsWriter {
 public:
  /// Copies `t`'s elements (so later changes to `t` are not written), stored
  /// as `as` or by default as default_dtype<Scalar>(). float and double convert to
  /// either F32 or F64 (double -> F32 rounds, overflowing to inf as in
  /// PyTorch); int64 converts to I64 or I32.
  ///
  /// Requires: `t` defined; `name` UTF-8, not "__metadata__", not added
  /// before; `as` of Scalar's kind (floating or integer); for I32 every value
  /// within int32's range. Throws Error naming the tensor otherwise.
  template <Element Scalar, class Backend>
  void add(const std::string& name, const Tensor<Scalar, Backend>& t,
           std::optional<DType> as = {}) {
    normlab::detail::check(t.defined(), "safetensors: cannot add tensor '", name,
                           "': it is undefined");
    normlab::detail::check(name != "__metadata__",
                           "safetensors: \"__metadata__\" is reserved and cannot name a tensor");
    normlab::detail::check(detail::valid_utf8(name), "safetensors: tensor name '", name,
                           "' is not valid UTF-8");
    normlab::detail::check(!entries_.contains(name), "safetensors: duplicate tensor name '", name,
                           "' (each name may be added once)");
    const DType d = as.value_or(default_dtype<Scalar>());
    normlab::detail::check(is_floating(d) == FloatingElement<Scalar>, "safetensors: cannot write ",
                           dtype_name<Scalar>(), " tensor '", name, "' as ", to_string(d),
                           " (floating and integer types do not convert)");
    entries_.emplace(name, Entry{d, t.shape(), detail::encode(t.to_vector(), d, name)});
  }

  /// Sets (or replaces) one "__metadata__" string.
  /// Requires: key and value UTF-8 (throws Error otherwise).
  void set_metadata(std::string key, std::string value) {
    normlab::detail::check(detail::valid_utf8(key) && detail::valid_utf8(value),
                           "safetensors: metadata key '", key, "' or its value is not valid UTF-8");
    metadata_.insert_or_assign(std::move(key), std::move(value));
  }

  /// The whole file.
  std::vector<uint8_t> to_bytes() const {
    json::Object header;
    if (!metadata_.empty()) {
      json::Object m;
      for (const auto& [k, v] : metadata_) m.set(k, v);
      header.set("__metadata__", std::move(m));
    }
    uint64_t offset = 0;
    for (const auto& [name, e] : entries_) {
      const uint64_t end = offset + e.bytes.size();
      header.set(name, json::Object{{"dtype", to_string(e.dtype)},
                                    {"shape", json::Array(e.shape.begin(), e.shape.end())},
                                    {"data_offsets", json::Array{offset, end}}});
      offset = end;
    }
    std::string text = json::dump_compact(header);
    text.append((8 - text.size() % 8) % 8, ' ');

    const uint64_t n = text.size();
    std::vector<uint8_t> out(8 + text.size() + offset);
    std::memcpy(out.data(), &n, 8);
    std::memcpy(out.data() + 8, text.data(), text.size());
    size_t at = 8 + text.size();
    for (const auto& [name, e] : entries_) {
      if (!e.bytes.empty()) std::memcpy(out.data() + at, e.bytes.data(), e.bytes.size());
      at += e.bytes.size();
    }
    return out;
  }

  /// Writes to_bytes() to `path` with write_file_atomically: a crash or a
  /// full disk leaves the previous file (or none), never a part of this one.
  /// Errors name the path and the OS reason.
  void write(const std::string& path) const {
    const std::vector<uint8_t> bytes = to_bytes();
    write_file_atomically(path, std::as_bytes(std::span(bytes.data(), bytes.size())),
                          "safetensors");
  }

 private:
  struct Entry {
    DType dtype;
    Shape shape;
    std::vector<uint8_t> bytes;  // little-endian elements of `dtype`
  };
  std::map<std::string, Entry> entries_;  // name order is file order
  std::map<std::string, std::string> metadata_;
};

}  // namespace io
}  // namespace v0
}  // namespace normlab
