#!/usr/bin/python3
"""PyTorch DDP (gloo) as the peer of `mpirun -np N normlab train`: the same GPT step.

    /usr/bin/python3 bench/ddp_peer.py --ranks 2 --threads 1      # DDP, 2 processes x 1 thread
    /usr/bin/python3 bench/ddp_peer.py --ranks 1 --threads 2      # one process, no DDP

The model is the one normlab's GPT-step benchmark trains: Post-LN (PyTorch's
TransformerEncoderLayer with norm_first=False), vocab 256, C 384, 6 heads, 6
layers, d_ff 1536, exact GELU, learned positions, tied output projection, no
dropout, AdamW; a global batch of 8 windows of 256 tokens split over the ranks
(DDP averages the gradients in 25 MiB buckets during backward, its default).
Random tokens: the timing does not depend on the text. Prints the median
tokens/s (global batch tokens over the step's wall time) over the steps after
the first two, measured on rank 0.

Needs Debian's python3-torch (1.13).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F

VOCAB, C, HEADS, LAYERS, D_FF, T = 256, 384, 6, 6, 1536, 256


class Gpt(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed_tokens = nn.Embedding(VOCAB, C)
        self.embed_positions = nn.Embedding(T, C)
        layer = nn.TransformerEncoderLayer(C, HEADS, D_FF, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=False)
        self.layers = nn.TransformerEncoder(layer, LAYERS)
        self.register_buffer("mask", torch.triu(torch.full((T, T), float("-inf")), diagonal=1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.embed_tokens(tokens) + self.embed_positions.weight[: tokens.shape[1]]
        h = self.layers(h, mask=self.mask)
        return F.linear(h, self.embed_tokens.weight)  # (B, T, V), tied


def run(rank: int, ranks: int, threads: int, batch: int, steps: int, port: int) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model: nn.Module = Gpt()
    if ranks > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=ranks)
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    gen = torch.Generator().manual_seed(2)
    rows = batch // ranks
    rates = []
    for _ in range(steps):
        data = torch.randint(0, VOCAB, (batch, T + 1), generator=gen)[rank * rows:(rank + 1) * rows]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(data[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), data[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if ranks > 1:
            dist.barrier()  # the step ends when every rank's does
        rates.append(batch * T / (time.perf_counter() - start))
    if rank == 0:
        kept = rates[2:] if len(rates) > 2 else rates
        print(f"torch {torch.__version__}: {ranks} rank(s) x {threads} thread(s), "
              f"{'DDP gloo' if ranks > 1 else 'no DDP'}: median {statistics.median(kept):.0f} "
              f"tokens/s over {len(kept)} steps")
    if ranks > 1:
        dist.destroy_process_group()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--batch", type=int, default=8, help="global batch (windows)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--port", type=int, default=29517)
    a = parser.parse_args()
    if a.ranks < 1 or a.batch % a.ranks != 0:
        parser.error(f"--batch {a.batch} must split evenly over --ranks {a.ranks}")
    if a.ranks == 1:
        run(0, 1, a.threads, a.batch, a.steps, a.port)
    else:
        mp.spawn(run, args=(a.ranks, a.threads, a.batch, a.steps, a.port), nprocs=a.ranks)


if __name__ == "__main__":
    main()
