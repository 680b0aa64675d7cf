// normlab/io/json.hpp — a small, strict JSON library for configs and
// safetensors headers.
//
//   json::Value cfg = json::parse_file("config.json");
//   const int64_t d_model = cfg.at("d_model").as_int();     // throws, naming the key
//   cfg["dropout"] = 0.1;                                  // inserts at the end
//   std::string text = json::dump(cfg);                    // pretty, round-trips
//
// Parsing follows RFC 8259 strictly: no comments, no trailing commas, no
// NaN/Infinity, UTF-8 only, and duplicate keys are rejected (a config or a
// checkpoint header naming one key twice is a bug, not a choice). Integers
// that fit int64 stay exact; every other number is a double. Objects keep
// their members in insertion order, so a config written back out reads like
// the one a person wrote. Every failure throws normlab::Error naming the
// source, the line:column, and what was expected against what was found.
#pragma once

#include <algorithm>
#include <bit>
#include <charconv>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <initializer_list>
#include <limits>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "normlab/core/error.hpp"
#include "normlab/io/file.hpp"

namespace normlab {
inline namespace v0 {
namespace json {

class Value;

/// A JSON array.
using Array = std::vector<Value>;

/// A JSON object: members in insertion order, with keyed lookup.
///
/// Contract: keys are unique. `set` replaces the value of an existing key in
/// place (keeping its position); the initializer-list constructor throws
/// Error on a repeated key.
class Object {
 public:
  using Member = std::pair<std::string, Value>;

  Object() = default;
  Object(std::initializer_list<Member> members);

  using const_iterator = std::vector<Member>::const_iterator;

  // Defined after Value, which must be complete first.
  const_iterator begin() const;
  const_iterator end() const;
  size_t size() const;
  bool empty() const;

  /// The value of `key`, or nullptr when absent.
  const Value* find(std::string_view key) const;
  Value* find(std::string_view key);
  bool contains(std::string_view key) const;
  /// The value of `key`; throws Error naming the key and the keys present.
  const Value& at(std::string_view key) const;
  Value& at(std::string_view key);
  /// Ensures: `key` maps to `value`, at its old position or appended.
  Value& set(std::string key, Value value);
  /// The value of `key`, appending a null member when absent.
  Value& operator[](std::string_view key);

  /// Same members in the same order.
  friend bool operator==(const Object& a, const Object& b);

 private:
  std::vector<Member> members_;
  std::map<std::string, size_t, std::less<>> index_;  // key -> position in members_
};

/// The kinds of JSON value; a number is an int64 or a double (see Value).
enum class Type { null, boolean, number, string, array, object };

/// One JSON value.
///
/// Numbers keep integers exact: a literal with no fraction or exponent that
/// fits int64 is stored as int64 (`is_int()`), every other number as a double
/// (`is_double()`). `as_double()` accepts both; `as_int()` accepts an int, or
/// a double whose value is an integer within int64's range. Equality is
/// structural: int 1 and double 1.0 differ, and object members compare in
/// order. Accessors of the wrong kind throw Error saying what was expected
/// and what was found ("expected a string, found number 3").
class Value {
 public:
  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : v_(b) {}
  /// Requires: `i` fits int64 (throws Error otherwise).
  template <std::integral I>
  requires(!std::same_as<I, bool>) Value(I i) : v_(to_int64(i)) {}
  template <std::floating_point F>
  Value(F d) : v_(static_cast<double>(d)) {}
  Value(const char* s) : v_(std::string(s)) {}
  Value(std::string_view s) : v_(std::string(s)) {}
  Value(std::string s) : v_(std::move(s)) {}
  Value(Array a) : v_(std::move(a)) {}
  Value(Object o) : v_(std::move(o)) {}

  Type type() const {
    constexpr Type kinds[] = {Type::null,   Type::boolean, Type::number, Type::number,
                              Type::string, Type::array,   Type::object};
    return kinds[v_.index()];
  }
  bool is_null() const { return type() == Type::null; }
  bool is_bool() const { return type() == Type::boolean; }
  bool is_number() const { return type() == Type::number; }
  bool is_int() const { return std::holds_alternative<int64_t>(v_); }
  bool is_double() const { return std::holds_alternative<double>(v_); }
  bool is_string() const { return type() == Type::string; }
  bool is_array() const { return type() == Type::array; }
  bool is_object() const { return type() == Type::object; }

  bool as_bool() const { return get<bool>("a bool"); }
  int64_t as_int() const;
  double as_double() const {
    if (is_int()) return static_cast<double>(std::get<int64_t>(v_));
    return get<double>("a number");
  }
  const std::string& as_string() const { return get<std::string>("a string"); }
  const Array& as_array() const { return get<Array>("an array"); }
  Array& as_array() { return get<Array>("an array"); }
  const Object& as_object() const { return get<Object>("an object"); }
  Object& as_object() { return get<Object>("an object"); }

  // ---- object and array shortcuts (throw when this is another kind) ------
  const Value& at(std::string_view key) const { return as_object().at(key); }
  Value& at(std::string_view key) { return as_object().at(key); }
  bool contains(std::string_view key) const { return as_object().contains(key); }
  const Value* find(std::string_view key) const { return as_object().find(key); }
  /// A null value first becomes an empty object, so documents can be built
  /// with `doc["a"]["b"] = 1`.
  Value& operator[](std::string_view key);
  /// Element `i`; throws Error naming the index and the size when out of range.
  const Value& at(size_t i) const;
  Value& at(size_t i) { return const_cast<Value&>(std::as_const(*this).at(i)); }
  /// A null value first becomes an empty array.
  void push_back(Value v);
  /// Elements of an array or members of an object.
  size_t size() const;

  /// "null", "bool true", "number 3", "string \"abc\"", "array of 2 elements",
  /// "object with keys \"a\", \"b\"": the "found ..." part of error messages.
  std::string describe() const;

  friend bool operator==(const Value& a, const Value& b) { return a.v_ == b.v_; }

 private:
  template <std::integral I>
  static int64_t to_int64(I i) {
    normlab::detail::check(std::in_range<int64_t>(i), "json: integer ", i,
                           " does not fit in int64");
    return static_cast<int64_t>(i);
  }
  template <class Scalar>
  const Scalar& get(const char* expected) const {
    const Scalar* p = std::get_if<Scalar>(&v_);
    normlab::detail::check(p != nullptr, "json: expected ", expected, ", found ", describe());
    return *p;
  }
  template <class Scalar>
  Scalar& get(const char* expected) {
    return const_cast<Scalar&>(std::as_const(*this).get<Scalar>(expected));
  }

  std::variant<std::nullptr_t, bool, int64_t, double, std::string, Array, Object> v_;
};

namespace detail {

/// Length of the well-formed UTF-8 sequence starting at s[i] (1-4), or 0 when
/// the bytes there are not well-formed UTF-8 (RFC 3629: no overlong forms, no
/// surrogates, nothing above U+10FFFF).
inline size_t utf8_sequence_length(std::string_view s, size_t i) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  if (c < 0x80) return 1;
  size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF)
    n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;
    if (c == 0xED) hi = 0x9F;
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;
  } else {
    return 0;
  }
  if (i + n > s.size() || byte(i + 1) < lo || byte(i + 1) > hi) return 0;
  for (size_t k = 2; k < n; ++k)
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  return n;
}

/// Appends code point `cp` (<= U+10FFFF, not a surrogate) as UTF-8.
inline void append_utf8(std::string& out, uint32_t cp) {
  const auto put = [&](uint32_t b) { out.push_back(static_cast<char>(b)); };
  if (cp < 0x80) {
    put(cp);
  } else if (cp < 0x800) {
    put(0xC0 | (cp >> 6));
    put(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    put(0xE0 | (cp >> 12));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  } else {
    put(0xF0 | (cp >> 18));
    put(0x80 | ((cp >> 12) & 0x3F));
    put(0x80 | ((cp >> 6) & 0x3F));
    put(0x80 | (cp & 0x3F));
  }
}

/// Shortest decimal text that reads back as exactly `d` ("0.1", "1e-300");
/// integral values get ".0" so they read back as doubles, not ints.
/// Non-finite values give "nan", "inf", "-inf" (for messages; dump rejects them).
inline std::string format_double(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[32];
  const auto r = std::to_chars(buf, buf + sizeof buf, d);
  std::string s(buf, r.ptr);
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

/// `s` quoted, cut to `max_chars` bytes (at a UTF-8 boundary) with "..." for messages.
inline std::string quote_for_message(std::string_view s, size_t max_chars = 40) {
  if (s.size() <= max_chars) return '"' + std::string(s) + '"';
  size_t cut = max_chars;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return '"' + std::string(s.substr(0, cut)) + "\"...";
}

}  // namespace detail

// ---- Object and Value members that need Value complete ---------------------

inline Object::Object(std::initializer_list<Member> members) {
  for (const Member& m : members) {
    normlab::detail::check(!contains(m.first), "json: duplicate key ",
                           detail::quote_for_message(m.first), " in an object literal");
    set(m.first, m.second);
  }
}

inline Object::const_iterator Object::begin() const {
  return members_.begin();
}
inline Object::const_iterator Object::end() const {
  return members_.end();
}
inline size_t Object::size() const {
  return members_.size();
}
inline bool Object::empty() const {
  return members_.empty();
}
inline bool Object::contains(std::string_view key) const {
  return find(key) != nullptr;
}

inline bool operator==(const Object& a, const Object& b) {
  return a.members_ == b.members_;
}

inline const Value* Object::find(std::string_view key) const {
  const auto it = index_.find(key);
  return it == index_.end() ? nullptr : &members_[it->second].second;
}

inline Value* Object::find(std::string_view key) {
  return const_cast<Value*>(std::as_const(*this).find(key));
}

inline const Value& Object::at(std::string_view key) const {
  if (const Value* v = find(key)) return *v;
  std::string present;
  constexpr size_t kListed = 10;  // enough to spot a typo without flooding the message
  for (size_t i = 0; i < members_.size() && i < kListed; ++i)
    present += (i ? ", " : "") + detail::quote_for_message(members_[i].first);
  if (members_.size() > kListed)
    present += normlab::detail::concat(" and ", members_.size() - kListed, " more");
  throw Error(normlab::detail::concat(
      "json: missing key ", detail::quote_for_message(key), " (",
      members_.empty() ? "the object is empty" : "keys present: " + present, ")"));
}

inline Value& Object::at(std::string_view key) {
  return const_cast<Value&>(std::as_const(*this).at(key));
}

inline Value& Object::set(std::string key, Value value) {
  if (Value* v = find(key)) return *v = std::move(value);
  index_.emplace(key, members_.size());
  members_.emplace_back(std::move(key), std::move(value));
  return members_.back().second;
}

inline Value& Object::operator[](std::string_view key) {
  if (Value* v = find(key)) return *v;
  return set(std::string(key), Value());
}

inline int64_t Value::as_int() const {
  if (is_int()) return std::get<int64_t>(v_);
  // 2^63 is exactly representable; int64 holds [-2^63, 2^63).
  constexpr double kTwo63 = 9223372036854775808.0;
  const double* d = std::get_if<double>(&v_);
  normlab::detail::check(d != nullptr && std::trunc(*d) == *d && *d >= -kTwo63 && *d < kTwo63,
                         "json: expected an integer, found ", describe());
  return static_cast<int64_t>(*d);
}

inline Value& Value::operator[](std::string_view key) {
  if (is_null()) v_ = Object();
  return as_object()[key];
}

inline const Value& Value::at(size_t i) const {
  const Array& a = as_array();
  normlab::detail::check(i < a.size(), "json: index ", i, " is out of range for an array of ",
                         a.size(), " elements");
  return a[i];
}

inline void Value::push_back(Value v) {
  if (is_null()) v_ = Array();
  as_array().push_back(std::move(v));
}

inline size_t Value::size() const {
  if (is_object()) return as_object().size();
  return get<Array>("an array or an object").size();
}

inline std::string Value::describe() const {
  switch (v_.index()) {
    case 0:
      return "null";
    case 1:
      return std::get<bool>(v_) ? "bool true" : "bool false";
    case 2:
      return "number " + std::to_string(std::get<int64_t>(v_));
    case 3:
      return "number " + detail::format_double(std::get<double>(v_));
    case 4:
      return "string " + detail::quote_for_message(std::get<std::string>(v_));
    case 5: {
      const size_t n = std::get<Array>(v_).size();
      return normlab::detail::concat("array of ", n, n == 1 ? " element" : " elements");
    }
    default: {
      const Object& o = std::get<Object>(v_);
      if (o.empty()) return "empty object";
      std::string s = "object with keys ";
      size_t i = 0;
      for (const auto& [k, v] : o) {
        if (i == 4) return s + ", ...";
        s += (i++ ? ", " : "") + detail::quote_for_message(k, 20);
      }
      return s;
    }
  }
}

// ---- parsing ---------------------------------------------------------------

namespace detail {

/// Recursive-descent parser over RFC 8259; `pos_` is a byte offset into `text_`.
class Parser {
 public:
  Parser(std::string_view text, std::string_view source) : text_(text), source_(source) {}

  Value parse_document() {
    skip_whitespace();
    Value v = parse_value("expected a value");
    skip_whitespace();
    if (pos_ < text_.size()) fail("expected end of input after the JSON value");
    return v;
  }

 private:
  // Deep enough for any config; shallow enough that hostile input cannot
  // overflow the stack.
  static constexpr int kMaxDepth = 512;

  /// Throws "<source>:<line>:<col>: <expected>, found <what is at pos>".
  [[noreturn]] void fail(std::string_view expected) const { fail_at(pos_, expected, found()); }

  [[noreturn]] void fail_at(size_t pos, std::string_view expected, std::string_view found) const {
    std::string msg = normlab::detail::concat(source_, ':', location(pos), ": ", expected);
    if (!found.empty()) msg += normlab::detail::concat(", found ", found);
    throw Error(msg);
  }

  /// "line:col" of byte offset `pos`; columns count code points, so they
  /// match what an editor shows.
  std::string location(size_t pos) const {
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < text_.size(); ++i) {
      const auto c = static_cast<unsigned char>(text_[i]);
      if (c == '\n') {
        ++line;
        col = 1;
      } else if ((c & 0xC0) != 0x80) {
        ++col;
      }
    }
    return normlab::detail::concat(line, ':', col);
  }

  /// What is at pos_: "end of input", "'x'", "control character U+000A", "byte 0xFF".
  std::string found() const {
    if (pos_ >= text_.size()) return "end of input";
    const auto c = static_cast<unsigned char>(text_[pos_]);
    char buf[8];
    if (c >= 0x20 && c < 0x7F) {
      std::string s = normlab::detail::concat('\'', text_[pos_], '\'');
      if (c == '/') s += " (JSON has no comments)";
      return s;
    }
    if (c < 0x20 || c == 0x7F) {
      std::snprintf(buf, sizeof buf, "%04X", c);
      return std::string("control character U+") + buf;
    }
    std::snprintf(buf, sizeof buf, "%02X", c);
    return std::string("byte 0x") + buf;
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return at_end() ? '\0' : text_[pos_]; }

  void skip_whitespace() {
    while (!at_end() && (peek() == ' ' || peek() == '\t' || peek() == '\n' || peek() == '\r'))
      ++pos_;
  }

  /// A value at pos_; `expected` is the message when no value starts here.
  Value parse_value(std::string_view expected) {
    switch (peek()) {
      case '{':
        return parse_object();
      case '[':
        return parse_array();
      case '"':
        return Value(parse_string());
      case 't':
        return parse_literal("true", Value(true));
      case 'f':
        return parse_literal("false", Value(false));
      case 'n':
        return parse_literal("null", Value());
      default:
        if (peek() == '-' || (peek() >= '0' && peek() <= '9')) return parse_number();
        fail(expected);
    }
  }

  Value parse_literal(std::string_view word, Value v) {
    if (text_.substr(pos_, word.size()) != word) {
      // Point at the first character that differs.
      size_t k = 0;
      while (pos_ + k < text_.size() && k < word.size() && text_[pos_ + k] == word[k]) ++k;
      pos_ += k;
      fail(normlab::detail::concat("invalid literal, expected '", word, "'"));
    }
    pos_ += word.size();
    return v;
  }

  void enter(size_t start) {
    if (++depth_ > kMaxDepth)
      fail_at(start, normlab::detail::concat("nesting deeper than ", kMaxDepth, " levels"), "");
  }

  Value parse_array() {
    enter(pos_);
    ++pos_;  // '['
    Array a;
    skip_whitespace();
    if (peek() == ']') {
      ++pos_;
      --depth_;
      return a;
    }
    a.push_back(parse_value("expected a value or ']'"));
    while (true) {
      skip_whitespace();
      if (peek() == ']') break;
      if (peek() != ',') fail("expected ',' or ']' after an array element");
      ++pos_;
      skip_whitespace();
      if (peek() == ']') fail("expected a value after ',' (trailing commas are not allowed)");
      a.push_back(parse_value("expected a value after ','"));
    }
    ++pos_;
    --depth_;
    return a;
  }

  Value parse_object() {
    enter(pos_);
    ++pos_;  // '{'
    Object o;
    skip_whitespace();
    if (peek() == '}') {
      ++pos_;
      --depth_;
      return o;
    }
    if (peek() != '"') fail("expected a string key or '}' after '{'");
    while (true) {
      const size_t key_pos = pos_;
      std::string key = parse_string();
      if (o.contains(key))
        fail_at(key_pos,
                normlab::detail::concat("duplicate key ", quote_for_message(key), " in an object"),
                "");
      skip_whitespace();
      if (peek() != ':') fail("expected ':' after an object key");
      ++pos_;
      skip_whitespace();
      o.set(std::move(key), parse_value("expected a value after ':'"));
      skip_whitespace();
      if (peek() == '}') break;
      if (peek() != ',') fail("expected ',' or '}' after an object member");
      ++pos_;
      skip_whitespace();
      if (peek() == '}') fail("expected a string key after ',' (trailing commas are not allowed)");
      if (peek() != '"') fail("expected a string key after ','");
    }
    ++pos_;
    --depth_;
    return o;
  }

  /// Requires: peek() == '"'. Returns the decoded UTF-8 contents.
  std::string parse_string() {
    const size_t start = pos_++;
    std::string s;
    while (true) {
      if (at_end()) fail("unterminated string (opened at " + location(start) + ")");
      const auto c = static_cast<unsigned char>(text_[pos_]);
      if (c == '"') break;
      if (c == '\\') {
        parse_escape(s);
      } else if (c < 0x20) {
        fail("unescaped control character in a string (write it as an escape such as \\n)");
      } else {
        const size_t n = utf8_sequence_length(text_, pos_);
        if (n == 0) fail("invalid UTF-8 in a string");
        s.append(text_.substr(pos_, n));
        pos_ += n;
      }
    }
    ++pos_;
    return s;
  }

  /// Requires: text_[pos_] == '\\'. Appends the escaped character to `s`.
  void parse_escape(std::string& s) {
    ++pos_;
    const char c = peek();
    switch (c) {
      case '"':
        s += '"';
        break;
      case '\\':
        s += '\\';
        break;
      case '/':
        s += '/';
        break;
      case 'b':
        s += '\b';
        break;
      case 'f':
        s += '\f';
        break;
      case 'n':
        s += '\n';
        break;
      case 'r':
        s += '\r';
        break;
      case 't':
        s += '\t';
        break;
      case 'u': {
        const size_t escape_pos = pos_ - 1;
        ++pos_;
        uint32_t cp = parse_hex4();
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          fail_at(escape_pos,
                  "unpaired low surrogate \\u" + hex4(cp) +
                      " (a low surrogate must follow a high surrogate \\uD800-\\uDBFF)",
                  "");
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (text_.substr(pos_, 2) != "\\u")
            fail("expected a low surrogate \\uDC00-\\uDFFF after the high surrogate \\u" +
                 hex4(cp));
          pos_ += 2;
          const uint32_t low = parse_hex4();
          if (low < 0xDC00 || low > 0xDFFF)
            fail_at(
                pos_ - 6,
                "expected a low surrogate \\uDC00-\\uDFFF after the high surrogate \\u" + hex4(cp),
                "\\u" + hex4(low));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        }
        append_utf8(s, cp);
        return;
      }
      default:
        if (at_end()) fail("unterminated escape sequence");
        fail(R"(invalid escape, expected one of \" \\ \/ \b \f \n \r \t \uXXXX after '\')");
    }
    ++pos_;
  }

  uint32_t parse_hex4() {
    uint32_t v = 0;
    for (int k = 0; k < 4; ++k) {
      const char c = peek();
      uint32_t d;
      if (c >= '0' && c <= '9')
        d = static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        d = static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        d = static_cast<uint32_t>(c - 'A' + 10);
      else
        fail("expected 4 hex digits after \\u");
      v = v * 16 + d;
      ++pos_;
    }
    return v;
  }

  static std::string hex4(uint32_t v) {
    char buf[8];
    std::snprintf(buf, sizeof buf, "%04X", v);
    return buf;
  }

  bool digit() const { return peek() >= '0' && peek() <= '9'; }

  /// number = [ '-' ] int [ frac ] [ exp ]; ints that fit int64 stay exact.
  Value parse_number() {
    const size_t start = pos_;
    if (peek() == '-') {
      ++pos_;
      if (!digit()) fail("expected a digit after '-'");
    }
    if (peek() == '0') {
      ++pos_;
      if (digit())
        fail(
            "expected '.', 'e' or the end of the number after a leading 0 "
            "(leading zeros are not allowed)");
    } else {
      while (digit()) ++pos_;
    }
    bool integer = true;
    if (peek() == '.') {
      integer = false;
      ++pos_;
      if (!digit()) fail("expected a digit after the decimal point");
      while (digit()) ++pos_;
    }
    if (peek() == 'e' || peek() == 'E') {
      integer = false;
      ++pos_;
      if (peek() == '+' || peek() == '-') ++pos_;
      if (!digit()) fail("expected a digit in the exponent");
      while (digit()) ++pos_;
    }
    const std::string_view lit = text_.substr(start, pos_ - start);
    const char* first = lit.data();
    const char* last = lit.data() + lit.size();
    if (integer) {
      int64_t i = 0;
      if (std::from_chars(first, last, i).ec == std::errc()) return Value(i);
    }
    double d = 0;
    const auto r = std::from_chars(first, last, d);
    if (r.ec == std::errc::result_out_of_range) {
      if (!underflows(lit))
        fail_at(start,
                normlab::detail::concat("number ", lit, " is too large for a double (max ",
                                        format_double(std::numeric_limits<double>::max()), ")"),
                "");
      d = lit[0] == '-' ? -0.0 : 0.0;  // below the smallest subnormal: rounds to zero
    }
    return Value(d);
  }

  /// Whether the out-of-range literal `lit` is below 1 in magnitude (so it
  /// underflowed rather than overflowed): the decimal exponent of its leading
  /// non-zero digit is negative.
  static bool underflows(std::string_view lit) {
    const size_t e = lit.find_first_of("eE");
    const std::string_view mant = lit.substr(0, e);
    const size_t point = std::min(mant.find('.'), mant.size());
    const size_t lead = mant.find_first_of("123456789");
    int64_t mag =
        lead < point ? static_cast<int64_t>(point - lead) - 1 : -static_cast<int64_t>(lead - point);
    if (e != std::string_view::npos) {
      // Saturate: an exponent with more digits than int64 holds decides alone.
      int64_t exp = 0;
      const std::string_view digits = lit.substr(e + 1);
      const bool negative = digits[0] == '-';
      for (char c : digits.substr(digits[0] == '-' || digits[0] == '+' ? 1 : 0))
        exp = std::min<int64_t>(exp * 10 + (c - '0'), int64_t{1} << 40);
      mag += negative ? -exp : exp;
    }
    return mag < 0;
  }

  std::string_view text_;
  std::string_view source_;
  size_t pos_ = 0;
  int depth_ = 0;
};

// ---- writing ---------------------------------------------------------------

inline void write_string(std::string& out, const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_sequence_length(s, i);
    if (n == 0) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "%02X", static_cast<unsigned char>(s[i]));
      throw Error(normlab::detail::concat("json::dump: string ", quote_for_message(s),
                                          " is not valid UTF-8 (byte 0x", buf, " at offset ", i,
                                          ")"));
    }
    i += n;
  }
  out += '"';
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04X", c);
          out += buf;
        } else {
          out += ch;
        }
    }
  }
  out += '"';
}

/// Appends `v`; indent < 0 means compact. Arrays holding no arrays or
/// objects stay on one line ("[2, 3]"), as a person writes a shape.
inline void write_value(std::string& out, const Value& v, int indent, int level) {
  const bool pretty = indent >= 0;
  const auto newline = [&](int lvl) {
    out += '\n';
    out.append(static_cast<size_t>(indent) * static_cast<size_t>(lvl), ' ');
  };
  switch (v.type()) {
    case Type::null:
      out += "null";
      return;
    case Type::boolean:
      out += v.as_bool() ? "true" : "false";
      return;
    case Type::number:
      if (v.is_int()) {
        out += std::to_string(v.as_int());
      } else {
        const double d = v.as_double();
        normlab::detail::check(std::isfinite(d), "json::dump: ", format_double(d),
                               " has no JSON representation");
        out += format_double(d);
      }
      return;
    case Type::string:
      write_string(out, v.as_string());
      return;
    case Type::array: {
      const Array& a = v.as_array();
      const bool flat = std::none_of(a.begin(), a.end(),
                                     [](const Value& e) { return e.is_array() || e.is_object(); });
      out += '[';
      for (size_t i = 0; i < a.size(); ++i) {
        if (i) out += pretty && flat ? ", " : ",";
        if (pretty && !flat) newline(level + 1);
        write_value(out, a[i], indent, level + 1);
      }
      if (pretty && !flat && !a.empty()) newline(level);
      out += ']';
      return;
    }
    case Type::object: {
      const Object& o = v.as_object();
      out += '{';
      bool first = true;
      for (const auto& [key, value] : o) {
        if (!first) out += ',';
        first = false;
        if (pretty) newline(level + 1);
        write_string(out, key);
        out += pretty ? ": " : ":";
        write_value(out, value, indent, level + 1);
      }
      if (pretty && !o.empty()) newline(level);
      out += '}';
      return;
    }
  }
}

/// The bytes of the file at `path` as a Container of chars or bytes; throws
/// Error "<who>: cannot read '<path>': <reason>" when it cannot be read or has
/// more than `max_bytes` bytes (checked before anything is allocated).
template <class Container>
Container read_file(const std::string& path, std::string_view who, uint64_t max_bytes) {
  const uint64_t size = io::bounded_file_size(path, max_bytes, who);
  Container bytes(static_cast<size_t>(size), 0);
  std::ifstream in(path, std::ios::binary);
  in.read(reinterpret_cast<char*>(bytes.data()), static_cast<std::streamsize>(size));
  normlab::detail::check(in.gcount() == static_cast<std::streamsize>(size), who, ": cannot read '",
                         path, "': expected ", size, " bytes, read ", in.gcount());
  return bytes;
}

}  // namespace detail

/// Parses one JSON document (RFC 8259, strict).
///
/// Requires: `text` is UTF-8. Throws Error "<source_name>:<line>:<col>:
/// expected ..., found ..." on the first violation, including trailing
/// commas, comments, duplicate keys, leading zeros, unpaired surrogates and
/// numbers beyond double's range (numbers below it round to zero).
/// Ensures: integer literals that fit int64 give is_int() values.
inline Value parse(std::string_view text, std::string_view source_name = "JSON") {
  return detail::Parser(text, source_name).parse_document();
}

/// The unsigned 64-bit number that `v` holds as a decimal string (JSON
/// numbers are doubles to most readers, so seeds and positions beyond 2^53
/// are stored as strings). Throws Error "<where>: key \"<key>\" must be ..."
/// when `v` is not such a string (a sign, spaces, a fraction, or a value
/// above 2^64 - 1).
inline uint64_t decimal_u64(const Value& v, std::string_view where, std::string_view key) {
  normlab::detail::check(v.is_string(), where, ": key \"", key,
                         "\" must be a decimal string, found ", v.describe());
  const std::string& text = v.as_string();
  uint64_t x = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), x);
  normlab::detail::check(
      !text.empty() && ec == std::errc() && end == text.data() + text.size(), where, ": key \"",
      key, "\" must be an unsigned 64-bit decimal number, found ", detail::quote_for_message(text));
  return x;
}

/// The largest JSON file parse_file reads by default: 64 MiB, far above any
/// config or results file normlab writes, far below what would exhaust memory.
inline constexpr uint64_t kMaxFileBytes = uint64_t{64} << 20;

/// Parses the file at `path`, naming it in every error; a file over
/// `max_bytes` is refused, with its size, before it is read.
inline Value parse_file(const std::string& path, uint64_t max_bytes = kMaxFileBytes) {
  return parse(detail::read_file<std::string>(path, "json", max_bytes), path);
}

/// Pretty JSON: members on their own lines, nested `indent` spaces per level
/// (Python's json.dumps(indent=...) layout, except that arrays of scalars stay
/// on one line); no trailing newline.
///
/// Requires: indent >= 0; no NaN or infinity; strings are UTF-8 (throws Error).
/// Ensures: parse(dump(v)) == v, doubles bit-exactly (shortest round-trip digits).
inline std::string dump(const Value& v, int indent = 2) {
  normlab::detail::check(indent >= 0, "json::dump: indent must be >= 0, got ", indent,
                         " (use dump_compact for no whitespace)");
  std::string out;
  detail::write_value(out, v, indent, 0);
  return out;
}

/// JSON with no whitespace at all, e.g. {"a":[1,2]}. Same requirements as dump.
inline std::string dump_compact(const Value& v) {
  std::string out;
  detail::write_value(out, v, -1, 0);
  return out;
}

}  // namespace json
}  // namespace v0
}  // namespace normlab
