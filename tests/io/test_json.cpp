// json: parse/dump round trips, exact integers, bit-exact doubles, escapes,
// and the message of every parse and accessor error.
#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <string>

#include "normlab/io/json.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

using json::Array;
using json::Object;
using json::Value;

/// Expects parse(text, "config.json") to fail with every fragment in its message.
void expect_parse_error(const std::string& text, const std::vector<std::string>& fragments) {
  SCOPED_TRACE("parsing: " + text);
  expect_error([&] { (void)json::parse(text, "config.json"); }, fragments);
}

TEST(JsonParse, RoundTripsANestedDocument) {
  const std::string text = R"({
  "name": "tiny-gpt",
  "d_model": 64,
  "dropout": 0.1,
  "bias": false,
  "tags": ["pre-ln", "normformer"],
  "layers": [
    {"attn_ln": true, "shape": [2, 3]},
    {}
  ],
  "extra": null,
  "empty": []
})";
  const Value v = json::parse(text);
  ASSERT_TRUE(v.is_object());
  EXPECT_EQ(v.at("name").as_string(), "tiny-gpt");
  EXPECT_EQ(v.at("d_model").as_int(), 64);
  EXPECT_EQ(v.at("dropout").as_double(), 0.1);
  EXPECT_FALSE(v.at("bias").as_bool());
  EXPECT_EQ(v.at("tags").at(1).as_string(), "normformer");
  EXPECT_EQ(v.at("layers").at(0).at("shape").at(1).as_int(), 3);
  EXPECT_TRUE(v.at("layers").at(1).as_object().empty());
  EXPECT_TRUE(v.at("extra").is_null());
  EXPECT_EQ(v.at("empty").size(), 0u);

  // Members keep the order they were written in.
  std::vector<std::string> keys;
  for (const auto& [k, value] : v.as_object()) keys.push_back(k);
  EXPECT_EQ(keys, (std::vector<std::string>{"name", "d_model", "dropout", "bias", "tags", "layers",
                                            "extra", "empty"}));

  // The pretty layout: members one per line, arrays of scalars on one line.
  EXPECT_EQ(json::dump(v), R"({
  "name": "tiny-gpt",
  "d_model": 64,
  "dropout": 0.1,
  "bias": false,
  "tags": ["pre-ln", "normformer"],
  "layers": [
    {
      "attn_ln": true,
      "shape": [2, 3]
    },
    {}
  ],
  "extra": null,
  "empty": []
})");
  EXPECT_EQ(json::dump_compact(v),
            R"({"name":"tiny-gpt","d_model":64,"dropout":0.1,"bias":false,)"
            R"("tags":["pre-ln","normformer"],"layers":[{"attn_ln":true,"shape":[2,3]},{}],)"
            R"("extra":null,"empty":[]})");
  EXPECT_EQ(json::parse(json::dump(v)), v);
  EXPECT_EQ(json::parse(json::dump_compact(v)), v);
  EXPECT_EQ(json::parse(json::dump(v, 0)), v);
  EXPECT_EQ(json::dump(json::parse("[[1]]"), 4), "[\n    [1]\n]");
}

TEST(JsonParse, ScalarsAtTopLevelAndWhitespace) {
  EXPECT_TRUE(json::parse(" \t\r\n null \n").is_null());
  EXPECT_TRUE(json::parse("true").as_bool());
  EXPECT_EQ(json::parse("\"x\"").as_string(), "x");
  EXPECT_EQ(json::parse("-12").as_int(), -12);
}

TEST(JsonNumbers, IntegersStayExact) {
  const int64_t two53p1 = (int64_t{1} << 53) + 1;  // not representable as a double
  const Value v = json::parse(
      "[9007199254740993, -7, 0, -0, 9223372036854775807, "
      "-9223372036854775808, 9223372036854775808, 1.0, 1e2, 3]");
  EXPECT_TRUE(v.at(0).is_int());
  EXPECT_EQ(v.at(0).as_int(), two53p1);
  EXPECT_EQ(v.at(1).as_int(), -7);
  EXPECT_TRUE(v.at(2).is_int());
  EXPECT_TRUE(v.at(3).is_int());
  EXPECT_EQ(v.at(4).as_int(), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(v.at(5).as_int(), std::numeric_limits<int64_t>::min());
  // Beyond int64: a double, and no longer an exact integer.
  EXPECT_TRUE(v.at(6).is_double());
  EXPECT_EQ(v.at(6).as_double(), 9223372036854775808.0);
  // A fraction or an exponent makes a double even when the value is integral.
  EXPECT_TRUE(v.at(7).is_double());
  EXPECT_TRUE(v.at(8).is_double());
  EXPECT_EQ(v.at(8).as_int(), 100);     // as_int accepts integral doubles
  EXPECT_EQ(v.at(9).as_double(), 3.0);  // as_double accepts ints

  // Writing keeps ints as ints and doubles as doubles.
  EXPECT_EQ(json::dump_compact(v),
            "[9007199254740993,-7,0,0,9223372036854775807,-9223372036854775808,"
            "9223372036854775808.0,1.0,100.0,3]");
  EXPECT_EQ(json::parse(json::dump_compact(v)), v);
  EXPECT_EQ(json::dump_compact(Value(two53p1)), "9007199254740993");
  EXPECT_EQ(json::parse(json::dump(Value(-7))).as_int(), -7);
}

TEST(JsonNumbers, DoublesRoundTripBitExactly) {
  const double values[] = {0.1,
                           1e-300,
                           1.7976931348623157e308,
                           std::numeric_limits<double>::denorm_min(),
                           std::numeric_limits<double>::min(),
                           -0.0,
                           1.0 / 3.0,
                           -2.5e-7,
                           1e21,
                           123456789.0};
  for (const double x : values) {
    SCOPED_TRACE(json::dump(Value(x)));
    const Value back = json::parse(json::dump(Value(x)));
    ASSERT_TRUE(back.is_double());
    EXPECT_EQ(std::bit_cast<uint64_t>(back.as_double()), std::bit_cast<uint64_t>(x));
  }
  // Literals read as the nearest double, like the C++ literal.
  EXPECT_EQ(std::bit_cast<uint64_t>(json::parse("0.1").as_double()), std::bit_cast<uint64_t>(0.1));
  EXPECT_EQ(json::parse("1.7976931348623157e308").as_double(), std::numeric_limits<double>::max());
  EXPECT_EQ(json::parse("1E-300").as_double(), 1e-300);
  EXPECT_EQ(json::parse("2.5e+3").as_double(), 2500.0);
  EXPECT_EQ(json::dump(Value(0.1)), "0.1");
  EXPECT_EQ(json::dump(Value(1e-300)), "1e-300");
  EXPECT_EQ(json::dump(Value(-0.0)), "-0.0");
  EXPECT_EQ(json::dump(Value(2.0f)), "2.0");
}

TEST(JsonNumbers, UnderflowRoundsToZeroOverflowIsAnError) {
  EXPECT_EQ(json::parse("1e-400").as_double(), 0.0);
  EXPECT_TRUE(std::signbit(json::parse("-1e-400").as_double()));
  EXPECT_EQ(json::parse("0.0000000001e-320").as_double(), 0.0);
  expect_parse_error("[1e400]", {"config.json:1:2:", "number 1e400 is too large for a double"});
  expect_parse_error("-123456789e302", {"config.json:1:1:", "too large for a double"});
  // Many leading digits with a negative exponent still overflow.
  expect_parse_error("1" + std::string(400, '0') + "e-5", {"too large for a double"});
}

TEST(JsonStrings, EscapesAndSurrogatePairs) {
  const Value v = json::parse(R"(["\" \\ \/ \b \f \n \r \t", "\u0041\u00e9\u20AC", "\uD83D\uDE00",
                                  "a\u0000b", "héllo €", "\ud834\udd1e"])");
  EXPECT_EQ(v.at(0).as_string(), "\" \\ / \b \f \n \r \t");
  EXPECT_EQ(v.at(1).as_string(), "A\xC3\xA9\xE2\x82\xAC");  // A, é, €
  EXPECT_EQ(v.at(2).as_string(), "\xF0\x9F\x98\x80");       // U+1F600
  EXPECT_EQ(v.at(3).as_string(), std::string("a\0b", 3));
  EXPECT_EQ(v.at(4).as_string(), "h\xC3\xA9llo \xE2\x82\xAC");  // raw UTF-8 passes through
  EXPECT_EQ(v.at(5).as_string(), "\xF0\x9D\x84\x9E");           // U+1D11E, lowercase hex

  // dump escapes what JSON requires and writes other characters as UTF-8.
  EXPECT_EQ(json::dump_compact(Value(std::string("q\"b\\s/\b\f\n\r\t\x01\x1F\0", 14))),
            R"("q\"b\\s/\b\f\n\r\t\u0001\u001F\u0000")");
  EXPECT_EQ(json::dump_compact(v.at(2)), "\"\xF0\x9F\x98\x80\"");
  EXPECT_EQ(json::parse(json::dump(v)), v);
}

TEST(JsonErrors, PositionsAndExpectedVersusFound) {
  // The message the brief shows, at line 3, column 14.
  expect_parse_error("{\n  \"a\": 1,\n  \"bb\": true \"c\": 1\n}",
                     {"config.json:3:14: expected ',' or '}' after an object member, found '\"'"});
  expect_parse_error("", {"config.json:1:1: expected a value, found end of input"});
  expect_parse_error("   \n  ", {"config.json:2:3: expected a value, found end of input"});
  expect_parse_error("{} {}", {"1:4: expected end of input after the JSON value, found '{'"});
  // Columns count characters, not bytes; \r\n ends a line like \n.
  expect_parse_error("[\"\xC3\xA9\", x]", {"1:7: expected a value after ',', found 'x'"});
  expect_parse_error("[1,\r\n 2,\r\n ?]", {"3:2: expected a value after ','", "found '?'"});
  expect_parse_error("\xEF\xBB\xBF{}", {"1:1: expected a value, found byte 0xEF"});
}

TEST(JsonErrors, ArraysAndObjects) {
  expect_parse_error("[1, 2,]", {"1:7: expected a value after ','",
                                 "trailing commas are not allowed", "found ']'"});
  expect_parse_error("{\"a\": 1,}", {"1:9: expected a string key after ','",
                                     "trailing commas are not allowed", "found '}'"});
  expect_parse_error("[1 2]", {"1:4: expected ',' or ']' after an array element, found '2'"});
  expect_parse_error("[1", {"1:3: expected ',' or ']' after an array element, found end of input"});
  expect_parse_error("[", {"1:2: expected a value or ']', found end of input"});
  expect_parse_error("[,1]", {"1:2: expected a value or ']', found ','"});
  expect_parse_error("{a: 1}", {"1:2: expected a string key or '}' after '{', found 'a'"});
  expect_parse_error("{'a': 1}", {"expected a string key or '}' after '{', found '''"});
  expect_parse_error("{\"a\" 1}", {"1:6: expected ':' after an object key, found '1'"});
  expect_parse_error("{\"a\":}", {"1:6: expected a value after ':', found '}'"});
  expect_parse_error("{\"a\": 1, 2}", {"1:10: expected a string key after ',', found '2'"});
  expect_parse_error("{\"a\": 1",
                     {"expected ',' or '}' after an object member, found end of input"});
  expect_parse_error("{\"a\": 1, \"b\": 2, \"a\": 3}", {"1:18: duplicate key \"a\" in an object"});
  expect_parse_error(std::string(600, '[') + std::string(600, ']'),
                     {"1:513: nesting deeper than 512 levels"});
  EXPECT_NO_THROW(json::parse(std::string(512, '[') + std::string(512, ']')));
}

TEST(JsonErrors, CommentsAndLiterals) {
  expect_parse_error("{\"a\": 1 // note\n}", {"1:9: expected ',' or '}' after an object member",
                                              "found '/' (JSON has no comments)"});
  expect_parse_error("/* c */ {}", {"1:1: expected a value, found '/' (JSON has no comments)"});
  expect_parse_error("tru", {"1:4: invalid literal, expected 'true', found end of input"});
  expect_parse_error("[nul]", {"1:5: invalid literal, expected 'null', found ']'"});
  expect_parse_error("fals3", {"1:5: invalid literal, expected 'false', found '3'"});
  expect_parse_error("True", {"1:1: expected a value, found 'T'"});
  expect_parse_error("NaN", {"expected a value, found 'N'"});
  expect_parse_error("[Infinity]", {"1:2: expected a value or ']', found 'I'"});
}

TEST(JsonErrors, Numbers) {
  expect_parse_error("01", {"1:2: expected '.', 'e' or the end of the number after a leading 0",
                            "leading zeros", "found '1'"});
  expect_parse_error("-01", {"1:3:", "leading zeros"});
  expect_parse_error("1.", {"1:3: expected a digit after the decimal point, found end of input"});
  expect_parse_error("1.e5", {"1:3: expected a digit after the decimal point, found 'e'"});
  expect_parse_error("1e", {"1:3: expected a digit in the exponent, found end of input"});
  expect_parse_error("1e+", {"1:4: expected a digit in the exponent"});
  expect_parse_error("-", {"1:2: expected a digit after '-', found end of input"});
  expect_parse_error("-a", {"expected a digit after '-', found 'a'"});
  expect_parse_error("+1", {"1:1: expected a value, found '+'"});
  expect_parse_error(".5", {"1:1: expected a value, found '.'"});
  expect_parse_error("0x10", {"1:2: expected end of input after the JSON value, found 'x'"});
}

TEST(JsonErrors, Strings) {
  expect_parse_error("\"abc", {"1:5: unterminated string (opened at 1:1), found end of input"});
  expect_parse_error("[\n \"a\nb\"]", {"2:4: unescaped control character in a string",
                                       "found control character U+000A"});
  expect_parse_error("\"a\tb\"", {"found control character U+0009"});
  expect_parse_error(R"("\x")", {"1:3: invalid escape, expected one of", R"(\uXXXX)", "found 'x'"});
  expect_parse_error("\"\\", {"unterminated escape sequence, found end of input"});
  expect_parse_error(R"("\u12G4")", {"1:6: expected 4 hex digits after \\u, found 'G'"});
  expect_parse_error(R"("\u12")", {"expected 4 hex digits after \\u, found '\"'"});
  expect_parse_error(R"("\uD83D")", {"1:8: expected a low surrogate \\uDC00-\\uDFFF after the "
                                     "high surrogate \\uD83D, found '\"'"});
  expect_parse_error(R"("\uD83Dx")", {"expected a low surrogate", "found 'x'"});
  expect_parse_error(R"("\uD83D\u0041")",
                     {"1:8: expected a low surrogate", "high surrogate \\uD83D, found \\u0041"});
  expect_parse_error(R"("a\uDE00")", {"1:3: unpaired low surrogate \\uDE00"});
  expect_parse_error("\"a\xFF\"", {"1:3: invalid UTF-8 in a string, found byte 0xFF"});
  expect_parse_error("\"\xC0\x80\"", {"invalid UTF-8 in a string, found byte 0xC0"});  // overlong
  expect_parse_error("\"\xED\xA0\x80\"", {"invalid UTF-8", "byte 0xED"});  // encoded surrogate
  expect_parse_error("\"\xE2\x82\"", {"invalid UTF-8", "byte 0xE2"});      // cut short
  expect_parse_error("\"\xF4\x90\x80\x80\"", {"invalid UTF-8"});           // above U+10FFFF
}

TEST(JsonAccessors, ErrorsNameWhatWasExpectedAndFound) {
  const Value v = json::parse(R"({"n": 3, "x": 3.5, "s": "abc", "a": [1, 2], "o": {"k": 1},
                                  "b": true, "z": null, "big": 1e300})");
  expect_error([&] { (void)v.at("n").as_string(); }, {"expected a string, found number 3"});
  expect_error([&] { (void)v.at("x").as_int(); }, {"expected an integer, found number 3.5"});
  expect_error([&] { (void)v.at("big").as_int(); }, {"expected an integer, found number 1e+300"});
  expect_error([&] { (void)v.at("s").as_double(); }, {"expected a number, found string \"abc\""});
  expect_error([&] { (void)v.at("a").as_object(); },
               {"expected an object, found array of 2 elements"});
  expect_error([&] { (void)v.at("o").as_array(); },
               {"expected an array, found object with keys \"k\""});
  expect_error([&] { (void)v.at("z").as_bool(); }, {"expected a bool, found null"});
  expect_error([&] { (void)v.at("b").as_string(); }, {"expected a string, found bool true"});
  expect_error([&] { (void)v.at("n").size(); }, {"expected an array or an object, found number 3"});
  expect_error([&] { (void)v.at("n").at("k"); }, {"expected an object, found number 3"});
  expect_error([&] { (void)v.at("a").at(2); },
               {"index 2 is out of range for an array of 2 elements"});
  expect_error([&] { (void)v.at("d_model"); },
               {"missing key \"d_model\"",
                "keys present: \"n\", \"x\", \"s\", \"a\", \"o\", \"b\", \"z\", \"big\""});
  expect_error([&] { (void)Value(Object()).at("k"); },
               {"missing key \"k\"", "the object is empty"});
  Value many;
  for (int i = 0; i < 12; ++i) many[std::to_string(i)] = i;
  expect_error([&] { (void)many.at("x"); }, {"\"9\" and 2 more"});
  expect_error([&] { (void)Value(std::string(100, 'y')).as_int(); },
               {"found string \"" + std::string(40, 'y') + "\"..."});

  EXPECT_EQ(v.at("b").describe(), "bool true");
  EXPECT_TRUE(v.contains("s"));
  EXPECT_FALSE(v.contains("t"));
  EXPECT_EQ(v.find("t"), nullptr);
  EXPECT_EQ(v.find("n")->as_int(), 3);
  EXPECT_EQ(json::parse("-2.0").as_int(), -2);
}

TEST(JsonBuild, ObjectsKeepInsertionOrderAndSetReplacesInPlace) {
  Value doc;  // null becomes an object on first use of []
  doc["b"] = 1;
  doc["a"]["nested"] = "x";
  doc["list"].push_back(1.5);
  doc["list"].push_back(Array{Value(), true});
  doc.as_object().set("b", 2);  // replaced in place, keeps the first position
  EXPECT_EQ(json::dump_compact(doc), R"({"b":2,"a":{"nested":"x"},"list":[1.5,[null,true]]})");

  const Object literal{{"z", 1}, {"y", "two"}, {"x", Array{1, 2}}};
  EXPECT_EQ(json::dump_compact(literal), R"({"z":1,"y":"two","x":[1,2]})");
  EXPECT_EQ(Value(literal), json::parse(R"({"z":1,"y":"two","x":[1,2]})"));
  // Structural equality: order matters, and int 1 differs from double 1.0.
  EXPECT_NE(json::parse(R"({"a":1,"b":2})"), json::parse(R"({"b":2,"a":1})"));
  EXPECT_NE(json::parse("1"), json::parse("1.0"));

  expect_error(
      [] {
        Object dup{{"k", 1}, {"k", 2}};
      },
      {"duplicate key \"k\" in an object literal"});
  expect_error([] { Value big(std::numeric_limits<uint64_t>::max()); },
               {"integer 18446744073709551615 does not fit in int64"});
  EXPECT_EQ(Value(uint64_t{42}).as_int(), 42);
  Value n(3);
  expect_error([&] { n["k"] = 1; }, {"expected an object, found number 3"});
  expect_error([&] { n.push_back(1); }, {"expected an array, found number 3"});
}

TEST(JsonDump, RejectsWhatJsonCannotHold) {
  expect_error([] { (void)json::dump(Value(std::nan(""))); },
               {"json::dump: nan has no JSON representation"});
  expect_error(
      [] {
        (void)json::dump_compact(Array{1, -HUGE_VAL});
      },
      {"json::dump: -inf has no JSON representation"});
  expect_error([] { (void)json::dump(Value("ok\xFF")); },
               {"json::dump: string \"ok\xFF\" is not valid UTF-8 (byte 0xFF at offset 2)"});
  expect_error([] { (void)json::dump(Object{{"\xC3", 1}}); }, {"not valid UTF-8"});
  expect_error([] { (void)json::dump(Value(1), -1); },
               {"indent must be >= 0, got -1", "dump_compact"});
  EXPECT_EQ(json::dump(Value(Array())), "[]");
  EXPECT_EQ(json::dump(Value(Object())), "{}");
}

TEST(JsonFile, ParseFileNamesTheFile) {
  const std::string path = ::testing::TempDir() + "normlab_test_config.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << "{\n  \"d_model\": 64,\n  \"n_layer\": 2,\n}\n";
  }
  expect_error([&] { (void)json::parse_file(path); },
               {path + ":4:1: expected a string key after ','", "found '}'"});
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << "{\"d_model\": 64}";
  }
  EXPECT_EQ(json::parse_file(path).at("d_model").as_int(), 64);
  const std::string missing = ::testing::TempDir() + "normlab_no_such_dir/config.json";
  expect_error([&] { (void)json::parse_file(missing); },
               {"json: cannot read '" + missing + "'", "No such file or directory"});
  expect_error([&] { (void)json::parse_file(::testing::TempDir()); },
               {"json: cannot read '" + ::testing::TempDir() + "'", "directory"});
}

}  // namespace
}  // namespace normlab::testing
