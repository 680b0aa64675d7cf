// bench/compile_time_torch.cpp — the libtorch peer of bench/compile_time_gpt.cpp
// for tools/compile_time.sh: what a libtorch user's training program compiles,
// <torch/torch.h> plus one torch::nn::TransformerEncoderLayer trained with AdamW
// for a few steps (forward, backward, step). Run, it prints the loss of each step.
#include <torch/torch.h>

#include <iostream>

int main() {
  torch::manual_seed(1);
  // C 64, H 4, FFN 256, no dropout: the size of the normlab TU's layers.
  torch::nn::TransformerEncoderLayer layer(
      torch::nn::TransformerEncoderLayerOptions(64, 4).dim_feedforward(256).dropout(0.0));
  torch::optim::AdamW opt(layer->parameters(), torch::optim::AdamWOptions(1e-3).weight_decay(0.01));

  const auto x = torch::randn({32, 4, 64});       // (T, B, C)
  const auto target = torch::randn({32, 4, 64});  // (T, B, C)
  for (int step = 0; step < 5; ++step) {
    opt.zero_grad();
    const auto loss = torch::mse_loss(layer->forward(x), target);  // ()
    loss.backward();
    torch::nn::utils::clip_grad_norm_(layer->parameters(), 1.0);
    opt.step();
    std::cout << "step " << step << " loss " << loss.item<float>() << "\n";
  }
}
