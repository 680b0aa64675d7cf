// normlab_cuda_layer_bench — one transformer layer, forward + backward, on the
// GPU: Pre-LN and NormFormer at (B8, T256, C512, H8) and (B4, T1024, C1024,
// H16), float32, d_ff = 4C, exact GELU, causal attention, no dropout.
//
// Each measurement: 5 warm-up iterations, then --reps timed iterations (CUDA
// events around forward + backward, stream synchronized after each); prints
// the median and the minimum in ms and the median's tokens per second. Compare
// with tools/torch_layer_cuda.py run on the same GPU.
//
//   normlab_cuda_layer_bench [--reps 20]
#include <normlab/cuda.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

using namespace normlab;

struct LayerShape {
  int64_t B, T, C, H;
};

/// Median and minimum of `reps` timed forward + backward passes, in ms.
template <class P>
std::pair<double, double> time_layer(const LayerShape& s, int reps) {
  ModelConfig cfg;
  cfg.d_model = s.C;
  cfg.n_heads = s.H;
  cfg.d_ff = 4 * s.C;
  cfg.n_layers = 1;
  cfg.max_seq_len = s.T;
  cfg.set_policy<P>();
  Generator gen(1);
  TransformerLayer<P, float, Cuda> layer(cfg, gen);
  using V = Variable<float, Cuda>;
  using Tn = Tensor<float, Cuda>;
  const V x(Tn::normal({s.B, s.T, s.C}, gen), true);       // (B, T, C)
  const Tn up = Tn::normal({s.B, s.T, s.C}, gen);          // (B, T, C) upstream gradient
  typename TransformerLayer<P, float, Cuda>::Options opt;  // causal, no dropout
  const cudaStream_t stream = normlab::cuda::context().stream();
  cudaEvent_t start, stop;
  NL_CUDA_CHECK(cudaEventCreate(&start));
  NL_CUDA_CHECK(cudaEventCreate(&stop));
  std::vector<double> ms;
  for (int it = 0; it < 5 + reps; ++it) {
    NL_CUDA_CHECK(cudaEventRecord(start, stream));
    const V y = layer.forward(x, opt);  // (B, T, C)
    y.backward(up);
    NL_CUDA_CHECK(cudaEventRecord(stop, stream));
    NL_CUDA_CHECK(cudaEventSynchronize(stop));
    float elapsed = 0;
    NL_CUDA_CHECK(cudaEventElapsedTime(&elapsed, start, stop));
    if (it >= 5) ms.push_back(elapsed);
  }
  NL_CUDA_CHECK(cudaEventDestroy(start));
  NL_CUDA_CHECK(cudaEventDestroy(stop));
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front()};
}

template <class P>
void report(const char* name, const LayerShape& s, int reps) {
  const auto [median, best] = time_layer<P>(s, reps);
  std::printf("%-10s B%-3lld T%-5lld C%-5lld H%-3lld %9.3f %9.3f %12.0f\n", name,
              static_cast<long long>(s.B), static_cast<long long>(s.T), static_cast<long long>(s.C),
              static_cast<long long>(s.H), median, best,
              static_cast<double>(s.B * s.T) / (median * 1e-3));
}

}  // namespace

int main(int argc, char** argv) {
  int reps = 20;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: normlab_cuda_layer_bench [--reps N]\n");
      return 2;
    }
  }
  if (reps < 1) {
    std::fprintf(stderr, "normlab_cuda_layer_bench: --reps needs a positive number\n");
    return 2;
  }
  try {
    cudaDeviceProp prop;
    NL_CUDA_CHECK(cudaGetDeviceProperties(&prop, normlab::cuda::context().device()));
    std::printf("device: %s; float32 (no TF32); median and min of %d reps after 5 warm-up\n",
                prop.name, reps);
    std::printf("%-10s %-26s %9s %9s %12s\n", "layer", "shape", "median_ms", "min_ms", "tokens/s");
    for (const LayerShape& s : {LayerShape{8, 256, 512, 8}, LayerShape{4, 1024, 1024, 16}}) {
      report<PreLN>("pre_ln", s, reps);
      report<NormFormer>("normformer", s, reps);
    }
  } catch (const normlab::Error& e) {
    std::fprintf(stderr, "normlab_cuda_layer_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
