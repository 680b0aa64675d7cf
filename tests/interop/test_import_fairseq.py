#!/usr/bin/python3
"""tools/import_fairseq.py against the float64 reference fixtures, through the normlab command.

    /usr/bin/python3 tests/interop/test_import_fairseq.py PATH/TO/normlab [WORK_DIR]

For each fixture fairseq's transformer_lm can express, the test writes the
checkpoint fairseq would save (decoder.* keys, decoder.version, the tied
output_projection alias, the sinusoids' _float_tensor, an omegaconf cfg; one
case a legacy args Namespace), imports it, runs `normlab forward` on the result
and compares logits, loss and every gradient with the fixture's expected
values (max abs diff <= 1e-10; `normlab forward --checkpoint`, the config
from the checkpoint's metadata). Then: export -> import is the identity
(tensors bit for bit, configs equal), fairseq -> import -> export gives back
the same state_dict, the same for Hugging Face's GPT-2 layout, and each
refusal names the key at fault. Exit status 77 (CTest's SKIP_RETURN_CODE) when
torch or omegaconf cannot be imported.

Which fixtures fairseq can express, decided from fairseq's code
(fairseq/models/transformer_lm.py, transformer/transformer_decoder.py,
modules/transformer_layer.py, modules/positional_embedding.py):
  - as they are: the pre_ln cases with padding_idx (fairseq offsets every
    position by its dictionary's pad).
  - DERIVED: pre_ln cases with learned positions and no padding_idx become
    fairseq's by a pad P that no token or target uses and P + 1 zero rows
    prepended to the position table: position t then reads the same row, no
    key is masked, the ignored target (-100) becomes P, so logits, loss and
    every gradient are the fixture's (the table's gradient gains P + 1 zero rows).
  - LEFT_OUT, with the reason the export gives (checked below).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import subprocess
import sys
import tempfile
from pathlib import Path

SKIP = 77
try:
    import torch
    from omegaconf import OmegaConf
except ModuleNotFoundError as e:
    print(f"SKIP: {e.name} cannot be imported (install Debian's python3-torch and python3-omegaconf)")
    sys.exit(SKIP)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "reference"
TOOL = ROOT / "tools" / "import_fairseq.py"
sys.path.insert(0, str(ROOT / "tools"))
sys.path.insert(0, str(ROOT / "tools" / "reference"))
import import_fairseq as tool  # noqa: E402
from safetensors_io import read_safetensors, safetensors_bytes  # noqa: E402

TOLERANCE = 1e-10

DIRECT = ["pre_ln_padding_idx", "pre_ln_sinusoidal_padding_idx", "normformer_fairseq_lm",
          "pre_ln_right_padded", "pre_ln_left_padded", "fairseq_transformer_lm"]
DERIVED = ["pre_ln", "normformer_after_out_proj", "pre_ln_head_scale_after",
           "pre_ln_attn_ln", "pre_ln_ffn_ln", "pre_ln_resid_scale", "pre_ln_untied", "pre_ln_gelu_tanh",
           "pre_ln_embed_scale", "pre_ln_embed_scale_untied"]
# case -> a word of the export's refusal
POST_LN = "is not Pre-LN"
LEFT_OUT = {
    "post_ln": POST_LN, "post_ln_relu": POST_LN, "post_ln_embed_scale": POST_LN,
    "post_ln_padding_idx": POST_LN, "post_ln_sinusoidal_padding_idx": POST_LN,
    "post_ln_right_padded": POST_LN, "post_ln_left_padded": POST_LN, "deepnorm": POST_LN,
    "normformer": "head_scale(before_out_proj)", "normformer_resid_scale": "head_scale(before_out_proj)",
    "pre_ln_head_scale_before": "head_scale(before_out_proj)",
    "sandwich": "ffn_out_ln", "pre_ln_rms_norm": "rms_norm",
    "pre_ln_sinusoidal": "no padding_idx",
}
LEGACY_ARGS_CASE = "pre_ln_attn_ln"      # cfg as an argparse.Namespace (fairseq before hydra)
NORMALIZE_BEFORE_FALSE_CASE = "pre_ln"   # cfg says False; fairseq's transformer_lm makes it True
GELU_FAST_CASE = "pre_ln_gelu_tanh"      # gelu_fast: fairseq's older name of gelu_accurate

failures: list[str] = []


def check(ok: bool, what: str) -> None:
    if not ok:
        failures.append(what)
        print(f"FAIL: {what}")


def read(path: Path) -> tuple[dict, dict]:
    return read_safetensors(Path(path).read_bytes(), str(path))


def run_tool(*argv: str) -> tuple[int, str, str]:
    """The tool in this process (fast); its exit status, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = tool.main([str(a) for a in argv])
        except SystemExit as e:
            status = e.code
    return status, out.getvalue(), err.getvalue()


def convert(*argv) -> None:
    status, out, err = run_tool(*argv)
    if status != 0:
        raise AssertionError(f"import_fairseq.py {' '.join(map(str, argv))} failed: {err.strip()}")


# ---------------------------------------------------------------------------
# Fixtures as fairseq can hold them


class Case:
    """A fixture, with a padding index when DERIVED gives it one."""

    def __init__(self, name: str, derived: bool):
        folder = FIXTURES / name
        self.name = name
        self.config = json.loads((folder / "config.json").read_text())
        self.weights, _ = read(folder / "weights.safetensors")
        self.tokens, _ = read(folder / "tokens.safetensors")
        self.expected, _ = read(folder / "expected.safetensors")
        if derived:
            assert self.config.get("padding_idx") is None and self.config.get("positions", "learned") == "learned"
            used = set(self.tokens["tokens"].flatten().tolist()) | set(self.tokens["targets"].flatten().tolist())
            pad = min(set(range(self.config["vocab_size"])) - used)
            self.config["padding_idx"] = pad
            table = self.weights["embed_positions.weight"]
            zeros = torch.zeros(pad + 1, table.shape[1], dtype=table.dtype)
            self.weights["embed_positions.weight"] = torch.cat([zeros, table])
            self.expected["grad.embed_positions.weight"] = torch.cat([zeros, self.expected["grad.embed_positions.weight"]])
            targets = self.tokens["targets"].clone()
            targets[targets == -100] = pad
            self.tokens = {"tokens": self.tokens["tokens"], "targets": targets}
        self.canonical = tool.canonical_config(self.config, name)

    def fairseq_flags(self) -> dict:
        """The transformer_lm flags of this model, written out here from fairseq's semantics."""
        c = self.canonical
        extras = set(c["extras"])
        activation = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_accurate"}[c["activation"]]
        if self.name == GELU_FAST_CASE:
            activation = "gelu_fast"
        return {
            "_name": "transformer_lm", "activation_fn": activation, "dropout": 0.0, "attention_dropout": 0.0,
            "decoder_embed_dim": c["d_model"], "decoder_ffn_embed_dim": c["d_ff"],
            "decoder_layers": c["n_layers"], "decoder_attention_heads": c["n_heads"],
            "decoder_normalize_before": self.name != NORMALIZE_BEFORE_FALSE_CASE,
            "no_decoder_final_norm": not c["final_norm"],
            "share_decoder_input_output_embed": c["tie_embeddings"],
            "decoder_learned_pos": c["positions"] == "learned",
            "no_scale_embedding": not c.get("embed_scale", False),
            "scale_heads": "head_scale" in extras, "scale_attn": "attn_ln" in extras,
            "scale_fc": "ffn_ln" in extras, "scale_resids": c["resid_scale"],
            "tokens_per_sample": "${task.tokens_per_sample}", "max_target_positions": None,
        }

    def fairseq_state_dict(self) -> dict:
        sd = {"decoder.version": torch.tensor([3.0])}
        for name, t in self.weights.items():
            sd[f"decoder.{name}"] = t
        if self.canonical["positions"] == "sinusoidal":
            sd["decoder.embed_positions._float_tensor"] = torch.zeros(1, dtype=torch.float64)
        if self.canonical["tie_embeddings"]:
            sd["decoder.output_projection.weight"] = sd["decoder.embed_tokens.weight"]
        return sd

    def fairseq_checkpoint(self, state_dict=None, flags=None) -> dict:
        flags = flags or self.fairseq_flags()
        state_dict = state_dict if state_dict is not None else self.fairseq_state_dict()
        if self.name == LEGACY_ARGS_CASE:
            flags = dict(flags, arch=flags.pop("_name"), tokens_per_sample=self.canonical["max_seq_len"])
            return {"args": argparse.Namespace(**flags), "model": state_dict}
        cfg = OmegaConf.create({"model": flags, "task": {"_name": "language_modeling",
                                                         "tokens_per_sample": self.canonical["max_seq_len"]}})
        return {"args": None, "cfg": cfg, "model": state_dict}

    def normlab_checkpoint(self, path: Path) -> None:
        path.write_bytes(safetensors_bytes(self.weights, {"normlab.config": json.dumps(self.config)}))


def forward(normlab: Path, work: Path, checkpoint: Path, case: Case) -> dict:
    """normlab forward on checkpoint; the max abs differences from the fixture's expected values."""
    tokens = work / f"{case.name}-tokens.safetensors"
    tokens.write_bytes(safetensors_bytes(case.tokens, {}))
    out = work / f"{case.name}-out.safetensors"
    run = subprocess.run([str(normlab), "forward", "--checkpoint", str(checkpoint),
                          "--tokens", str(tokens), "--out", str(out), "--dtype", "f64"],
                         capture_output=True, text=True)
    if run.returncode != 0:
        raise AssertionError(f"normlab forward on {checkpoint} failed: {run.stderr.strip()}")
    got, _ = read(out)
    diffs = {}
    for key, want in case.expected.items():
        if key not in got or got[key].shape != want.shape:
            diffs[key] = math.inf
        else:
            diffs[key] = (got[key] - want).abs().max().item() if want.numel() else 0.0
    for key in got:
        if key not in case.expected:
            diffs[key] = math.inf
    return diffs


def report(case: str, how: str, diffs: dict) -> None:
    grads = [v for k, v in diffs.items() if k.startswith("grad.")]
    worst = max(diffs.values())
    print(f"{case:<28} {how:<8} logits {diffs.get('logits', math.inf):.1e}  loss {diffs.get('loss', math.inf):.1e}  "
          f"grads ({len(grads)}) {max(grads) if grads else math.inf:.1e}")
    check(worst <= TOLERANCE, f"{case} ({how}): max abs diff {worst:.3e} > {TOLERANCE} "
          f"({[k for k, v in diffs.items() if v > TOLERANCE][:4]})")


def same_tensors(a: dict, b: dict, what: str) -> None:
    check(sorted(a) == sorted(b), f"{what}: keys differ: {sorted(set(a) ^ set(b))}")
    for key in set(a) & set(b):
        check(a[key].dtype == b[key].dtype and a[key].shape == b[key].shape and torch.equal(a[key], b[key]),
              f"{what}: '{key}' differs ({a[key].dtype} {tuple(a[key].shape)} vs {b[key].dtype} {tuple(b[key].shape)})")


# ---------------------------------------------------------------------------
# The checks


def check_fairseq_case(normlab: Path, work: Path, case: Case) -> None:
    source = work / f"{case.name}-fairseq.pt"
    torch.save(case.fairseq_checkpoint(), source)
    imported = work / f"{case.name}-imported.safetensors"
    extra = ["--padding-idx", str(case.canonical["padding_idx"])] if case.name in DIRECT else []
    convert("fairseq", source, imported, "--dtype", "f64", *extra)
    report(case.name, "fairseq", forward(normlab, work, imported, case))

    params, metadata = read(imported)
    same_tensors(params, case.weights, f"{case.name}: imported parameters")
    check(json.loads(metadata["normlab.config"]) == case.canonical,
          f"{case.name}: imported config {metadata['normlab.config']} != {json.dumps(case.canonical)}")

    # fairseq -> import -> export: the same state_dict, aliases and all
    back = work / f"{case.name}-back.pt"
    convert("to-fairseq", imported, back)
    exported = torch.load(back)
    want = case.fairseq_state_dict()
    same_tensors(exported["model"], want, f"{case.name}: fairseq -> normlab -> fairseq state_dict")
    if case.canonical["tie_embeddings"]:
        sd = exported["model"]
        check(sd["decoder.output_projection.weight"].data_ptr() == sd["decoder.embed_tokens.weight"].data_ptr(),
              f"{case.name}: the exported output_projection.weight is not an alias of embed_tokens.weight")
    model = exported["cfg"]["model"]
    flags = case.fairseq_flags()
    for key in ("decoder_embed_dim", "decoder_ffn_embed_dim", "decoder_layers", "decoder_attention_heads",
                "share_decoder_input_output_embed", "decoder_learned_pos", "no_scale_embedding", "scale_heads",
                "scale_attn", "scale_fc", "scale_resids", "no_decoder_final_norm"):
        check(model[key] == flags[key], f"{case.name}: exported cfg.model.{key} = {model[key]}, expected {flags[key]}")
    check(model["decoder_normalize_before"] is True, f"{case.name}: exported decoder_normalize_before is not True")
    check(model["max_target_positions"] == case.canonical["max_seq_len"], f"{case.name}: exported max_target_positions")

    # normlab -> export -> import: the identity
    start = work / f"{case.name}-normlab.safetensors"
    case.normlab_checkpoint(start)
    out_pt, again = work / f"{case.name}-export.pt", work / f"{case.name}-again.safetensors"
    convert("to-fairseq", start, out_pt)
    convert("fairseq", out_pt, again, "--dtype", "f64")
    params, metadata = read(again)
    same_tensors(params, case.weights, f"{case.name}: normlab -> fairseq -> normlab parameters")
    check(json.loads(metadata["normlab.config"]) == case.canonical,
          f"{case.name}: normlab -> fairseq -> normlab config {metadata['normlab.config']}")


def gpt2_state_dict(case: Case, prefix: str, lm_head: bool, buffers: bool) -> dict:
    """Hugging Face's GPT2LMHeadModel state_dict of a pre_ln, tied, learned, gelu_tanh model,
    written out here: Conv1D weights (in, out), q|k|v side by side in c_attn."""
    w, C = case.weights, case.canonical["d_model"]
    P = case.canonical["max_seq_len"]
    sd = {f"{prefix}wte.weight": w["embed_tokens.weight"], f"{prefix}wpe.weight": w["embed_positions.weight"]}
    for i in range(case.canonical["n_layers"]):
        h, p = f"{prefix}h.{i}", f"layers.{i}"
        sd[f"{h}.ln_1.weight"] = w[f"{p}.self_attn_layer_norm.weight"]
        sd[f"{h}.ln_1.bias"] = w[f"{p}.self_attn_layer_norm.bias"]
        sd[f"{h}.attn.c_attn.weight"] = torch.cat([w[f"{p}.self_attn.{x}_proj.weight"] for x in "qkv"]).t().contiguous()
        sd[f"{h}.attn.c_attn.bias"] = torch.cat([w[f"{p}.self_attn.{x}_proj.bias"] for x in "qkv"])
        sd[f"{h}.attn.c_proj.weight"] = w[f"{p}.self_attn.out_proj.weight"].t().contiguous()
        sd[f"{h}.attn.c_proj.bias"] = w[f"{p}.self_attn.out_proj.bias"]
        sd[f"{h}.ln_2.weight"] = w[f"{p}.final_layer_norm.weight"]
        sd[f"{h}.ln_2.bias"] = w[f"{p}.final_layer_norm.bias"]
        sd[f"{h}.mlp.c_fc.weight"] = w[f"{p}.fc1.weight"].t().contiguous()
        sd[f"{h}.mlp.c_fc.bias"] = w[f"{p}.fc1.bias"]
        sd[f"{h}.mlp.c_proj.weight"] = w[f"{p}.fc2.weight"].t().contiguous()
        sd[f"{h}.mlp.c_proj.bias"] = w[f"{p}.fc2.bias"]
        if buffers:
            sd[f"{h}.attn.bias"] = torch.tril(torch.ones(P, P, dtype=torch.bool)).view(1, 1, P, P)
            sd[f"{h}.attn.masked_bias"] = torch.tensor(-1e4, dtype=torch.float64)
    sd[f"{prefix}ln_f.weight"], sd[f"{prefix}ln_f.bias"] = w["layer_norm.weight"], w["layer_norm.bias"]
    if lm_head:
        sd["lm_head.weight"] = sd[f"{prefix}wte.weight"]
    return sd


def check_gpt2(normlab: Path, work: Path) -> None:
    case = Case("pre_ln_gelu_tanh", derived=False)
    hf_config = work / "gpt2-config.json"
    hf_config.write_text(json.dumps({"n_head": 2, "n_embd": 8, "n_layer": 2, "n_positions": 7,
                                     "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new"}))
    inputs = [
        ("gpt2.pt", gpt2_state_dict(case, "transformer.", lm_head=True, buffers=True), ["--n-heads", "2"]),
        ("gpt2-model.bin", gpt2_state_dict(case, "", lm_head=False, buffers=False), ["--hf-config", hf_config]),
        ("gpt2.safetensors", gpt2_state_dict(case, "", lm_head=False, buffers=True),
         ["--n-heads", "2", "--ln-eps", "1e-5"]),
    ]
    for filename, sd, flags in inputs:
        source = work / filename
        if filename.endswith(".safetensors"):
            source.write_bytes(safetensors_bytes(sd, {"format": "pt"}))
        else:
            torch.save(sd, source)
        imported = work / f"{filename}.normlab.safetensors"
        convert("gpt2", source, imported, "--dtype", "f64", *flags)
        report("pre_ln_gelu_tanh", filename.split(".")[-1] if "model" not in filename else "bin", forward(normlab, work, imported, case))
        params, metadata = read(imported)
        same_tensors(params, case.weights, f"GPT-2 {filename}: imported parameters")
        check(json.loads(metadata["normlab.config"]) == case.canonical,
              f"GPT-2 {filename}: imported config {metadata['normlab.config']} != {json.dumps(case.canonical)}")

    start = work / "gpt2-start.safetensors"
    case.normlab_checkpoint(start)
    # export -> the state_dict written out above; -> import: the identity
    for out, extra in (("gpt2-export.pt", ["--buffers"]), ("gpt2-export.safetensors", [])):
        path, hf_out = work / out, work / f"{out}.config.json"
        convert("to-gpt2", start, path, "--hf-config-out", hf_out, *extra)
        if out.endswith(".pt"):
            got = torch.load(path)
            want = gpt2_state_dict(case, "transformer.", lm_head=True, buffers=True)
            same_tensors(got, want, "to-gpt2 .pt")
            check(got["lm_head.weight"].data_ptr() == got["transformer.wte.weight"].data_ptr(),
                  "to-gpt2 .pt: lm_head.weight is not an alias of transformer.wte.weight")
        else:
            got, metadata = read(path)
            same_tensors(got, gpt2_state_dict(case, "transformer.", lm_head=False, buffers=False), "to-gpt2 .safetensors")
            check(metadata.get("format") == "pt", "to-gpt2 .safetensors: no format=pt metadata")
        again = work / f"{out}.again.safetensors"
        convert("gpt2", path, again, "--hf-config", hf_out, "--dtype", "f64")
        params, metadata = read(again)
        same_tensors(params, case.weights, f"normlab -> GPT-2 ({out}) -> normlab parameters")
        check(json.loads(metadata["normlab.config"]) == case.canonical, f"normlab -> GPT-2 ({out}) -> normlab config")


def expect_refusal(what: str, argv: list, *needles: str, subprocess_run: bool = False) -> None:
    """The tool refuses with one line naming each needle, exit status 1, and writes nothing."""
    output = Path(argv[2])
    if subprocess_run:  # once through the real command line: the exit status and the one line
        run = subprocess.run([sys.executable, str(TOOL)] + [str(a) for a in argv], capture_output=True, text=True)
        status, err = run.returncode, run.stderr
    else:
        status, _, err = run_tool(*argv)
    lines = [line for line in err.splitlines() if not line.startswith("import_fairseq.py: note:")]
    ok = status == 1 and len(lines) == 1 and lines[0].startswith("import_fairseq.py: error: ") and \
        all(n in lines[0] for n in needles) and not output.exists()
    print(f"refused: {what:<44} {lines[0] if lines else '(no message)'}")
    check(ok, f"refusal '{what}': status {status}, expected 1 and one line naming {needles}; got {err!r}")


def check_refusals(work: Path) -> None:
    case = Case("pre_ln", derived=True)
    never = work / "never.safetensors"

    def write(name: str, state_dict=None, flags=None) -> Path:
        path = work / f"bad-{name}.pt"
        torch.save(case.fairseq_checkpoint(state_dict, flags), path)
        return path

    sd = case.fairseq_state_dict()
    sd["decoder.layers.0.foo.weight"] = torch.zeros(3)
    expect_refusal("unknown state_dict key", ["fairseq", write("unknown", sd), never],
                   "'decoder.layers.0.foo.weight'", "unexpected", subprocess_run=True)
    sd = case.fairseq_state_dict()
    sd["decoder.layers.1.fc1.bias"] = sd["decoder.layers.1.fc1.bias"][:-1]
    expect_refusal("shape mismatch", ["fairseq", write("shape", sd), never],
                   "'decoder.layers.1.fc1.bias'", "(11)", "expected (12)")
    sd = case.fairseq_state_dict()
    sd["decoder.output_projection.weight"] = sd["decoder.embed_tokens.weight"] + 1
    expect_refusal("tied alias differs from embed_tokens", ["fairseq", write("alias", sd), never],
                   "'decoder.output_projection.weight'", "embed_tokens.weight", "share_decoder_input_output_embed")
    expect_refusal("layernorm_embedding set",
                   ["fairseq", write("lnemb", flags=dict(case.fairseq_flags(), layernorm_embedding=True)), never],
                   "'layernorm_embedding'", "expected False")
    sd = case.fairseq_state_dict()
    sd["decoder.layers.0.attn_ln.weight"] = torch.ones(8, dtype=torch.float64)
    expect_refusal("attn_ln without scale_attn", ["fairseq", write("attnln", sd), never],
                   "'decoder.layers.0.attn_ln.weight'", "scale_attn")
    sd = case.fairseq_state_dict()
    del sd["decoder.version"]
    expect_refusal("final norm without decoder.version", ["fairseq", write("version", sd), never],
                   "'decoder.version'", "decoder.layer_norm")
    sd = case.fairseq_state_dict()
    sd["decoder.layers.0.encoder_attn.k_proj.weight"] = torch.zeros(8, 8, dtype=torch.float64)
    expect_refusal("cross attention", ["fairseq", write("cross", sd), never],
                   "'decoder.layers.0.encoder_attn.k_proj.weight'", "cross attention")
    expect_refusal("adaptive softmax",
                   ["fairseq", write("adaptive", flags=dict(case.fairseq_flags(), adaptive_softmax_cutoff="5,10")), never],
                   "'adaptive_softmax_cutoff'")

    for name, needle in LEFT_OUT.items():
        start = work / f"left-out-{name}.safetensors"
        Case(name, derived=False).normlab_checkpoint(start)
        expect_refusal(f"to-fairseq {name}", ["to-fairseq", start, work / "never.pt"], needle,
                       subprocess_run=name == "pre_ln_rms_norm")
    start = work / "left-out-post_ln.safetensors"
    expect_refusal("to-gpt2 post_ln", ["to-gpt2", start, work / "never.pt"], "post_ln", "GPT-2")

    gpt2 = work / "gpt2.pt"  # written by check_gpt2
    sd = torch.load(gpt2)
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    torch.save(sd, work / "bad-gpt2-head.pt")
    expect_refusal("GPT-2 lm_head differs from wte", ["gpt2", work / "bad-gpt2-head.pt", never, "--n-heads", "2"],
                   "'lm_head.weight'", "wte.weight")
    expect_refusal("GPT-2 without a head count", ["gpt2", gpt2, never], "--n-heads")


def check_policy_aliases() -> None:
    """The tool's fairseq words are policy_aliases() of registry.hpp."""
    text = (ROOT / "include" / "normlab" / "policy" / "registry.hpp").read_text()
    body = text[text.index("policy_aliases() {"):]
    body = body[:body.index("return aliases;")]
    cpp = tuple(re.findall(r'\{"(\w+)", "(\w+)", "([^"]+)"\}', body))
    check(cpp == tool.POLICY_ALIASES, f"policy_aliases() of registry.hpp {cpp} != the tool's {tool.POLICY_ALIASES}")


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print(__doc__.split("\n\n")[1])
        return 2
    normlab = Path(argv[0])
    torch.set_num_threads(1)
    listed = set(DIRECT) | set(DERIVED) | set(LEFT_OUT)
    on_disk = {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    check(listed == on_disk, f"fixtures not sorted into DIRECT, DERIVED or LEFT_OUT: {sorted(on_disk ^ listed)}")
    check_policy_aliases()
    with tempfile.TemporaryDirectory(dir=argv[1] if len(argv) == 2 else None) as tmp:
        work = Path(tmp)
        steps = [(name, lambda name=name: check_fairseq_case(normlab, work, Case(name, derived=name in DERIVED)))
                 for name in DIRECT + DERIVED]
        steps += [("GPT-2", lambda: check_gpt2(normlab, work)), ("refusals", lambda: check_refusals(work))]
        for what, step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - one broken case must not hide the others
                check(False, f"{what}: {type(e).__name__}: {e}")
    if failures:
        print(f"{len(failures)} check(s) failed")
        return 1
    print(f"all checks passed: {len(DIRECT) + len(DERIVED)} fairseq cases, GPT-2 in 3 layouts, "
          f"{len(LEFT_OUT)} fixtures refused with their reason")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
