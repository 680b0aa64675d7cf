"""Write the PyTorch optimizer fixtures: a few float64 parameters stepped by
torch.optim.AdamW, torch.optim.Adam and torch.optim.SGD for five steps with a
different seeded gradient each step.

tests/fixtures/optim/<optimizer>.safetensors (all F64 but the I64 counters):

  init.<name>               the parameters before the first step
  grad.<k>.<name>           the gradient given at step k = 0..4 (absent: no gradient,
                            the parameter is skipped by that step, as `grad is None`)
  param.<k>.<name>          the parameters after step k
  state.<key>               the optimizer state after the last step, in normlab's
                            OptimizerState naming (optim/optimizer.hpp):
                            exp_avg.<name>, exp_avg_sq.<name>, step.<name> (I64 ()),
                            step (I64 (), the number of step() calls) for Adam/AdamW;
                            momentum_buffer.<name> and step for SGD
  __metadata__              optimizer, hyper-parameters, decay/no_decay names,
                            missing gradients, torch version

Parameters (names and kinds as a normlab model would have them; the default
decay rule decays `weight` and `token_embedding` kinds only):

  fc1.weight (3,4)           weight           decayed
  embed_tokens.weight (5,2)  token_embedding  decayed
  fc1.bias (3,)              bias             not decayed
  layer_norm.weight (4,)     norm_weight      not decayed; no gradient at steps 0 and 2

Hyper-parameters: AdamW(lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01)
(the NormFormer release's, DESIGN.md §1); Adam with the same numbers (L2
weight decay); SGD(lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01).

Run with Debian's python: /usr/bin/python3 tools/reference/make_optim_fixture.py
The output is byte-for-byte deterministic. Before writing, the script checks
torch's updates against the update equations written out in plain Python
(the ones normlab's kernels implement) and the files against a read-back.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from safetensors_io import read_safetensors, safetensors_bytes  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent.parent.parent / "tests" / "fixtures" / "optim"
GENERATOR = "tools/reference/make_optim_fixture.py"
SEED = 20211029  # NormFormer's arXiv date
STEPS = 5

# name -> (shape, decayed)
PARAMS = {
    "fc1.weight": ((3, 4), True),
    "embed_tokens.weight": ((5, 2), True),
    "fc1.bias": ((3,), False),
    "layer_norm.weight": ((4,), False),
}
MISSING = {0: {"layer_norm.weight"}, 2: {"layer_norm.weight"}}  # step -> names without a gradient

HYPER = {
    "adamw": dict(lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    "adam": dict(lr=1e-3, betas=(0.9, 0.98), eps=1e-8, weight_decay=0.01),
    "sgd": dict(lr=0.1, momentum=0.9, dampening=0.0, nesterov=True, weight_decay=0.01),
}

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)


def initial_values() -> tuple[dict[str, torch.Tensor], list[dict[str, torch.Tensor]]]:
    """Seeded parameters and, per step, the gradients (a missing name: no gradient)."""
    g = torch.Generator().manual_seed(SEED)
    init = {name: torch.randn(shape, generator=g) for name, (shape, _) in PARAMS.items()}
    grads = []
    for k in range(STEPS):
        # Scales vary per step so that the moments see gradients of different sizes.
        scale = 0.5 + 0.25 * k
        step = {name: scale * torch.randn(shape, generator=g) for name, (shape, _) in PARAMS.items()}
        for name in MISSING.get(k, ()):
            del step[name]
        grads.append(step)
    return init, grads


def make_optimizer(kind: str, params: dict[str, torch.Tensor]) -> torch.optim.Optimizer:
    h = dict(HYPER[kind])
    wd = h.pop("weight_decay")
    groups = [
        {"params": [p for n, p in params.items() if PARAMS[n][1]], "weight_decay": wd},
        {"params": [p for n, p in params.items() if not PARAMS[n][1]], "weight_decay": 0.0},
    ]
    cls = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[kind]
    return cls(groups, foreach=False, **h)


def run_torch(kind: str, init, grads):
    params = {n: torch.nn.Parameter(v.clone()) for n, v in init.items()}
    opt = make_optimizer(kind, params)
    after = []
    for k in range(STEPS):
        for n, p in params.items():
            p.grad = grads[k][n].clone() if n in grads[k] else None
        opt.step()
        after.append({n: p.detach().clone() for n, p in params.items()})
    state = {"step": torch.tensor(STEPS, dtype=torch.int64)}
    for n, p in params.items():
        s = opt.state.get(p, {})
        if kind == "sgd":
            if s.get("momentum_buffer") is not None:
                state[f"momentum_buffer.{n}"] = s["momentum_buffer"].clone()
        elif s:
            state[f"exp_avg.{n}"] = s["exp_avg"].clone()
            state[f"exp_avg_sq.{n}"] = s["exp_avg_sq"].clone()
            state[f"step.{n}"] = torch.tensor(int(s["step"].item()), dtype=torch.int64)
    return after, state


def run_by_hand(kind: str, init, grads):
    """The update equations of normlab's kernels (backend/cpu/optim.hpp), element by element."""
    h = HYPER[kind]
    p = {n: v.flatten().tolist() for n, v in init.items()}
    m = {n: [0.0] * len(v) for n, v in p.items()}
    v2 = {n: [0.0] * len(v) for n, v in p.items()}
    t = {n: 0 for n in p}
    buf: dict[str, list[float]] = {}
    after = []
    for k in range(STEPS):
        for n in p:
            if n not in grads[k]:
                continue
            g = grads[k][n].flatten().tolist()
            wd = h["weight_decay"] if PARAMS[n][1] else 0.0
            if kind == "sgd":
                g = [gi + wd * pi for gi, pi in zip(g, p[n])]
                if n not in buf:
                    buf[n] = list(g)
                else:
                    buf[n] = [b * h["momentum"] + (1 - h["dampening"]) * gi for b, gi in zip(buf[n], g)]
                g = [gi + h["momentum"] * b for gi, b in zip(g, buf[n])]
                p[n] = [pi - h["lr"] * gi for pi, gi in zip(p[n], g)]
                continue
            b1, b2 = h["betas"]
            t[n] += 1
            if kind == "adam":
                g = [gi + wd * pi for gi, pi in zip(g, p[n])]
            else:
                p[n] = [pi * (1 - h["lr"] * wd) for pi in p[n]]
            m[n] = [mi * b1 + (1 - b1) * gi for mi, gi in zip(m[n], g)]
            v2[n] = [vi * b2 + (1 - b2) * gi * gi for vi, gi in zip(v2[n], g)]
            c1, c2 = 1 - b1 ** t[n], 1 - b2 ** t[n]
            p[n] = [pi - h["lr"] / c1 * mi / (math.sqrt(vi) / math.sqrt(c2) + h["eps"])
                    for pi, mi, vi in zip(p[n], m[n], v2[n])]
        after.append({n: torch.tensor(vals).reshape(PARAMS[n][0]) for n, vals in p.items()})
    return after


def check_against_hand(kind: str, init, torch_after, hand_after, grads) -> None:
    for k in range(STEPS):
        for n in PARAMS:
            a, b = torch_after[k][n], hand_after[k][n]
            err = ((a - b).abs() / b.abs().clamp(min=1)).max().item()
            assert err < 1e-14, f"[{kind}] step {k} {n}: torch and the equations differ by {err}"
            if k > 0 and n in grads[k]:
                assert not torch.equal(torch_after[k][n], torch_after[k - 1][n]), f"{n} did not move"
    # A parameter without a gradient does not move.
    for k, names in MISSING.items():
        for n in names:
            before = torch_after[k - 1][n] if k > 0 else init[n]
            assert torch.equal(torch_after[k][n], before), f"[{kind}] {n} moved without a gradient"


def fixture(kind: str, init, grads) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    after, state = run_torch(kind, init, grads)
    check_against_hand(kind, init, after, run_by_hand(kind, init, grads), grads)
    tensors = {f"init.{n}": v for n, v in init.items()}
    for k in range(STEPS):
        tensors.update({f"grad.{k}.{n}": g for n, g in grads[k].items()})
        tensors.update({f"param.{k}.{n}": v for n, v in after[k].items()})
    tensors.update({f"state.{key}": v for key, v in state.items()})
    h = HYPER[kind]
    meta = {
        "generator": GENERATOR,
        "torch": torch.__version__,
        "optimizer": {"adamw": "torch.optim.AdamW", "adam": "torch.optim.Adam", "sgd": "torch.optim.SGD"}[kind],
        "hyper_parameters": ", ".join(f"{k}={v}" for k, v in h.items()),
        "decay": ",".join(n for n in PARAMS if PARAMS[n][1]),
        "no_decay": ",".join(n for n in PARAMS if not PARAMS[n][1]),
        "missing_grads": ";".join(f"{k}:{','.join(sorted(v))}" for k, v in sorted(MISSING.items())),
        "steps": str(STEPS),
        "seed": str(SEED),
    }
    return tensors, meta


def main() -> int:
    init, grads = initial_values()
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for kind in ("adamw", "adam", "sgd"):
        tensors, meta = fixture(kind, init, grads)
        blob = safetensors_bytes(tensors, meta)
        back, back_meta = read_safetensors(blob)
        assert back_meta == meta and set(back) == set(tensors)
        for n, v in tensors.items():
            assert torch.equal(back[n], v), f"[{kind}] {n} does not read back"
        (OUT_DIR / f"{kind}.safetensors").write_bytes(blob)
        last = {n: tensors[f"param.{STEPS - 1}.{n}"] for n in PARAMS}
        print(f"{kind:<6} {len(tensors)} tensors; fc1.weight[0,0] after {STEPS} steps "
              f"{last['fc1.weight'][0, 0].item():.17g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
