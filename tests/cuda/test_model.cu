// Whole models on the CUDA backend against the CPU backend: for the presets,
// each built-in extra and a run-time composed policy, a GPT built from one seed has the
// same parameters on both backends, the same loss and the same gradients
// (float, relative error 1e-4), and AdamW moves it the same way.
#include "cuda_testing.cuh"

namespace normlab::testing {
namespace {

constexpr double kRel = 1e-4;

template <class P>
ModelConfig small_config() {
  ModelConfig c;
  c.vocab_size = 37;
  c.d_model = 64;
  c.n_heads = 4;
  c.n_layers = 2;
  c.d_ff = 96;
  c.max_seq_len = 24;
  c.set_policy<P>();
  return c;
}

/// (3, 20) tokens and next-token targets in [0, 37), one target ignored.
template <class B>
std::pair<Tensor<int64_t, B>, Tensor<int64_t, B>> batch() {
  std::vector<int64_t> tok(60), tgt(60);
  for (size_t i = 0; i < tok.size(); ++i) {
    tok[i] = static_cast<int64_t>((i * 7 + 3) % 37);
    tgt[i] = i == 5 ? -100 : static_cast<int64_t>((i * 11 + 1) % 37);
  }
  return {Tensor<int64_t, B>::from_vector(Shape{3, 20}, tok),
          Tensor<int64_t, B>::from_vector(Shape{3, 20}, tgt)};
}

/// Builds the model on both backends, checks parameters, loss and gradients,
/// then one AdamW step from the same gradients.
template <class P>
void expect_model_parity(const ModelConfig& cfg) {
  SCOPED_TRACE(cfg.policy_spec().describe());
  GPT<P, float, Cpu> mc(cfg, 7);
  GPT<P, float, Cuda> mg(cfg, 7);
  auto pc = mc.named_parameters();
  auto pg = mg.named_parameters();
  ASSERT_EQ(pc.size(), pg.size());
  for (size_t i = 0; i < pc.size(); ++i) {
    ASSERT_EQ(pc[i].name, pg[i].name);
    expect_tensor_close(pg[i].value.data(), pc[i].value.data(), 1e-6, pc[i].name + " at init");
  }
  const auto [tok_c, tgt_c] = batch<Cpu>();
  const auto [tok_g, tgt_g] = batch<Cuda>();
  const auto lc = mc.loss(tok_c, tgt_c);
  const auto lg = mg.loss(tok_g, tgt_g);
  expect_tensor_close(lg.data(), lc.data(), kRel, "loss");
  lc.backward();
  lg.backward();
  for (size_t i = 0; i < pc.size(); ++i) {
    ASSERT_TRUE(pg[i].value.has_grad()) << pg[i].name;
    expect_tensor_close(pg[i].value.grad(), pc[i].value.grad(), kRel, pc[i].name + " gradient");
  }
  // The step itself, from identical gradients (a gradient within rounding of
  // zero could otherwise flip the sign of Adam's first update).
  for (size_t i = 0; i < pc.size(); ++i) {
    Tensor<float, Cuda> g = pg[i].value.grad();  // a handle: copying into it sets the gradient
    g.copy_from(to_backend<Cuda>(pc[i].value.grad()));
  }
  AdamW<float, Cpu> oc(mc, AdamWOptions{1e-3, 0.9, 0.98, 1e-8, 0.01});
  AdamW<float, Cuda> og(mg, AdamWOptions{1e-3, 0.9, 0.98, 1e-8, 0.01});
  oc.step();
  og.step();
  for (size_t i = 0; i < pc.size(); ++i)
    expect_tensor_close(pg[i].value.data(), pc[i].value.data(), 1e-5,
                        pc[i].name + " after an AdamW step");
}

class CudaModels : public CudaTest {};

/// Calls expect_model_parity for each policy of the list.
template <class... Ps>
void expect_policies_match(std::tuple<Ps...>*) {
  (expect_model_parity<Ps>(small_config<Ps>()), ...);
}

TEST_F(CudaModels, EveryPresetAndExtraMatchesTheCpu) {
  expect_policies_match(
      static_cast<
          std::tuple<PostLN, PreLN, NormFormer, NormFormerFairseq, compose<NormFormer, ResidScale>,
                     compose<PreLN, FfnNorm>, compose<PostLN, AttnOutNorm, FfnNorm>, SandwichLN,
                     DeepNorm, compose<PreLN, UseRMSNorm>>*>(nullptr));
}

TEST_F(CudaModels, RuntimePolicyMatchesTheCpu) {
  ModelConfig cfg = small_config<PreLN>();
  cfg.set_policy_spec("post_ln+attn_ln+ffn_ln+resid_scale");
  expect_model_parity<RuntimePolicy>(cfg);
}

TEST_F(CudaModels, DropoutTrainingAndUntiedSinusoidalMatchTheCpu) {
  ModelConfig cfg = small_config<NormFormer>();
  cfg.dropout = 0.1;
  cfg.attention_dropout = 0.1;
  cfg.tie_embeddings = false;
  cfg.positions = "sinusoidal";
  expect_model_parity<NormFormer>(cfg);
}

TEST_F(CudaModels, RmsNormAndTanhGeluMatchTheCpu) {
  ModelConfig cfg = small_config<compose<PreLN, UseRMSNorm>>();
  cfg.activation = "gelu_tanh";
  expect_model_parity<compose<PreLN, UseRMSNorm>>(cfg);
}

}  // namespace
}  // namespace normlab::testing
