// Policies: traits of the presets and compositions, names, the NormPolicy concept.
#include "testing.hpp"

namespace normlab::testing {
namespace {

// The presets are the compositions DESIGN.md §1 defines.
static_assert(NormPolicy<PostLN> && NormPolicy<PreLN> && NormPolicy<NormFormer> &&
              NormPolicy<DeepNorm> && NormPolicy<SandwichLN>);
static_assert(!NormPolicy<int>);
static_assert(
    std::is_same_v<NormFormer, compose<PreLN, HeadScale<before_out_proj>, AttnOutNorm, FfnNorm>>);
static_assert(NormFormer::placement == Placement::pre && NormFormer::final_norm);
static_assert(NormFormer::head_scale == HeadScalePlacement::before_out_proj);
static_assert(NormFormer::attn_out_norm && NormFormer::ffn_norm && !NormFormer::ffn_out_norm);
static_assert(!NormFormer::resid_scale && !NormFormer::deepnorm_residual);
static_assert(NormFormerFairseq::head_scale == HeadScalePlacement::after_out_proj);
static_assert(PostLN::placement == Placement::post && !PostLN::final_norm);
static_assert(DeepNorm::placement == Placement::post && DeepNorm::deepnorm_residual);
static_assert(SandwichLN::attn_out_norm && SandwichLN::ffn_out_norm && !SandwichLN::ffn_norm);
static_assert(compose<PreLN, ResidScale>::resid_scale);
static_assert(compose<PreLN, UseRMSNorm>::norm == NormKind::rms_norm);
static_assert(compose<PreLN>::attn_out_norm == false);  // no extras: the base itself

/// A user's own policy: Pre-LN plus only the post-attention norm, in a few lines.
struct PreLNWithAttnLN : PreLN {
  static constexpr bool attn_out_norm = true;
  static std::string name() { return "pre_ln_attn_ln"; }
};
static_assert(NormPolicy<PreLNWithAttnLN>);
static_assert(traits_of<PreLNWithAttnLN>() == traits_of<compose<PreLN, AttnOutNorm>>());

TEST(Policy, NamesSayWhatIsComposed) {
  EXPECT_EQ(PostLN::name(), "post_ln");
  EXPECT_EQ(PreLN::name(), "pre_ln");
  EXPECT_EQ(DeepNorm::name(), "deepnorm");
  EXPECT_EQ(NormFormer::name(), "pre_ln+head_scale(before_out_proj)+attn_ln+ffn_ln");
  EXPECT_EQ(NormFormerFairseq::name(), "pre_ln+head_scale(after_out_proj)+attn_ln+ffn_ln");
  EXPECT_EQ((compose<PreLN, ResidScale, UseRMSNorm>::name()), "pre_ln+resid_scale+rms_norm");
}

TEST(Policy, TraitsDescribeThemselvesInCanonicalOrder) {
  EXPECT_EQ(traits_of<NormFormer>().describe(), NormFormer::name());
  EXPECT_EQ(traits_of<SandwichLN>().describe(), "pre_ln+attn_ln+ffn_out_ln");
  // Order of composition does not change what is computed.
  EXPECT_EQ((traits_of<compose<PreLN, FfnNorm, AttnOutNorm>>()),
            (traits_of<compose<PreLN, AttnOutNorm, FfnNorm>>()));
}

TEST(Policy, ConfigNamesMapToTheSameTraits) {
  ModelConfig c;
  c.policy = "normformer";
  EXPECT_EQ(c.policy_traits(), traits_of<NormFormer>());
  c.head_scale = "after_out_proj";
  EXPECT_EQ(c.policy_traits(), traits_of<NormFormerFairseq>());
  c.resid_scale = true;
  EXPECT_EQ(c.policy_traits(), (traits_of<compose<NormFormerFairseq, ResidScale>>()));
  ModelConfig s;
  s.policy = "sandwich";
  EXPECT_EQ(s.policy_traits(), traits_of<SandwichLN>());
  ModelConfig d;
  d.policy = "deepnorm";
  EXPECT_EQ(d.policy_traits(), traits_of<DeepNorm>());
  ModelConfig e;
  e.policy = "pre_ln";
  e.extras = {"attn_ln"};
  e.norm = "rms_norm";
  EXPECT_EQ(e.policy_traits(), (traits_of<compose<PreLN, AttnOutNorm, UseRMSNorm>>()));
}

template <class P>
void expect_round_trip_through_config() {
  ModelConfig c;
  c.set_policy<P>();
  EXPECT_EQ(c.policy_traits(), traits_of<P>()) << P::name();
}

TEST(Policy, AnyPolicyCanBeDescribedByAConfig) {
  expect_round_trip_through_config<PostLN>();
  expect_round_trip_through_config<DeepNorm>();
  expect_round_trip_through_config<NormFormerFairseq>();
  expect_round_trip_through_config<PreLNWithAttnLN>();
  expect_round_trip_through_config<compose<SandwichLN, ResidScale, UseRMSNorm>>();
  expect_round_trip_through_config<compose<PostLN, HeadScale<after_out_proj>, FfnNorm>>();
}

TEST(Policy, RegistryFindsTheTypeAConfigNames) {
  auto name_of = [](const ModelConfig& c) {
    std::string found;
    with_policy(c.policy_traits(), [&]<class P>() { found = P::name(); });
    return found;
  };
  ModelConfig c;
  c.policy = "normformer";
  EXPECT_EQ(name_of(c), NormFormer::name());
  c.head_scale = "after_out_proj";
  c.resid_scale = true;
  EXPECT_EQ(name_of(c), (compose<NormFormerFairseq, ResidScale>::name()));
  c.policy = "sandwich";
  c.resid_scale = false;
  EXPECT_EQ(name_of(c), SandwichLN::name());
  c.policy = "post_ln";
  c.extras = {"ffn_out_ln"};
  expect_error([&] { (void)name_of(c); },
               {"policy post_ln+ffn_out_ln is not among", "pre_ln+attn_ln", "deepnorm"});
}

TEST(Policy, ConfigErrorsNameKeyAndChoices) {
  ModelConfig c;
  c.policy = "postln";
  expect_error([&] { (void)c.policy_traits(); }, {"unknown policy \"postln\"", "post_ln, pre_ln"});
  c.policy = "normformer";
  c.extras = {"attn_ln", "head_scale"};  // implied by the preset: the same policy
  EXPECT_EQ(c.policy_traits(), traits_of<NormFormer>());
  c.extras = {"magic"};
  expect_error([&] { (void)c.policy_traits(); }, {"unknown extra \"magic\"", "ffn_ln"});
  c.extras = {};
  c.head_scale = "inside";
  expect_error([&] { (void)c.policy_traits(); }, {"head_scale \"inside\"", "before_out_proj"});
  c.head_scale = "before_out_proj";
  c.norm = "batch_norm";
  expect_error([&] { (void)c.policy_traits(); }, {"norm \"batch_norm\"", "rms_norm"});
}

}  // namespace
}  // namespace normlab::testing
