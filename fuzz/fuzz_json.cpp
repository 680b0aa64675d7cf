// fuzz/fuzz_json.cpp — libFuzzer harness for normlab::json::parse and dump.
//
// Checks, for any bytes given as the text:
//   - json::parse returns a Value or throws normlab::Error; any other
//     exception, a crash or a sanitizer report is a finding;
//   - a parsed Value round-trips through json::dump (indent 2 and 0) and
//     json::dump_compact: parsing each text gives the same Value back, ints as
//     ints and doubles bit for bit (the contract of dump). An exception on the
//     way back, normlab::Error included, or a different Value is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "normlab/core/error.hpp"
#include "normlab/io/json.hpp"

namespace json = normlab::json;

namespace {

/// parse(text) must give back `v` exactly.
void expect_round_trip(const json::Value& v, const std::string& text, const char* how) {
  json::Value back;
  try {
    back = json::parse(text, how);
  } catch (const normlab::Error& e) {
    normlab_fuzz::finding("fuzz_json", std::string(how) + " output does not parse: " + e.what());
  }
  if (!normlab_fuzz::identical(v, back))
    normlab_fuzz::finding(
        "fuzz_json", std::string(how) + " does not round-trip; it wrote " + text.substr(0, 200));
  if (!(v == back))
    normlab_fuzz::finding("fuzz_json",
                          std::string("operator== disagrees with the structure after ") + how);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  json::Value v;
  try {
    v = json::parse(text, "fuzz");
  } catch (const normlab::Error&) {
    return 0;  // invalid JSON: the documented outcome
  }
  std::string pretty, flat, compact;
  try {
    pretty = json::dump(v);
    flat = json::dump(v, 0);
    compact = json::dump_compact(v);
  } catch (const normlab::Error& e) {
    normlab_fuzz::finding("fuzz_json", std::string("dump of a parsed value threw: ") + e.what());
  }
  expect_round_trip(v, pretty, "dump");
  expect_round_trip(v, flat, "dump(indent 0)");
  expect_round_trip(v, compact, "dump_compact");
  return 0;
}
