// Checkpoints: configs as JSON (round trips, the committed fixture, every
// error), strict parameter loading and checkpoint files.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "normlab/io/io.hpp"
#include "parameter_files.hpp"
#include "testing.hpp"

namespace normlab::testing {
namespace {

using io::DType;
using io::SafetensorsReader;
using io::SafetensorsWriter;

std::string temp_path(const std::string& name) {
  return ::testing::TempDir() + "normlab_test_checkpoint_" + name;
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

/// Expects every field of `actual` to equal `expected`'s.
void expect_same_config(const ModelConfig& actual, const ModelConfig& expected) {
  EXPECT_EQ(actual.vocab_size, expected.vocab_size);
  EXPECT_EQ(actual.d_model, expected.d_model);
  EXPECT_EQ(actual.n_heads, expected.n_heads);
  EXPECT_EQ(actual.n_layers, expected.n_layers);
  EXPECT_EQ(actual.d_ff, expected.d_ff);
  EXPECT_EQ(actual.max_seq_len, expected.max_seq_len);
  EXPECT_EQ(actual.policy, expected.policy);
  EXPECT_EQ(actual.extras, expected.extras);
  EXPECT_EQ(actual.head_scale, expected.head_scale);
  EXPECT_EQ(actual.resid_scale, expected.resid_scale);
  EXPECT_EQ(actual.activation, expected.activation);
  EXPECT_EQ(actual.norm, expected.norm);
  EXPECT_EQ(actual.ln_eps, expected.ln_eps);
  EXPECT_EQ(actual.final_norm, expected.final_norm);
  EXPECT_EQ(actual.tie_embeddings, expected.tie_embeddings);
  EXPECT_EQ(actual.positions, expected.positions);
  EXPECT_EQ(actual.embed_scale, expected.embed_scale);
  EXPECT_EQ(actual.padding_idx, expected.padding_idx);
  EXPECT_EQ(actual.dropout, expected.dropout);
  EXPECT_EQ(actual.attention_dropout, expected.attention_dropout);
  EXPECT_EQ(actual.activation_dropout, expected.activation_dropout);
  EXPECT_EQ(actual.embed_dropout, expected.embed_dropout);
}

/// A config whose every key differs from ModelConfig's default.
ModelConfig every_key_config() {
  ModelConfig c;
  c.vocab_size = 50;
  c.d_model = 24;
  c.n_heads = 3;
  c.n_layers = 5;
  c.d_ff = 40;
  c.max_seq_len = 33;
  c.policy = "sandwich";
  c.extras = {"head_scale", "ffn_ln"};
  c.head_scale = "after_out_proj";
  c.resid_scale = true;
  c.activation = "gelu_tanh";
  c.norm = "rms_norm";
  c.ln_eps = 1e-6;
  c.final_norm = false;
  c.tie_embeddings = false;
  c.positions = "sinusoidal";
  c.dropout = 0.1;
  c.attention_dropout = 0.25;
  return c;
}

/// The small model of the parameter and checkpoint tests.
ModelConfig small_config(const std::string& policy = "normformer") {
  return model_config(policy);
}

/// `v` (an object) without member `key`.
json::Value without(const json::Value& v, const std::string& key) {
  json::Object o;
  for (const auto& [k, x] : v.as_object())
    if (k != key) o.set(k, x);
  return o;
}

/// `v` (an object) with member `key` set to `x`.
json::Value with(json::Value v, const std::string& key, json::Value x) {
  v.as_object().set(key, std::move(x));
  return v;
}

void expect_config_error(const json::Value& v, const std::vector<std::string>& fragments) {
  expect_error([&] { (void)config_from_json(v, "test.json"); }, fragments);
}

/// Whether any element differs (a precondition: the models start different).
template <class T>
bool differs(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) != 0;
}

/// Every parameter's values, by name order of named_parameters().
template <class T>
std::vector<std::vector<T>> parameter_values(Module<T, Cpu>& model) {
  std::vector<std::vector<T>> out;
  for (const auto& p : model.named_parameters()) out.push_back(p.value.data().to_vector());
  return out;
}

using SmallGPT = GPT<NormFormer, float, Cpu>;

// ---- config JSON ----------------------------------------------------------

TEST(ConfigJson, RoundTripsEveryKey) {
  const ModelConfig c = every_key_config();
  const json::Value j = config_to_json(c);
  // Every documented key is written, each with a value other than the default's.
  ModelConfig defaults;
  defaults.final_norm = true;
  const json::Value d = config_to_json(defaults);
  EXPECT_EQ(j.size(), 18u);
  for (const auto& [key, value] : d.as_object()) {
    ASSERT_TRUE(j.contains(key)) << key;
    EXPECT_NE(j.at(key), value) << key << " keeps its default, so the round trip does not test it";
  }
  expect_same_config(config_from_json(j, "value"), c);
  expect_same_config(config_from_json(json::parse(json::dump(j), "text"), "text"), c);
  expect_same_config(config_from_json(json::parse(json::dump_compact(j), "compact"), "compact"), c);
}

TEST(ConfigJson, FairseqKeysRoundTripAndAreWrittenOnlyWhenSet) {
  ModelConfig c = every_key_config();
  c.embed_scale = true;
  c.padding_idx = 1;
  c.activation_dropout = 0.125;
  c.embed_dropout = 0.375;
  const json::Value j = config_to_json(c);
  EXPECT_EQ(j.size(), 22u);
  EXPECT_EQ(j.at("embed_scale"), json::Value(true));
  EXPECT_EQ(j.at("padding_idx"), json::Value(1));
  EXPECT_EQ(j.at("activation_dropout"), json::Value(0.125));
  EXPECT_EQ(j.at("embed_dropout"), json::Value(0.375));
  expect_same_config(config_from_json(json::parse(json::dump(j), "text"), "text"), c);
  c.padding_idx = 0;  // a set padding index of 0 is not the absent one
  expect_same_config(config_from_json(config_to_json(c), "zero"), c);
  // At their defaults they are not written: the JSON earlier versions wrote and read.
  const json::Value d = config_to_json(small_config());
  EXPECT_FALSE(d.contains("embed_scale"));
  EXPECT_FALSE(d.contains("padding_idx"));
  EXPECT_FALSE(d.contains("activation_dropout"));
  EXPECT_FALSE(d.contains("embed_dropout"));
  ModelConfig lm = fairseq_transformer_lm(50);
  const ModelConfig lm_back = config_from_json(config_to_json(lm), "fairseq");
  lm.final_norm = true;  // written resolved: pre_ln has one
  expect_same_config(lm_back, lm);
  EXPECT_EQ(config_from_json(d, "defaults").padding_idx, std::nullopt);
  EXPECT_FALSE(config_from_json(d, "defaults").embed_scale);
  EXPECT_EQ(config_from_json(with(d, "embed_scale", false), "false").embed_scale, false);
}

TEST(ConfigJson, FairseqKeysAreChecked) {
  const json::Value full = config_to_json(small_config());  // vocab_size 11
  expect_config_error(with(full, "padding_idx", 11),
                      {"test.json: config: padding_idx must be a token in [0, vocab_size = 11), "
                       "got 11"});
  expect_config_error(with(full, "padding_idx", -1),
                      {"padding_idx must be a token in [0, vocab_size = 11), got -1"});
  expect_config_error(
      with(full, "padding_idx", 1.5),
      {"test.json", "config key \"padding_idx\" must be an integer, found number 1.5"});
  expect_config_error(with(full, "padding_idx", "1"),
                      {"test.json", "config key \"padding_idx\" must be an integer, found string"});
  expect_config_error(with(full, "activation_dropout", 1.0),
                      {"test.json: config: activation_dropout must be in [0, 1), got 1"});
  expect_config_error(with(full, "embed_dropout", -0.25),
                      {"test.json: config: embed_dropout must be in [0, 1), got -0.25"});
  expect_config_error(
      with(full, "embed_scale", 1),
      {"test.json", "config key \"embed_scale\" must be true or false, found number 1"});
  // max_seq_len + padding_idx + 1 rows must be countable.
  expect_config_error(with(with(full, "max_seq_len", INT64_MAX - 1), "padding_idx", 3),
                      {"test.json: config: the position table of max_seq_len 9223372036854775806 + "
                       "padding_idx 3 + 1 rows has more rows than an int64 can count"});
}

TEST(LoadParameters, APositionTableWithoutThePaddingRowsIsRefused) {
  // fairseq's learned table has max_seq_len + padding_idx + 1 rows; one of
  // max_seq_len rows (a model saved without padding_idx) is too small.
  ModelConfig plain = small_config("pre_ln");  // max_seq_len 6, d_model 8
  ModelConfig padded = plain;
  padded.padding_idx = 1;
  GPT<PreLN, double, Cpu> source(plain, 1);
  GPT<PreLN, double, Cpu> target(padded, 1);
  EXPECT_EQ(target.embed_positions->weight.shape(), Shape({8, 8}));  // 6 + 1 + 1 rows
  expect_error(
      [&] { load_parameters(target, reader(parameters_of(source), "plain.st")); },
      {"plain.st", "parameter 'embed_positions.weight' has shape (6, 8)", "expected (8, 8)"});
  expect_error(
      [&] { load_parameters(source, reader(parameters_of(target), "padded.st")); },
      {"padded.st", "parameter 'embed_positions.weight' has shape (8, 8)", "expected (6, 8)"});
}

TEST(ConfigJson, WritesTheResolvedFinalNorm) {
  ModelConfig pre = small_config("pre_ln");
  ModelConfig post = small_config("post_ln");
  EXPECT_EQ(config_to_json(pre).at("final_norm"), json::Value(true));
  EXPECT_EQ(config_to_json(post).at("final_norm"), json::Value(false));
  EXPECT_EQ(config_from_json(config_to_json(pre), "pre").final_norm, std::optional<bool>(true));
  EXPECT_EQ(config_from_json(config_to_json(post), "post").final_norm, std::optional<bool>(false));
}

TEST(ConfigJson, OptionalKeysDefault) {
  const json::Value j = json::parse(
      R"({"vocab_size": 11, "d_model": 8, "n_heads": 2, "n_layers": 2, "d_ff": 12,
          "max_seq_len": 6, "policy": "normformer"})",
      "minimal");
  expect_same_config(config_from_json(j, "minimal"), small_config("normformer"));
}

TEST(ConfigJson, LoadsTheNormFormerFixture) {
  const ModelConfig c =
      load_config(std::string(NORMLAB_TEST_FIXTURES) + "/reference/normformer/config.json");
  EXPECT_EQ(c.policy_spec(), spec_of<NormFormer>());
  EXPECT_EQ(c.vocab_size, 13);
  EXPECT_EQ(c.d_model, 8);
  EXPECT_EQ(c.max_seq_len, 7);
  EXPECT_EQ(c.final_norm, std::optional<bool>(true));
}

TEST(ConfigJson, UnknownKeyIsNamedWithTheKnownKeys) {
  expect_config_error(with(config_to_json(small_config()), "d_modle", 8),
                      {"test.json", "unknown config key \"d_modle\"",
                       "known keys: vocab_size, d_model, n_heads", "attention_dropout)"});
}

TEST(ConfigJson, MissingRequiredKey) {
  const json::Value full = config_to_json(small_config());
  for (const char* key :
       {"vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_len", "policy"}) {
    SCOPED_TRACE(key);
    expect_config_error(without(full, key),
                        {"test.json", std::string("missing config key \"") + key + "\""});
  }
}

TEST(ConfigJson, WrongTypes) {
  const json::Value full = config_to_json(small_config());
  expect_config_error(
      with(full, "d_model", "8"),
      {"test.json", "config key \"d_model\" must be an integer, found string \"8\""});
  expect_config_error(
      with(full, "n_layers", 3.5),
      {"test.json", "config key \"n_layers\" must be an integer, found number 3.5"});
  expect_config_error(
      with(full, "n_layers", 2.0),
      {"test.json", "config key \"n_layers\" must be an integer, found number 2.0"});
  expect_config_error(
      with(full, "resid_scale", 1),
      {"test.json", "config key \"resid_scale\" must be true or false, found number 1"});
  expect_config_error(with(full, "policy", json::Array{}),
                      {"test.json", "config key \"policy\" must be a string, found array"});
  expect_config_error(with(full, "ln_eps", "1e-5"),
                      {"test.json", "config key \"ln_eps\" must be a number, found string"});
  expect_config_error(with(full, "extras", "attn_ln"),
                      {"test.json", "config key \"extras\" must be an array of strings"});
  expect_config_error(with(full, "extras", json::Array{"attn_ln", 3}),
                      {"test.json", "config key \"extras\" must hold strings, found number 3"});
}

TEST(ConfigJson, SizesThatCannotBeBuiltAreRefusedBeforeAnyAllocation) {
  // vocab_size 2^62 with d_model 1 once wrapped the storage size to 0 and
  // wrote past a 64-byte block; 2^61 x 4 overflows int64 itself.
  const json::Value full = config_to_json(small_config());
  const json::Value huge = with(with(full, "vocab_size", int64_t(1) << 62), "d_model", 1);
  expect_config_error(with(huge, "n_heads", 1),
                      {"test.json: config: the model (vocab_size 4611686018427387904, d_model 1",
                       "bytes in float, more than this machine's"});
  expect_config_error(
      with(with(with(full, "vocab_size", int64_t(1) << 61), "d_model", 4), "n_heads", 1),
      {"test.json: config: a model with vocab_size 2305843009213693952, d_model 4",
       "more parameters than an int64 can count"});
  expect_config_error(with(with(full, "d_model", INT64_MAX), "n_heads", 1),
                      {"more parameters than an int64 can count"});
  ModelConfig c = small_config();
  c.vocab_size = int64_t(1) << 62;
  c.d_model = 1;
  c.n_heads = 1;
  expect_error([&] { GPT<RuntimePolicy, float, Cpu> m(c); }, {"more than this machine's"});
}

TEST(ConfigJson, InvalidValues) {
  const json::Value full = config_to_json(small_config());
  expect_config_error(with(with(full, "d_model", 10), "n_heads", 3),
                      {"test.json: config: d_model 10 must be divisible by n_heads 3"});
  expect_config_error(
      with(full, "policy", "layer_ln"),
      {"test.json: config: unknown policy \"layer_ln\"", "post_ln, pre_ln, normformer"});
  expect_config_error(with(full, "dropout", -0.5),
                      {"test.json: config: dropout must be in [0, 1), got -0.5"});
  expect_config_error(with(full, "vocab_size", 0),
                      {"test.json: config: vocab_size must be positive, got 0"});
  expect_config_error(with(full, "extras", json::Array{"attn_norm"}),
                      {"test.json: config: extras: unknown extra \"attn_norm\""});
}

TEST(ConfigJson, NotAnObject) {
  expect_config_error(json::Array{1, 2},
                      {"test.json", "a config must be a JSON object, found array of 2 elements"});
}

TEST(ConfigJson, MalformedFileGivesLineAndColumn) {
  const std::string path = temp_path("malformed.json");
  write_text(path, "{\"vocab_size\": 11,\n  \"d_model\": }\n");
  expect_error([&] { (void)load_config(path); }, {path + ":2:14:", "found '}'"});
}

TEST(ConfigJson, MissingFileNamesThePath) {
  const std::string path = temp_path("no_such_dir/config.json");
  expect_error([&] { (void)load_config(path); }, {"cannot read '" + path + "'"});
}

TEST(ConfigJson, ErrorsInAFileNameTheFile) {
  const std::string path = temp_path("bad_value.json");
  write_text(path, json::dump(with(config_to_json(small_config()), "n_heads", 3)));
  expect_error([&] { (void)load_config(path); },
               {path + ": config: d_model 8 must be divisible by n_heads 3"});
}

// ---- load_parameters -------------------------------------------------------

TEST(LoadParameters, ReproducesTheForwardPassBitForBit) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  source.eval();
  target.eval();
  ASSERT_TRUE(differs(logits_of(source), logits_of(target))) << "the seeds give the same model";
  load_parameters(target, reader(parameters_of(source)));
  expect_bitwise_equal(logits_of(target), logits_of(source));
  const auto loaded = parameter_values(target);
  const auto saved = parameter_values(source);
  ASSERT_EQ(loaded.size(), saved.size());
  for (size_t i = 0; i < loaded.size(); ++i) expect_bitwise_equal(loaded[i], saved[i]);
}

TEST(LoadParameters, LoadsFromAFile) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  const std::string path = temp_path("params.safetensors");
  parameters_of(source).write(path);
  load_parameters(target, SafetensorsReader::open(path));
  expect_bitwise_equal(logits_of(target), logits_of(source));
}

TEST(LoadParameters, MissingKey) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  SafetensorsWriter w;
  for (const auto& p : source.named_parameters())
    if (p.name != "layers.1.fc2.bias") w.add(p.name, p.value.data());
  expect_error([&] { load_parameters(target, reader(w)); },
               {"params.st", "missing parameter 'layers.1.fc2.bias'", "expected shape (8,)"});
}

TEST(LoadParameters, ExtraKey) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  SafetensorsWriter w = parameters_of(source);
  w.add("layers.2.fc1.weight", TensorF::zeros({12, 8}));
  expect_error([&] { load_parameters(target, reader(w)); },
               {"params.st", "unexpected tensor 'layers.2.fc1.weight'", "(shape (12, 8))",
                "the model has no parameter of that name"});
}

TEST(LoadParameters, WrongShape) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  SafetensorsWriter w;
  for (const auto& p : source.named_parameters())
    w.add(p.name, p.name == "layers.0.fc1.weight" ? TensorF::zeros({8, 12}) : p.value.data());
  expect_error(
      [&] { load_parameters(target, reader(w)); },
      {"params.st", "parameter 'layers.0.fc1.weight' has shape (8, 12), expected (12, 8)"});
}

TEST(LoadParameters, DTypeExactRefusesF64ConvertAcceptsIt) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  const SafetensorsReader f64 = reader(parameters_of(source, DType::F64), "f64.st");
  ASSERT_EQ(f64.info("embed_tokens.weight").dtype, DType::F64);
  expect_error([&] { load_parameters(target, f64, DTypeMatch::exact); },
               {"f64.st", "parameter 'embed_tokens.weight' has dtype F64, expected F32",
                "(the model's float32)"});
  expect_error([&] { load_parameters(target, f64); }, {"f64.st", "has dtype F64, expected F32"});
  load_parameters(target, f64, DTypeMatch::convert);
  // float -> double -> float is exact.
  expect_bitwise_equal(logits_of(target), logits_of(source));
}

TEST(LoadParameters, IgnoredKeyIsAccepted) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  SafetensorsWriter w = parameters_of(source);
  w.add("version", TensorI::from({3}));
  expect_error([&] { load_parameters(target, reader(w)); }, {"unexpected tensor 'version'"});
  load_parameters(target, reader(w), DTypeMatch::exact, {"version"});
  expect_bitwise_equal(logits_of(target), logits_of(source));
}

TEST(LoadParameters, AFailedLoadChangesNoParameter) {
  SmallGPT source(small_config(), 1);
  const std::vector<NamedParameter<float, Cpu>> params = source.named_parameters();
  const std::string last = params.back().name;  // checked last: all others would load first
  const Shape last_shape = params.back().value.shape();

  std::vector<std::pair<std::string, SafetensorsWriter>> bad;  // (message fragment, file)
  {
    SafetensorsWriter w;
    for (const auto& p : params)
      if (p.name != last) w.add(p.name, p.value.data());
    bad.emplace_back("missing parameter '" + last + "'", std::move(w));
  }
  {
    SafetensorsWriter w;
    for (const auto& p : params)
      w.add(p.name, p.name == last ? TensorF::zeros({last_shape.numel() + 1}) : p.value.data());
    bad.emplace_back("parameter '" + last + "' has shape", std::move(w));
  }
  {
    SafetensorsWriter w;
    for (const auto& p : params)
      w.add(p.name, p.value.data(), p.name == last ? DType::F64 : DType::F32);
    bad.emplace_back("parameter '" + last + "' has dtype F64", std::move(w));
  }
  {
    SafetensorsWriter w = parameters_of(source);
    w.add("zzz.extra", TensorF::zeros({2}));
    bad.emplace_back("unexpected tensor 'zzz.extra'", std::move(w));
  }

  SmallGPT target(small_config(), 2);
  const auto before = parameter_values(target);
  ASSERT_NE(before, parameter_values(source));
  for (const auto& [what, w] : bad) {
    SCOPED_TRACE(what);
    expect_error([&] { load_parameters(target, reader(w)); }, {"params.st", what});
    const auto after = parameter_values(target);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) {
      SCOPED_TRACE(params[i].name);
      expect_bitwise_equal(after[i], before[i]);
    }
  }
}

// Under DTypeMatch::convert an integer tensor is refused with the other
// checks, before any parameter changes (fuzz_checkpoint found that the
// parameters before it were loaded, then its read threw).
TEST(LoadParameters, ConvertRefusesAnIntegerTensorBeforeAnyParameterChanges) {
  SmallGPT source(small_config(), 1);
  const std::vector<NamedParameter<float, Cpu>> params = source.named_parameters();
  const std::string last = params.back().name;  // checked last: all others would load first
  SafetensorsWriter w;
  for (const auto& p : params)
    if (p.name == last)
      w.add(p.name, TensorI::zeros(p.value.shape()));
    else
      w.add(p.name, p.value.data());
  SmallGPT target(small_config(), 2);
  const auto before = parameter_values(target);
  for (const KeyMatch keys : {KeyMatch::exact, KeyMatch::report}) {
    expect_error(
        [&] {
          load_parameters(target, reader(w), LoadOptions{DTypeMatch::convert, keys, {}});
        },
        {"params.st", "parameter '" + last + "' has dtype I64, expected F32",
         "only F32 and F64 convert"});
    const auto after = parameter_values(target);
    ASSERT_EQ(after.size(), before.size());
    for (size_t i = 0; i < after.size(); ++i) expect_bitwise_equal(after[i], before[i]);
  }
}

// ---- load_parameters, KeyMatch::report ----------------------------------------

TEST(LoadParametersReport, LoadsWhatBothHoldAndListsTheRest) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  const std::vector<NamedParameter<float, Cpu>> params = source.named_parameters();
  SafetensorsWriter w;
  for (const auto& p : params)
    if (p.name != "layers.1.fc2.bias" && p.name != "embed_tokens.weight")
      w.add(p.name, p.value.data());
  w.add("decoder.version", TensorF::from({3}));
  w.add("optim.step", TensorI::from({7}));
  const auto before = parameter_values(target);

  const LoadReport r = load_parameters(
      target, reader(w), LoadOptions{DTypeMatch::exact, KeyMatch::report, {"optim.step"}});
  EXPECT_EQ(r.missing, (std::vector<std::string>{"embed_tokens.weight", "layers.1.fc2.bias"}));
  EXPECT_EQ(r.unexpected, std::vector<std::string>{"decoder.version"});
  EXPECT_EQ(r.loaded.size() + 2, params.size());
  EXPECT_FALSE(r.complete());
  EXPECT_EQ(r.summary(), "loaded " + std::to_string(params.size() - 2) + " of " +
                             std::to_string(params.size()) +
                             " parameters; missing (2): embed_tokens.weight, layers.1.fc2.bias; "
                             "unexpected (1): decoder.version");

  // The missing ones keep their values; every other one is the source's.
  const auto after = parameter_values(target);
  const auto saved = parameter_values(source);
  for (size_t i = 0; i < params.size(); ++i) {
    SCOPED_TRACE(params[i].name);
    const bool missing =
        params[i].name == "layers.1.fc2.bias" || params[i].name == "embed_tokens.weight";
    expect_bitwise_equal(after[i], missing ? before[i] : saved[i]);
  }
}

TEST(LoadParametersReport, ACompleteFileReportsNothing) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  const LoadReport r = load_parameters(target, reader(parameters_of(source)),
                                       LoadOptions{DTypeMatch::exact, KeyMatch::report, {}});
  EXPECT_TRUE(r.complete());
  EXPECT_EQ(r.loaded.size(), source.named_parameters().size());
  EXPECT_EQ(r.summary(), "loaded " + std::to_string(r.loaded.size()) + " of " +
                             std::to_string(r.loaded.size()) + " parameters");
  expect_bitwise_equal(logits_of(target), logits_of(source));
}

TEST(LoadParametersReport, AMisshapenOrMistypedTensorIsStillAnErrorAndChangesNothing) {
  SmallGPT source(small_config(), 1);
  SmallGPT target(small_config(), 2);
  const auto before = parameter_values(target);
  const LoadOptions report{DTypeMatch::exact, KeyMatch::report, {}};
  SafetensorsWriter shape;
  for (const auto& p : source.named_parameters())
    shape.add(p.name, p.name == "layers.0.fc1.weight" ? TensorF::zeros({8, 12}) : p.value.data());
  expect_error(
      [&] { (void)load_parameters(target, reader(shape), report); },
      {"params.st", "parameter 'layers.0.fc1.weight' has shape (8, 12), expected (12, 8)"});
  SafetensorsWriter dtype;
  for (const auto& p : source.named_parameters())
    dtype.add(p.name, p.value.data(), p.name == "layer_norm.bias" ? DType::F64 : DType::F32);
  expect_error([&] { (void)load_parameters(target, reader(dtype), report); },
               {"params.st", "parameter 'layer_norm.bias' has dtype F64, expected F32"});
  const auto after = parameter_values(target);
  for (size_t i = 0; i < after.size(); ++i) expect_bitwise_equal(after[i], before[i]);
}

TEST(LoadParameters, TensorNamesWithPrefix) {
  SafetensorsWriter w;
  w.add("optim.m.a", TensorF::zeros({1}));
  w.add("optim.step", TensorI::from({1}));
  w.add("optimizer", TensorF::zeros({1}));
  w.add("a.optim.b", TensorF::zeros({1}));
  EXPECT_EQ(tensor_names_with_prefix(reader(w), kOptimizerStatePrefix),
            (std::set<std::string>{"optim.m.a", "optim.step"}));
}

// ---- checkpoints -------------------------------------------------------------

template <class P, class T>
void expect_checkpoint_round_trip(const std::string& policy) {
  ModelConfig cfg = small_config(policy);
  cfg.activation = "relu";  // a key off its default travels too
  GPT<P, T, Cpu> saved(cfg, 3);
  saved.eval();
  const std::string path = temp_path(policy + "_" + dtype_name<T>() + ".safetensors");
  save_checkpoint(path, saved, cfg);

  const SafetensorsReader file = SafetensorsReader::open(path);
  const ModelConfig loaded_cfg = checkpoint_config(file);
  ModelConfig resolved = cfg;
  resolved.final_norm = cfg.uses_final_norm();
  expect_same_config(loaded_cfg, resolved);
  for (const io::TensorInfo& t : file.tensors()) EXPECT_EQ(t.dtype, io::default_dtype<T>());

  GPT<P, T, Cpu> loaded(loaded_cfg, 4);
  loaded.eval();
  ASSERT_TRUE(differs(logits_of(loaded), logits_of(saved)));
  load_checkpoint(file, loaded);
  expect_bitwise_equal(logits_of(loaded), logits_of(saved));
}

TEST(Checkpoint, RoundTripsPreLNFloat) {
  expect_checkpoint_round_trip<PreLN, float>("pre_ln");
}
TEST(Checkpoint, RoundTripsPreLNDouble) {
  expect_checkpoint_round_trip<PreLN, double>("pre_ln");
}
TEST(Checkpoint, RoundTripsDeepNormFloat) {
  expect_checkpoint_round_trip<DeepNorm, float>("deepnorm");
}
TEST(Checkpoint, RoundTripsDeepNormDouble) {
  expect_checkpoint_round_trip<DeepNorm, double>("deepnorm");
}

TEST(Checkpoint, FloatCheckpointIntoDoubleModelIsRefused) {
  GPT<PreLN, float, Cpu> saved(small_config("pre_ln"), 3);
  const std::string path = temp_path("dtype.safetensors");
  save_checkpoint(path, saved, small_config("pre_ln"));
  const SafetensorsReader file = SafetensorsReader::open(path);
  GPT<PreLN, double, Cpu> loaded(checkpoint_config(file), 4);
  expect_error([&] { load_checkpoint(file, loaded); },
               {path, "has dtype F32, expected F64 (the model's float64)"});
}

TEST(Checkpoint, FileWithoutConfigIsNotACheckpoint) {
  SmallGPT model(small_config(), 1);
  expect_error([&] { (void)checkpoint_config(reader(parameters_of(model), "plain.st")); },
               {"plain.st", "not a normlab checkpoint", "normlab.config"});
}

TEST(Checkpoint, InvalidStoredConfigNamesTheFile) {
  SmallGPT model(small_config(), 1);
  SafetensorsWriter w = parameters_of(model);
  w.set_metadata(kCheckpointConfigKey, R"({"vocab_size": 11})");
  expect_error([&] { (void)checkpoint_config(reader(w, "odd.st")); },
               {"odd.st config", "missing config key \"d_model\""});
  w.set_metadata(kCheckpointConfigKey, "{");
  expect_error([&] { (void)checkpoint_config(reader(w, "odd.st")); }, {"odd.st config:1:2:"});
}

TEST(Checkpoint, TruncatedFileNamesTheFile) {
  SmallGPT model(small_config(), 1);
  const std::string path = temp_path("truncated.safetensors");
  save_checkpoint(path, model, small_config());
  std::filesystem::resize_file(path, std::filesystem::file_size(path) - 10);
  expect_error([&] { (void)SafetensorsReader::open(path); }, {path, "truncated file"});
}

TEST(Checkpoint, CorruptedHeaderLengthNamesTheFile) {
  SmallGPT model(small_config(), 1);
  const std::string path = temp_path("bad_length.safetensors");
  save_checkpoint(path, model, small_config());
  {
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    const char huge[8] = {0, 0, 0, 0, 0, 0, 0, 0x40};  // 2^62, little-endian
    f.write(huge, 8);
  }
  expect_error([&] { (void)SafetensorsReader::open(path); },
               {path, "header length 4611686018427387904 is larger than the file"});
}

TEST(Checkpoint, PreLNCheckpointIntoPostLNModelIsRefused) {
  GPT<PreLN, float, Cpu> saved(small_config("pre_ln"), 3);
  const std::string path = temp_path("pre_ln_for_post.safetensors");
  save_checkpoint(path, saved, small_config("pre_ln"));
  const ModelConfig cfg = checkpoint_config(SafetensorsReader::open(path));
  expect_error(
      [&] { GPT<PostLN, float, Cpu> model(cfg); },
      {"GPT<post_ln>", "config asks for policy pre_ln", "this model type computes post_ln"});
}

}  // namespace
}  // namespace normlab::testing
