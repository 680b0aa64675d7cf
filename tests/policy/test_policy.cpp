// Policies: presets and compositions, their specs and names, the registry of
// extras, configs, and RuntimePolicy computing exactly what the static types do.
#include <set>

#include "testing.hpp"

namespace normlab::testing {
namespace {

// The presets are the compositions DESIGN.md §1 defines.
static_assert(NormPolicy<PostLN> && NormPolicy<PreLN> && NormPolicy<NormFormer> &&
              NormPolicy<DeepNorm> && NormPolicy<SandwichLN> && NormPolicy<NoLN>);
static_assert(!NormPolicy<int> && !NormPolicy<RuntimePolicy>);
static_assert(
    std::is_same_v<NormFormer, compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm>>);
static_assert(
    std::is_same_v<compose<NormFormer, ResidScale>,
                   compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm, ResidScale>>);
static_assert(NormFormer::placement == Placement::pre && NormFormer::final_norm);
static_assert(NormFormer::has<HeadScale<before_out_proj>> && NormFormer::has<AttnOutNorm> &&
              NormFormer::has<FfnNorm> && !NormFormer::has<FfnOutNorm>);
static_assert(!NormFormer::has<ResidScale> && !NormFormer::has<DeepNormResidual>);
static_assert(NormFormerFairseq::has<HeadScale<after_out_proj>>);
static_assert(PostLN::placement == Placement::post && !PostLN::final_norm);
static_assert(DeepNorm::placement == Placement::post && DeepNorm::has<DeepNormResidual>);
static_assert(SandwichLN::has<AttnOutNorm> && SandwichLN::has<FfnOutNorm>);
static_assert(compose<PreLN, UseRMSNorm>::norm == NormKind::rms_norm);
static_assert(NormFormer::norm == NormKind::layer_norm);
static_assert(!NoLN::final_norm);

/// A user's own placement variant: Pre-LN plus only the post-attention norm.
using PreLNWithAttnLN = compose<PreLN, AttnOutNorm>;

TEST(Policy, NamesSayWhatIsComposed) {
  EXPECT_EQ(PostLN::name(), "post_ln");
  EXPECT_EQ(PreLN::name(), "pre_ln");
  EXPECT_EQ(NoLN::name(), "no_ln");
  EXPECT_EQ(DeepNorm::name(), "deepnorm");
  EXPECT_EQ(NormFormer::name(), "pre_ln+head_scale(before_out_proj)+attn_ln+ffn_ln");
  EXPECT_EQ(NormFormerFairseq::name(), "pre_ln+head_scale(after_out_proj)+attn_ln+ffn_ln");
  EXPECT_EQ((compose<PreLN, ResidScale, UseRMSNorm>::name()), "pre_ln+resid_scale+rms_norm");
  EXPECT_EQ((compose<DeepNorm, AttnOutNorm>::name()), "deepnorm+attn_ln");
}

TEST(Policy, SpecsAreCanonical) {
  EXPECT_EQ(spec_of<SandwichLN>().describe(), "pre_ln+attn_ln+ffn_out_ln");
  // Extras at different sites commute: the order of composition does not matter.
  EXPECT_EQ((spec_of<compose<PreLN, FfnNorm, AttnOutNorm>>()),
            (spec_of<compose<PreLN, AttnOutNorm, FfnNorm>>()));
  EXPECT_EQ(
      (spec_of<compose<PreLN, ResidScale, HeadScale<before_out_proj>, FfnNorm, AttnOutNorm>>()),
      (spec_of<compose<NormFormer, ResidScale>>()));
  // Extras at one site apply in the order written, and the spec keeps it.
  EXPECT_EQ((compose<PreLN, AttnOutNorm, HeadScale<after_out_proj>>::name()),
            "pre_ln+attn_ln+head_scale(after_out_proj)");
  EXPECT_NE((spec_of<compose<PreLN, AttnOutNorm, HeadScale<after_out_proj>>>()),
            (spec_of<compose<PreLN, HeadScale<after_out_proj>, AttnOutNorm>>()));
}

TEST(Policy, ExtrasDescribeThemselves) {
  const ExtraInfo info = extra_info<FfnNorm>();
  EXPECT_EQ(info.word, "ffn_ln");
  EXPECT_EQ(info.sites, (SiteSet{Site::ffn_hidden}));
  EXPECT_NE(info.equation.find("ffn_layernorm"), std::string::npos);
  const ExtraInfo deep = extra_info<DeepNormResidual>();
  EXPECT_TRUE(deep.needs_placement && deep.placement == Placement::post);
  EXPECT_EQ(deep.sites.describe(), "attn_skip, ffn_skip");
  EXPECT_TRUE(extra_info<UseRMSNorm>().sets_norm);
  // Every built-in extra is known to the registry by its own word.
  for (const char* w : {"head_scale(before_out_proj)", "head_scale(after_out_proj)", "attn_ln",
                        "ffn_ln", "ffn_out_ln", "resid_scale", "deepnorm", "rms_norm"})
    EXPECT_NE(ExtraRegistry::global().find(w), nullptr) << w;
}

TEST(Policy, ConfigNamesMapToTheSameSpecs) {
  ModelConfig c;
  c.policy = "normformer";
  EXPECT_EQ(c.policy_spec(), spec_of<NormFormer>());
  c.head_scale = "after_out_proj";
  EXPECT_EQ(c.policy_spec(), spec_of<NormFormerFairseq>());
  c.resid_scale = true;
  EXPECT_EQ(c.policy_spec(), (spec_of<compose<NormFormerFairseq, ResidScale>>()));
  ModelConfig s;
  s.policy = "sandwich";
  EXPECT_EQ(s.policy_spec(), spec_of<SandwichLN>());
  ModelConfig d;
  d.policy = "deepnorm";
  EXPECT_EQ(d.policy_spec(), spec_of<DeepNorm>());
  ModelConfig e;
  e.policy = "pre_ln";
  e.extras = {"attn_ln"};
  e.norm = "rms_norm";
  EXPECT_EQ(e.policy_spec(), (spec_of<compose<PreLN, AttnOutNorm, UseRMSNorm>>()));
  ModelConfig w;  // a whole spec in the policy key
  w.policy = "post_ln+attn_ln+ffn_ln";
  EXPECT_EQ(w.policy_spec(), (spec_of<compose<PostLN, AttnOutNorm, FfnNorm>>()));
}

template <class P>
void expect_round_trip_through_config() {
  ModelConfig c;
  c.set_policy<P>();
  EXPECT_EQ(c.policy_spec(), spec_of<P>()) << P::name();
  ModelConfig s;
  s.set_policy_spec(P::name());
  EXPECT_EQ(s.policy_spec(), spec_of<P>()) << P::name();
}

TEST(Policy, AnyPolicyCanBeDescribedByAConfig) {
  expect_round_trip_through_config<PostLN>();
  expect_round_trip_through_config<NoLN>();
  expect_round_trip_through_config<DeepNorm>();
  expect_round_trip_through_config<NormFormerFairseq>();
  expect_round_trip_through_config<PreLNWithAttnLN>();
  expect_round_trip_through_config<compose<SandwichLN, ResidScale, UseRMSNorm>>();
  expect_round_trip_through_config<compose<PostLN, HeadScale<after_out_proj>, FfnNorm>>();
  expect_round_trip_through_config<compose<PreLN, AttnOutNorm, HeadScale<after_out_proj>>>();
  expect_round_trip_through_config<compose<DeepNorm, AttnOutNorm, ResidScale>>();
}

TEST(Policy, FairseqFlagSetsAndOtherCompositionsParse) {
  // fairseq allows NormFormer's norms with either placement.
  EXPECT_EQ(parse_policy_spec("post_ln+attn_ln+ffn_ln"),
            (spec_of<compose<PostLN, AttnOutNorm, FfnNorm>>()));
  EXPECT_EQ(parse_policy_spec("pre_ln+attn_ln+ffn_ln"),
            (spec_of<compose<PreLN, AttnOutNorm, FfnNorm>>()));
  EXPECT_EQ(parse_policy_spec("deepnorm+attn_ln"), (spec_of<compose<DeepNorm, AttnOutNorm>>()));
  EXPECT_EQ(parse_policy_spec("pre_ln+ffn_out_ln+resid_scale"),
            (spec_of<compose<PreLN, FfnOutNorm, ResidScale>>()));
  EXPECT_EQ(parse_policy_spec("normformer+head_scale"), spec_of<NormFormer>());  // named twice
  EXPECT_EQ(parse_policy_spec("pre_ln+head_scale", after_out_proj),
            (spec_of<compose<PreLN, HeadScale<after_out_proj>>>()));
}

TEST(Policy, FairseqAndXTransformersWordsNameTheCompositionTheyMean) {
  // fairseq's NormFormer flags (transformer_lm --decoder-normalize-before
  // --scale-attn --scale-fc --scale-heads): head scale after out_proj.
  EXPECT_EQ(parse_policy_spec("fairseq:decoder_normalize_before+scale_attn+scale_fc+scale_heads"),
            spec_of<NormFormerFairseq>());
  EXPECT_EQ(parse_policy_spec("fairseq:--decoder-normalize-before+--scale-attn+--scale-fc"
                              "+--scale-heads+--scale-resids"),
            (spec_of<compose<NormFormerFairseq, ResidScale>>()));
  EXPECT_EQ(parse_policy_spec("fairseq:"), spec_of<PostLN>());  // fairseq's default: post-norm
  EXPECT_EQ(parse_policy_spec("fairseq:scale_attn+scale_fc"),
            (spec_of<compose<PostLN, AttnOutNorm, FfnNorm>>()));
  // x-transformers: pre_norm is on by default; sandwich_norm is CogView's sandwich.
  EXPECT_EQ(parse_policy_spec("x_transformers:"), spec_of<PreLN>());
  EXPECT_EQ(parse_policy_spec("x_transformers:sandwich_norm"), spec_of<SandwichLN>());
  EXPECT_EQ(parse_policy_spec("x_transformers:pre_norm=False"), spec_of<PostLN>());
  EXPECT_EQ(parse_policy_spec("x_transformers:use_rmsnorm=True+scale_residual+sandwich_norm=False"),
            (spec_of<compose<PreLN, ResidScale, UseRMSNorm>>()));
  EXPECT_EQ(resolve_policy_aliases("x_transformers:sandwich_norm+use_rmsnorm"),
            "pre_ln+attn_ln+ffn_out_ln+rms_norm");
  EXPECT_EQ(resolve_policy_aliases("pre_ln+attn_ln"), "pre_ln+attn_ln");  // not an alias spec
  // A config's policy key takes them too, and is stored in normlab's words.
  ModelConfig c;
  c.policy = "fairseq:decoder_normalize_before+scale_attn+scale_fc+scale_heads";
  EXPECT_EQ(c.policy_spec(), spec_of<NormFormerFairseq>());
  c.set_policy_spec("x_transformers:sandwich_norm");
  EXPECT_EQ(c.policy, "pre_ln");
  EXPECT_EQ(c.policy_spec(), spec_of<SandwichLN>());
  // Errors name the spec, the word and the vocabulary's words.
  expect_error(
      [] { (void)parse_policy_spec("fairseq:scale_attn+layernorm_embedding"); },
      {"policy \"fairseq:scale_attn+layernorm_embedding\"",
       "unknown fairseq word \"layernorm_embedding\"", "decoder_normalize_before", "scale_resids"});
  expect_error([] { (void)parse_policy_spec("x_transformers:use_scalenorm"); },
               {"unknown x_transformers word \"use_scalenorm\"", "sandwich_norm"});
  expect_error([] { (void)parse_policy_spec("megatron:apply_residual_connection_post_layernorm"); },
               {"unknown vocabulary \"megatron\"", "fairseq: or x_transformers:"});
  expect_error([] { (void)parse_policy_spec("x_transformers:pre_norm=maybe"); },
               {"\"pre_norm=maybe\" must be =True or =False"});
  expect_error([] { (void)parse_policy_spec("fairseq:scale_attn+"); },
               {"unknown fairseq word \"\""});
  // Every word of the table resolves to something parse_policy_spec accepts.
  for (const PolicyAlias& a : policy_aliases()) {
    SCOPED_TRACE(std::string(a.vocabulary) + ":" + std::string(a.word));
    EXPECT_NO_THROW((void)parse_policy_spec(std::string(a.vocabulary) + ":" + std::string(a.word)));
  }
}

TEST(Policy, ErrorsNameWhatIsWrongAndTheChoices) {
  ModelConfig c;
  c.policy = "postln";
  expect_error([&] { (void)c.policy_spec(); }, {"unknown policy \"postln\"", "post_ln, pre_ln"});
  c.policy = "normformer";
  c.extras = {"attn_ln", "head_scale"};  // implied by the preset: the same policy
  EXPECT_EQ(c.policy_spec(), spec_of<NormFormer>());
  c.extras = {"magic"};
  expect_error([&] { (void)c.policy_spec(); },
               {"unknown extra \"magic\"", "known extras: ", "ffn_ln", "rms_norm"});
  c.extras = {};
  c.head_scale = "inside";
  expect_error([&] { (void)c.policy_spec(); }, {"head_scale \"inside\"", "before_out_proj"});
  c.head_scale = "before_out_proj";
  c.norm = "batch_norm";
  expect_error([&] { (void)c.policy_spec(); }, {"norm \"batch_norm\"", "rms_norm"});
  expect_error([] { (void)parse_policy_spec("pre_ln+deepnorm"); },
               {"policy \"pre_ln+deepnorm\"", "\"deepnorm\" needs the post_ln placement"});
  expect_error([] { (void)parse_policy_spec("pre_ln+"); }, {"unknown extra \"\""});
}

// ---- a user's extra, registered by name -------------------------------------

/// A test extra: the feed-forward branch times a learned scalar that starts
/// at 0.5 (own init), x <- x + s FFN(LN(x)).
struct HalfBranch {
  static constexpr std::string_view word = "test_half_branch";
  static constexpr std::string_view equation = "Branch_ffn(f) = s f, s init 0.5";
  static constexpr SiteSet sites = {Site::ffn_branch};
  template <FloatingElement T, class B>
  struct State : Module<T, B> {
    using Var = Variable<T, B>;
    explicit State(const ExtraContext&) : s(Tensor<T, B>::full({1}, T(0.5)), true) {}
    Var ffn_branch(const Var& f) const { return f * s; }
    void for_each_own_parameter(const typename Module<T, B>::ParameterFn& f) override {
      f("half_branch", s, ParamKind::own_init);
    }
    Var s;
  };
};
/// Another type claiming the same word.
struct HalfBranchImpostor : HalfBranch {};
/// A word that cannot be parsed.
struct PlusInWord : HalfBranch {
  static constexpr std::string_view word = "a+b";
};

TEST(Registry, AUserExtraIsUsableByNameAndKeepsItsOwnInit) {
  register_extra<HalfBranch>();
  register_extra<HalfBranch>();  // again: harmless
  ModelConfig cfg;
  cfg.vocab_size = 11;
  cfg.d_model = 8;
  cfg.n_heads = 2;
  cfg.n_layers = 2;
  cfg.d_ff = 12;
  cfg.max_seq_len = 6;
  cfg.set_policy_spec("post_ln+attn_ln+test_half_branch");
  EXPECT_EQ(cfg.policy_spec().describe(), "post_ln+attn_ln+test_half_branch");
  GPT<RuntimePolicy, double, Cpu> model(cfg, 3, InitScheme::fairseq);
  std::set<std::string> names;
  for (const auto& p : model.named_parameters()) {
    names.insert(p.name);
    if (p.name.ends_with("half_branch")) {
      EXPECT_EQ(p.value.data().item(), 0.5) << p.name;
    }
  }
  EXPECT_TRUE(names.contains("layers.1.half_branch") && names.contains("layers.0.attn_ln.weight"));
  expect_error([] { register_extra<HalfBranchImpostor>(); },
               {"\"test_half_branch\" is already taken"});
  expect_error([] { register_extra<PlusInWord>(); }, {"\"a+b\"", "no '+'"});
  // The same composition as a static type computes the same.
  using Static = compose<PostLN, AttnOutNorm, HalfBranch>;
  GPT<Static, double, Cpu> same(cfg, 3, InitScheme::fairseq);
  const TensorI tokens = TensorI::from_vector({1, 5}, {1, 2, 3, 4, 5});
  EXPECT_EQ(model.forward(tokens).data().to_vector(), same.forward(tokens).data().to_vector());
}

// ---- RuntimePolicy against the static types ---------------------------------

/// The forward pass and every gradient of GPT<P> and of GPT<RuntimePolicy>
/// built from the same config and seed, compared bit for bit.
template <class P>
void expect_runtime_equals_static(int threads, double dropout) {
  SCOPED_TRACE(P::name() + ", " + std::to_string(threads) + " thread(s), dropout " +
               std::to_string(dropout));
  ThreadCountGuard guard(threads);
  ModelConfig cfg;
  cfg.vocab_size = 37;
  cfg.d_model = 32;
  cfg.n_heads = 4;
  cfg.n_layers = 2;
  cfg.d_ff = 80;
  cfg.max_seq_len = 24;
  cfg.dropout = dropout;
  cfg.attention_dropout = dropout;
  cfg.set_policy<P>();
  ModelConfig by_name = cfg;
  by_name.set_policy_spec(P::name());
  GPT<P, float, Cpu> fixed(cfg, 11, InitScheme::fairseq);
  GPT<RuntimePolicy, float, Cpu> composed(by_name, 11, InitScheme::fairseq);
  std::vector<int64_t> tok(3 * 20);
  for (size_t i = 0; i < tok.size(); ++i) tok[i] = static_cast<int64_t>((i * 7 + 3) % 37);
  const TensorI tokens = TensorI::from_vector({3, 20}, tok);
  const VarF la = fixed.loss(tokens, tokens), lb = composed.loss(tokens, tokens);
  EXPECT_EQ(la.data().to_vector(), lb.data().to_vector());
  la.backward();
  lb.backward();
  auto pa = fixed.named_parameters(), pb = composed.named_parameters();
  ASSERT_EQ(pa.size(), pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    ASSERT_EQ(pa[i].name, pb[i].name);
    EXPECT_EQ(pa[i].kind, pb[i].kind) << pa[i].name;
    EXPECT_EQ(pa[i].value.data().to_vector(), pb[i].value.data().to_vector()) << pa[i].name;
    EXPECT_EQ(pa[i].value.grad().to_vector(), pb[i].value.grad().to_vector()) << pa[i].name;
  }
}

template <class... Ps>
void expect_runtime_equals_static_for(std::tuple<Ps...>*) {
  for (int threads : {1, 2}) (expect_runtime_equals_static<Ps>(threads, 0.0), ...);
}

TEST(RuntimePolicy, EveryBuiltInCompositionEqualsItsStaticTypeBitForBit) {
  expect_runtime_equals_static_for(
      static_cast<std::tuple<
          PostLN, PreLN, NoLN, NormFormer, NormFormerFairseq, compose<NormFormer, ResidScale>,
          compose<NormFormerFairseq, ResidScale>, compose<PreLN, HeadScale<before_out_proj>>,
          compose<PreLN, HeadScale<after_out_proj>>, compose<PreLN, AttnOutNorm>,
          compose<PreLN, FfnNorm>, compose<PreLN, FfnOutNorm>, compose<PreLN, ResidScale>,
          SandwichLN, DeepNorm, compose<PreLN, UseRMSNorm>, compose<NormFormer, UseRMSNorm>,
          compose<PostLN, AttnOutNorm, FfnNorm>, compose<PostLN, HeadScale<before_out_proj>>,
          compose<DeepNorm, AttnOutNorm, ResidScale>, compose<PreLN, FfnOutNorm, ResidScale>,
          compose<PreLN, AttnOutNorm, HeadScale<after_out_proj>>>*>(nullptr));
}

TEST(RuntimePolicy, DropoutDrawsTheSameMasks) {
  expect_runtime_equals_static<NormFormer>(2, 0.1);
  expect_runtime_equals_static<compose<PostLN, AttnOutNorm, FfnOutNorm>>(1, 0.1);
}

TEST(RuntimePolicy, ModelsOfAStaticTypeRejectAnotherPolicy) {
  ModelConfig cfg;
  cfg.set_policy_spec("post_ln+attn_ln");
  expect_error([&] { GPT<PreLN, float, Cpu> m(cfg); },
               {"the config asks for policy post_ln+attn_ln", "computes pre_ln"});
}

}  // namespace
}  // namespace normlab::testing
