// safetensors: round trips of every dtype, the exact bytes of a tiny file,
// headers in any order, and the message of every malformed file.
#include <bit>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "normlab/io/io.hpp"

#include "testing.hpp"

namespace normlab::testing {
namespace {

using io::DType;
using io::SafetensorsReader;
using io::SafetensorsWriter;
using Bytes = std::vector<uint8_t>;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + name;
}

void write_bytes(const std::string& path, const Bytes& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
}

Bytes le64(uint64_t n) {
  Bytes b;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(n >> (8 * i)));
  return b;
}

/// A file: 8-byte little-endian header length, `header` as is, then `data`.
Bytes file_bytes(const std::string& header, const Bytes& data = {}) {
  Bytes b = le64(header.size());
  b.insert(b.end(), header.begin(), header.end());
  b.insert(b.end(), data.begin(), data.end());
  return b;
}

/// Little-endian bytes of `values`, built byte by byte (not by memcpy).
template <class T>
Bytes le_bytes(const std::vector<T>& values) {
  Bytes b;
  for (const T v : values) {
    uint64_t bits = 0;
    if constexpr (sizeof(T) == 4)
      bits = std::bit_cast<uint32_t>(v);
    else
      bits = std::bit_cast<uint64_t>(v);
    for (size_t i = 0; i < sizeof(T); ++i) b.push_back(static_cast<uint8_t>(bits >> (8 * i)));
  }
  return b;
}

/// r.read<T, Cpu>(name), callable inside EXPECT_EQ (no comma in the template arguments).
template <class T>
Tensor<T, Cpu> read(const SafetensorsReader& r, const std::string& name) {
  return r.read<T, Cpu>(name);
}

/// Expects from_bytes(bytes, "bad.safetensors") to fail with every fragment.
void expect_invalid(const Bytes& bytes, const std::vector<std::string>& fragments) {
  expect_error([&] { (void)SafetensorsReader::from_bytes(bytes, "bad.safetensors"); }, fragments);
}

/// A header with one tensor "w" whose entry is `entry`, then `data_size` zero bytes.
Bytes one_tensor(const std::string& entry, size_t data_size) {
  return file_bytes(R"({"w":)" + entry + "}", Bytes(data_size, 0));
}

TEST(Safetensors, RoundTripsEveryDtypeWithMetadata) {
  const TensorF f = TensorF::from({{1.5f, -2.25f, 3e-38f}, {3e38f, 0.f, -0.f}});
  const TensorD d = TensorD::from({0.1, -1e-300, 1.7976931348623157e308});
  const TensorI i64 = TensorI::from(
      {std::numeric_limits<int64_t>::min(), -1, 0, std::numeric_limits<int64_t>::max()});
  const TensorI i32 =
      TensorI::from({std::numeric_limits<int32_t>::min(), 7, std::numeric_limits<int32_t>::max()});
  const TensorD scalar = TensorD::scalar(2.5);             // 0-d
  const TensorF empty = TensorF::zeros(Shape{0, 3});       // no elements
  const TensorI empty_i = TensorI::zeros(Shape{2, 0, 4});  // no elements
  const TensorD d_as_f32 = TensorD::from({0.1, 1e40});     // rounds, overflows to inf

  SafetensorsWriter w;
  w.add("layers.0.fc.weight", f);
  w.add("double", d);
  w.add("ids", i64);
  w.add("ids32", i32, DType::I32);
  w.add("scalar", scalar);
  w.add("empty", empty);
  w.add("empty_ids", empty_i, DType::I32);
  w.add("narrowed", d_as_f32, DType::F32);
  w.add("widened", f, DType::F64);
  w.set_metadata("format", "pt");
  w.set_metadata("note", "h\xC3\xA9llo \"quoted\"");
  w.set_metadata("format", "normlab");  // replaces
  const std::string path = temp_path("normlab_roundtrip.safetensors");
  w.write(path);

  const SafetensorsReader r = SafetensorsReader::open(path);
  EXPECT_EQ(r.source_name(), path);
  std::vector<std::string> names;
  for (const auto& t : r.tensors()) names.push_back(t.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"double", "empty", "empty_ids", "ids", "ids32",
                                      "layers.0.fc.weight", "narrowed", "scalar", "widened"}));
  EXPECT_EQ(r.metadata(), (std::map<std::string, std::string>{
                              {"format", "normlab"}, {"note", "h\xC3\xA9llo \"quoted\""}}));

  // Written in name order, contiguous from 0.
  uint64_t next = 0;
  for (const auto& t : r.tensors()) {
    EXPECT_EQ(t.begin, next) << t.name;
    EXPECT_EQ(t.end - t.begin, static_cast<uint64_t>(t.shape.numel()) * io::dtype_size(t.dtype));
    next = t.end;
  }

  EXPECT_EQ(r.info("layers.0.fc.weight").dtype, DType::F32);
  EXPECT_EQ(r.info("double").dtype, DType::F64);
  EXPECT_EQ(r.info("ids").dtype, DType::I64);
  EXPECT_EQ(r.info("ids32").dtype, DType::I32);
  EXPECT_EQ(r.info("narrowed").dtype, DType::F32);
  EXPECT_EQ(r.info("widened").dtype, DType::F64);
  EXPECT_EQ(r.info("scalar").shape, Shape{});
  EXPECT_EQ(r.info("empty").shape, (Shape{0, 3}));
  EXPECT_EQ(r.info("empty_ids").shape, (Shape{2, 0, 4}));
  EXPECT_TRUE(r.contains("ids"));
  EXPECT_FALSE(r.contains("missing"));

  const TensorF f2 = r.read<float, Cpu>("layers.0.fc.weight");
  EXPECT_EQ(f2.shape(), f.shape());
  EXPECT_EQ(f2.to_vector(), f.to_vector());
  EXPECT_TRUE(std::signbit(f2.to_vector()[5]));
  EXPECT_EQ(read<double>(r, "double").to_vector(), d.to_vector());
  EXPECT_EQ(read<int64_t>(r, "ids").to_vector(), i64.to_vector());
  EXPECT_EQ(read<int64_t>(r, "ids32").to_vector(), i32.to_vector());
  const TensorD s2 = r.read<double, Cpu>("scalar");
  EXPECT_EQ(s2.ndim(), 0);
  EXPECT_EQ(s2.item(), 2.5);
  EXPECT_EQ(read<float>(r, "empty").shape(), (Shape{0, 3}));
  EXPECT_EQ(read<int64_t>(r, "empty_ids").numel(), 0);
  EXPECT_EQ(read<double>(r, "narrowed").to_vector(),
            (std::vector<double>{static_cast<double>(0.1f), HUGE_VAL}));
  EXPECT_EQ(read<float>(r, "widened").to_vector(), f.to_vector());
}

TEST(Safetensors, ReadConvertsByValueWithinAKind) {
  SafetensorsWriter w;
  w.add("f32", TensorF::from({0.1f, -3.f}));
  w.add("f64", TensorD::from({0.1, 1e300}));
  w.add("i32", TensorI::from({-5, 6}), DType::I32);
  w.add("i64", TensorI::from({1, 2}));
  const SafetensorsReader r = SafetensorsReader::from_bytes(w.to_bytes(), "conv.safetensors");
  EXPECT_EQ(read<double>(r, "f32").to_vector(),
            (std::vector<double>{static_cast<double>(0.1f), -3.0}));
  EXPECT_EQ(read<float>(r, "f64").to_vector(),
            (std::vector<float>{0.1f, std::numeric_limits<float>::infinity()}));
  EXPECT_EQ(read<int64_t>(r, "i32").to_vector(), (std::vector<int64_t>{-5, 6}));

  expect_error([&] { (void)r.read<int64_t, Cpu>("f32"); },
               {"conv.safetensors: tensor 'f32' has dtype F32, which cannot be read as int64",
                "floating and integer types do not convert"});
  expect_error([&] { (void)r.read<float, Cpu>("i64"); },
               {"tensor 'i64' has dtype I64, which cannot be read as float32"});
  expect_error([&] { (void)r.read<double, Cpu>("i32"); },
               {"tensor 'i32' has dtype I32, which cannot be read as float64"});
}

TEST(Safetensors, ByteLevelLayoutOfATinyFile) {
  SafetensorsWriter w;
  w.add("b", TensorF::from({1.5f, -2.f}));
  w.add("a", TensorI::from({7}), DType::I32);
  w.set_metadata("k", "v");
  const std::string header =
      R"({"__metadata__":{"k":"v"},"a":{"dtype":"I32","shape":[1],"data_offsets":[0,4]},)"
      R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})";
  ASSERT_EQ(header.size(), 133u);  // padded with 3 spaces to 136, a multiple of 8
  const std::string file = std::string("\x88\0\0\0\0\0\0\0", 8)  // 136, little-endian
                           + header + "   "                      // JSON, padding
                           + std::string("\x07\0\0\0", 4)        // int32 7
                           + std::string("\0\0\xC0\x3F", 4)      // float 1.5 = 0x3FC00000
                           + std::string("\0\0\0\xC0", 4);       // float -2 = 0xC0000000
  const Bytes expected(file.begin(), file.end());
  EXPECT_EQ(w.to_bytes(), expected);

  const std::string path = temp_path("normlab_tiny.safetensors");
  w.write(path);
  std::ifstream in(path, std::ios::binary);
  const Bytes on_disk((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(on_disk, expected);

  // No tensors, no metadata: "{}" padded to 8.
  EXPECT_EQ(SafetensorsWriter().to_bytes(),
            (Bytes{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' ', ' ', ' ', ' ', ' '}));
  EXPECT_TRUE(SafetensorsReader::from_bytes(SafetensorsWriter().to_bytes(), "e").tensors().empty());
}

TEST(Safetensors, HeaderInAnyOrderReads) {
  // Tensors listed against offset order, metadata in the middle, an unknown
  // key inside an entry (ignored, as the reference does), and whitespace.
  const std::string header = R"({
    "z": {"shape": [2], "data_offsets": [8, 24], "dtype": "F64", "comment": "ignored"},
    "__metadata__": {"b": "2", "a": "1"},
    "m": {"dtype": "I32", "shape": [], "data_offsets": [24, 28]},
    "a": {"dtype": "I64", "shape": [1, 1], "data_offsets": [0, 8]},
    "e": {"dtype": "F32", "shape": [0], "data_offsets": [28, 28]}
  })";
  Bytes data = le_bytes(std::vector<int64_t>{-3});
  const Bytes z = le_bytes(std::vector<double>{0.5, -8.0});
  const Bytes m = le_bytes(std::vector<int32_t>{-123456});
  data.insert(data.end(), z.begin(), z.end());
  data.insert(data.end(), m.begin(), m.end());
  const SafetensorsReader r = SafetensorsReader::from_bytes(file_bytes(header, data), "any");
  ASSERT_EQ(r.tensors().size(), 4u);
  EXPECT_EQ(r.tensors()[0].name, "a");  // sorted by name
  EXPECT_EQ(r.tensors()[3].name, "z");
  EXPECT_EQ(read<double>(r, "z").to_vector(), (std::vector<double>{0.5, -8.0}));
  EXPECT_EQ(read<int64_t>(r, "a").to_vector(), (std::vector<int64_t>{-3}));
  EXPECT_EQ(read<int64_t>(r, "a").shape(), (Shape{1, 1}));
  EXPECT_EQ(read<int64_t>(r, "m").item(), -123456);
  EXPECT_EQ(read<float>(r, "e").numel(), 0);
  EXPECT_EQ(r.metadata().at("a"), "1");
  EXPECT_EQ(r.info("z").begin, 8u);
  EXPECT_EQ(r.info("z").end, 24u);
}

TEST(Safetensors, ReadExactChecksTheShape) {
  SafetensorsWriter w;
  w.add("layers.0.attn.weight", TensorF::zeros(Shape{2, 3}));
  const SafetensorsReader r = SafetensorsReader::from_bytes(w.to_bytes(), "model.safetensors");
  EXPECT_EQ((r.read_exact<float, Cpu>("layers.0.attn.weight", Shape{2, 3}).shape()), (Shape{2, 3}));
  expect_error(
      [&] {
        (void)r.read_exact<float, Cpu>("layers.0.attn.weight", Shape{3, 2});
      },
      {"model.safetensors: tensor 'layers.0.attn.weight' has shape (2, 3), expected (3, 2)"});
  expect_error([&] { (void)r.read_exact<float, Cpu>("layers.0.attn.weight", Shape{6}); },
               {"has shape (2, 3), expected (6,)"});
  expect_error(
      [&] {
        (void)r.read_exact<float, Cpu>("layers.1.attn.weight", Shape{2, 3});
      },
      {"no tensor named 'layers.1.attn.weight'", "'layers.0.attn.weight'"});
}

TEST(Safetensors, MissingNameListsTheClosestNames) {
  SafetensorsWriter w;
  for (const char* n : {"a", "b", "layers.0.fc1.weight", "layers.0.fc1.bias", "layers.1.fc1.weight",
                        "layers.0.fc2.weight", "x", "y"})
    w.add(n, TensorF::zeros(Shape{1}));
  const SafetensorsReader r = SafetensorsReader::from_bytes(w.to_bytes(), "m.safetensors");
  expect_error([&] { (void)r.info("layers.0.fc1.wieght"); },
               {"m.safetensors: no tensor named 'layers.0.fc1.wieght'",
                "the file holds 8 tensors, closest: 'layers.0.fc1.weight', 'layers.0.fc1.bias', "
                "'layers.0.fc2.weight', 'layers.1.fc1.weight', 'a'"});
  const SafetensorsReader none = SafetensorsReader::from_bytes(SafetensorsWriter().to_bytes(), "e");
  expect_error([&] { (void)none.info("w"); },
               {"e: no tensor named 'w'; the file holds no tensors"});
}

TEST(SafetensorsErrors, FileLevel) {
  const std::string short_path = temp_path("normlab_short.safetensors");
  write_bytes(short_path, Bytes{1, 2, 3, 4, 5});
  expect_error(
      [&] { (void)SafetensorsReader::open(short_path); },
      {short_path + ": not a safetensors file: expected at least 8 bytes", "found 5 bytes"});
  expect_invalid(le64(100), {"bad.safetensors: header length 100 is larger than the file",
                             "only 0 bytes follow the 8-byte length prefix"});
  expect_invalid(
      Bytes{0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, '{'},
      {"header length 18446744073709551615 is larger than the file", "only 1 bytes follow"});
  expect_invalid(file_bytes(R"({"w": {"dtype": "F32",)"),
                 {"bad.safetensors: header is not valid JSON: header:1:23: expected a string key "
                  "after ',', found end of input"});
  expect_invalid(file_bytes(R"({"a": 1, "a": 2})"),
                 {"header is not valid JSON", "duplicate key \"a\""});
  expect_invalid(file_bytes(""), {"header is not valid JSON: header:1:1: expected a value"});
  expect_invalid(file_bytes("[1, 2]"),
                 {"bad.safetensors: header must be a JSON object, found array of 2 elements"});
  const std::string missing = temp_path("normlab_no_such.safetensors");
  expect_error([&] { (void)SafetensorsReader::open(missing); },
               {"safetensors: cannot read '" + missing + "'", "No such file or directory"});
}

TEST(SafetensorsErrors, TensorEntries) {
  expect_invalid(file_bytes(R"({"w": [1]})"),
                 {"bad.safetensors: tensor 'w': expected an object with \"dtype\", \"shape\" and "
                  "\"data_offsets\", found array of 1 element"});
  expect_invalid(file_bytes(R"({"w": {"shape": [], "data_offsets": [0, 4]}})", Bytes(4)),
                 {"bad.safetensors: tensor 'w' has no \"dtype\"",
                  "found object with keys \"shape\", \"data_offsets\""});
  expect_invalid(file_bytes(R"({"w": {"dtype": "F32", "data_offsets": [0, 4]}})", Bytes(4)),
                 {"tensor 'w' has no \"shape\""});
  expect_invalid(file_bytes(R"({"w": {"dtype": "F32", "shape": []}})"),
                 {"tensor 'w' has no \"data_offsets\""});
  expect_invalid(one_tensor(R"({"dtype": "BF16", "shape": [2], "data_offsets": [0, 4]})", 4),
                 {"bad.safetensors: tensor 'w' has dtype \"BF16\", which normlab does not support",
                  "expected F32, F64, I64 or I32"});
  expect_invalid(one_tensor(R"({"dtype": "f32", "shape": [1], "data_offsets": [0, 4]})", 4),
                 {"tensor 'w' has dtype \"f32\""});
  expect_invalid(one_tensor(R"({"dtype": 32, "shape": [1], "data_offsets": [0, 4]})", 4),
                 {"tensor 'w': \"dtype\" must be a string such as \"F32\", found number 32"});
}

TEST(SafetensorsErrors, Shapes) {
  const std::string msg = "tensor 'w': \"shape\" must be an array of non-negative integers, found ";
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [2, -1], "data_offsets": [0, 0]})", 0),
                 {msg + "[2,-1]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [2.5], "data_offsets": [0, 0]})", 0),
                 {msg + "[2.5]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [2.0], "data_offsets": [0, 8]})", 8),
                 {msg + "[2.0]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": ["2"], "data_offsets": [0, 8]})", 8),
                 {msg + "[\"2\"]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": 2, "data_offsets": [0, 8]})", 8),
                 {msg + "2"});
  expect_invalid(
      one_tensor(R"({"dtype": "F32", "shape": [1,1,1,1,1,1,1,1,1], "data_offsets": [0, 4]})", 4),
      {"tensor 'w' has 9 dims, more than the 8 normlab supports"});
  expect_invalid(one_tensor(R"({"dtype": "F64", "shape": [4294967296, 4294967296],
                                "data_offsets": [0, 8]})",
                            8),
                 {"tensor 'w': shape [4294967296,4294967296] is too large"});
}

TEST(SafetensorsErrors, OffsetsAndCoverage) {
  const std::string msg =
      "tensor 'w': \"data_offsets\" must be [begin, end] with integers 0 <= begin <= end, found ";
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [1], "data_offsets": [0]})", 4),
                 {msg + "[0]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [1], "data_offsets": [-4, 0]})", 4),
                 {msg + "[-4,0]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]})", 4),
                 {msg + "[4,0]"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [1], "data_offsets": "0-4"})", 4),
                 {msg + "\"0-4\""});
  // Byte count differs from numel * dtype size.
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 20]})", 20),
                 {"bad.safetensors: tensor 'w' with dtype F32 and shape (2, 3) needs 24 bytes, "
                  "but its data_offsets [0, 20] span 20 bytes"});
  expect_invalid(one_tensor(R"({"dtype": "I64", "shape": [], "data_offsets": [0, 4]})", 4),
                 {"tensor 'w' with dtype I64 and shape () needs 8 bytes", "span 4 bytes"});
  // Beyond the data buffer.
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]})", 16),
                 {"bad.safetensors: truncated file: tensor 'w' needs bytes [0, 24) but the data "
                  "buffer holds 16 bytes"});
  // Overlaps, gaps, and bytes no tensor owns.
  expect_invalid(file_bytes(R"({"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
                                "b": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                            Bytes(16)),
                 {"bad.safetensors: tensors 'a' [0, 16) and 'b' [8, 16) overlap in the data "
                  "buffer"});
  expect_invalid(file_bytes(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
                            Bytes(8)),
                 {"tensors 'a' [0, 8) and 'e' [4, 4) overlap"});
  expect_invalid(file_bytes(R"({"b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]},
                                "a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
                            Bytes(12)),
                 {"bad.safetensors: bytes [4, 8) of the data buffer belong to no tensor",
                  "cover the data buffer exactly, with no gaps"});
  expect_invalid(
      file_bytes(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", Bytes(8)),
      {"bytes [0, 4) of the data buffer belong to no tensor"});
  expect_invalid(one_tensor(R"({"dtype": "F32", "shape": [1], "data_offsets": [0, 4]})", 6),
                 {"bad.safetensors: bytes [4, 6) at the end of the data buffer belong to no "
                  "tensor"});
  expect_invalid(file_bytes("{}", Bytes(3)),
                 {"bytes [0, 3) at the end of the data buffer belong to no tensor"});
}

TEST(SafetensorsErrors, Metadata) {
  expect_invalid(file_bytes(R"({"__metadata__": {"epoch": 3}})"),
                 {"bad.safetensors: \"__metadata__\" value of key 'epoch' must be a string, found "
                  "number 3"});
  expect_invalid(file_bytes(R"({"__metadata__": ["a"]})"),
                 {"\"__metadata__\" must be an object of string values, found array of 1 element"});
}

TEST(SafetensorsErrors, Writer) {
  SafetensorsWriter w;
  w.add("w", TensorF::zeros(Shape{2}));
  expect_error([&] { w.add("w", TensorF::zeros(Shape{3})); },
               {"safetensors: duplicate tensor name 'w'"});
  expect_error([&] { w.add("__metadata__", TensorF::zeros(Shape{1})); },
               {"\"__metadata__\" is reserved"});
  expect_error([&] { w.add("undef", TensorF()); }, {"cannot add tensor 'undef': it is undefined"});
  expect_error([&] { w.add("bad\xFF", TensorF::zeros(Shape{1})); }, {"is not valid UTF-8"});
  expect_error([&] { w.set_metadata("k", "\xC3"); }, {"metadata key 'k'", "not valid UTF-8"});
  expect_error(
      [&] { w.add("f", TensorF::zeros(Shape{1}), DType::I64); },
      {"cannot write float32 tensor 'f' as I64", "floating and integer types do not convert"});
  expect_error([&] { w.add("i", TensorI::zeros(Shape{1}), DType::F32); },
               {"cannot write int64 tensor 'i' as F32"});
  expect_error(
      [&] {
        w.add("big", TensorI::from({1, 2147483648}), DType::I32);
      },
      {"tensor 'big' cannot be written as I32: element 1 is 2147483648, outside "
       "[-2147483648, 2147483647]"});
  expect_error([&] { w.add("small", TensorI::from({-2147483649}), DType::I32); },
               {"element 0 is -2147483649"});
  // Failed adds leave the writer as it was.
  const SafetensorsReader r = SafetensorsReader::from_bytes(w.to_bytes(), "w");
  ASSERT_EQ(r.tensors().size(), 1u);
  EXPECT_EQ(r.tensors()[0].name, "w");

  const std::string bad_path = temp_path("normlab_no_such_dir/out.safetensors");
  expect_error([&] { w.write(bad_path); },
               {"safetensors: cannot write '" + bad_path + "': No such file or directory"});
}

TEST(Safetensors, WriterCopiesTheTensorWhenAdded) {
  TensorF t = TensorF::from({1.f, 2.f});
  SafetensorsWriter w;
  w.add("t", t);
  t.fill_(9.f);
  const SafetensorsReader r = SafetensorsReader::from_bytes(w.to_bytes(), "copy");
  EXPECT_EQ(read<float>(r, "t").to_vector(), (std::vector<float>{1.f, 2.f}));
}

TEST(SafetensorsReader, AHugeFileWithABadHeaderIsRefusedBeforeItsDataIsRead) {
  // A sparse file of 1 TiB of zeros: its header length is 0, so its header
  // is not JSON. The header is checked before the data is read, so this is
  // the header's error, not an attempt to load a terabyte.
  const std::filesystem::path path = ::testing::TempDir() + "normlab_sparse_test.safetensors";
  { std::ofstream create(path, std::ios::binary); }
  std::error_code ec;
  std::filesystem::resize_file(path, uintmax_t(1) << 40, ec);
  if (ec) {
    std::filesystem::remove(path);
    GTEST_SKIP() << "this file system cannot hold a sparse 1 TiB file: " << ec.message();
  }
  expect_error([&] { (void)io::SafetensorsReader::open(path.string()); },
               {"normlab_sparse_test.safetensors: header is not valid JSON"});
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace normlab::testing
