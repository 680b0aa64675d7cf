// normlab/models/checkpoint.hpp — model configs as JSON, parameters as
// safetensors, and checkpoints (config + named parameters in one file).
#pragma once

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "normlab/io/json.hpp"
#include "normlab/io/safetensors.hpp"
#include "normlab/models/config.hpp"
#include "normlab/modules/module.hpp"

namespace normlab {
inline namespace v0 {

/// The config as a JSON object with the documented keys (final_norm resolved).
/// `embed_scale`, `padding_idx`, `activation_dropout` and `embed_dropout`
/// are written only when they change the model (true, set, nonzero): a default config's JSON is
/// what earlier versions wrote and read, and a reader that does not know them refuses a model whose
/// numbers and shapes depend on them.
inline json::Value config_to_json(const ModelConfig& c) {
  json::Array extras;
  for (const std::string& e : c.extras) extras.emplace_back(e);
  json::Value v = json::Object{
      {"vocab_size", c.vocab_size},
      {"d_model", c.d_model},
      {"n_heads", c.n_heads},
      {"n_layers", c.n_layers},
      {"d_ff", c.d_ff},
      {"max_seq_len", c.max_seq_len},
      {"policy", c.policy},
      {"extras", std::move(extras)},
      {"head_scale", c.head_scale},
      {"resid_scale", c.resid_scale},
      {"activation", c.activation},
      {"norm", c.norm},
      {"ln_eps", c.ln_eps},
      {"final_norm", c.uses_final_norm()},
      {"tie_embeddings", c.tie_embeddings},
      {"positions", c.positions},
      {"dropout", c.dropout},
      {"attention_dropout", c.attention_dropout},
  };
  if (c.embed_scale) v.as_object().set("embed_scale", true);
  if (c.padding_idx) v.as_object().set("padding_idx", *c.padding_idx);
  if (c.activation_dropout != 0) v.as_object().set("activation_dropout", c.activation_dropout);
  if (c.embed_dropout != 0) v.as_object().set("embed_dropout", c.embed_dropout);
  return v;
}

/// A config from a JSON object. The six sizes and `policy` are required; the
/// other keys default as in ModelConfig (`padding_idx` absent: none). Unknown keys, values of the
/// wrong type and invalid values are errors naming `source` and the key.
inline ModelConfig config_from_json(const json::Value& v, const std::string& source) {
  detail::check(v.is_object(), source, ": a config must be a JSON object, found ", v.describe());
  static const std::set<std::string> known = {"vocab_size",   "d_model",     "n_heads",
                                              "n_layers",     "d_ff",        "max_seq_len",
                                              "policy",       "extras",      "head_scale",
                                              "resid_scale",  "activation",  "norm",
                                              "ln_eps",       "final_norm",  "tie_embeddings",
                                              "positions",    "dropout",     "attention_dropout",
                                              "embed_scale",  "padding_idx", "activation_dropout",
                                              "embed_dropout"};
  for (const auto& [key, value] : v.as_object()) {
    (void)value;
    detail::check(known.contains(key), source, ": unknown config key \"", key,
                  "\" (known keys: vocab_size, d_model, n_heads, n_layers, d_ff, max_seq_len, "
                  "policy, extras, head_scale, resid_scale, activation, norm, ln_eps, final_norm, "
                  "tie_embeddings, embed_scale, positions, padding_idx, dropout, embed_dropout, "
                  "activation_dropout, attention_dropout)");
  }
  auto get = [&](const char* key, json::Type type, const char* what) -> const json::Value* {
    const json::Value* x = v.find(key);
    if (!x) return nullptr;
    detail::check(x->type() == type, source, ": config key \"", key, "\" must be ", what,
                  ", found ", x->describe());
    return x;
  };
  ModelConfig c;
  auto size = [&](const char* key, int64_t& out) {
    const json::Value* x = get(key, json::Type::number, "an integer");
    detail::check(x != nullptr, source, ": missing config key \"", key, "\"");
    detail::check(x->is_int(), source, ": config key \"", key, "\" must be an integer, found ",
                  x->describe());
    out = x->as_int();
  };
  size("vocab_size", c.vocab_size);
  size("d_model", c.d_model);
  size("n_heads", c.n_heads);
  size("n_layers", c.n_layers);
  size("d_ff", c.d_ff);
  size("max_seq_len", c.max_seq_len);
  auto text = [&](const char* key, std::string& out, bool required) {
    const json::Value* x = get(key, json::Type::string, "a string");
    detail::check(x != nullptr || !required, source, ": missing config key \"", key, "\"");
    if (x) out = x->as_string();
  };
  text("policy", c.policy, true);
  text("head_scale", c.head_scale, false);
  text("activation", c.activation, false);
  text("norm", c.norm, false);
  text("positions", c.positions, false);
  auto flag = [&](const char* key, bool& out) {
    if (const json::Value* x = get(key, json::Type::boolean, "true or false")) out = x->as_bool();
  };
  flag("resid_scale", c.resid_scale);
  flag("tie_embeddings", c.tie_embeddings);
  flag("embed_scale", c.embed_scale);
  if (const json::Value* x = get("padding_idx", json::Type::number, "an integer")) {
    detail::check(x->is_int(), source, ": config key \"padding_idx\" must be an integer, found ",
                  x->describe());
    c.padding_idx = x->as_int();
  }
  if (const json::Value* x = get("final_norm", json::Type::boolean, "true or false"))
    c.final_norm = x->as_bool();
  auto number = [&](const char* key, double& out) {
    if (const json::Value* x = get(key, json::Type::number, "a number")) out = x->as_double();
  };
  number("ln_eps", c.ln_eps);
  number("dropout", c.dropout);
  number("attention_dropout", c.attention_dropout);
  number("activation_dropout", c.activation_dropout);
  number("embed_dropout", c.embed_dropout);
  if (const json::Value* x = get("extras", json::Type::array, "an array of strings")) {
    for (const json::Value& e : x->as_array()) {
      detail::check(e.is_string(), source, ": config key \"extras\" must hold strings, found ",
                    e.describe());
      c.extras.push_back(e.as_string());
    }
  }
  try {
    c.validate();
  } catch (const Error& e) {
    throw Error(source + ": " + e.what());
  }
  return c;
}

/// The largest config file load_config reads: 1 MiB (a config is a few
/// hundred bytes; a larger file is a mistake, refused before it is read).
inline constexpr uint64_t kMaxConfigFileBytes = uint64_t{1} << 20;

/// config_from_json of the file at `path`; errors name the file.
inline ModelConfig load_config(const std::string& path) {
  return config_from_json(json::parse_file(path, kMaxConfigFileBytes), path);
}

/// How load_parameters treats a stored dtype that differs from the model's.
enum class DTypeMatch {
  exact,    ///< an error (checkpoints)
  convert,  ///< F32 <-> F64 by value (comparing with PyTorch in another precision)
};

/// Whether load_parameters insists that the file holds exactly the model's parameters.
enum class KeyMatch {
  exact,   ///< a missing or unexpected tensor is an error (checkpoints of this model)
  report,  ///< load what both hold, list the rest in the LoadReport (PyTorch's strict=False)
};

/// How load_parameters matches a file to a model.
struct LoadOptions {
  DTypeMatch dtypes = DTypeMatch::exact;
  KeyMatch keys = KeyMatch::exact;
  /// Tensors of the file that are not parameters (a trainer's optimizer
  /// state): neither loaded nor reported as unexpected.
  std::set<std::string> ignored;
};

/// What load_parameters did: the names, each list sorted.
struct LoadReport {
  std::vector<std::string> loaded;      ///< parameters copied from the file
  std::vector<std::string> missing;     ///< parameters the file lacks: left at their values
  std::vector<std::string> unexpected;  ///< tensors of the file the model has no parameter for

  /// Whether every parameter was loaded and nothing else was found.
  bool complete() const { return missing.empty() && unexpected.empty(); }
  /// One line: "loaded 12 of 14 parameters; missing (2): a, b; unexpected (1): c".
  std::string summary() const {
    std::string s = "loaded " + std::to_string(loaded.size()) + " of " +
                    std::to_string(loaded.size() + missing.size()) + " parameters";
    const auto list = [&s](const char* what, const std::vector<std::string>& names) {
      if (names.empty()) return;
      s += std::string("; ") + what + " (" + std::to_string(names.size()) + "): ";
      for (size_t i = 0; i < names.size(); ++i) s += (i ? ", " : "") + names[i];
    };
    list("missing", missing);
    list("unexpected", unexpected);
    return s;
  }
};

/// Copies the parameters of `model` from `file`, by name.
///
/// Requires: every tensor of `file` that names a parameter has the
/// parameter's shape and dtype (under DTypeMatch::convert, a floating dtype);
/// under KeyMatch::exact, `file` holds every parameter and nothing else
/// besides `options.ignored`. Throws Error naming the file, the key and the expected
/// and found shape or dtype for the first misshapen or mistyped tensor (and,
/// under KeyMatch::exact, the first missing or extra one) before any
/// parameter changes. Under KeyMatch::report the parameters the file lacks
/// keep their values; the returned report lists them and the file's other
/// tensors.
template <FloatingElement Scalar, class Backend>
LoadReport load_parameters(Module<Scalar, Backend>& model, const io::SafetensorsReader& file,
                           const LoadOptions& options) {
  const std::vector<NamedParameter<Scalar, Backend>> params = model.named_parameters();
  const bool exact_keys = options.keys == KeyMatch::exact;
  LoadReport report;
  std::set<std::string> wanted;
  for (const auto& p : params) {
    wanted.insert(p.name);
    if (!file.contains(p.name)) {
      detail::check(!exact_keys, file.source_name(), ": missing parameter '", p.name,
                    "' (expected shape ", p.value.shape(), ")");
      report.missing.push_back(p.name);
      continue;
    }
    const io::TensorInfo& info = file.info(p.name);
    detail::check(info.shape == p.value.shape(), file.source_name(), ": parameter '", p.name,
                  "' has shape ", info.shape, ", expected ", p.value.shape());
    // Under DTypeMatch::convert only floating dtypes convert: an integer one is
    // refused here, with the rest, before any parameter changes.
    const bool converts = options.dtypes == DTypeMatch::convert && io::is_floating(info.dtype);
    detail::check(converts || info.dtype == io::default_dtype<Scalar>(), file.source_name(),
                  ": parameter '", p.name, "' has dtype ", io::to_string(info.dtype), ", expected ",
                  io::to_string(io::default_dtype<Scalar>()), " (the model's ",
                  dtype_name<Scalar>(), ")",
                  options.dtypes == DTypeMatch::convert ? "; only F32 and F64 convert" : "");
    report.loaded.push_back(p.name);
  }
  for (const io::TensorInfo& t : file.tensors()) {
    if (wanted.contains(t.name) || options.ignored.contains(t.name)) continue;
    detail::check(!exact_keys, file.source_name(), ": unexpected tensor '", t.name, "' (shape ",
                  t.shape, "): the model has no parameter of that name");
    report.unexpected.push_back(t.name);
  }
  for (const auto& p : params) {
    if (!file.contains(p.name)) continue;
    Tensor<Scalar, Backend> value = p.value.data();  // a handle: copying into it sets the parameter
    value.copy_from(file.read<Scalar, Backend>(p.name));
  }
  std::sort(report.loaded.begin(), report.loaded.end());
  std::sort(report.missing.begin(), report.missing.end());
  std::sort(report.unexpected.begin(), report.unexpected.end());
  return report;
}

/// load_parameters under KeyMatch::exact: `file` holds exactly the model's
/// parameters (and the `ignored` tensors). Throws as above.
template <FloatingElement Scalar, class Backend>
void load_parameters(Module<Scalar, Backend>& model, const io::SafetensorsReader& file,
                     DTypeMatch dtypes = DTypeMatch::exact,
                     const std::set<std::string>& ignored = {}) {
  load_parameters(model, file, LoadOptions{dtypes, KeyMatch::exact, ignored});
}

/// Prefix of the optimizer state's tensors in a training checkpoint
/// (Trainer::save_checkpoint); they are not parameters of the model.
inline constexpr const char* kOptimizerStatePrefix = "optim.";

/// The names of `file`'s tensors that start with `prefix`.
inline std::set<std::string> tensor_names_with_prefix(const io::SafetensorsReader& file,
                                                      std::string_view prefix) {
  std::set<std::string> names;
  for (const io::TensorInfo& t : file.tensors())
    if (t.name.starts_with(prefix)) names.insert(t.name);
  return names;
}

/// Metadata key under which a checkpoint stores its config.
inline constexpr const char* kCheckpointConfigKey = "normlab.config";

/// Adds `model`'s parameters (in its dtype, by name) and `config` (as
/// metadata) to `w`: the model part of every checkpoint.
template <FloatingElement Scalar, class Backend>
void add_model(io::SafetensorsWriter& w, Module<Scalar, Backend>& model,
               const ModelConfig& config) {
  for (const auto& p : model.named_parameters()) w.add(p.name, p.value.data());
  w.set_metadata(kCheckpointConfigKey, json::dump_compact(config_to_json(config)));
}

/// Writes `model`'s parameters (in its dtype) and `config` to `path`.
template <FloatingElement Scalar, class Backend>
void save_checkpoint(const std::string& path, Module<Scalar, Backend>& model,
                     const ModelConfig& config) {
  io::SafetensorsWriter w;
  add_model(w, model, config);
  w.write(path);
}

/// The config stored in a checkpoint; throws when the file has none.
inline ModelConfig checkpoint_config(const io::SafetensorsReader& file) {
  const auto it = file.metadata().find(kCheckpointConfigKey);
  detail::check(it != file.metadata().end(), file.source_name(),
                ": not a normlab checkpoint (no \"", kCheckpointConfigKey, "\" metadata)");
  return config_from_json(json::parse(it->second, file.source_name() + " config"),
                          file.source_name() + " config");
}

/// Loads a checkpoint written by save_checkpoint into `model` (built from
/// checkpoint_config of the same file). Throws on any mismatch.
template <FloatingElement Scalar, class Backend>
void load_checkpoint(const io::SafetensorsReader& file, Module<Scalar, Backend>& model) {
  load_parameters(model, file, DTypeMatch::exact);
}

}  // namespace v0
}  // namespace normlab
