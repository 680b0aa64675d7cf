// bench/bench_torch.cpp — the libtorch peer of every normlab benchmark, in
// this one translation unit (libtorch's headers are slow to compile).
//
// The layer is written out with ATen ops, as fairseq's TransformerDecoderLayer
// computes it, for each policy (DESIGN §1; LN = affine LayerNorm, eps 1e-5):
//
//   attention  q = (x W_q^T + b_q) / sqrt(D), k = x W_k^T + b_k, v = x W_v^T + b_v  (B, H, T, D)
//              h = softmax(q k^T + M) v, M = -inf above the diagonal (causal)   (B, H, T, D)
//              Attn(x) = Concat(h_1..h_H) W_O^T + b_O
//   FFN(z)     = fc2(GELU(fc1(z)))   (exact erf GELU)
//   post_ln    x = LN_1(x + Attn(x));  x = LN_2(x + FFN(x))
//   pre_ln     x = x + Attn(LN_1(x));  x = x + FFN(LN_2(x))
//   normformer x = x + attn_ln(Attn_g(LN_1(x)));  x = x + fc2(ffn_ln(GELU(fc1(LN_2(x)))))
//              with Attn_g scaling head h by g_h before W_O (the paper's form).
//
// Same sizes, same thread count (at::set_num_threads), parameters drawn at
// the same scale as normlab's (Linear: U(+-1/sqrt(in)); GPT: the gpt2 scheme).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/optim/adamw.h>
#include <torch/version.h>

#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "common.hpp"

namespace normlab_bench::peer {
namespace {

/// A tensor that requires grad: the leaves of every benchmark.
at::Tensor param(at::Tensor t) {
  return t.requires_grad_(true);
}
at::Tensor uniform(std::vector<int64_t> shape, double bound) {
  return param(at::empty(shape, at::kFloat).uniform_(-bound, bound));
}
at::Tensor normal(std::vector<int64_t> shape, double std) {
  return param(at::empty(shape, at::kFloat).normal_(0, std));
}

/// Runs `body` once untimed, then once per iteration. Returns the loop's seconds.
template <class F>
double timed(benchmark::State& state, F&& body) {
  body();
  const auto start = std::chrono::steady_clock::now();
  for (auto _ : state) body();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The additive causal mask M (T, T): 0 on and below the diagonal, -inf above.
at::Tensor causal_mask(int64_t T) {
  return at::full({T, T}, -std::numeric_limits<float>::infinity(), at::kFloat).triu(1);
}

struct Linear {
  at::Tensor weight, bias;  // (out, in), (out,)
  Linear(int64_t in, int64_t out) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    weight = uniform({out, in}, bound);
    bias = uniform({out}, bound);
  }
  at::Tensor operator()(const at::Tensor& x) const { return at::linear(x, weight, bias); }
};

struct LayerNorm {
  at::Tensor weight, bias;  // (dim,) each
  explicit LayerNorm(int64_t dim)
      : weight(param(at::ones({dim}, at::kFloat))), bias(param(at::zeros({dim}, at::kFloat))) {}
  at::Tensor operator()(const at::Tensor& x) const {
    return at::layer_norm(x, {weight.size(0)}, weight, bias, 1e-5);
  }
};

/// One transformer layer of policy p (see the file comment).
struct Layer {
  PolicyId policy;
  int64_t C, H;
  Linear q_proj, k_proj, v_proj, out_proj, fc1, fc2;
  LayerNorm attn_norm, ffn_norm, attn_ln, ffn_layernorm;
  at::Tensor c_attn;  // (H,)

  Layer(PolicyId p, int64_t C, int64_t H, int64_t d_ff)
      : policy(p),
        C(C),
        H(H),
        q_proj(C, C),
        k_proj(C, C),
        v_proj(C, C),
        out_proj(C, C),
        fc1(C, d_ff),
        fc2(d_ff, C),
        attn_norm(C),
        ffn_norm(C),
        attn_ln(C),
        ffn_layernorm(d_ff),
        c_attn(param(at::ones({H}, at::kFloat))) {}

  /// The parameters this policy uses, with fairseq's names (normlab's too).
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, at::Tensor>> out;
    auto add = [&](const std::string& name, const at::Tensor& w, const at::Tensor& b) {
      out.emplace_back(name + ".weight", w);
      out.emplace_back(name + ".bias", b);
    };
    add("self_attn.q_proj", q_proj.weight, q_proj.bias);
    add("self_attn.k_proj", k_proj.weight, k_proj.bias);
    add("self_attn.v_proj", v_proj.weight, v_proj.bias);
    add("self_attn.out_proj", out_proj.weight, out_proj.bias);
    add("self_attn_layer_norm", attn_norm.weight, attn_norm.bias);
    add("fc1", fc1.weight, fc1.bias);
    add("fc2", fc2.weight, fc2.bias);
    add("final_layer_norm", ffn_norm.weight, ffn_norm.bias);
    if (policy == PolicyId::normformer) {
      add("attn_ln", attn_ln.weight, attn_ln.bias);
      add("ffn_layernorm", ffn_layernorm.weight, ffn_layernorm.bias);
      out.emplace_back("c_attn", c_attn);
    }
    return out;
  }

  /// x (B, T, C), mask (T, T) -> (B, T, C)
  at::Tensor attention(const at::Tensor& x, const at::Tensor& mask) const {
    const int64_t B = x.size(0), T = x.size(1), D = C / H;
    auto heads = [&](const at::Tensor& y) { return y.view({B, T, H, D}).transpose(1, 2); };
    const at::Tensor q = heads(q_proj(x) * (1.0 / std::sqrt(static_cast<double>(D))));
    const at::Tensor k = heads(k_proj(x)), v = heads(v_proj(x));  // (B, H, T, D)
    const at::Tensor probs = at::softmax(at::matmul(q, k.transpose(-2, -1)) + mask, -1);
    at::Tensor h = at::matmul(probs, v);  // (B, H, T, D)
    if (policy == PolicyId::normformer) h = h * c_attn.view({H, 1, 1});
    return out_proj(h.transpose(1, 2).reshape({B, T, C}));
  }

  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask) const {
    switch (policy) {
      case PolicyId::post_ln: {
        const at::Tensor y = attn_norm(x + attention(x, mask));
        return ffn_norm(y + fc2(at::gelu(fc1(y))));
      }
      case PolicyId::pre_ln: {
        const at::Tensor y = x + attention(attn_norm(x), mask);
        return y + fc2(at::gelu(fc1(ffn_norm(y))));
      }
      case PolicyId::normformer: {
        const at::Tensor y = x + attn_ln(attention(attn_norm(x), mask));
        return y + fc2(ffn_layernorm(at::gelu(fc1(ffn_norm(y)))));
      }
    }
    return x;
  }
};

/// The GPT of normlab's GPT<Policy, float, Cpu>: tied token embeddings, learned
/// positions, the layers, a final LN after Pre-LN layers; the gpt2 init.
struct Gpt {
  GptShape g;
  PolicyId policy;
  at::Tensor embed_tokens, embed_positions;  // (V, C), (T, C)
  std::vector<Layer> layers;
  LayerNorm layer_norm;
  at::Tensor mask;  // (T, T)

  Gpt(PolicyId p, const GptShape& g)
      : g(g),
        policy(p),
        embed_tokens(normal({g.vocab, g.C}, 0.02)),
        embed_positions(normal({g.T, g.C}, 0.02)),
        layer_norm(g.C),
        mask(causal_mask(g.T)) {
    const double residual_std = 0.02 / std::sqrt(2.0 * static_cast<double>(g.layers));
    at::NoGradGuard no_grad;
    for (int64_t i = 0; i < g.layers; ++i) {
      Layer& l = layers.emplace_back(p, g.C, g.H, g.d_ff());
      for (Linear* lin : {&l.q_proj, &l.k_proj, &l.v_proj, &l.out_proj, &l.fc1, &l.fc2}) {
        const bool residual_out = lin == &l.out_proj || lin == &l.fc2;
        lin->weight.normal_(0, residual_out ? residual_std : 0.02);
        lin->bias.zero_();
      }
    }
  }

  /// Parameters that AdamW decays (matrices, token embeddings) and the rest
  /// (biases, norms, head scales, positions), as normlab's AdamW splits them.
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> parameter_groups() const {
    std::vector<at::Tensor> decay, no_decay;
    for (const auto& [name, t] : named_parameters())
      (t.dim() == 2 && name != "embed_positions.weight" ? decay : no_decay).push_back(t);
    return {decay, no_decay};
  }
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const {
    std::vector<std::pair<std::string, at::Tensor>> out = {
        {"embed_tokens.weight", embed_tokens}, {"embed_positions.weight", embed_positions}};
    for (size_t i = 0; i < layers.size(); ++i)
      for (const auto& [name, t] : layers[i].named_parameters())
        out.emplace_back("layers." + std::to_string(i) + "." + name, t);
    if (policy != PolicyId::post_ln) {
      out.emplace_back("layer_norm.weight", layer_norm.weight);
      out.emplace_back("layer_norm.bias", layer_norm.bias);
    }
    return out;
  }

  /// tokens (B, T) -> mean next-token cross-entropy against targets (B, T).
  at::Tensor loss(const at::Tensor& tokens, const at::Tensor& targets) const {
    at::Tensor h = at::embedding(embed_tokens, tokens) + embed_positions;  // (B, T, C)
    for (const Layer& l : layers) h = l.forward(h, mask);
    if (policy != PolicyId::post_ln) h = layer_norm(h);
    const at::Tensor logits = at::matmul(h, embed_tokens.t());  // (B, T, V)
    return at::cross_entropy_loss(logits.view({-1, g.vocab}), targets.view({-1}));
  }
};

at::Tensor token_tensor(const GptShape& g, uint64_t seed) {
  std::vector<int64_t> ids = token_ids(g.tokens(), g.vocab, seed);
  return at::from_blob(ids.data(), {g.B, g.T}, at::kLong).clone();
}

/// A Gpt with its AdamW optimizer (lr 6e-4, betas (0.9, 0.98), eps 1e-8,
/// decay 0.01 on the decayed group) and fixed data.
struct GptTraining {
  Gpt model;
  torch::optim::AdamW opt;
  at::Tensor tokens, targets;  // (B, T) each

  static std::vector<torch::optim::OptimizerParamGroup> groups(const Gpt& m) {
    auto [decay, no_decay] = m.parameter_groups();
    auto options = [](double wd) {
      return std::make_unique<torch::optim::AdamWOptions>(
          torch::optim::AdamWOptions(6e-4).betas({0.9, 0.98}).eps(1e-8).weight_decay(wd));
    };
    std::vector<torch::optim::OptimizerParamGroup> out;
    out.emplace_back(decay, options(0.01));
    out.emplace_back(no_decay, options(0.0));
    return out;
  }
  GptTraining(PolicyId p, const GptShape& g)
      : model(p, g),
        opt(groups(model), torch::optim::AdamWOptions(6e-4).betas({0.9, 0.98}).eps(1e-8)),
        tokens(token_tensor(g, 1)),
        targets(token_tensor(g, 2)) {}
  void step() {
    // zero_grad(set_to_none=True), as PyTorch 2 does by default (libtorch
    // 1.13's zero_grad() fills zeros): backward then writes the gradients.
    for (auto& group : opt.param_groups())
      for (auto& p : group.params()) p.mutable_grad().reset();
    model.loss(tokens, targets).backward();
    opt.step();
  }
};

void sgemm_peak(benchmark::State& state, int64_t M) {
  at::NoGradGuard no_grad;
  const at::Tensor a = at::randn({M, M}), b = at::randn({M, M});
  at::Tensor c = at::empty({M, M});
  const double seconds = timed(state, [&] { at::mm_out(c, a, b); });
  add_gemm_counters(state, 2.0 * static_cast<double>(M * M * M), seconds);
}

void matmul(benchmark::State& state, const LayerShape& s, const char* which) {
  const std::string w(which);
  const int64_t N = s.tokens();
  const int64_t K = w == "fc2" ? s.d_ff() : s.C, M = w == "fc1" ? s.d_ff() : s.C;
  const at::Tensor x = param(at::randn({N, K})), weight = param(at::randn({M, K}));
  const at::Tensor dy = at::randn({N, M});
  const double seconds = timed(state, [&] { at::matmul(x, weight.t()).backward(dy); });
  add_gemm_counters(state, 3.0 * 2.0 * static_cast<double>(N * M * K), seconds);
}

void attention(benchmark::State& state, const LayerShape& s) {
  const int64_t D = s.C / s.H;
  const at::Tensor q = param(at::randn({s.B, s.H, s.T, D})),
                   k = param(at::randn({s.B, s.H, s.T, D})),
                   v = param(at::randn({s.B, s.H, s.T, D}));
  const at::Tensor dh = at::randn({s.B, s.H, s.T, D}), mask = causal_mask(s.T);
  const double seconds = timed(state, [&] {
    const at::Tensor probs = at::softmax(at::matmul(q, k.transpose(-2, -1)) + mask, -1);
    at::matmul(probs, v).backward(dh);
  });
  add_gemm_counters(state, 3.0 * 4.0 * static_cast<double>(s.B * s.T * s.T * s.C), seconds);
}

void softmax_causal(benchmark::State& state, const LayerShape& s) {
  const at::Tensor x = param(at::randn({s.B, s.H, s.T, s.T}));
  const at::Tensor dy = at::randn({s.B, s.H, s.T, s.T}), mask = causal_mask(s.T);
  timed(state, [&] { at::softmax(x + mask, -1).backward(dy); });
}

void layer_norm(benchmark::State& state, const LayerShape& s) {
  const at::Tensor x = param(at::randn({s.tokens(), s.C}));
  const LayerNorm ln(s.C);
  const at::Tensor dy = at::randn({s.tokens(), s.C});
  timed(state, [&] { ln(x).backward(dy); });
}

void gelu(benchmark::State& state, const LayerShape& s) {
  const at::Tensor x = param(at::randn({s.tokens(), s.d_ff()}));
  const at::Tensor dy = at::randn({s.tokens(), s.d_ff()});
  timed(state, [&] { at::gelu(x).backward(dy); });
}

void cross_entropy(benchmark::State& state, const GptShape& g) {
  const at::Tensor logits = param(at::randn({g.B, g.T, g.vocab}));
  const at::Tensor targets = token_tensor(g, 2);
  timed(state, [&] {
    at::cross_entropy_loss(logits.view({-1, g.vocab}), targets.view({-1})).backward();
  });
}

void adamw_step(benchmark::State& state, const GptShape& g) {
  GptTraining run(PolicyId::normformer, g);
  run.model.loss(run.tokens, run.targets).backward();
  timed(state, [&] { run.opt.step(); });
  int64_t params = 0;
  for (const auto& group : run.opt.param_groups())
    for (const at::Tensor& t : group.params()) params += t.numel();
  state.counters["params"] = static_cast<double>(params);
}

void layer_fwd_bwd(benchmark::State& state, PolicyId p, const LayerShape& s) {
  const Layer layer(p, s.C, s.H, s.d_ff());
  const at::Tensor x = param(at::randn({s.B, s.T, s.C}));  // (B, T, C), its gradient computed too
  const at::Tensor dy = at::randn({s.B, s.T, s.C}), mask = causal_mask(s.T);
  const double seconds = timed(state, [&] { layer.forward(x, mask).backward(dy); });
  add_gemm_counters(state, layer_gemm_flops_fwd_bwd(s), seconds);
}

void gpt_step(benchmark::State& state, PolicyId p, const GptShape& g) {
  GptTraining run(p, g);
  const double seconds = timed(state, [&] { run.step(); });
  add_gemm_counters(state, gpt_gemm_flops_step(g), seconds);
  if (seconds > 0)
    state.counters["tokens/s"] =
        static_cast<double>(g.tokens()) * static_cast<double>(state.iterations()) / seconds;
}

void gpt_steps(PolicyId p, const GptShape& g, int steps) {
  GptTraining run(p, g);
  for (int i = 0; i <= steps; ++i) run.step();  // one warm-up, then `steps`
}

/// A tensor of `shape` holding given[key]; throws std::runtime_error when absent or mis-sized.
at::Tensor tensor_of(const Arrays& given, const std::string& key, std::vector<int64_t> shape) {
  const auto it = given.find(key);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  if (it == given.end() || static_cast<int64_t>(it->second.size()) != n)
    throw std::runtime_error("peer check: " + key + " is missing or has the wrong size");
  return at::from_blob(const_cast<float*>(it->second.data()), shape, at::kFloat).clone();
}
std::vector<float> values(const at::Tensor& t) {
  const at::Tensor c = t.detach().contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}
/// Sets every named parameter from given["param.<name>"].
void load(const std::vector<std::pair<std::string, at::Tensor>>& params, const Arrays& given) {
  at::NoGradGuard no_grad;
  for (const auto& [name, t] : params) {
    at::Tensor target = t;
    target.copy_(tensor_of(given, "param." + name, t.sizes().vec()));
  }
}
void add_gradients(const std::vector<std::pair<std::string, at::Tensor>>& params, Arrays& out) {
  for (const auto& [name, t] : params) out["grad." + name] = values(t.grad());
}

Arrays layer_check(PolicyId p, const LayerShape& s, const Arrays& given) {
  const Layer layer(p, s.C, s.H, s.d_ff());
  load(layer.named_parameters(), given);
  const at::Tensor x = param(tensor_of(given, "x", {s.B, s.T, s.C}));
  const at::Tensor y = layer.forward(x, causal_mask(s.T));
  y.backward(tensor_of(given, "dy", {s.B, s.T, s.C}));
  Arrays out = {{"y", values(y)}, {"dx", values(x.grad())}};
  add_gradients(layer.named_parameters(), out);
  return out;
}

Arrays gpt_check(PolicyId p, const GptShape& g, const Arrays& given) {
  const Gpt model(p, g);
  load(model.named_parameters(), given);
  const at::Tensor tokens = tensor_of(given, "tokens", {g.B, g.T}).to(at::kLong);
  const at::Tensor targets = tensor_of(given, "targets", {g.B, g.T}).to(at::kLong);
  const at::Tensor loss = model.loss(tokens, targets);
  loss.backward();
  Arrays out = {{"loss", values(loss)}};
  add_gradients(model.named_parameters(), out);
  return out;
}

}  // namespace

std::string version() {
  return std::string("libtorch ") + TORCH_VERSION;
}

std::string blas() {
  using Text = const char* (*)();
  // C functions of OpenBLAS's own API, exported by libopenblas.so.
  const auto config = reinterpret_cast<Text>(dlsym(RTLD_DEFAULT, "openblas_get_config"));
  const auto core = reinterpret_cast<Text>(dlsym(RTLD_DEFAULT, "openblas_get_corename"));
  if (config == nullptr || core == nullptr) return "not OpenBLAS";
  return std::string(config()) + ", core " + core();  // config: "OpenBLAS 0.3.21 ..."
}

void set_threads(int threads) {
  at::manual_seed(1);
  at::set_num_threads(threads);
}

Suite suite() {
  return {"torch",    sgemm_peak, matmul,        attention,  softmax_causal,
          layer_norm, gelu,       cross_entropy, adamw_step, layer_fwd_bwd,
          gpt_step,   gpt_steps,  layer_check,   gpt_check};
}

}  // namespace normlab_bench::peer
