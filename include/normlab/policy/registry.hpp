// normlab/policy/registry.hpp — extras by name: the registry, policy specs
// from text, and the extras of one layer (for static and run-time policies).
//
// The built-in extras are always known. A user's extra is registered once,
// before models are built, and is then usable by its word everywhere a
// policy is named: configs, `normlab train --policy`, `compare`, reports:
//
//   normlab::register_extra<LayerScale>();          // for Cpu
//   normlab::register_extra<LayerScale, Cpu, cuda::Cuda>();
#pragma once

#include <algorithm>
#include <array>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <tuple>
#include <typeindex>
#include <typeinfo>
#include <utility>
#include <vector>

#include "normlab/backend/backend.hpp"
#include "normlab/core/error.hpp"
#include "normlab/policy/compose.hpp"

namespace normlab {
inline namespace v0 {

/// An extra of one layer behind a virtual interface: what a layer of
/// RuntimePolicy holds. ExtraAdapter implements it for any extra type, with
/// the extra's own code.
template <FloatingElement Scalar, class Backend>
class AnyExtra : public Module<Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;
  virtual const ExtraInfo& info() const = 0;
  /// The extra's map at `site` (one of info().sites).
  virtual Var at(Site site, const Var& x) const = 0;
  /// Whether attn_heads_folded is defined (see policy/extras.hpp).
  virtual bool folds_heads() const = 0;
  virtual Var attn_heads_folded(const Var& w_o) const = 0;
  /// Whether ffn_hidden_fused is defined.
  virtual bool fuses_hidden() const = 0;
  virtual Var ffn_hidden_fused(const FeedForward<Scalar, Backend>& ffn, const Var& z) const = 0;
};

/// AnyExtra for the extra E: forwards to E::State<Scalar, Backend>.
template <PolicyExtra E, FloatingElement Scalar, class Backend>
class ExtraAdapter final : public AnyExtra<Scalar, Backend> {
  static_assert(detail::check_extra_state<E, Scalar, Backend>());

 public:
  using Var = Variable<Scalar, Backend>;
  using State = typename E::template State<Scalar, Backend>;

  explicit ExtraAdapter(const ExtraContext& cx) : state(cx), info_(extra_info<E>()) {}

  const ExtraInfo& info() const override { return info_; }
  Var at(Site site, const Var& x) const override {
    switch (site) {
      case Site::attn_skip:
        return apply<Site::attn_skip>(x);
      case Site::attn_heads:
        return apply<Site::attn_heads>(x);
      case Site::attn_branch:
        return apply<Site::attn_branch>(x);
      case Site::ffn_hidden:
        return apply<Site::ffn_hidden>(x);
      case Site::ffn_branch:
        return apply<Site::ffn_branch>(x);
      case Site::ffn_skip:
        return apply<Site::ffn_skip>(x);
      case Site::norm:
        break;
    }
    return x;
  }
  bool folds_heads() const override { return detail::FoldsHeads<State, Var>; }
  Var attn_heads_folded(const Var& w_o) const override {
    if constexpr (detail::FoldsHeads<State, Var>)
      return state.attn_heads_folded(w_o);
    else
      throw Error(detail::concat("extra ", E::word, " does not fold into W_O"));
  }
  bool fuses_hidden() const override { return detail::FusesHidden<State, Scalar, Backend>; }
  Var ffn_hidden_fused(const FeedForward<Scalar, Backend>& ffn, const Var& z) const override {
    if constexpr (detail::FusesHidden<State, Scalar, Backend>)
      return state.ffn_hidden_fused(ffn, z);
    else
      throw Error(detail::concat("extra ", E::word, " has no fused hidden form"));
  }
  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) override {
    state.for_each_own_parameter(f);
  }
  void for_each_child(const typename Module<Scalar, Backend>::ChildFn& f) override {
    state.for_each_child(f);
  }

  State state;

 private:
  template <Site S>
  Var apply(const Var& x) const {
    if constexpr (E::sites.contains(S))
      return detail::call_site<S>(state, x);
    else
      return x;
  }
  ExtraInfo info_;
};

/// The extras known by word: the built-ins, and those a program registers.
/// Register before building models; lookups and registration are serialized.
class ExtraRegistry {
 public:
  static ExtraRegistry& global() {
    static ExtraRegistry registry;
    return registry;
  }

  /// Makes E known by E::word, buildable on each of Backends (float and
  /// double). Registering the same type again adds backends; another type
  /// under a taken word, or a word that cannot be parsed, throws Error.
  template <PolicyExtra E, class... Backends>
  void add() {
    const ExtraInfo info = extra_info<E>();
    check_word(info.word);
    std::lock_guard<std::mutex> lock(mutex_);
    Entry* entry = find_entry(info.word);
    if (entry == nullptr) {
      entries_.push_back(Entry{info, std::type_index(typeid(E)), false, {}, {}});
      entry = &entries_.back();
    }
    detail::check(entry->type == std::type_index(typeid(E)), "register_extra: the word \"",
                  info.word, "\" is already taken by another extra",
                  entry->builtin ? " (a built-in one)" : "", "; choose another word");
    (add_maker<E, float, Backends>(*entry), ...);
    (add_maker<E, double, Backends>(*entry), ...);
  }

  /// The extra `word` names, or null.
  const ExtraInfo* find(std::string_view word) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const Entry& e : entries_)
      if (e.info.word == word) return &e.info;
    return nullptr;
  }
  /// The known words, built-ins first, joined by ", ".
  std::string known_words() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string s;
    for (const Entry& e : entries_) s += (s.empty() ? "" : ", ") + e.info.word;
    return s;
  }
  /// Every known extra, built-ins first.
  std::vector<ExtraInfo> extras() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::vector<ExtraInfo> out;
    for (const Entry& e : entries_) out.push_back(e.info);
    return out;
  }

  /// Builds the extra `word` for one layer. Throws Error when the word is
  /// unknown or the extra was not registered for backend Backend.
  template <FloatingElement Scalar, class Backend>
  std::shared_ptr<AnyExtra<Scalar, Backend>> make(const std::string& word,
                                                  const ExtraContext& cx) const {
    std::shared_ptr<AnyExtra<Scalar, Backend>> built =
        make_builtin<Scalar, Backend>(word, cx, BuiltinExtras{});
    if (built) return built;
    std::function<std::shared_ptr<void>(const ExtraContext&)> maker;
    std::string backends;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      const Entry* entry = nullptr;
      for (const Entry& e : entries_)
        if (e.info.word == word) entry = &e;
      detail::check(entry != nullptr, "policy: unknown extra \"", word,
                    "\"; known extras: ", words_unlocked());
      const auto it = entry->makers.find(std::type_index(typeid(AnyExtra<Scalar, Backend>)));
      if (it != entry->makers.end()) maker = it->second;
      backends = entry->backends;
    }
    detail::check(static_cast<bool>(maker), "policy: extra \"", word, "\" is registered for ",
                  backends.empty() ? "no backend" : backends, " but the model runs on ",
                  Backend::name, "; register it with register_extra<Extra, ..., ", Backend::name,
                  " backend>()");
    return std::static_pointer_cast<AnyExtra<Scalar, Backend>>(maker(cx));
  }

 private:
  struct Entry {
    ExtraInfo info;
    std::type_index type;
    bool builtin;
    std::map<std::type_index, std::function<std::shared_ptr<void>(const ExtraContext&)>> makers;
    std::string backends;  ///< names of the backends it was registered for
  };

  ExtraRegistry() { add_builtins(BuiltinExtras{}); }
  template <class... Es>
  void add_builtins(ExtraList<Es...>) {
    (entries_.push_back(
         Entry{extra_info<Es>(), std::type_index(typeid(Es)), true, {}, "every backend"}),
     ...);
  }
  template <FloatingElement Scalar, class Backend, class... Es>
  static std::shared_ptr<AnyExtra<Scalar, Backend>> make_builtin(const std::string& word,
                                                                 const ExtraContext& cx,
                                                                 ExtraList<Es...>) {
    std::shared_ptr<AnyExtra<Scalar, Backend>> out;
    ((out == nullptr && word == Es::word
          ? (out = std::make_shared<ExtraAdapter<Es, Scalar, Backend>>(cx), 0)
          : 0),
     ...);
    return out;
  }
  template <class E, FloatingElement Scalar, class Backend>
  static void add_maker(Entry& entry) {
    entry.makers[std::type_index(typeid(AnyExtra<Scalar, Backend>))] = [](const ExtraContext& cx) {
      return std::static_pointer_cast<void>(std::make_shared<ExtraAdapter<E, Scalar, Backend>>(cx));
    };
    const std::string name = Backend::name;
    if (entry.backends.find(name) == std::string::npos)
      entry.backends += (entry.backends.empty() ? "" : ", ") + name;
  }
  static void check_word(const std::string& w) {
    bool ok = !w.empty();
    for (char c : w)
      ok = ok && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '(' ||
                  c == ')' || c == ',' || c == '.' || c == '=' || c == '-');
    detail::check(ok, "register_extra: the word \"", w,
                  "\" must be non-empty and made of a-z, 0-9 and _ ( ) , . = - (no '+')");
    for (const char* taken : {"post_ln", "pre_ln", "no_ln", "normformer", "sandwich", "head_scale"})
      detail::check(w != taken, "register_extra: the word \"", w,
                    "\" names a placement or preset; choose another word");
  }
  Entry* find_entry(const std::string& word) {
    for (Entry& e : entries_)
      if (e.info.word == word) return &e;
    return nullptr;
  }
  std::string words_unlocked() const {
    std::string s;
    for (const Entry& e : entries_) s += (s.empty() ? "" : ", ") + e.info.word;
    return s;
  }

  mutable std::mutex mutex_;
  std::deque<Entry> entries_;  // a deque: find() hands out pointers that stay valid
};

/// Makes the extra E usable by its word in configs, the command line,
/// `compare` and reports, on each of Backends (Cpu when none is named).
/// Call it before building models, e.g. first thing in main.
template <PolicyExtra E, class... Backends>
void register_extra() {
  if constexpr (sizeof...(Backends) == 0)
    ExtraRegistry::global().add<E, cpu::Cpu>();
  else
    ExtraRegistry::global().add<E, Backends...>();
}

/// The presets a policy spec can start with, and the policies they name.
inline const std::vector<std::pair<std::string, PolicySpec>>& policy_presets() {
  static const std::vector<std::pair<std::string, PolicySpec>> presets = {
      {"post_ln", PostLN::spec()},        {"pre_ln", PreLN::spec()},
      {"normformer", NormFormer::spec()}, {"sandwich", SandwichLN::spec()},
      {"deepnorm", DeepNorm::spec()},     {"no_ln", NoLN::spec()},
  };
  return presets;
}

namespace detail {
/// The preset named `word` (post_ln, pre_ln, normformer, ...), or nullptr.
inline const PolicySpec* find_preset(std::string_view word) {
  for (const auto& [w, p] : policy_presets())
    if (w == word) return &p;
  return nullptr;
}
/// "unknown policy \"w\"; expected one of post_ln, pre_ln, ..., followed by ...".
inline std::string unknown_preset_message(std::string_view word) {
  std::string presets;
  for (const auto& [w, p] : policy_presets()) presets += (presets.empty() ? "" : ", ") + w;
  return concat("unknown policy \"", word, "\"; expected one of ", presets,
                ", followed by +extra for each extra");
}
/// "unknown extra \"w\"; known extras: ..." (bare head_scale included).
inline std::string unknown_extra_message(std::string_view word) {
  return concat("unknown extra \"", word, "\"; known extras: head_scale, ",
                ExtraRegistry::global().known_words(),
                " (a program's own extras are known once it calls register_extra)");
}
}  // namespace detail

/// One word of another library's vocabulary for norm placement, and the
/// normlab part it maps to: a placement ("post_ln", "pre_ln") or an extra.
struct PolicyAlias {
  std::string_view vocabulary;  ///< "fairseq" or "x_transformers"
  std::string_view word;        ///< as the library spells it, '-' as '_', no leading "--"
  std::string_view means;       ///< the normlab placement or extra
};

/// The words `parse_policy_spec` understands after "fairseq:" and
/// "x_transformers:" (README, "Other libraries' words", mirrors this table),
/// in the order their extras compose (at one site, the earlier applies
/// first, as in fairseq's layer: the head scale, then attn_ln).
/// fairseq's are its transformer flags (fairseq/models/transformer); an
/// alias spec without a placement word takes the library's default: post_ln
/// for fairseq (normalize_before is off by default), pre_ln for
/// x-transformers (pre_norm is on by default).
inline const std::vector<PolicyAlias>& policy_aliases() {
  static const std::vector<PolicyAlias> aliases = {
      {"fairseq", "decoder_normalize_before", "pre_ln"},
      {"fairseq", "encoder_normalize_before", "pre_ln"},
      {"fairseq", "scale_heads", "head_scale(after_out_proj)"},
      {"fairseq", "scale_attn", "attn_ln"},
      {"fairseq", "scale_fc", "ffn_ln"},
      {"fairseq", "scale_resids", "resid_scale"},
      {"x_transformers", "pre_norm", "pre_ln"},
      {"x_transformers", "sandwich_norm", "attn_ln+ffn_out_ln"},
      {"x_transformers", "scale_residual", "resid_scale"},
      {"x_transformers", "use_rmsnorm", "rms_norm"},
  };
  return aliases;
}

/// The normlab spec that an alias spec names, e.g.
///   "fairseq:decoder_normalize_before+scale_attn+scale_fc+scale_heads"
///     -> "pre_ln+attn_ln+ffn_ln+head_scale(after_out_proj)"
///   "x_transformers:sandwich_norm+use_rmsnorm" -> "pre_ln+attn_ln+ffn_out_ln+rms_norm"
///   "x_transformers:pre_norm=False" -> "post_ln"
/// Words are joined by '+'; each may be written as the library's flag
/// ("--scale-attn") or keyword ("scale_attn"), optionally "=True"/"=False"
/// (False leaves the word out; pre_norm=False means post_ln). "fairseq:" alone
/// is fairseq's default, post_ln. A spec without one of the two prefixes is
/// returned unchanged. Throws Error naming the spec, an unknown word and the
/// words of its vocabulary.
inline std::string resolve_policy_aliases(const std::string& spec) {
  const size_t colon = spec.find(':');
  if (colon == std::string::npos) return spec;
  const std::string vocabulary = spec.substr(0, colon);
  detail::check(vocabulary == "fairseq" || vocabulary == "x_transformers", "policy \"", spec,
                "\": unknown vocabulary \"", vocabulary,
                "\"; expected fairseq: or x_transformers:");
  std::string placement = vocabulary == "fairseq" ? "post_ln" : "pre_ln";
  std::vector<bool> chosen(policy_aliases().size(), false);
  std::string body = spec.substr(colon + 1);
  size_t at = 0;
  while (at <= body.size() && !body.empty()) {
    const size_t plus = std::min(body.find('+', at), body.size());
    std::string word = body.substr(at, plus - at);
    at = plus + 1;
    if (word.rfind("--", 0) == 0) word.erase(0, 2);
    std::replace(word.begin(), word.end(), '-', '_');
    bool on = true;
    if (const size_t eq = word.find('='); eq != std::string::npos) {
      const std::string value = word.substr(eq + 1);
      detail::check(value == "True" || value == "False" || value == "true" || value == "false",
                    "policy \"", spec, "\": \"", word, "\" must be =True or =False");
      on = value == "True" || value == "true";
      word.erase(eq);
    }
    const PolicyAlias* alias = nullptr;
    size_t index = 0;
    for (size_t k = 0; k < policy_aliases().size(); ++k)
      if (policy_aliases()[k].vocabulary == vocabulary && policy_aliases()[k].word == word) {
        alias = &policy_aliases()[k];
        index = k;
      }
    if (alias == nullptr) {
      std::string known;
      for (const PolicyAlias& a : policy_aliases())
        if (a.vocabulary == vocabulary) known += (known.empty() ? "" : ", ") + std::string(a.word);
      throw Error(detail::concat("policy \"", spec, "\": unknown ", vocabulary, " word \"", word,
                                 "\"; known: ", known));
    }
    if (alias->means == "pre_ln")
      placement = on ? "pre_ln" : "post_ln";
    else
      chosen[index] = on;  // the last mention of a word decides
  }
  std::string out = placement;  // the extras in the table's order, whatever the words' order
  for (size_t k = 0; k < chosen.size(); ++k)
    if (chosen[k]) out += "+" + std::string(policy_aliases()[k].means);
  return out;
}

/// The policy a spec names: a preset (post_ln, pre_ln, normformer, sandwich,
/// deepnorm, no_ln), then extras joined by '+', e.g. "pre_ln+attn_ln+ffn_ln" or
/// "deepnorm+attn_ln"; or fairseq's or x-transformers' words after "fairseq:"
/// or "x_transformers:" (resolve_policy_aliases). A bare "head_scale" means
/// head_scale(`bare_head_scale`).
/// The spelling of PolicySpec::describe() is accepted. Throws Error naming an
/// unknown preset or extra, or extras that do not fit together.
inline PolicySpec parse_policy_spec(const std::string& spec,
                                    HeadScalePlacement bare_head_scale = before_out_proj) {
  const std::string resolved = resolve_policy_aliases(spec);
  std::vector<std::string> parts;
  size_t at = 0;
  for (size_t plus; (plus = resolved.find('+', at)) != std::string::npos; at = plus + 1)
    parts.push_back(resolved.substr(at, plus - at));
  parts.push_back(resolved.substr(at));
  const PolicySpec* preset = detail::find_preset(parts[0]);
  detail::check(preset != nullptr, "policy \"", spec,
                "\": ", detail::unknown_preset_message(parts[0]));
  const ExtraRegistry& registry = ExtraRegistry::global();
  std::vector<const ExtraInfo*> extras;
  auto add = [&](std::string word) {
    if (word == "head_scale") word = std::string("head_scale(") + to_string(bare_head_scale) + ")";
    const ExtraInfo* info = registry.find(word);
    detail::check(info != nullptr, "policy \"", spec, "\": ", detail::unknown_extra_message(word));
    extras.push_back(info);
  };
  for (const std::string& w : preset->extras) {
    // normformer's head scale follows bare_head_scale (the config's head_scale key)
    add(w.rfind("head_scale(", 0) == 0 ? std::string("head_scale") : w);
  }
  for (size_t i = 1; i < parts.size(); ++i) add(parts[i]);
  try {
    return detail::make_spec(preset->placement, extras);
  } catch (const Error& e) {
    throw Error(detail::concat("policy \"", spec, "\": ", e.what()));
  }
}

/// The kind of every norm of a model with policy `spec`.
inline NormKind norm_kind_of(const PolicySpec& spec) {
  for (const std::string& w : spec.extras)
    if (const ExtraInfo* info = ExtraRegistry::global().find(w); info && info->sets_norm)
      return info->norm;
  return NormKind::layer_norm;
}

// ---- the extras of one layer ----------------------------------------------

/// The extras of one layer of policy P: a tuple of their States for a static
/// policy, a list of AnyExtra for RuntimePolicy. The layer calls the same
/// members on both:
///   at<S>(x)                   every extra of site S, in order
///   project_heads(out_proj, h) W_O (maybe with Heads extras folded in) applied to h
///   hidden(ffn, z)             act(fc1(z)) with the Hidden extras
///   for_each_own_parameter(f), for_each_child(group, f)
template <class P, FloatingElement Scalar, class Backend>
class LayerExtras;

namespace detail {
/// The index of the first of the n site sets that contains s (n when none).
constexpr size_t first_at(const SiteSet* sites, size_t n, Site s) {
  for (size_t i = 0; i < n; ++i)
    if (sites[i].contains(s)) return i;
  return n;
}
/// Which group of a layer's children an extra's parameters sit with: beside
/// the attention sublayer's norm, or after fc1/fc2 (fairseq's order).
inline bool attention_group(SiteSet sites) {
  return sites.first() <= unsigned(Site::attn_branch);
}
}  // namespace detail

template <Placement P, class... Es, FloatingElement Scalar, class Backend>
class LayerExtras<ComposedPolicy<P, Es...>, Scalar, Backend> {
  static_assert((detail::check_extra_state<Es, Scalar, Backend>() && ...));

 public:
  using Var = Variable<Scalar, Backend>;
  using States = std::tuple<typename Es::template State<Scalar, Backend>...>;

  LayerExtras(const PolicySpec&, const ExtraContext& cx)
      : states_(typename Es::template State<Scalar, Backend>(cx)...) {}

  static constexpr Placement placement() { return P; }

  template <Site S>
  Var at(Var x) const {
    apply_at<S>(x, std::index_sequence_for<Es...>{});
    return x;
  }

  Var project_heads(const Linear<Scalar, Backend>& out_proj, const Var& heads) const {
    if constexpr (kHeadsExtras == 0) {
      return out_proj.forward(heads);
    } else if constexpr (kAllFold) {
      Var w = out_proj.weight;  // (C, C)
      fold_heads(w, std::index_sequence_for<Es...>{});
      return linear(heads, w, out_proj.bias);
    } else {
      return out_proj.forward(at<Site::attn_heads>(heads));
    }
  }

  Var hidden(const FeedForward<Scalar, Backend>& ffn, const Var& z) const {
    constexpr size_t first = first_of(Site::ffn_hidden);
    if constexpr (first < sizeof...(Es)) {
      using S = std::tuple_element_t<first, States>;
      if constexpr (detail::FusesHidden<S, Scalar, Backend>) {
        Var h = std::get<first>(states_).ffn_hidden_fused(ffn, z);
        apply_hidden_after<first>(h, std::index_sequence_for<Es...>{});
        return h;
      }
    }
    return at<Site::ffn_hidden>(ffn.hidden(z));
  }

  /// Parameters and children are listed in the canonical order of the
  /// extras (as a RuntimePolicy layer lists them), whatever order compose<>
  /// was given.
  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) {
    for (size_t k : kCanonical)
      visit(
          k, [&](auto& s) { s.for_each_own_parameter(f); }, std::index_sequence_for<Es...>{});
  }
  void for_each_child(bool attention, const typename Module<Scalar, Backend>::ChildFn& f) {
    for (size_t k : kCanonical)
      if (detail::attention_group(kSites[k]) == attention)
        visit(
            k, [&](auto& s) { s.for_each_child(f); }, std::index_sequence_for<Es...>{});
  }

  /// The State of the extra E (which must be among the policy's extras).
  template <class E>
  const typename E::template State<Scalar, Backend>& state() const {
    return std::get<typename E::template State<Scalar, Backend>>(states_);
  }

 private:
  static constexpr size_t kHeadsExtras = (0 + ... + (Es::sites.contains(Site::attn_heads) ? 1 : 0));
  static constexpr bool kAllFold =
      ((!Es::sites.contains(Site::attn_heads) ||
        detail::FoldsHeads<typename Es::template State<Scalar, Backend>, Var>)&&...);
  static constexpr std::array<SiteSet, sizeof...(Es)> kSites = {Es::sites...};
  /// The index of the first extra at site s (sizeof...(Es) when none).
  static constexpr size_t first_of(Site s) {
    return detail::first_at(kSites.data(), kSites.size(), s);
  }
  /// The canonical order of the extras (detail::canonical_permutation on their sites).
  static constexpr std::array<size_t, sizeof...(Es)> kCanonical = [] {
    std::array<size_t, sizeof...(Es)> order{};
    detail::canonical_permutation(kSites.data(), kSites.size(), order.data());
    return order;
  }();
  template <class F, size_t... I>
  void visit(size_t k, F&& f, std::index_sequence<I...>) {
    ((k == I ? f(std::get<I>(states_)) : void()), ...);
  }
  template <Site S, size_t... I>
  void apply_at(Var& x, std::index_sequence<I...>) const {
    (
        [&] {
          if constexpr (Es::sites.contains(S)) x = detail::call_site<S>(std::get<I>(states_), x);
        }(),
        ...);
  }
  template <size_t... I>
  void fold_heads(Var& w, std::index_sequence<I...>) const {
    (
        [&] {
          if constexpr (Es::sites.contains(Site::attn_heads))
            w = std::get<I>(states_).attn_heads_folded(w);
        }(),
        ...);
  }
  template <size_t First, size_t... I>
  void apply_hidden_after(Var& h, std::index_sequence<I...>) const {
    (
        [&] {
          if constexpr (I > First && Es::sites.contains(Site::ffn_hidden))
            h = detail::call_site<Site::ffn_hidden>(std::get<I>(states_), h);
        }(),
        ...);
  }

  States states_;
};

template <FloatingElement Scalar, class Backend>
class LayerExtras<RuntimePolicy, Scalar, Backend> {
 public:
  using Var = Variable<Scalar, Backend>;

  /// The extras of `spec`, in its order, built from the registry.
  LayerExtras(const PolicySpec& spec, const ExtraContext& cx) : placement_(spec.placement) {
    for (const std::string& word : spec.extras) {
      extras_.push_back(ExtraRegistry::global().make<Scalar, Backend>(word, cx));
      const AnyExtra<Scalar, Backend>* e = extras_.back().get();
      for (unsigned s = 0; s < kSiteCount; ++s)
        if (e->info().sites.contains(Site(s))) by_site_[s].push_back(e);
    }
    for (const AnyExtra<Scalar, Backend>* e : by_site_[unsigned(Site::attn_heads)])
      all_fold_ = all_fold_ && e->folds_heads();
  }

  Placement placement() const { return placement_; }

  template <Site S>
  Var at(Var x) const {
    for (const AnyExtra<Scalar, Backend>* e : by_site_[unsigned(S)]) x = e->at(S, x);
    return x;
  }

  Var project_heads(const Linear<Scalar, Backend>& out_proj, const Var& heads) const {
    const auto& extras = by_site_[unsigned(Site::attn_heads)];
    if (extras.empty()) return out_proj.forward(heads);
    if (!all_fold_) return out_proj.forward(at<Site::attn_heads>(heads));
    Var w = out_proj.weight;  // (C, C)
    for (const AnyExtra<Scalar, Backend>* e : extras) w = e->attn_heads_folded(w);
    return linear(heads, w, out_proj.bias);
  }

  Var hidden(const FeedForward<Scalar, Backend>& ffn, const Var& z) const {
    const auto& extras = by_site_[unsigned(Site::ffn_hidden)];
    if (extras.empty() || !extras.front()->fuses_hidden())
      return at<Site::ffn_hidden>(ffn.hidden(z));
    Var h = extras.front()->ffn_hidden_fused(ffn, z);
    for (size_t i = 1; i < extras.size(); ++i) h = extras[i]->at(Site::ffn_hidden, h);
    return h;
  }

  void for_each_own_parameter(const typename Module<Scalar, Backend>::ParameterFn& f) {
    for (const auto& e : extras_) e->for_each_own_parameter(f);
  }
  void for_each_child(bool attention, const typename Module<Scalar, Backend>::ChildFn& f) {
    for (const auto& e : extras_)
      if (detail::attention_group(e->info().sites) == attention) e->for_each_child(f);
  }

  /// The extras, in the spec's order.
  const std::vector<std::shared_ptr<AnyExtra<Scalar, Backend>>>& extras() const { return extras_; }

 private:
  Placement placement_;
  std::vector<std::shared_ptr<AnyExtra<Scalar, Backend>>> extras_;
  std::vector<const AnyExtra<Scalar, Backend>*> by_site_[kSiteCount];
  bool all_fold_ = true;
};

}  // namespace v0
}  // namespace normlab
