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

With more than one rank it measures, like bench/data_parallel.cpp, three
phases: `step` (DDP), `compute` (the same step under DDP's no_sync(): each
rank's backward without the all-reduce, all ranks at once) and `exchange`
(every gradient's bytes all-reduced in 25 MiB buckets, started together, no
compute); exposed = step - compute, overlap = 1 - exposed / exchange.
--json prints the figures as one JSON line with bench/data_parallel.cpp's keys.

Needs Debian's python3-torch (1.13).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
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


def train(model: nn.Module, rank: int, ranks: int, batch: int, steps: int, sync: bool) -> list:
    """The wall times of `steps` steps of `model` (DDP when ranks > 1) on this rank's rows of
    a global batch; without `sync` every step runs under DDP's no_sync() (no all-reduce)."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.98), weight_decay=0.01)
    gen = torch.Generator().manual_seed(2)
    rows = batch // ranks
    times = []
    for _ in range(steps):
        data = torch.randint(0, VOCAB, (batch, T + 1), generator=gen)[rank * rows:(rank + 1) * rows]
        if ranks > 1:
            dist.barrier()  # every rank starts the step together
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with (model.no_sync() if ranks > 1 and not sync else contextlib.nullcontext()):
            logits = model(data[:, :-1])
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), data[:, 1:].reshape(-1))
            loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        times.append(time.perf_counter() - start)
    return times


def exchange_alone(numel: int, steps: int) -> list:
    """The wall times of all-reducing `numel` floats in 25 MiB buckets, started together."""
    per_bucket = (25 << 20) // 4
    buckets = [torch.ones(min(per_bucket, numel - first)) for first in range(0, numel, per_bucket)]
    times = []
    for _ in range(steps):
        dist.barrier()
        start = time.perf_counter()
        for work in [dist.all_reduce(b, async_op=True) for b in buckets]:
            work.wait()
        times.append(time.perf_counter() - start)
    return times


def run(rank: int, ranks: int, threads: int, batch: int, steps: int, port: int,
        as_json: bool) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    model: nn.Module = Gpt()
    numel = sum(p.numel() for p in model.parameters())
    if ranks > 1:
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=ranks)
        model = nn.parallel.DistributedDataParallel(model)
    skip = 2 if steps > 2 else 0
    step = statistics.median(train(model, rank, ranks, batch, steps, True)[skip:])
    figures = {"library": f"torch {torch.__version__}", "ranks": ranks, "threads": threads,
               "steps": steps - skip, "gradient_mb": round(numel * 4 / 1e6, 1),
               "tokens_per_s": round(batch * T / step, 1), "step_ms": round(1e3 * step, 2)}
    if ranks > 1:
        compute = statistics.median(train(model, rank, ranks, batch, steps, False)[skip:])
        exchange = statistics.median(exchange_alone(numel, steps)[skip:])
        exposed = step - compute
        figures.update(compute_ms=round(1e3 * compute, 2), exchange_ms=round(1e3 * exchange, 2),
                       exposed_ms=round(1e3 * exposed, 2),
                       overlap=round(1 - exposed / exchange, 3) if exchange > 0 else 0.0)
    if rank == 0:
        if as_json:
            print(json.dumps(figures))
        else:
            print(f"{figures['library']}: {ranks} rank(s) x {threads} thread(s), "
                  f"{'DDP gloo' if ranks > 1 else 'no DDP'}: median {figures['tokens_per_s']:.0f} "
                  f"tokens/s over {steps - skip} steps")
    if ranks > 1:
        # Every rank leaves together; then the process ends without gloo's teardown, which
        # left a rank spinning after its peer had gone in one run of this script.
        dist.barrier()
        sys.stdout.flush()
        os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    parser.add_argument("--batch", type=int, default=8, help="global batch (windows)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--port", type=int, default=29517)
    parser.add_argument("--json", action="store_true", help="one JSON line of figures")
    a = parser.parse_args()
    if a.ranks < 1 or a.batch % a.ranks != 0:
        parser.error(f"--batch {a.batch} must split evenly over --ranks {a.ranks}")
    if a.ranks == 1:
        run(0, 1, a.threads, a.batch, a.steps, a.port, a.json)
    else:
        mp.spawn(run, args=(a.ranks, a.threads, a.batch, a.steps, a.port, a.json), nprocs=a.ranks)


if __name__ == "__main__":
    main()
