#!/usr/bin/env python3
"""One transformer layer, forward + backward, in PyTorch eager on CUDA: the
peer of normlab_cuda_layer_bench.

The layers compute what normlab's TransformerLayer computes (docs: DESIGN
section 1), float32, d_ff = 4C, exact (erf) GELU, causal attention, no dropout:

  Pre-LN:      x = x + Attn(LN(x));              x = x + W2 gelu(W1 LN(x) + b1) + b2
  NormFormer:  x = x + LN_a(Attn_hs(LN(x)));     x = x + W2 LN_f(gelu(W1 LN(x) + b1)) + b2

where Attn_hs scales each head's output by a learned gamma_h before the output
projection (the paper's form, normlab's default). Attention is either written
out as normlab does it (scores = q k^T / sqrt(D), causal softmax, @ v: "math")
or PyTorch's fused scaled_dot_product_attention ("sdpa"); both are timed, so
the peer is measured at its best. TF32 is off, as in normlab's cuBLAS calls.

Timing: CUDA events around forward + backward, 5 warm-up iterations, then
--reps timed ones; median and minimum in ms, tokens/s of the median.

  python3 tools/torch_layer_cuda.py [--reps 20]
"""
import argparse
import math

import torch
import torch.nn.functional as F
from torch import nn


class Layer(nn.Module):
    def __init__(self, C, H, normformer, attention):
        super().__init__()
        self.C, self.H, self.D = C, H, C // H
        self.normformer, self.attention = normformer, attention
        self.q_proj, self.k_proj = nn.Linear(C, C), nn.Linear(C, C)
        self.v_proj, self.out_proj = nn.Linear(C, C), nn.Linear(C, C)
        self.self_attn_layer_norm = nn.LayerNorm(C, eps=1e-5)
        self.fc1, self.fc2 = nn.Linear(C, 4 * C), nn.Linear(4 * C, C)
        self.final_layer_norm = nn.LayerNorm(C, eps=1e-5)
        if normformer:
            self.c_attn = nn.Parameter(torch.ones(H))
            self.attn_ln = nn.LayerNorm(C, eps=1e-5)
            self.ffn_layernorm = nn.LayerNorm(4 * C, eps=1e-5)

    def attn(self, x):  # (B, T, C) -> (B, T, C)
        B, T, C = x.shape
        split = lambda y: y.view(B, T, self.H, self.D).transpose(1, 2)  # (B, H, T, D)
        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        if self.attention == "sdpa":
            heads = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            scores = (q * (1.0 / math.sqrt(self.D))) @ k.transpose(-1, -2)  # (B, H, T, T)
            mask = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            probs = torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-1)
            heads = probs @ v  # (B, H, T, D)
        if self.normformer:
            heads = heads * self.c_attn.view(self.H, 1, 1)
        return self.out_proj(heads.transpose(1, 2).reshape(B, T, C))

    def forward(self, x):
        h = self.attn(self.self_attn_layer_norm(x))
        if self.normformer:
            h = self.attn_ln(h)
        x = x + h
        f = F.gelu(self.fc1(self.final_layer_norm(x)))
        if self.normformer:
            f = self.ffn_layernorm(f)
        return x + self.fc2(f)


def time_layer(B, T, C, H, normformer, attention, reps):
    torch.manual_seed(1)
    layer = Layer(C, H, normformer, attention).cuda()
    x = torch.randn(B, T, C, device="cuda", requires_grad=True)
    up = torch.randn(B, T, C, device="cuda")
    start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    ms = []
    for it in range(5 + reps):
        start.record()
        layer(x).backward(up)
        stop.record()
        stop.synchronize()
        if it >= 5:
            ms.append(start.elapsed_time(stop))
    ms.sort()
    return ms[len(ms) // 2], ms[0]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    print(f"device: {torch.cuda.get_device_name()}; torch {torch.__version__}; float32 (no TF32); "
          f"median and min of {args.reps} reps after 5 warm-up")
    print(f"{'layer':<10} {'attention':<9} {'shape':<26} {'median_ms':>9} {'min_ms':>9} {'tokens/s':>12}")
    for B, T, C, H in [(8, 256, 512, 8), (4, 1024, 1024, 16)]:
        for name, nf in [("pre_ln", False), ("normformer", True)]:
            for attention in ["math", "sdpa"]:
                median, best = time_layer(B, T, C, H, nf, attention, args.reps)
                shape = f"B{B:<3} T{T:<5} C{C:<5} H{H:<3}"
                print(f"{name:<10} {attention:<9} {shape:<26} {median:9.3f} {best:9.3f} "
                      f"{B * T / (median * 1e-3):12.0f}")


if __name__ == "__main__":
    main()
