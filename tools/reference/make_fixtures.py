"""Write the PyTorch parity fixtures of every normalization placement.

For each case, tests/fixtures/reference/<case>/ receives exactly the inputs and
outputs of `normlab forward --config config.json --weights weights.safetensors
--tokens tokens.safetensors --out OUT.safetensors`:

  config.json            model hyper-parameters (normlab_reference.Config)
  weights.safetensors    every parameter, F64, fairseq state_dict names
  tokens.safetensors     tokens, targets: I64 (B,T); one target is ignored (-100, or
                         padding_idx when the case has one, as is every pad token's)
  expected.safetensors   logits (B,T,V) F64, loss () F64, grad.<name> F64 for every parameter

Run with Debian's python: /usr/bin/python3 tools/reference/make_fixtures.py
The output is byte-for-byte deterministic. Self-checks run every time and stop
the script (AssertionError) before anything is written if one fails.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import zlib
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import normlab_reference as ref  # noqa: E402
from safetensors_io import read_safetensors, safetensors_bytes  # noqa: E402

OUT_DIR = Path(__file__).resolve().parent.parent.parent / "tests" / "fixtures" / "reference"
GENERATOR = "tools/reference/make_fixtures.py"

SIZES = dict(vocab_size=13, d_model=8, n_heads=2, n_layers=2, d_ff=12, max_seq_len=7, ln_eps=1e-5)
BATCH, SEQ = 2, 5
IGNORED_TARGET = (1, 2)  # (b, t) whose target is -100

# Case name -> Config fields beyond SIZES. Defaults: gelu, tied embeddings,
# layer_norm, head_scale "before_out_proj", no resid_scale.
CASES = {
    "post_ln": dict(policy="post_ln"),
    "pre_ln": dict(policy="pre_ln"),
    "normformer": dict(policy="normformer", head_scale="before_out_proj"),
    "normformer_after_out_proj": dict(policy="normformer", head_scale="after_out_proj"),
    "normformer_resid_scale": dict(policy="normformer", resid_scale=True),
    "pre_ln_head_scale_before": dict(policy="pre_ln", extras=("head_scale",), head_scale="before_out_proj"),
    "pre_ln_head_scale_after": dict(policy="pre_ln", extras=("head_scale",), head_scale="after_out_proj"),
    "pre_ln_attn_ln": dict(policy="pre_ln", extras=("attn_ln",)),
    "pre_ln_ffn_ln": dict(policy="pre_ln", extras=("ffn_ln",)),
    "pre_ln_resid_scale": dict(policy="pre_ln", resid_scale=True),
    "sandwich": dict(policy="sandwich"),
    "deepnorm": dict(policy="deepnorm"),
    "pre_ln_rms_norm": dict(policy="pre_ln", norm="rms_norm"),
    "pre_ln_untied": dict(policy="pre_ln", tie_embeddings=False),
    "post_ln_relu": dict(policy="post_ln", activation="relu"),
    "pre_ln_gelu_tanh": dict(policy="pre_ln", activation="gelu_tanh"),
    # fairseq's embeddings: scale sqrt(C), positions from row padding_idx + 1
    "pre_ln_embed_scale": dict(policy="pre_ln", embed_scale=True),
    "pre_ln_embed_scale_untied": dict(policy="pre_ln", embed_scale=True, tie_embeddings=False),
    "post_ln_embed_scale": dict(policy="post_ln", embed_scale=True),
    "pre_ln_sinusoidal": dict(policy="pre_ln", positions="sinusoidal"),
    "pre_ln_padding_idx": dict(policy="pre_ln", padding_idx=1),
    "post_ln_padding_idx": dict(policy="post_ln", padding_idx=1),
    "pre_ln_sinusoidal_padding_idx": dict(policy="pre_ln", positions="sinusoidal", padding_idx=1),
    "post_ln_sinusoidal_padding_idx": dict(policy="post_ln", positions="sinusoidal", padding_idx=1),
    "normformer_fairseq_lm": dict(policy="normformer", head_scale="after_out_proj", embed_scale=True,
                                  positions="sinusoidal", padding_idx=1),
    # padded batches (PADDING below): pad keys masked, pad positions, pad targets ignored
    "pre_ln_right_padded": dict(policy="pre_ln", embed_scale=True, padding_idx=1),
    "pre_ln_left_padded": dict(policy="pre_ln", embed_scale=True, padding_idx=1),
    "post_ln_right_padded": dict(policy="post_ln", positions="sinusoidal", padding_idx=1),
    "post_ln_left_padded": dict(policy="post_ln", positions="sinusoidal", padding_idx=1),
    # fairseq's transformer_lm as built (Pre-LN whatever the flags say): ReLU, untied output
    # projection, sinusoids from row padding_idx + 1, embeddings scaled; one row right-padded
    "fairseq_transformer_lm": dict(policy="pre_ln", activation="relu", tie_embeddings=False,
                                   positions="sinusoidal", embed_scale=True, padding_idx=1),
}

# Case -> (side, pads per row): which tokens of each row are padding_idx.
# Left padding has at most one pad per row: a query that sees only pad keys
# attends to them with the -1e9 bias, whose float rounding would make two
# pads' scores equal in float and not in float64 (fairseq gives NaN there).
PADDING = {
    "pre_ln_right_padded": ("right", (0, 2)),
    "pre_ln_left_padded": ("left", (1, 0)),
    "post_ln_right_padded": ("right", (1, 3)),
    "post_ln_left_padded": ("left", (0, 1)),
    "fairseq_transformer_lm": ("right", (0, 1)),
}

torch.set_default_dtype(torch.float64)
torch.set_num_threads(1)  # one thread: reductions in a fixed order, bytes identical run to run


# ---------------------------------------------------------------------------
# Analytic parameter count (independent of parameter_shapes)


def analytic_parameter_count(cfg: ref.Config) -> int:
    """Embeddings + N layers + final norm + untied head, counted from the equations.

    Per Pre-LN/Post-LN layer: 4 (C^2 + C) attention, 2 norms of width C,
    fc1 d_ff (C + 1), fc2 C (d_ff + 1). Extras per layer: head_scale H,
    attn_ln a norm of width C, ffn_ln a norm of width d_ff, ffn_out_ln a norm
    of width C, resid_scale C. A norm of width w has 2w parameters (LayerNorm)
    or w (RMSNorm). So NormFormer adds 2C + 2 d_ff + H per layer over Pre-LN.
    """
    C, V, H, d_ff, N = cfg.d_model, cfg.vocab_size, cfg.n_heads, cfg.d_ff, cfg.n_layers

    def norm(w):
        return 2 * w if cfg.norm == "layer_norm" else w

    extra_cost = {"head_scale": H, "attn_ln": norm(C), "ffn_ln": norm(d_ff), "ffn_out_ln": norm(C)}
    per_layer = 4 * (C * C + C) + 2 * norm(C) + d_ff * (C + 1) + C * (d_ff + 1)
    per_layer += sum(extra_cost[e] for e in cfg.active_extras)
    per_layer += C if cfg.resid_scale else 0
    pad_rows = 0 if cfg.padding_idx is None else cfg.padding_idx + 1  # fairseq's offset rows
    positions = (cfg.max_seq_len + pad_rows) * C if cfg.positions == "learned" else 0
    total = V * C + positions + N * per_layer
    total += norm(C) if cfg.final_norm else 0
    total += V * C if not cfg.tie_embeddings else 0
    return total


# ---------------------------------------------------------------------------
# Cases


@dataclasses.dataclass
class Case:
    name: str
    cfg: ref.Config
    seed: int
    params: dict[str, torch.Tensor]
    tokens: torch.Tensor   # (B,T) I64
    targets: torch.Tensor  # (B,T) I64, -100 at IGNORED_TARGET
    logits: torch.Tensor   # (B,T,V)
    loss: torch.Tensor     # ()
    grads: dict[str, torch.Tensor]


def case_seed(name: str) -> int:
    """Seed from the case name, so adding or reordering cases changes no other case."""
    return zlib.crc32(name.encode("utf-8"))


def build_case(name: str) -> Case:
    cfg = ref.Config(**SIZES, **CASES[name])
    seed = case_seed(name)
    torch.manual_seed(seed)
    params = ref.init_parameters(cfg)
    tokens = torch.randint(0, cfg.vocab_size, (BATCH, SEQ), dtype=torch.int64)
    targets = torch.randint(0, cfg.vocab_size, (BATCH, SEQ), dtype=torch.int64)
    if cfg.padding_idx is not None:  # pad tokens only where PADDING puts them
        pad = cfg.padding_idx
        tokens[tokens == pad] = (pad + 1) % cfg.vocab_size
        targets[targets == pad] = (pad + 1) % cfg.vocab_size
        side, counts = PADDING.get(name, ("right", (0,) * BATCH))
        for b, n in enumerate(counts):
            where = slice(SEQ - n, SEQ) if side == "right" else slice(0, n)
            tokens[b, where] = pad
            targets[b, where] = pad
    targets[IGNORED_TARGET] = cfg.ignore_index

    leaves = {k: v.clone().requires_grad_(True) for k, v in params.items()}
    logits = ref.forward(leaves, tokens, cfg)
    loss = ref.cross_entropy_loss(logits, targets, cfg.ignore_index)
    loss.backward()
    unused = [k for k, leaf in leaves.items() if leaf.grad is None]
    assert not unused, f"[{name}] parameters {unused} get no gradient: the forward does not use them"
    grads = {k: leaf.grad.detach().clone() for k, leaf in leaves.items()}
    return Case(name, cfg, seed, params, tokens, targets, logits.detach(), loss.detach(), grads)


def case_files(case: Case) -> dict[str, bytes]:
    meta = {"case": case.name, "generator": GENERATOR, "seed": str(case.seed), "torch": torch.__version__}
    config = json.dumps(case.cfg.to_json_dict(), indent=2) + "\n"
    expected = {"logits": case.logits, "loss": case.loss}
    expected.update({f"grad.{k}": g for k, g in case.grads.items()})
    return {
        "config.json": config.encode("utf-8"),
        "weights.safetensors": safetensors_bytes(case.params, meta),
        "tokens.safetensors": safetensors_bytes({"tokens": case.tokens, "targets": case.targets}, meta),
        "expected.safetensors": safetensors_bytes(expected, meta),
    }


# ---------------------------------------------------------------------------
# Self-checks


def max_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a - b).abs().max().item()


def check_primitives() -> None:
    """Hand-written LayerNorm equals torch's; the activations are the named functions."""
    torch.manual_seed(0)
    x, w, b = torch.randn(3, 4, 8), torch.randn(8), torch.randn(8)
    d = max_abs_diff(ref.layer_norm(x, w, b, 1e-5), torch.nn.functional.layer_norm(x, (8,), w, b, 1e-5))
    assert d < 1e-12, f"layer_norm differs from torch.nn.functional.layer_norm by {d}"
    tanh_gelu = 0.5 * x * (1 + torch.tanh((2 / torch.pi) ** 0.5 * (x + 0.044715 * x ** 3)))
    d = max_abs_diff(ref.activation(x, "gelu_tanh"), tanh_gelu)
    assert d < 1e-12, f"gelu_tanh differs from 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3))) by {d}"
    erf_gelu = 0.5 * x * (1 + torch.erf(x / 2 ** 0.5))
    d = max_abs_diff(ref.activation(x, "gelu"), erf_gelu)
    assert d < 1e-12, f"gelu differs from 0.5x(1+erf(x/sqrt 2)) by {d}"


def torch_attention(cfg: ref.Config, params: dict, prefix: str) -> torch.nn.MultiheadAttention:
    """torch.nn.MultiheadAttention holding the same q/k/v/out weights as layer `prefix`."""
    a = f"{prefix}.self_attn"
    mha = torch.nn.MultiheadAttention(cfg.d_model, cfg.n_heads, dropout=0.0, bias=True, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(torch.cat([params[f"{a}.{p}_proj.weight"] for p in "qkv"]))
        mha.in_proj_bias.copy_(torch.cat([params[f"{a}.{p}_proj.bias"] for p in "qkv"]))
        mha.out_proj.weight.copy_(params[f"{a}.out_proj.weight"])
        mha.out_proj.bias.copy_(params[f"{a}.out_proj.bias"])
    return mha


def causal_mask(T: int) -> torch.Tensor:
    return torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)  # True: may not attend


def has_torch_counterpart(cfg: ref.Config) -> bool:
    """Plain Pre-LN / Post-LN layers with LayerNorm are what torch.nn.TransformerEncoderLayer computes."""
    plain = not cfg.active_extras and not cfg.resid_scale and cfg.norm == "layer_norm"
    return plain and cfg.policy in ("pre_ln", "post_ln") and cfg.padding_idx is None


def check_against_torch_modules(case: Case) -> None:
    """(1) Hand-written attention == torch.nn.MultiheadAttention (plain pre_ln case),
    and a whole layer == torch.nn.TransformerEncoderLayer (norm_first for Pre-LN)."""
    cfg, params = case.cfg, case.params
    T = case.tokens.shape[1]
    h0 = ref.embed(params, case.tokens, cfg)  # (B,T,C)

    if case.name == "pre_ln":
        x = ref.norm(h0, params, "layers.0.self_attn_layer_norm", cfg)
        mha = torch_attention(cfg, params, "layers.0")
        expected, _ = mha(x, x, x, attn_mask=causal_mask(T), need_weights=False)
        d = max_abs_diff(ref.self_attention(x, params, "layers.0", cfg), expected)
        assert d < 1e-12, f"[{case.name}] self_attention differs from torch.nn.MultiheadAttention by {d}"

    activation = {"gelu": "gelu", "relu": "relu",
                  "gelu_tanh": lambda t: torch.nn.functional.gelu(t, approximate="tanh")}[cfg.activation]
    layer = torch.nn.TransformerEncoderLayer(
        cfg.d_model, cfg.n_heads, cfg.d_ff, dropout=0.0, activation=activation,
        layer_norm_eps=cfg.ln_eps, batch_first=True, norm_first=not cfg.is_post_ln)
    layer.train()  # keeps torch off its fused inference fast path
    with torch.no_grad():
        layer.self_attn = torch_attention(cfg, params, "layers.0")
        for mine, theirs in (("fc1", layer.linear1), ("fc2", layer.linear2),
                             ("self_attn_layer_norm", layer.norm1), ("final_layer_norm", layer.norm2)):
            theirs.weight.copy_(params[f"layers.0.{mine}.weight"])
            theirs.bias.copy_(params[f"layers.0.{mine}.bias"])
    expected = layer(h0, src_mask=causal_mask(T))
    mine = (ref.post_ln_layer if cfg.is_post_ln else ref.pre_ln_layer)(h0, params, "layers.0", cfg)
    d = max_abs_diff(mine, expected)
    assert d < 1e-12, f"[{case.name}] layer 0 differs from torch.nn.TransformerEncoderLayer by {d}"


def check_parameter_count(case: Case) -> None:
    """(2) The parameters are exactly the named ones and their number is the analytic count."""
    shapes = ref.parameter_shapes(case.cfg)
    assert list(case.params) == list(shapes), f"[{case.name}] parameter names differ from parameter_shapes"
    for name, shape in shapes.items():
        assert tuple(case.params[name].shape) == shape, f"[{case.name}] {name} has shape {tuple(case.params[name].shape)}, expected {shape}"
    n, expected = ref.parameter_count(case.params), analytic_parameter_count(case.cfg)
    assert n == expected, f"[{case.name}] {n} parameters, the analytic count is {expected}"


def check_normformer_overhead(cases: dict[str, Case]) -> None:
    """(2) NormFormer over Pre-LN costs 2C + 2 d_ff + H per layer (+ C with resid_scale)."""
    C, H, d_ff, N = SIZES["d_model"], SIZES["n_heads"], SIZES["d_ff"], SIZES["n_layers"]
    base = ref.parameter_count(cases["pre_ln"].params)
    for name, extra in (("normformer", 0), ("normformer_after_out_proj", 0), ("normformer_resid_scale", C)):
        got = ref.parameter_count(cases[name].params) - base
        want = N * (2 * C + 2 * d_ff + H + extra)
        assert got == want, f"{name} adds {got} parameters over pre_ln, the paper's count is {want}"


def params_for(cfg: ref.Config, params: dict) -> dict:
    """params, with zeros for any parameter cfg has and params lacks (LayerNorm biases)."""
    return {n: params[n] if n in params else torch.zeros(s) for n, s in ref.parameter_shapes(cfg).items()}


def one_feature_off(cfg: ref.Config) -> list[tuple[str, ref.Config]]:
    """Configs that differ from cfg in exactly one feature (an extra, a placement, ...)."""
    rep = dataclasses.replace
    base = "post_ln" if cfg.is_post_ln else "pre_ln"
    out = []
    for e in cfg.active_extras:
        rest = tuple(x for x in cfg.active_extras if x != e)
        out.append((f"without {e}", rep(cfg, policy=base, extras=rest)))
    if cfg.resid_scale:
        out.append(("without resid_scale", rep(cfg, resid_scale=False)))
    if cfg.has("head_scale"):
        other = "after_out_proj" if cfg.head_scale == "before_out_proj" else "before_out_proj"
        out.append((f"head_scale {other}", rep(cfg, head_scale=other)))
    if cfg.policy == "deepnorm":
        out.append(("post_ln (alpha 1)", rep(cfg, policy="post_ln")))
    if cfg.activation != "gelu":
        out.append(("activation gelu", rep(cfg, activation="gelu")))
    if not cfg.tie_embeddings:
        out.append(("tied embeddings", rep(cfg, tie_embeddings=True)))
    if cfg.norm == "rms_norm":
        out.append(("layer_norm (zero bias)", rep(cfg, norm="layer_norm")))
    if cfg.embed_scale:
        out.append(("embed_scale off", rep(cfg, embed_scale=False)))
    return out


def check_padding_matters(case: Case) -> None:
    """(3) The position offset, the padding mask and the pad positions each make a
    difference: reading rows from 0 (no offset) changes the logits, masking no
    key changes layer 0's output, giving pads the positions of tokens changes
    the embeddings."""
    cfg, params, tokens = case.cfg, case.params, case.tokens
    if cfg.padding_idx is None:
        return
    with torch.no_grad():
        logits = ref.forward(params, tokens, cfg)
        unshifted = dataclasses.replace(cfg, padding_idx=None)
        rows = {n: p[:cfg.max_seq_len] if n == "embed_positions.weight" else p for n, p in params.items()}
        d = max_abs_diff(logits, ref.forward(rows, tokens, unshifted))
        assert d > 1e-3, f"[{case.name}] the position offset changes the logits by only {d}"
        if not tokens.eq(cfg.padding_idx).any():
            return
        h = ref.embed(params, tokens, cfg)
        layer = ref.post_ln_layer if cfg.is_post_ln else ref.pre_ln_layer
        masked = layer(h, params, "layers.0", cfg, ref.padding_key_bias(tokens, cfg))
        unmasked = layer(h, params, "layers.0", cfg, None)
        d = max_abs_diff(masked, unmasked)  # right padding: only pad queries see pad keys
        assert d > 1e-3, f"[{case.name}] masking pad keys changes layer 0 by only {d}"
        t = torch.arange(tokens.shape[1]) + cfg.position_offset  # positions as if no pads
        table = params["embed_positions.weight"] if cfg.positions == "learned" else \
            ref.sinusoidal_table(cfg.position_rows, cfg.d_model, cfg.padding_idx)
        d = max_abs_diff(table[ref.position_indices(tokens, cfg)], table[t].expand_as(h))
        assert d > 1e-3, f"[{case.name}] pad positions change the embeddings by only {d}"


def check_features_matter(case: Case) -> None:
    """(3) Each feature of the case changes the logits (same parameters, feature off),
    the two head-scale placements differ, presets equal their explicit composition,
    and with c_attn = 1 both placements reduce to no head scale."""
    cfg, params, tokens = case.cfg, case.params, case.tokens
    with torch.no_grad():
        logits = ref.forward(params, tokens, cfg)
        assert torch.equal(logits, case.logits), f"[{case.name}] forward is not reproducible"
        for label, other in one_feature_off(cfg):
            d = max_abs_diff(logits, ref.forward(params_for(other, params), tokens, other))
            assert d > 1e-3, f"[{case.name}] {label} changes the logits by only {d}: the fixture cannot tell them apart"

        if cfg.policy in ("normformer", "sandwich"):
            explicit = dataclasses.replace(cfg, policy="pre_ln", extras=cfg.active_extras)
            d = max_abs_diff(logits, ref.forward(params, tokens, explicit))
            assert d == 0, f"[{case.name}] preset differs from pre_ln + extras {explicit.extras} by {d}"

        if cfg.has("head_scale"):
            ones = {n: torch.ones_like(p) if n.endswith(".c_attn") else p for n, p in params.items()}
            plain = ref.forward(ones, tokens, dataclasses.replace(cfg, policy="pre_ln",
                                extras=tuple(e for e in cfg.active_extras if e != "head_scale")))
            for placement in ref.HEAD_SCALE_PLACEMENTS:
                d = max_abs_diff(plain, ref.forward(ones, tokens, dataclasses.replace(cfg, head_scale=placement)))
                assert d < 1e-12, f"[{case.name}] {placement} with c_attn = 1 is not the identity (diff {d})"


def check_gradients(case: Case) -> None:
    for name, g in case.grads.items():
        assert torch.isfinite(g).all(), f"[{case.name}] grad.{name} is not finite"
        assert g.abs().max() > 0, f"[{case.name}] grad.{name} is zero: the parameter is unused"


def check_files(case: Case, files: dict[str, bytes]) -> None:
    """The bytes read back to the tensors, and building the case again gives the same bytes."""
    weights, _ = read_safetensors(files["weights.safetensors"])
    assert set(weights) == set(case.params), f"[{case.name}] weights.safetensors holds other names"
    assert all(torch.equal(weights[n], p) for n, p in case.params.items()), f"[{case.name}] weights round trip"
    expected, _ = read_safetensors(files["expected.safetensors"])
    assert set(expected) == {"logits", "loss"} | {f"grad.{n}" for n in case.params}
    assert expected["loss"].shape == () and torch.equal(expected["loss"], case.loss)
    tokens, _ = read_safetensors(files["tokens.safetensors"])
    ignored = (tokens["targets"] == case.cfg.ignore_index).sum()
    assert torch.equal(tokens["targets"], case.targets) and ignored >= 1
    reread = ref.Config.from_json_dict(json.loads(files["config.json"]))
    assert reread.to_json_dict() == case.cfg.to_json_dict(), f"[{case.name}] config.json round trip"
    assert case_files(build_case(case.name)) == files, f"[{case.name}] building twice gave different bytes"


# ---------------------------------------------------------------------------


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="output folder (default: tests/fixtures/reference)")
    args = parser.parse_args(argv)

    check_primitives()
    cases = {name: build_case(name) for name in CASES}
    files = {}
    for name, case in cases.items():
        if has_torch_counterpart(case.cfg):
            check_against_torch_modules(case)
        check_parameter_count(case)
        check_features_matter(case)
        check_padding_matters(case)
        check_gradients(case)
        files[name] = case_files(case)
        check_files(case, files[name])
    check_normformer_overhead(cases)

    for name, case in cases.items():
        folder = args.out / name
        folder.mkdir(parents=True, exist_ok=True)
        for filename, blob in files[name].items():
            (folder / filename).write_bytes(blob)
        n = ref.parameter_count(case.params)
        print(f"{name:<27} loss {case.loss.item():.12f}  params {n}")
    print(f"{len(cases)} cases written; all self-checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
