// fuzz/make_seeds.cpp — writes the seed corpora of the fuzz harnesses with
// normlab's own writers, so that every seed is a file the library itself
// produces (plus a few hostile ones built by hand).
//
//   make_seeds OUT_DIR
//
// writes OUT_DIR/json, OUT_DIR/config, OUT_DIR/safetensors and
// OUT_DIR/checkpoint (created when missing; existing seeds are overwritten):
//   json         documents of every kind: scalars, escapes, numbers at the
//                edges of int64 and double, nesting, configs and headers;
//   config       config_to_json of tiny configs of every preset and extra,
//                pretty and compact;
//   safetensors  SafetensorsWriter files of every dtype, scalar, empty, 1-4-D
//                tensors, with and without metadata, and an optimizer state;
//   checkpoint   save_checkpoint-format files (add_model) of tiny GPTs of
//                several policies, in float and double, some with an AdamW
//                state under `optim.` as a trainer writes it.
// Hostile seeds (a header length past the end, overlapping offsets, huge
// shapes and sizes, deep nesting) go next to the valid ones.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "normlab/autograd/variable.hpp"
#include "normlab/backend/cpu.hpp"
#include "normlab/core/error.hpp"
#include "normlab/core/random.hpp"
#include "normlab/io/json.hpp"
#include "normlab/io/safetensors.hpp"
#include "normlab/models/checkpoint.hpp"
#include "normlab/models/config.hpp"
#include "normlab/models/gpt.hpp"
#include "normlab/optim/adam.hpp"
#include "normlab/policy/compose.hpp"
#include "normlab/train/optimizer_state.hpp"

namespace fs = std::filesystem;
namespace nl = normlab;
namespace io = normlab::io;
namespace json = normlab::json;
using nl::Cpu;

namespace {

int written = 0;

void write_bytes(const fs::path& path, const void* data, size_t size) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  nl::detail::check(out.good(), "make_seeds: cannot write ", path.string());
  ++written;
}
void write_text(const fs::path& path, const std::string& text) {
  write_bytes(path, text.data(), text.size());
}
void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  write_bytes(path, bytes.data(), bytes.size());
}

/// A safetensors file with `header` (not padded) and `data_size` zero bytes of data.
std::vector<uint8_t> raw_safetensors(const std::string& header, size_t data_size,
                                     uint64_t length_prefix) {
  std::vector<uint8_t> out(8 + header.size() + data_size, 0);
  std::memcpy(out.data(), &length_prefix, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}
std::vector<uint8_t> raw_safetensors(const std::string& header, size_t data_size) {
  return raw_safetensors(header, data_size, header.size());
}

/// The tiny config every checkpoint seed starts from (policy set by spec).
nl::ModelConfig tiny_config(const std::string& spec) {
  nl::ModelConfig c;
  c.vocab_size = 16;
  c.d_model = 8;
  c.n_heads = 2;
  c.n_layers = 1;
  c.d_ff = 16;
  c.max_seq_len = 8;
  c.set_policy_spec(spec);
  return c;
}

/// Tiny configs: every preset and extra, and the other keys' alternatives.
std::vector<std::pair<std::string, nl::ModelConfig>> configs() {
  std::vector<std::pair<std::string, nl::ModelConfig>> out;
  for (const char* spec :
       {"post_ln", "pre_ln", "normformer", "sandwich", "deepnorm", "no_ln", "pre_ln+attn_ln+ffn_ln",
        "pre_ln+head_scale(after_out_proj)", "post_ln+resid_scale", "pre_ln+rms_norm",
        "deepnorm+attn_ln", "pre_ln+ffn_out_ln"}) {
    std::string name = spec;
    std::erase(name, ')');
    for (char& ch : name)
      if (ch == '+' || ch == '(') ch = '_';
    out.emplace_back(name, tiny_config(spec));
  }
  nl::ModelConfig c = tiny_config("pre_ln");
  c.n_layers = 2;
  c.tie_embeddings = false;
  c.positions = "sinusoidal";
  c.activation = "relu";
  out.emplace_back("pre_ln_untied_sinusoidal_relu", c);
  c = tiny_config("normformer");
  c.activation = "gelu_tanh";
  c.final_norm = false;
  c.ln_eps = 1e-6;
  c.dropout = 0.1;
  c.attention_dropout = 0.05;
  out.emplace_back("normformer_gelu_tanh_dropout", c);
  c = tiny_config("post_ln");
  c.extras = {"attn_ln", "head_scale"};
  c.head_scale = "after_out_proj";
  c.resid_scale = true;
  c.norm = "rms_norm";
  out.emplace_back("post_ln_keys", c);
  return out;
}

void json_seeds(const fs::path& dir) {
  const std::vector<std::pair<std::string, std::string>> docs = {
      {"null", "null"},
      {"true", "true"},
      {"int", "-9223372036854775808"},
      {"int_max", "9223372036854775807"},
      {"int_overflow", "9223372036854775808"},
      {"double", "[0.1, -0.0, 1e-300, 2.5e+308, 4.9e-324, 1e-400, 1.7976931348623157e308]"},
      {"exponents", "[1E5, 1e-5, -0.5e+2, 0e0, 123456789012345678901234567890]"},
      {"string", R"("plain \"quoted\" \\ \/ \b\f\n\r\t \u0000 \u00e9 \ud83d\ude00 é 😀")"},
      {"object", R"({"a": 1, "b": [true, false, null], "c": {"d": "e"}, "": {}})"},
      {"array", R"([[], [[]], [1, [2, [3, [4]]]], {}, [{"x": []}]])"},
      {"whitespace", " \t\r\n{ \"k\" : [ 1 , 2 ] } \n"},
      {"deep", std::string(100, '[') + std::string(100, ']')},
      {"deep_objects",
       [] {
         std::string s;
         for (int i = 0; i < 50; ++i) s += "{\"k\":";
         return s + "0" + std::string(50, '}');
       }()},
      // Invalid documents the parser must refuse (each by one rule).
      {"bad_trailing_comma", "[1, 2,]"},
      {"bad_comment", "{\"a\": 1 /* no */}"},
      {"bad_duplicate_key", R"({"a": 1, "a": 2})"},
      {"bad_leading_zero", "012"},
      {"bad_surrogate", R"("\ud800")"},
      {"bad_utf8", "\"\xC0\xAF\xED\xA0\x80\xF4\x90\x80\x80\""},
      {"bad_control", "\"tab\there\""},
      {"bad_nan", "[NaN, Infinity]"},
      {"bad_too_deep", std::string(600, '[') + std::string(600, ']')},
      {"bad_two_values", "1 2"},
  };
  for (const auto& [name, text] : docs) write_text(dir / (name + ".json"), text);
  for (const auto& [name, c] : configs())
    write_text(dir / ("config_" + name + ".json"), json::dump(nl::config_to_json(c)));
  write_text(dir / "safetensors_header.json",
             R"({"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],)"
             R"("data_offsets":[0,24]}})");
}

void config_seeds(const fs::path& dir) {
  for (const auto& [name, c] : configs()) {
    const json::Value v = nl::config_to_json(c);
    write_text(dir / (name + ".json"), json::dump(v));
    write_text(dir / (name + ".compact.json"), json::dump_compact(v));
  }
  // Only the required keys.
  write_text(dir / "required_keys.json",
             R"({"vocab_size": 16, "d_model": 8, "n_heads": 2, "n_layers": 1, "d_ff": 16,)"
             R"( "max_seq_len": 8, "policy": "pre_ln"})");
  // Hostile: sizes whose parameter count overflows int64 or exceeds memory.
  write_text(dir / "bad_huge_sizes.json",
             R"({"vocab_size": 9223372036854775807, "d_model": 4611686018427387904,)"
             R"( "n_heads": 1, "n_layers": 9223372036854775807, "d_ff": 9223372036854775807,)"
             R"( "max_seq_len": 9223372036854775807, "policy": "pre_ln"})");
  write_text(dir / "bad_memory.json",
             R"({"vocab_size": 100000000, "d_model": 65536, "n_heads": 1, "n_layers": 1,)"
             R"( "d_ff": 1, "max_seq_len": 1, "policy": "pre_ln"})");
  write_text(dir / "bad_values.json",
             R"({"vocab_size": 16, "d_model": 8, "n_heads": 3, "n_layers": 0, "d_ff": -1,)"
             R"( "max_seq_len": 8.0, "policy": "pre_ln+nope", "extras": ["head_scale", 1],)"
             R"( "ln_eps": -1, "dropout": 1, "final_norm": "yes", "unknown": 0})");
}

/// A tensor of `shape` with deterministic, varied values.
template <class T>
nl::Tensor<T, Cpu> filled(const nl::Shape& shape, int seed) {
  std::vector<T> v(static_cast<size_t>(shape.numel()));
  for (size_t i = 0; i < v.size(); ++i)
    v[i] = static_cast<T>((static_cast<int64_t>(i) * 37 + seed * 11) % 23 - 11) /
           static_cast<T>(std::is_floating_point_v<T> ? 4 : 1);
  return nl::Tensor<T, Cpu>::from_vector(shape, v);
}

void safetensors_seeds(const fs::path& dir) {
  {
    io::SafetensorsWriter w;
    write_file(dir / "empty.safetensors", w.to_bytes());
    w.set_metadata("format", "pt");
    w.set_metadata("note", "only metadata, é");
    write_file(dir / "metadata_only.safetensors", w.to_bytes());
  }
  {
    io::SafetensorsWriter w;
    w.add("weight", filled<float>({2, 3}, 1));
    write_file(dir / "f32_2x3.safetensors", w.to_bytes());
  }
  {
    io::SafetensorsWriter w;
    w.add("scalar", nl::Tensor<double, Cpu>::scalar(3.5));
    w.add("vector", filled<double>({5}, 2));
    write_file(dir / "f64_scalar_vector.safetensors", w.to_bytes());
  }
  {
    io::SafetensorsWriter w;
    w.add("ids", filled<int64_t>({7}, 3));
    w.add("ids32", filled<int64_t>({2, 2}, 4), io::DType::I32);
    write_file(dir / "i64_i32.safetensors", w.to_bytes());
  }
  {
    io::SafetensorsWriter w;
    w.add("a.f32", filled<float>({2, 1, 3, 2}, 5));
    w.add("b.f64", filled<float>({3}, 6), io::DType::F64);
    w.add("c.i64", filled<int64_t>({1, 4}, 7));
    w.add("d.i32", filled<int64_t>({3}, 8), io::DType::I32);
    w.add("e.empty", nl::Tensor<float, Cpu>::zeros({0, 3}));
    w.add("f.scalar", nl::Tensor<int64_t, Cpu>::scalar(-1));
    w.set_metadata("format", "pt");
    write_file(dir / "mixed.safetensors", w.to_bytes());
  }
  {
    // An optimizer state as write_state stores it.
    nl::OptimizerState<float, Cpu> s;
    s.tensors["exp_avg.w"] = filled<float>({4}, 9);
    s.tensors["exp_avg_sq.w"] = filled<float>({4}, 10);
    s.counters["step"] = 3;
    s.counters["step.w"] = 3;
    io::SafetensorsWriter w;
    nl::write_state(w, s, "optim.");
    write_file(dir / "optimizer_state.safetensors", w.to_bytes());
  }
  // Hostile files, each refused by one rule.
  const std::string one = R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  write_file(dir / "bad_length_past_end.safetensors", raw_safetensors(one, 8, uint64_t(1) << 62));
  write_file(dir / "bad_length_max.safetensors", raw_safetensors(one, 8, ~uint64_t{0}));
  write_file(dir / "bad_truncated.safetensors", raw_safetensors(one, 4));
  write_file(dir / "bad_gap.safetensors", raw_safetensors(one, 12));
  write_file(dir / "bad_overlap.safetensors",
             raw_safetensors(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                             8));
  write_file(dir / "bad_huge_shape.safetensors",
             raw_safetensors(R"({"t":{"dtype":"F64","shape":[4294967296,4294967296,16],)"
                             R"("data_offsets":[0,0]}})",
                             0));
  write_file(dir / "bad_zero_dim_offsets.safetensors",
             raw_safetensors(R"({"t":{"dtype":"I32","shape":[0,9223372036854775807],)"
                             R"("data_offsets":[0,4]}})",
                             4));
  write_file(dir / "bad_dtype.safetensors",
             raw_safetensors(R"({"t":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}})", 4));
  write_file(dir / "bad_metadata.safetensors",
             raw_safetensors(R"({"__metadata__":{"k":1},"t":{"dtype":"I64","shape":[],)"
                             R"("data_offsets":[0,8]}})",
                             8));
  write_file(dir / "bad_header.safetensors", raw_safetensors("[1, 2", 0));
  write_file(dir / "bad_short.safetensors", std::vector<uint8_t>{1, 0, 0});
}

/// Writes `model`'s checkpoint, and with `with_state` an AdamW state after
/// one training step under `optim.` (as a trainer's checkpoint holds it).
template <class T>
void write_checkpoint(const fs::path& path, const nl::ModelConfig& c, bool with_state) {
  nl::GPT<nl::RuntimePolicy, T, Cpu> model(c, 1);
  io::SafetensorsWriter w;
  if (with_state) {
    nl::AdamW<T, Cpu> opt(model, {.lr = 1e-2, .weight_decay = 0.01});
    const int64_t n = std::min<int64_t>(c.max_seq_len, 4);
    std::vector<int64_t> ids, next;
    for (int64_t i = 0; i < n; ++i)
      ids.push_back(i % c.vocab_size), next.push_back((i + 1) % c.vocab_size);
    model
        .loss(nl::Tensor<int64_t, Cpu>::from_vector({1, n}, ids),
              nl::Tensor<int64_t, Cpu>::from_vector({1, n}, next))
        .backward();
    opt.step();
    nl::write_state(w, opt.state(), "optim.");
    w.set_metadata("normlab.trainer", R"({"step":1})");
  }
  nl::add_model(w, model, c);
  write_file(path, w.to_bytes());
}

void checkpoint_seeds(const fs::path& dir) {
  for (const auto& [name, c] : configs())
    write_checkpoint<float>(dir / (name + ".safetensors"), c, false);
  write_checkpoint<float>(dir / "pre_ln_trained.safetensors", tiny_config("pre_ln"), true);
  write_checkpoint<float>(dir / "normformer_trained.safetensors", tiny_config("normformer"), true);
  write_checkpoint<double>(dir / "post_ln_f64.safetensors", tiny_config("post_ln"), false);
  write_checkpoint<double>(dir / "sandwich_f64_trained.safetensors", tiny_config("sandwich"), true);
  // Hostile: a checkpoint whose config asks for a model far over any cap.
  io::SafetensorsWriter w;
  w.set_metadata(nl::kCheckpointConfigKey,
                 R"({"vocab_size":100000,"d_model":4096,"n_heads":32,"n_layers":96,)"
                 R"("d_ff":16384,"max_seq_len":2048,"policy":"pre_ln"})");
  write_file(dir / "bad_huge_config.safetensors", w.to_bytes());
  w.set_metadata(nl::kCheckpointConfigKey, "{not json");
  write_file(dir / "bad_config_json.safetensors", w.to_bytes());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: make_seeds OUT_DIR\n";
    return 2;
  }
  try {
    const fs::path out = argv[1];
    for (const char* d : {"json", "config", "safetensors", "checkpoint"})
      fs::create_directories(out / d);
    json_seeds(out / "json");
    config_seeds(out / "config");
    safetensors_seeds(out / "safetensors");
    checkpoint_seeds(out / "checkpoint");
    std::cout << "make_seeds: wrote " << written << " seeds under " << out.string() << "\n";
  } catch (const std::exception& e) {
    std::cerr << "make_seeds: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
