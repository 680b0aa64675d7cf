// apps/normlab/experiments/wire.hpp — numbers, strings and lists as bytes and
// back, exactly (a double travels as its 8 bytes): how the ranks of a
// `normlab compare` spread over processes hand each other what their runs
// measured. Both ends are the same program on the same kind of machine, so
// values are written in the machine's byte order.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "normlab/core/error.hpp"

namespace normlab {
inline namespace v0 {

/// Appends values to a byte string.
class WireWriter {
 public:
  void u64(uint64_t v) { raw(v); }
  void i64(int64_t v) { raw(v); }
  void f64(double v) { raw(v); }
  void boolean(bool v) { raw(static_cast<uint8_t>(v ? 1 : 0)); }
  void str(std::string_view s) {
    u64(s.size());
    bytes_.append(s);
  }
  void f64s(const std::vector<double>& v) {
    u64(v.size());
    for (double x : v) f64(x);
  }
  void i64s(const std::vector<int64_t>& v) {
    u64(v.size());
    for (int64_t x : v) i64(x);
  }
  /// The bytes written so far (the writer is left empty).
  std::string take() { return std::move(bytes_); }

 private:
  template <class T>
  void raw(T v) {
    static_assert(std::is_trivially_copyable_v<T>);
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    bytes_.append(b, sizeof(T));
  }
  std::string bytes_;
};

/// Reads back what a WireWriter wrote, in the same order. Every read checks
/// that the bytes hold it (a count against the bytes left, before anything is
/// allocated) and throws Error naming `what` and the offset otherwise.
class WireReader {
 public:
  WireReader(std::string_view bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

  uint64_t u64() { return raw<uint64_t>("an unsigned count"); }
  int64_t i64() { return raw<int64_t>("an integer"); }
  double f64() { return raw<double>("a number"); }
  bool boolean() {
    const auto v = raw<uint8_t>("a flag");
    detail::check(v <= 1, what_, ": expected a flag (0 or 1) at byte ", pos_ - 1, ", found ",
                  static_cast<int>(v));
    return v == 1;
  }
  std::string str() {
    const uint64_t n = count(1, "a string");
    std::string s(bytes_.substr(pos_, n));
    pos_ += n;
    return s;
  }
  std::vector<double> f64s() {
    std::vector<double> v(count(sizeof(double), "a list of numbers"));
    for (double& x : v) x = f64();
    return v;
  }
  std::vector<int64_t> i64s() {
    std::vector<int64_t> v(count(sizeof(int64_t), "a list of integers"));
    for (int64_t& x : v) x = i64();
    return v;
  }
  bool at_end() const { return pos_ == bytes_.size(); }
  /// Throws unless every byte was read.
  void expect_end() const {
    detail::check(at_end(), what_, ": expected the end after byte ", pos_, ", found ",
                  bytes_.size() - pos_, " more bytes");
  }

 private:
  template <class T>
  T raw(const char* kind) {
    detail::check(bytes_.size() - pos_ >= sizeof(T), what_, ": expected ", kind, " (", sizeof(T),
                  " bytes) at byte ", pos_, ", found ", bytes_.size() - pos_, " bytes left");
    T v;
    std::memcpy(&v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  /// A count of items of `item_bytes` each that the bytes left can hold.
  size_t count(size_t item_bytes, const char* kind) {
    const uint64_t n = u64();
    const size_t left = bytes_.size() - pos_;
    detail::check(n <= left / item_bytes, what_, ": ", kind, " of ", n, " items of ", item_bytes,
                  " bytes at byte ", pos_, ", but only ", left, " bytes are left");
    return static_cast<size_t>(n);
  }

  std::string_view bytes_;
  std::string what_;
  size_t pos_ = 0;
};

}  // namespace v0
}  // namespace normlab
