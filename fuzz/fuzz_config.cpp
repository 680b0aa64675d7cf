// fuzz/fuzz_config.cpp — libFuzzer harness for model configs read from JSON.
//
// Checks, for any bytes given as the text of a config file:
//   - json::parse, then config_from_json(value, "fuzz") and validate(), accept
//     the config or throw normlab::Error; any other exception, a crash or a
//     sanitizer report is a finding;
//   - an accepted config round-trips: config_to_json, dumped and read back by
//     config_from_json, gives a config whose config_to_json is the same JSON
//     (bit for bit in its doubles). An exception there, normlab::Error
//     included, is a finding.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_common.hpp"
#include "normlab/core/error.hpp"
#include "normlab/io/json.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/models/config.hpp"

namespace nl = normlab;
namespace json = normlab::json;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  nl::ModelConfig config;
  try {
    config = nl::config_from_json(json::parse(text, "fuzz"), "fuzz");
    config.validate();
  } catch (const nl::Error&) {
    return 0;  // an invalid config: the documented outcome
  }
  try {
    const json::Value written = nl::config_to_json(config);
    const nl::ModelConfig back =
        nl::config_from_json(json::parse(json::dump(written), "round trip"), "round trip");
    back.validate();
    if (!normlab_fuzz::identical(nl::config_to_json(back), written))
      normlab_fuzz::finding("fuzz_config",
                            "config_to_json / config_from_json does not round-trip: wrote " +
                                json::dump_compact(written) + ", read back " +
                                json::dump_compact(nl::config_to_json(back)));
  } catch (const nl::Error& e) {
    normlab_fuzz::finding("fuzz_config",
                          std::string("round trip of an accepted config threw: ") + e.what());
  }
  return 0;
}
