#!/usr/bin/python3
"""Convert decoder-only language models between fairseq, GPT-2 and normlab.

    python3 tools/import_fairseq.py fairseq    IN.pt OUT.safetensors [--padding-idx P] [--dtype f32|f64]
    python3 tools/import_fairseq.py to-fairseq IN.safetensors OUT.pt [--dtype f32|f64]
    python3 tools/import_fairseq.py gpt2       IN.(pt|bin|safetensors) OUT.safetensors
                                               (--n-heads H | --hf-config config.json) [--ln-eps E] [--dtype ...]
    python3 tools/import_fairseq.py to-gpt2    IN.safetensors OUT.(pt|safetensors) [--buffers]
                                               [--hf-config-out config.json] [--dtype ...]

A normlab checkpoint is a safetensors file holding every parameter under
normlab's names (fairseq's, without the `decoder.` prefix: embed_tokens.weight,
embed_positions.weight, layers.N.self_attn.{q,k,v,out}_proj.*, ...) and the
metadata key `normlab.config`, the model config as compact JSON (the keys of
config_to_json, include/normlab/models/checkpoint.hpp). `normlab forward
--checkpoint OUT.safetensors` reads it; `optim.*` tensors of a training
checkpoint are ignored on export.

fairseq: a `.pt` as fairseq saves a `transformer_lm` (any of its named
architectures): `model` = the state_dict (`decoder.` keys), `cfg` (omegaconf or
a dict) whose `model` holds the architecture, or a legacy `args` Namespace.
What fairseq's code does, and so what this tool does (fairseq/models/transformer_lm.py,
fairseq/models/transformer/transformer_decoder.py, fairseq/modules/transformer_layer.py):

  - base_lm_architecture sets decoder_normalize_before = True for every
    transformer_lm, whatever the cfg says: the model is Pre-LN (`pre_ln`), with
    a final norm unless no_decoder_final_norm. Post-LN, DeepNorm and no-LN
    models cannot be written as a transformer_lm.
  - decoder.version < 3 (or absent) makes upgrade_state_dict_named drop the
    final norm; the export writes version 3.
  - positions are offset by the dictionary's pad index (1 for fairseq's
    Dictionary): the learned table has max_target_positions + pad + 1 rows,
    the sinusoids are those of positions pad + 1 + t. normlab's `padding_idx`
    is that pad; a model without one cannot be written to fairseq. On import
    the pad is --padding-idx, else (learned) rows - max_target_positions - 1,
    else 1.
  - scale_heads, scale_attn, scale_fc, scale_resids are normlab's
    head_scale(after_out_proj), attn_ln, ffn_ln, resid_scale (policy_aliases()
    in include/normlab/policy/registry.hpp); parameters c_attn, attn_ln,
    ffn_layernorm, w_resid keep their names.
  - activation relu, gelu (exact) and gelu_accurate / gelu_fast (the tanh
    approximation: normlab's gelu_tanh); embeddings times sqrt(C) unless
    no_scale_embedding; --dropout acts on the embeddings and each sublayer's
    output (normlab's dropout and embed_dropout); activation_dropout, or the
    legacy relu_dropout.
  Refused: adaptive input or softmax, character embeddings, layernorm_embedding,
  decoder_input_dim / decoder_output_dim other than decoder_embed_dim, cross
  attention, quant-noise, BASE layers, no positions, unknown keys, missing keys
  and shapes other than the flags imply. The export writes `decoder.version`,
  the `_float_tensor` buffer of sinusoidal positions, the tied
  `output_projection.weight` alias and a `cfg` (an omegaconf DictConfig) with
  `model` (every transformer_lm flag) and `task`.

GPT-2: a Hugging Face GPT2LMHeadModel or GPT2Model state_dict (keys with or
without `transformer.`), from torch.load or a safetensors file. Conv1D weights
are stored (in, out) and c_attn holds q|k|v side by side; lm_head.weight must
be wte (tied); the attn.bias / attn.masked_bias buffers are dropped. GPT-2 is
Pre-LN with a final norm, learned positions from row 0, tied, no embedding
scale; the activation is the tanh GELU unless a config says otherwise. n_heads
is not in a state_dict: give --n-heads, or --hf-config with the model's
config.json (n_head, n_embd, n_layer, n_positions, layer_norm_epsilon,
activation_function, resid_pdrop, attn_pdrop, embd_pdrop). Without a config
the dropouts are 0. The export writes GPT2LMHeadModel's layout (`.pt`: with the
lm_head.weight alias; `.safetensors`: without it, metadata format=pt), the
buffers only with --buffers, and config.json with --hf-config-out.

Files are written atomically (a temporary file in the same folder, fsync,
rename). Errors print one line `import_fairseq.py: error: ...` naming the file,
the key, what was expected and what was found, and exit with status 1.
Needs Debian's python3-torch; fairseq checkpoints with an omegaconf cfg need
python3-omegaconf.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import re
import sys
import tempfile
from collections import OrderedDict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "reference"))
import normlab_reference as ref  # noqa: E402
from safetensors_io import read_safetensors, safetensors_bytes  # noqa: E402

PROG = "import_fairseq.py"
CONFIG_KEY = "normlab.config"
DTYPES = {"f32": torch.float32, "f64": torch.float64}


class ConversionError(Exception):
    """A refusal: the message names the file, the key, what was expected and found."""


def fail(message: str):
    raise ConversionError(message)


def note(message: str) -> None:
    print(f"{PROG}: note: {message}", file=sys.stderr)


# ---------------------------------------------------------------------------
# Files


def write_atomic(path: Path, data: bytes) -> None:
    """Writes data to a temporary file beside path, fsyncs it, renames it over
    path and fsyncs the folder: a crash leaves the old file or the whole new one."""
    path = Path(path)
    folder = path.parent
    if not folder.is_dir():
        fail(f"{path}: cannot write it, no folder {folder}")
    umask = os.umask(0)
    os.umask(umask)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def torch_bytes(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        fail(f"{path}: cannot read ({e.strerror})")


def load_torch(path: Path):
    """torch.load of a trusted file (full unpickling: fairseq's cfg and args are objects)."""
    try:
        return torch.load(str(path), map_location="cpu")
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except ModuleNotFoundError as e:
        fail(f"{path}: unpickling it needs the Python module '{e.name}', which is not installed "
             f"(an omegaconf cfg needs Debian's python3-omegaconf)")
    except Exception as e:  # noqa: BLE001 - torch.load raises many kinds
        fail(f"{path}: torch.load failed: {type(e).__name__}: {e}")


def load_safetensors(path: Path) -> tuple[dict, dict]:
    try:
        return read_safetensors(read_bytes(path), str(path))
    except ValueError as e:
        fail(str(e))


def describe(x) -> str:
    if isinstance(x, torch.Tensor):
        return f"{str(x.dtype).replace('torch.', '')} tensor of shape {tuple(x.shape)}"
    if isinstance(x, dict):
        keys = list(x)[:6]
        return f"a dict with keys {keys}{' ...' if len(x) > 6 else ''}"
    return f"a {type(x).__name__}"


def shape_text(shape) -> str:
    return "(" + ", ".join(str(d) for d in shape) + ")"


# ---------------------------------------------------------------------------
# normlab configs: the C++ rules (models/config.hpp, policy/registry.hpp) in Python

# config_to_json's keys in its order; the last four are written only when set.
CONFIG_KEYS = ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_len", "policy",
               "extras", "head_scale", "resid_scale", "activation", "norm", "ln_eps", "final_norm",
               "tie_embeddings", "positions", "dropout", "attention_dropout")
OPTIONAL_CONFIG_KEYS = ("embed_scale", "padding_idx", "activation_dropout", "embed_dropout")
SIZE_KEYS = ("vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_len")

# policy_aliases() of include/normlab/policy/registry.hpp, in its order (the test
# tests/interop/test_import_fairseq.py checks that the two tables agree).
POLICY_ALIASES = (
    ("fairseq", "decoder_normalize_before", "pre_ln"),
    ("fairseq", "encoder_normalize_before", "pre_ln"),
    ("fairseq", "scale_heads", "head_scale(after_out_proj)"),
    ("fairseq", "scale_attn", "attn_ln"),
    ("fairseq", "scale_fc", "ffn_ln"),
    ("fairseq", "scale_resids", "resid_scale"),
    ("x_transformers", "pre_norm", "pre_ln"),
    ("x_transformers", "sandwich_norm", "attn_ln+ffn_out_ln"),
    ("x_transformers", "scale_residual", "resid_scale"),
    ("x_transformers", "use_rmsnorm", "rms_norm"),
)
# preset -> (placement, extras); a bare head_scale is placed by the head_scale key.
PRESETS = {
    "post_ln": ("post_ln", ()),
    "pre_ln": ("pre_ln", ()),
    "normformer": ("pre_ln", ("head_scale", "attn_ln", "ffn_ln")),
    "sandwich": ("pre_ln", ("attn_ln", "ffn_out_ln")),
    "deepnorm": ("post_ln", ("deepnorm",)),
    "no_ln": ("no_ln", ()),
}
# The sites of the built-in extras (policy.hpp's Site order: attn_skip 0,
# attn_heads 1, attn_branch 2, ffn_hidden 3, ffn_branch 4, ffn_skip 5, norm 6).
EXTRA_SITES = {
    "head_scale(before_out_proj)": {1}, "head_scale(after_out_proj)": {2}, "attn_ln": {2},
    "ffn_ln": {3}, "ffn_out_ln": {4}, "resid_scale": {5}, "deepnorm": {0, 5}, "rms_norm": {6},
}


def resolve_policy_aliases(spec: str, source: str) -> str:
    """resolve_policy_aliases of registry.hpp: "fairseq:scale_attn+..." -> "post_ln+attn_ln"."""
    if ":" not in spec:
        return spec
    vocabulary, body = spec.split(":", 1)
    if vocabulary not in ("fairseq", "x_transformers"):
        fail(f"{source}: policy \"{spec}\": unknown vocabulary \"{vocabulary}\"; expected fairseq: or x_transformers:")
    placement = "post_ln" if vocabulary == "fairseq" else "pre_ln"
    chosen = [False] * len(POLICY_ALIASES)
    for word in body.split("+") if body else []:
        if word.startswith("--"):
            word = word[2:]
        word = word.replace("-", "_")
        on = True
        if "=" in word:
            word, value = word.split("=", 1)
            if value not in ("True", "False", "true", "false"):
                fail(f"{source}: policy \"{spec}\": \"{word}={value}\" must be =True or =False")
            on = value in ("True", "true")
        index = next((k for k, a in enumerate(POLICY_ALIASES) if a[0] == vocabulary and a[1] == word), None)
        if index is None:
            known = ", ".join(a[1] for a in POLICY_ALIASES if a[0] == vocabulary)
            fail(f"{source}: policy \"{spec}\": unknown {vocabulary} word \"{word}\"; known: {known}")
        if POLICY_ALIASES[index][2] == "pre_ln":
            placement = "pre_ln" if on else "post_ln"
        else:
            chosen[index] = on
    return "+".join([placement] + [a[2] for k, a in enumerate(POLICY_ALIASES) if chosen[k]])


def canonical_order(words: list[str]) -> list[str]:
    """canonical_permutation of policy.hpp: extras sharing a site keep their order;
    among those free to go next, the one whose first site comes first goes first."""
    order: list[int] = []
    for _ in words:
        best = None
        for i, w in enumerate(words):
            if i in order:
                continue
            free = all(j in order or not (EXTRA_SITES[words[j]] & EXTRA_SITES[w]) for j in range(i))
            if free and (best is None or min(EXTRA_SITES[w]) < min(EXTRA_SITES[words[best]])):
                best = i
        order.append(best)
    return [words[i] for i in order]


def policy_of(cfg: dict, source: str) -> tuple[str, list[str]]:
    """(placement, extras in canonical order) of a normlab config, as ModelConfig::policy_spec
    builds it: the preset's extras, the spec's, the extras key's, resid_scale, rms_norm."""
    spec = resolve_policy_aliases(str(cfg["policy"]), source)
    parts = spec.split("+")
    if parts[0] not in PRESETS:
        fail(f"{source}: config key \"policy\": unknown policy \"{parts[0]}\"; expected one of "
             f"{', '.join(PRESETS)}, followed by +extra for each extra")
    placement, preset_extras = PRESETS[parts[0]]
    bare = cfg.get("head_scale", "before_out_proj")
    if bare not in ("before_out_proj", "after_out_proj"):
        fail(f"{source}: config key \"head_scale\": \"{bare}\" is unknown; expected before_out_proj or after_out_proj")
    words: list[str] = []
    norm = cfg.get("norm", "layer_norm")
    if norm not in ("layer_norm", "rms_norm"):
        fail(f"{source}: config key \"norm\": \"{norm}\" is unknown; expected layer_norm or rms_norm")
    for w in list(preset_extras) + parts[1:] + list(cfg.get("extras", [])) + \
            (["resid_scale"] if cfg.get("resid_scale") else []) + (["rms_norm"] if norm == "rms_norm" else []):
        w = f"head_scale({bare})" if w == "head_scale" else w
        if w not in words:
            words.append(w)
    unknown = [w for w in words if w not in EXTRA_SITES]
    if unknown:
        return placement, words  # a program's own extras: the callers refuse them by name
    return placement, canonical_order(words)


def check_config_keys(cfg, source: str) -> None:
    """The checks of config_from_json that the conversions rely on."""
    if not isinstance(cfg, dict):
        fail(f"{source}: the config must be a JSON object, found {type(cfg).__name__}")
    known = set(CONFIG_KEYS) | set(OPTIONAL_CONFIG_KEYS)
    for key in cfg:
        if key not in known:
            fail(f"{source}: unknown config key \"{key}\" (known keys: {', '.join(sorted(known))})")
    for key in SIZE_KEYS + ("policy",):
        if key not in cfg:
            fail(f"{source}: missing config key \"{key}\"")
    for key in SIZE_KEYS:
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] <= 0:
            fail(f"{source}: config key \"{key}\" must be a positive integer, found {cfg[key]!r}")
    if cfg["d_model"] % cfg["n_heads"]:
        fail(f"{source}: config: d_model {cfg['d_model']} must be divisible by n_heads {cfg['n_heads']}")


def canonical_config(cfg: dict, source: str = "config") -> dict:
    """A normlab config written as config_to_json writes the config that
    ModelConfig::set_policy_keys describes: the policy as its placement, the
    extras resolved and in canonical order, every default spelled out. Two
    configs of the same model give the same dict."""
    check_config_keys(cfg, source)
    placement, words = policy_of(cfg, source)
    policy = placement
    if "deepnorm" in words:
        policy, words = "deepnorm", [w for w in words if w != "deepnorm"]
    head_scales = [w for w in words if w.startswith("head_scale(")]
    extras = ["head_scale" if w.startswith("head_scale(") and len(head_scales) == 1 else w for w in words]
    out = OrderedDict()
    for key in SIZE_KEYS:
        out[key] = cfg[key]
    out["policy"] = policy
    out["extras"] = extras
    out["head_scale"] = head_scales[0][11:-1] if len(head_scales) == 1 else cfg.get("head_scale", "before_out_proj")
    out["resid_scale"] = "resid_scale" in words
    out["activation"] = cfg.get("activation", "gelu")
    out["norm"] = "rms_norm" if "rms_norm" in words else "layer_norm"
    out["ln_eps"] = float(cfg.get("ln_eps", 1e-5))
    final = cfg.get("final_norm")
    out["final_norm"] = bool(final) if final is not None else placement == "pre_ln"
    out["tie_embeddings"] = bool(cfg.get("tie_embeddings", True))
    out["positions"] = cfg.get("positions", "learned")
    out["dropout"] = float(cfg.get("dropout", 0.0))
    out["attention_dropout"] = float(cfg.get("attention_dropout", 0.0))
    if cfg.get("embed_scale"):
        out["embed_scale"] = True
    if cfg.get("padding_idx") is not None:
        out["padding_idx"] = int(cfg["padding_idx"])
    if float(cfg.get("activation_dropout", 0.0)) != 0:
        out["activation_dropout"] = float(cfg["activation_dropout"])
    if float(cfg.get("embed_dropout", 0.0)) != 0:
        out["embed_dropout"] = float(cfg["embed_dropout"])
    if out["activation"] not in ("gelu", "gelu_tanh", "relu"):
        fail(f"{source}: config key \"activation\": \"{out['activation']}\" is unknown; expected gelu, gelu_tanh or relu")
    if out["positions"] not in ("learned", "sinusoidal"):
        fail(f"{source}: config key \"positions\": \"{out['positions']}\" is unknown; expected learned or sinusoidal")
    p = out.get("padding_idx")
    if p is not None and not 0 <= p < out["vocab_size"]:
        fail(f"{source}: config key \"padding_idx\" must be a token in [0, vocab_size = {out['vocab_size']}), found {p}")
    return out


def reference_config(cfg: dict) -> ref.Config:
    """The reference's Config of a canonical pre_ln config (for its parameter_shapes)."""
    extras = tuple(e for e in cfg["extras"] if e != "resid_scale")
    return ref.Config(vocab_size=cfg["vocab_size"], d_model=cfg["d_model"], n_heads=cfg["n_heads"],
                      n_layers=cfg["n_layers"], d_ff=cfg["d_ff"], max_seq_len=cfg["max_seq_len"],
                      policy="pre_ln", head_scale=cfg["head_scale"], resid_scale=cfg["resid_scale"],
                      activation=cfg["activation"], ln_eps=cfg["ln_eps"], final_norm=cfg["final_norm"],
                      tie_embeddings=cfg["tie_embeddings"], extras=extras, norm=cfg["norm"],
                      positions=cfg["positions"], embed_scale=cfg.get("embed_scale", False),
                      padding_idx=cfg.get("padding_idx"))


def config_json(cfg: dict) -> str:
    return json.dumps(cfg, separators=(",", ":"))


def write_normlab_checkpoint(path: Path, cfg: dict, params: dict, dtype: torch.dtype) -> None:
    tensors = {name: t.detach().to(dtype).contiguous() for name, t in params.items()}
    write_atomic(path, safetensors_bytes(tensors, {CONFIG_KEY: config_json(cfg)}))


def read_normlab_checkpoint(path: Path) -> tuple[dict, dict]:
    """(canonical config, parameters) of a normlab checkpoint; optim.* tensors are left out.
    The parameters must be exactly the model's, with its shapes."""
    tensors, metadata = load_safetensors(path)
    if CONFIG_KEY not in metadata:
        fail(f"{path}: not a normlab checkpoint (no \"{CONFIG_KEY}\" metadata; found metadata keys "
             f"{sorted(metadata)})")
    try:
        raw = json.loads(metadata[CONFIG_KEY])
    except json.JSONDecodeError as e:
        fail(f"{path}: metadata \"{CONFIG_KEY}\" is not JSON ({e})")
    cfg = canonical_config(raw, f"{path} config")
    params = {k: v for k, v in tensors.items() if not k.startswith("optim.")}
    for name, t in params.items():
        if t.dtype not in (torch.float32, torch.float64):
            fail(f"{path}: parameter '{name}' has dtype {t.dtype}, expected F32 or F64")
    return cfg, params


def check_parameters(source: str, params: dict, shapes: dict, what: str) -> None:
    """params has exactly the names of shapes, with those shapes."""
    for name, shape in shapes.items():
        if name not in params:
            fail(f"{source}: missing parameter '{name}' (expected shape {shape_text(shape)} for {what})")
        if tuple(params[name].shape) != tuple(shape):
            fail(f"{source}: parameter '{name}' has shape {shape_text(params[name].shape)}, "
                 f"expected {shape_text(shape)} ({what})")
    for name, t in params.items():
        if name not in shapes:
            fail(f"{source}: unexpected tensor '{name}' (shape {shape_text(t.shape)}): {what} has no "
                 f"parameter of that name")


# ---------------------------------------------------------------------------
# fairseq


# TransformerLanguageModelConfig's defaults and base_lm_architecture's (fairseq/models/transformer_lm.py).
FAIRSEQ_LM_DEFAULTS = {
    "activation_fn": "relu", "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "relu_dropout": 0.0, "decoder_embed_dim": 512, "decoder_output_dim": None, "decoder_input_dim": None,
    "decoder_ffn_embed_dim": 2048, "decoder_layers": 6, "decoder_attention_heads": 8,
    "decoder_normalize_before": True, "no_decoder_final_norm": False, "adaptive_softmax_cutoff": None,
    "adaptive_softmax_dropout": 0, "adaptive_softmax_factor": 4, "no_token_positional_embeddings": False,
    "share_decoder_input_output_embed": False, "character_embeddings": False, "adaptive_input": False,
    "adaptive_input_factor": 4, "adaptive_input_cutoff": None, "tie_adaptive_weights": False,
    "tie_adaptive_proj": False, "decoder_learned_pos": False, "decoder_layerdrop": 0.0,
    "decoder_layers_to_keep": None, "layernorm_embedding": False, "no_scale_embedding": False,
    "checkpoint_activations": False, "offload_activations": False, "quant_noise_pq": 0.0,
    "quant_noise_pq_block_size": 8, "quant_noise_scalar": 0.0, "min_params_to_wrap": 100000000,
    "base_layers": 0, "base_sublayers": 1, "base_shuffle": 1, "scale_fc": False, "scale_attn": False,
    "scale_heads": False, "scale_resids": False, "decoder_xformers_att_config": None,
    "add_bos_token": False, "tokens_per_sample": 1024, "max_target_positions": None, "tpu": False,
}
# Flags whose default a named architecture (transformer_lm_gpt, ..._wiki103, ...) changes:
# a checkpoint of such an architecture must hold them.
ARCH_DEPENDENT = ("activation_fn", "decoder_embed_dim", "decoder_ffn_embed_dim", "decoder_layers",
                  "decoder_attention_heads", "no_decoder_final_norm", "adaptive_input",
                  "adaptive_softmax_cutoff", "tie_adaptive_weights", "decoder_learned_pos",
                  "share_decoder_input_output_embed")
FAIRSEQ_ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_accurate": "gelu_tanh", "gelu_fast": "gelu_tanh"}
# normlab parameter -> when fairseq creates it (for messages)
PARAMETER_FLAGS = (
    (r"\.attn_ln\.", "scale_attn is True"), (r"\.c_attn$", "scale_heads is True"),
    (r"\.ffn_layernorm\.", "scale_fc is True"), (r"\.w_resid$", "scale_resids is True"),
    (r"^layer_norm\.", "no_decoder_final_norm is False (and decoder.version >= 3)"),
    (r"^output_projection\.", "share_decoder_input_output_embed is False"),
    (r"^embed_positions\.weight$", "decoder_learned_pos is True"),
)
# state_dict keys of fairseq features normlab has no counterpart for
REFUSED_KEYS = (
    (r"^layers\.\d+\.encoder_attn(_layer_norm)?\.", "cross attention to an encoder (encoder_attn)"),
    (r"^layers\.\d+\.layer_norms\.1\.", "cross attention's norm (layer_norms.1 = encoder_attn_layer_norm)"),
    (r"^layernorm_embedding\.", "layernorm_embedding (a LayerNorm on the embeddings)"),
    (r"^adaptive_softmax\.", "an adaptive softmax"),
    (r"^embed_tokens\.(embeddings|char_embeddings|symbol_embeddings|convolutions|highway|projection)",
     "adaptive input or character embeddings"),
    (r"^project_(in|out)_dim\.", "decoder_input_dim / decoder_output_dim other than decoder_embed_dim"),
    (r"^quant_noise\.", "quant-noise (quant_noise_pq)"),
    (r"\.self_attn\.(bias_k|bias_v)$", "add_bias_kv"),
    (r"^layers\.\d+\.(expert_network|moe_layer|wg)\b", "BASE layers or a mixture of experts"),
)


def plain_container(cfg):
    """An omegaconf config as plain dicts, interpolations resolved where they can be."""
    try:
        from omegaconf import OmegaConf
    except ModuleNotFoundError:
        return cfg
    if not OmegaConf.is_config(cfg):
        return cfg
    try:
        return OmegaConf.to_container(cfg, resolve=True)
    except Exception:  # noqa: BLE001 - an interpolation to a missing key
        return OmegaConf.to_container(cfg, resolve=False)


def resolve_interpolation(value, root: dict):
    """"${task.tokens_per_sample}" -> root["task"]["tokens_per_sample"]; None when it cannot."""
    if isinstance(value, str):
        m = re.fullmatch(r"\$\{([A-Za-z0-9_.]+)\}", value)
        if m:
            node = root
            for part in m.group(1).split("."):
                if not isinstance(node, dict) or part not in node:
                    return None
                node = node[part]
            return resolve_interpolation(node, root)
    return value


def fairseq_architecture(obj, source: str) -> tuple[dict, str]:
    """The architecture flags of a fairseq checkpoint and where they came from."""
    if not isinstance(obj, dict) or "model" not in obj:
        fail(f"{source}: expected a fairseq checkpoint, a dict with 'model' (the state_dict) and 'cfg' "
             f"or 'args'; found {describe(obj)}")
    cfg = obj.get("cfg")
    if cfg is not None:
        cfg = plain_container(cfg)
        if not isinstance(cfg, dict):
            fail(f"{source}: 'cfg' is {describe(cfg)}, expected an omegaconf DictConfig or a dict")
        model = cfg.get("model")
        if model is not None:
            model = plain_container(model)
            if not isinstance(model, dict):
                if hasattr(model, "__dict__"):  # an argparse.Namespace inside cfg (fairseq's transition)
                    model = vars(model)
                else:
                    fail(f"{source}: cfg['model'] is {describe(model)}, expected the architecture's flags")
            return {k: resolve_interpolation(v, cfg) for k, v in model.items()}, "cfg['model']"
    args = obj.get("args")
    if args is not None:
        if not hasattr(args, "__dict__"):
            fail(f"{source}: 'args' is {describe(args)}, expected an argparse.Namespace")
        return dict(vars(args)), "args"
    fail(f"{source}: neither cfg['model'] nor args holds the architecture (found keys {sorted(obj)})")


def fairseq_flags(arch: dict, source: str, where: str) -> dict:
    """The flags fairseq builds the model from: the checkpoint's, base_lm_architecture's
    defaults for the others, and its legacy rules."""
    name = arch.get("_name") or arch.get("arch")
    if name is not None and not str(name).startswith("transformer_lm"):
        fail(f"{source}: {where} describes fairseq model '{name}', expected transformer_lm (or one of its "
             f"named architectures, transformer_lm_*): only decoder-only language models convert")
    if name not in (None, "transformer_lm"):
        for key in ARCH_DEPENDENT:
            if arch.get(key) is None and not (key == "adaptive_softmax_cutoff" and key in arch):
                fail(f"{source}: {where} lacks '{key}', whose default architecture '{name}' changes; "
                     f"expected the checkpoint to hold it")
    flags = dict(FAIRSEQ_LM_DEFAULTS)
    for key, value in arch.items():
        if value is not None or key in ("adaptive_softmax_cutoff", "max_target_positions"):
            flags[key] = value
    if "no_tie_adaptive_proj" in arch:  # base_lm_architecture: old checkpoints had no final norm
        flags["no_decoder_final_norm"] = True
    if "decoder_final_norm" in arch:
        flags["no_decoder_final_norm"] = not arch["decoder_final_norm"]
    if arch.get("decoder_normalize_before") is False:
        note(f"{source}: {where} has decoder_normalize_before False, but fairseq's base_lm_architecture "
             f"sets it True for every transformer_lm: the model is Pre-LN, and so is the import")
    flags["decoder_normalize_before"] = True
    for key in ("decoder_input_dim", "decoder_output_dim"):
        if flags[key] is None:
            flags[key] = flags["decoder_embed_dim"]
    if flags.get("max_target_positions") is None:
        flags["max_target_positions"] = flags["tokens_per_sample"]
    return flags


def refuse_fairseq_flags(flags: dict, source: str, where: str) -> None:
    def refuse(key, expected, why):
        fail(f"{source}: {where} '{key}' is {flags[key]!r}, expected {expected}: {why}")
    if flags["character_embeddings"]:
        refuse("character_embeddings", "False", "character-CNN token embeddings; normlab has one embedding table")
    if flags["adaptive_input"]:
        refuse("adaptive_input", "False", "adaptive input embeddings; normlab has one embedding table")
    if flags["adaptive_softmax_cutoff"] not in (None, "", "None"):
        refuse("adaptive_softmax_cutoff", "None", "an adaptive softmax; normlab has one output projection")
    if flags["tie_adaptive_weights"]:
        refuse("tie_adaptive_weights", "False", "adaptive weights; normlab has none")
    if flags["layernorm_embedding"]:
        refuse("layernorm_embedding", "False", "a LayerNorm on the embeddings before the first layer, "
               "which normlab's models do not have")
    if flags["no_token_positional_embeddings"]:
        refuse("no_token_positional_embeddings", "False", "a model without position embeddings; "
               "normlab's always has positions (learned or sinusoidal)")
    for key in ("decoder_input_dim", "decoder_output_dim"):
        if flags[key] != flags["decoder_embed_dim"]:
            refuse(key, f"decoder_embed_dim = {flags['decoder_embed_dim']}", "fairseq then projects "
                   "(project_in_dim / project_out_dim), which normlab has no parameter for")
    for key in ("quant_noise_pq", "quant_noise_scalar"):
        if float(flags[key] or 0) > 0:
            refuse(key, "0", "quantization noise; normlab has none")
    if int(flags["base_layers"] or 0) > 0:
        refuse("base_layers", "0", "BASE layers (sparse experts); normlab has none")
    if flags.get("cross_self_attention"):
        refuse("cross_self_attention", "False", "attention over an encoder's output")
    if flags["activation_fn"] not in FAIRSEQ_ACTIVATIONS:
        refuse("activation_fn", "one of " + ", ".join(FAIRSEQ_ACTIVATIONS),
               "normlab's activations are relu, gelu (exact) and gelu_tanh")


def upgrade_fairseq_state_dict(state: dict, source: str, flags: dict) -> tuple[dict, float | None]:
    """The decoder's parameters without the `decoder.` prefix, after what fairseq's
    upgrade_state_dict_named does on load (layer_norms.N renamed, in_proj split,
    embed_out moved), with the buffers dropped; and decoder.version (None when absent)."""
    if not isinstance(state, dict):
        fail(f"{source}: 'model' is {describe(state)}, expected the state_dict")
    sd: dict = {}
    version = None
    for key, value in state.items():
        if not isinstance(key, str) or not key.startswith("decoder."):
            fail(f"{source}: state_dict key '{key}' does not start with 'decoder.': expected a "
                 f"transformer_lm, whose every key is the decoder's")
        if not isinstance(value, torch.Tensor):
            fail(f"{source}: state_dict key '{key}' is {describe(value)}, expected a tensor")
        name = key[len("decoder."):]
        if name == "version":
            version = float(value.reshape(-1)[0])
            continue
        if name in ("embed_positions._float_tensor", "embed_positions.weights"):
            continue  # sinusoidal positions' buffers: fairseq recomputes the sinusoids
        for pattern, what in REFUSED_KEYS:
            if re.search(pattern, name):
                fail(f"{source}: state_dict key '{key}' ({describe(value)}) belongs to {what}, expected none: "
                     f"a decoder-only normlab model has no counterpart")
        m = re.fullmatch(r"layers\.(\d+)\.layer_norms\.([02])\.(weight|bias)", name)
        if m:  # TransformerDecoderBase.upgrade_state_dict_named
            name = f"layers.{m.group(1)}.{'self_attn_layer_norm' if m.group(2) == '0' else 'final_layer_norm'}.{m.group(3)}"
        m = re.fullmatch(r"(layers\.\d+\.self_attn)\.in_proj_(weight|bias)", name)
        if m:  # MultiheadAttention.upgrade_state_dict_named: q | k | v stacked along rows
            if value.shape[0] % 3:
                fail(f"{source}: state_dict key '{key}' has {value.shape[0]} rows, expected a multiple of 3 (q|k|v)")
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                sd[f"{m.group(1)}.{part}.{m.group(2)}"] = chunk
            continue
        if name == "embed_out" and not flags["share_decoder_input_output_embed"]:
            name = "output_projection.weight"  # upgrade_state_dict_named's rename of the untied head
        if name in sd:
            fail(f"{source}: state_dict has '{key}' twice (after fairseq's renames of older keys)")
        sd[name] = value
    return sd, version


def fairseq_to_normlab(path: Path, padding_idx: int | None, dtype: torch.dtype) -> tuple[dict, dict]:
    obj = load_torch(path)
    source = str(path)
    arch, where = fairseq_architecture(obj, source)
    flags = fairseq_flags(arch, source, where)
    refuse_fairseq_flags(flags, source, where)
    sd, version = upgrade_fairseq_state_dict(obj["model"], source, flags)

    tied = bool(flags["share_decoder_input_output_embed"])
    if "embed_tokens.weight" not in sd:
        fail(f"{source}: missing state_dict key 'decoder.embed_tokens.weight' (the token embeddings)")
    embed = sd["embed_tokens.weight"]
    if embed.dim() != 2:
        fail(f"{source}: 'decoder.embed_tokens.weight' is {describe(embed)}, expected (vocab, decoder_embed_dim)")
    V, C = embed.shape
    if C != flags["decoder_embed_dim"]:
        fail(f"{source}: 'decoder.embed_tokens.weight' has {C} columns, expected {where} decoder_embed_dim = "
             f"{flags['decoder_embed_dim']}")
    if tied and "output_projection.weight" in sd:
        alias = sd.pop("output_projection.weight")
        if alias.shape != embed.shape or not torch.equal(alias, embed):
            fail(f"{source}: 'decoder.output_projection.weight' differs from 'decoder.embed_tokens.weight', "
                 f"expected the same tensor: {where} share_decoder_input_output_embed is True (tied)")
    layer_ids = sorted({int(m.group(1)) for k in sd if (m := re.match(r"layers\.(\d+)\.", k))})
    n_layers = flags["decoder_layers"]
    if flags["decoder_layers_to_keep"]:
        n_layers = len(str(flags["decoder_layers_to_keep"]).split(","))
    if layer_ids != list(range(n_layers)):
        fail(f"{source}: the state_dict holds layers {layer_ids[:8]}{' ...' if len(layer_ids) > 8 else ''}, "
             f"expected layers 0..{n_layers - 1} ({where} decoder_layers = {n_layers})")
    H = flags["decoder_attention_heads"]
    if C % H:
        fail(f"{source}: {where} decoder_embed_dim {C} is not divisible by decoder_attention_heads {H}")
    fc1 = sd.get("layers.0.fc1.weight")
    d_ff = flags["decoder_ffn_embed_dim"]
    if fc1 is not None and fc1.shape[0] != d_ff:
        fail(f"{source}: 'decoder.layers.0.fc1.weight' has shape {shape_text(fc1.shape)}, expected "
             f"({d_ff}, {C}) ({where} decoder_ffn_embed_dim = {d_ff})")

    learned = bool(flags["decoder_learned_pos"])
    max_target = flags["max_target_positions"]
    if isinstance(max_target, str) or not isinstance(max_target, int) or max_target <= 0:
        fail(f"{source}: {where} max_target_positions / tokens_per_sample is {max_target!r}, expected a "
             f"positive integer")
    if learned:
        table = sd.get("embed_positions.weight")
        if table is None:
            fail(f"{source}: missing state_dict key 'decoder.embed_positions.weight' ({where} "
                 f"decoder_learned_pos is True)")
        rows = table.shape[0]
        implied = rows - max_target - 1
        if padding_idx is None:
            padding_idx = implied if 0 <= implied < V else 1
        if rows != max_target + padding_idx + 1:
            fail(f"{source}: 'decoder.embed_positions.weight' has {rows} rows, expected max_target_positions "
                 f"{max_target} + padding_idx {padding_idx} + 1 = {max_target + padding_idx + 1} (fairseq's "
                 f"LearnedPositionalEmbedding)")
        max_seq_len = rows - padding_idx - 1
    else:
        padding_idx = 1 if padding_idx is None else padding_idx
        max_seq_len = max_target
        if C < 4:
            fail(f"{source}: decoder_embed_dim {C} with sinusoidal positions: fairseq's formula divides by "
                 f"C/2 - 1 (expected decoder_embed_dim >= 4)")
    if not 0 <= padding_idx < V:
        fail(f"{source}: padding_idx {padding_idx} is not a token of the {V}-symbol vocabulary")
    if version is None or version <= 2:
        if any(k.startswith("layer_norm.") for k in sd):
            fail(f"{source}: 'decoder.version' is {version if version is not None else 'absent'}, and "
                 f"fairseq's upgrade_state_dict_named then drops the final norm, but the state_dict has "
                 f"'decoder.layer_norm.*': expected decoder.version = 3")
        final_norm = False
    else:
        final_norm = not flags["no_decoder_final_norm"]

    extras = [w for flag, w in (("scale_heads", "head_scale"), ("scale_attn", "attn_ln"),
                                ("scale_fc", "ffn_ln"), ("scale_resids", "resid_scale")) if flags[flag]]
    activation_dropout = float(flags["activation_dropout"] or 0) or float(flags["relu_dropout"] or 0)
    cfg = canonical_config({
        "vocab_size": V, "d_model": C, "n_heads": H, "n_layers": n_layers, "d_ff": d_ff,
        "max_seq_len": max_seq_len, "policy": "pre_ln", "extras": extras,
        "head_scale": "after_out_proj" if flags["scale_heads"] else "before_out_proj",
        "resid_scale": bool(flags["scale_resids"]), "activation": FAIRSEQ_ACTIVATIONS[flags["activation_fn"]],
        "norm": "layer_norm", "ln_eps": 1e-5, "final_norm": final_norm, "tie_embeddings": tied,
        "positions": "learned" if learned else "sinusoidal", "dropout": float(flags["dropout"]),
        "attention_dropout": float(flags["attention_dropout"]), "embed_scale": not flags["no_scale_embedding"],
        "padding_idx": padding_idx, "activation_dropout": activation_dropout,
        "embed_dropout": float(flags["dropout"]),
    }, source)
    shapes = ref.parameter_shapes(reference_config(cfg))
    for name, t in sd.items():
        if name not in shapes:
            flag = next((f for p, f in PARAMETER_FLAGS if re.search(p, name)), None)
            why = f"; fairseq creates it only when {flag}, which {where} does not say" if flag else ""
            fail(f"{source}: unexpected state_dict key 'decoder.{name}' ({describe(t)}): not a parameter of "
                 f"this transformer_lm{why}")
    for name, shape in shapes.items():
        if name not in sd:
            flag = next((f for p, f in PARAMETER_FLAGS if re.search(p, name)), None)
            why = f" (fairseq has it since {where} says {flag})" if flag else ""
            fail(f"{source}: missing state_dict key 'decoder.{name}', expected shape {shape_text(shape)}{why}")
        if tuple(sd[name].shape) != tuple(shape):
            fail(f"{source}: state_dict key 'decoder.{name}' has shape {shape_text(sd[name].shape)}, expected "
                 f"{shape_text(shape)} (from {where} and the embedding table)")
        if not sd[name].is_floating_point():
            fail(f"{source}: state_dict key 'decoder.{name}' has dtype {sd[name].dtype}, expected floating point")
    return cfg, {name: sd[name].to(dtype) for name in shapes}


def fairseq_refusal(cfg: dict, words: list[str], source: str) -> str | None:
    """Why fairseq's transformer_lm cannot hold this normlab model (None when it can)."""
    placement = cfg["policy"]
    if placement != "pre_ln":
        return (f"policy '{placement}' is not Pre-LN: fairseq's transformer_lm is always Pre-LN "
                f"(base_lm_architecture sets decoder_normalize_before = True)")
    reasons = {
        "head_scale(before_out_proj)": "the head scale before out_proj (the NormFormer paper's form): fairseq's "
                                       "scale_heads scales the heads' channels after out_proj (head_scale "
                                       "after_out_proj)",
        "ffn_out_ln": "a norm on the FFN's output (sandwich): fairseq has no such flag",
        "rms_norm": "RMSNorm: fairseq's transformer_lm uses LayerNorm",
        "deepnorm": "DeepNorm's residual weight: fairseq's transformer_lm has none",
    }
    for w in words:
        if w in reasons:
            return f"extra '{w}': {reasons[w]}"
        if w not in ("head_scale(after_out_proj)", "attn_ln", "ffn_ln", "resid_scale"):
            return f"extra '{w}' is not one of fairseq's (scale_heads, scale_attn, scale_fc, scale_resids)"
    if "head_scale(after_out_proj)" in words and "attn_ln" in words and \
            words.index("attn_ln") < words.index("head_scale(after_out_proj)"):
        return ("attn_ln applies before head_scale(after_out_proj); fairseq's layer scales the heads first, "
                "then applies attn_ln")
    if cfg["ln_eps"] != 1e-5:
        return f"ln_eps {cfg['ln_eps']}: fairseq's LayerNorm has eps 1e-5"
    if cfg.get("padding_idx") is None:
        return ("no padding_idx: fairseq offsets positions by its dictionary's pad index (rows pad + 1 + t, "
                "a learned table of max_seq_len + pad + 1 rows); a model whose positions start at row 0 "
                "has no fairseq equivalent")
    if cfg["positions"] == "sinusoidal" and cfg["d_model"] < 4:
        return f"sinusoidal positions with d_model {cfg['d_model']}: fairseq's formula divides by C/2 - 1"
    if cfg["dropout"] != cfg.get("embed_dropout", 0.0):
        return (f"dropout {cfg['dropout']} and embed_dropout {cfg.get('embed_dropout', 0.0)} differ: fairseq's "
                f"--dropout acts on the embeddings and on each sublayer's output alike")
    return None


def normlab_to_fairseq(path: Path, dtype: torch.dtype | None) -> dict:
    cfg, params = read_normlab_checkpoint(path)
    source = str(path)
    _, words = policy_of(cfg, source)
    why = fairseq_refusal(cfg, words, source)
    if why:
        fail(f"{source}: fairseq's transformer_lm cannot express this model: {why}")
    check_parameters(source, params, ref.parameter_shapes(reference_config(cfg)), "this model")
    dtype = dtype or params["embed_tokens.weight"].dtype
    sd = OrderedDict()
    sd["decoder.version"] = torch.tensor([3.0], dtype=torch.float32)
    for name, t in params.items():
        sd[f"decoder.{name}"] = t.detach().to(dtype).contiguous()
    if cfg["positions"] == "sinusoidal":
        sd["decoder.embed_positions._float_tensor"] = torch.zeros(1, dtype=dtype)
    if cfg["tie_embeddings"]:
        sd["decoder.output_projection.weight"] = sd["decoder.embed_tokens.weight"]  # the alias fairseq saves
    activation = {"relu": "relu", "gelu": "gelu", "gelu_tanh": "gelu_accurate"}[cfg["activation"]]
    model = dict(FAIRSEQ_LM_DEFAULTS)
    model.update({
        "_name": "transformer_lm", "activation_fn": activation, "dropout": cfg["dropout"],
        "attention_dropout": cfg["attention_dropout"], "activation_dropout": cfg.get("activation_dropout", 0.0),
        "relu_dropout": 0.0, "decoder_embed_dim": cfg["d_model"], "decoder_output_dim": cfg["d_model"],
        "decoder_input_dim": cfg["d_model"], "decoder_ffn_embed_dim": cfg["d_ff"],
        "decoder_layers": cfg["n_layers"], "decoder_attention_heads": cfg["n_heads"],
        "decoder_normalize_before": True, "no_decoder_final_norm": not cfg["final_norm"],
        "share_decoder_input_output_embed": cfg["tie_embeddings"],
        "decoder_learned_pos": cfg["positions"] == "learned", "no_scale_embedding": not cfg.get("embed_scale", False),
        "scale_heads": "head_scale(after_out_proj)" in words, "scale_attn": "attn_ln" in words,
        "scale_fc": "ffn_ln" in words, "scale_resids": "resid_scale" in words,
        "tokens_per_sample": cfg["max_seq_len"], "max_target_positions": cfg["max_seq_len"],
    })
    task = {"_name": "language_modeling", "tokens_per_sample": cfg["max_seq_len"],
            "max_target_positions": cfg["max_seq_len"], "add_bos_token": False}
    root = {"model": model, "task": task}
    try:
        from omegaconf import OmegaConf
        root = OmegaConf.create(root)
    except ModuleNotFoundError:
        pass
    if cfg["padding_idx"] != 1:
        note(f"{source}: padding_idx is {cfg['padding_idx']}: fairseq takes its pad from the dictionary "
             f"(dict.txt; fairseq's Dictionary puts <pad> at 1), which must agree")
    return {
        "args": None,
        "cfg": root,
        "model": sd,
        "optimizer_history": [{"criterion_name": "CrossEntropyCriterion", "optimizer_name": "none",
                               "lr_scheduler_state": {}, "num_updates": 0}],
        "extra_state": {},
    }


# ---------------------------------------------------------------------------
# GPT-2 (Hugging Face GPT2LMHeadModel / GPT2Model)

HF_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu_fast": "gelu_tanh",
                  "gelu": "gelu", "relu": "relu"}


def load_state_dict_file(path: Path) -> dict:
    if str(path).endswith(".safetensors"):
        tensors, _ = load_safetensors(path)
        return tensors
    obj = load_torch(path)
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        fail(f"{path}: expected a state_dict (a dict of tensors), found {describe(obj)}")
    return obj


def read_hf_config(path: Path | None) -> dict:
    if path is None:
        return {}
    try:
        cfg = json.loads(read_bytes(path))
    except json.JSONDecodeError as e:
        fail(f"{path}: not JSON ({e})")
    if not isinstance(cfg, dict):
        fail(f"{path}: expected a JSON object (a Hugging Face config.json)")
    return cfg


def gpt2_to_normlab(path: Path, n_heads: int | None, hf_config: Path | None, ln_eps: float | None,
                    dtype: torch.dtype) -> tuple[dict, dict]:
    source = str(path)
    state = load_state_dict_file(path)
    hf = read_hf_config(hf_config)
    prefixed = any(k.startswith("transformer.") for k in state)
    sd = {}
    lm_head = None
    for key, value in state.items():
        if key == "lm_head.weight":
            lm_head = value
            continue
        if prefixed:
            if not key.startswith("transformer."):
                fail(f"{source}: key '{key}' lacks the 'transformer.' prefix the others have")
            name = key[len("transformer."):]
        else:
            name = key
        if re.fullmatch(r"h\.\d+\.attn\.(bias|masked_bias)", name):
            continue  # GPT2Attention's causal-mask buffers
        if re.match(r"h\.\d+\.(crossattention|ln_cross_attn)\.", name):
            fail(f"{source}: key '{key}' belongs to cross attention (add_cross_attention), which a "
                 f"decoder-only normlab model has not")
        sd[name] = value
    if "wte.weight" not in sd:
        fail(f"{source}: missing key '{'transformer.' if prefixed else ''}wte.weight' (the token embeddings); "
             f"found keys {sorted(state)[:6]}")
    V, C = sd["wte.weight"].shape
    P = sd["wpe.weight"].shape[0] if "wpe.weight" in sd else None
    if P is None:
        fail(f"{source}: missing key '{'transformer.' if prefixed else ''}wpe.weight' (the position embeddings)")
    layer_ids = sorted({int(m.group(1)) for k in sd if (m := re.match(r"h\.(\d+)\.", k))})
    N = len(layer_ids)
    if layer_ids != list(range(N)) or N == 0:
        fail(f"{source}: the state_dict holds layers {layer_ids[:8]}, expected h.0 .. h.N-1")
    c_fc = sd.get("h.0.mlp.c_fc.weight")
    if c_fc is None or c_fc.dim() != 2:
        fail(f"{source}: missing key 'h.0.mlp.c_fc.weight' (Conv1D, (n_embd, n_inner))")
    d_ff = c_fc.shape[1]
    heads = hf.get("n_head")
    if n_heads is not None and heads is not None and n_heads != heads:
        fail(f"{source}: --n-heads {n_heads} and {hf_config} n_head {heads} differ")
    heads = n_heads if n_heads is not None else heads
    if heads is None:
        fail(f"{source}: the number of heads is not in a state_dict: give --n-heads H or --hf-config config.json")
    for key, value in (("n_embd", C), ("n_positions", P), ("n_layer", N), ("vocab_size", V)):
        if key in hf and hf[key] != value:
            fail(f"{hf_config}: {key} is {hf[key]}, but the state_dict {source} has {value}")
    if hf.get("n_inner") is not None and hf["n_inner"] != d_ff:
        fail(f"{hf_config}: n_inner is {hf['n_inner']}, but the state_dict {source} has c_fc of width {d_ff}")
    for key, expected in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                          ("add_cross_attention", False), ("tie_word_embeddings", True)):
        if key in hf and hf[key] != expected:
            fail(f"{hf_config}: {key} is {hf[key]}, expected {expected}: normlab's attention scales by "
                 f"D^-1/2 only, has no cross attention and ties GPT-2's lm_head to wte")
    act = hf.get("activation_function", "gelu_new")
    if act not in HF_ACTIVATIONS:
        fail(f"{hf_config}: activation_function '{act}', expected one of {', '.join(HF_ACTIVATIONS)}")
    eps = ln_eps if ln_eps is not None else float(hf.get("layer_norm_epsilon", 1e-5))
    if ln_eps is not None and "layer_norm_epsilon" in hf and float(hf["layer_norm_epsilon"]) != ln_eps:
        fail(f"{source}: --ln-eps {ln_eps} and {hf_config} layer_norm_epsilon {hf['layer_norm_epsilon']} differ")
    if lm_head is not None and (lm_head.shape != sd["wte.weight"].shape or not torch.equal(lm_head, sd["wte.weight"])):
        fail(f"{source}: 'lm_head.weight' differs from '{'transformer.' if prefixed else ''}wte.weight', expected "
             f"the same tensor (GPT-2 ties its output projection to the token embeddings)")
    cfg = canonical_config({
        "vocab_size": V, "d_model": C, "n_heads": heads, "n_layers": N, "d_ff": d_ff, "max_seq_len": P,
        "policy": "pre_ln", "activation": HF_ACTIVATIONS[act], "ln_eps": eps, "final_norm": True,
        "tie_embeddings": True, "positions": "learned",
        "dropout": float(hf.get("resid_pdrop", 0.0)), "attention_dropout": float(hf.get("attn_pdrop", 0.0)),
        "embed_dropout": float(hf.get("embd_pdrop", 0.0)),
    }, source)
    expected = gpt2_shapes(cfg)
    for name, t in sd.items():
        if name not in expected:
            fail(f"{source}: unexpected key '{'transformer.' if prefixed else ''}{name}' ({describe(t)}): not a "
                 f"parameter of GPT-2")
    for name, shape in expected.items():
        if name not in sd:
            fail(f"{source}: missing key '{'transformer.' if prefixed else ''}{name}', expected shape {shape_text(shape)}")
        if tuple(sd[name].shape) != shape:
            fail(f"{source}: key '{'transformer.' if prefixed else ''}{name}' has shape {shape_text(sd[name].shape)}, "
                 f"expected {shape_text(shape)}")
    params = {"embed_tokens.weight": sd["wte.weight"], "embed_positions.weight": sd["wpe.weight"]}
    for i in range(N):
        h, p = f"h.{i}", f"layers.{i}"
        w, b = sd[f"{h}.attn.c_attn.weight"], sd[f"{h}.attn.c_attn.bias"]  # (C, 3C) in x out, (3C,)
        for k, proj in enumerate(("q_proj", "k_proj", "v_proj")):
            params[f"{p}.self_attn.{proj}.weight"] = w[:, k * C:(k + 1) * C].t()
            params[f"{p}.self_attn.{proj}.bias"] = b[k * C:(k + 1) * C]
        params[f"{p}.self_attn.out_proj.weight"] = sd[f"{h}.attn.c_proj.weight"].t()
        params[f"{p}.self_attn.out_proj.bias"] = sd[f"{h}.attn.c_proj.bias"]
        params[f"{p}.fc1.weight"] = sd[f"{h}.mlp.c_fc.weight"].t()
        params[f"{p}.fc1.bias"] = sd[f"{h}.mlp.c_fc.bias"]
        params[f"{p}.fc2.weight"] = sd[f"{h}.mlp.c_proj.weight"].t()
        params[f"{p}.fc2.bias"] = sd[f"{h}.mlp.c_proj.bias"]
        for ours, theirs in (("self_attn_layer_norm", "ln_1"), ("final_layer_norm", "ln_2")):
            params[f"{p}.{ours}.weight"] = sd[f"{h}.{theirs}.weight"]
            params[f"{p}.{ours}.bias"] = sd[f"{h}.{theirs}.bias"]
    params["layer_norm.weight"], params["layer_norm.bias"] = sd["ln_f.weight"], sd["ln_f.bias"]
    shapes = ref.parameter_shapes(reference_config(cfg))
    check_parameters(source, params, shapes, "GPT-2 mapped to normlab")
    return cfg, {name: params[name].to(dtype).contiguous() for name in shapes}


def gpt2_shapes(cfg: dict) -> dict:
    """GPT2Model's parameters (no prefix), name -> shape."""
    C, F, V, P = cfg["d_model"], cfg["d_ff"], cfg["vocab_size"], cfg["max_seq_len"]
    shapes = {"wte.weight": (V, C), "wpe.weight": (P, C)}
    for i in range(cfg["n_layers"]):
        h = f"h.{i}"
        shapes.update({f"{h}.ln_1.weight": (C,), f"{h}.ln_1.bias": (C,),
                       f"{h}.attn.c_attn.weight": (C, 3 * C), f"{h}.attn.c_attn.bias": (3 * C,),
                       f"{h}.attn.c_proj.weight": (C, C), f"{h}.attn.c_proj.bias": (C,),
                       f"{h}.ln_2.weight": (C,), f"{h}.ln_2.bias": (C,),
                       f"{h}.mlp.c_fc.weight": (C, F), f"{h}.mlp.c_fc.bias": (F,),
                       f"{h}.mlp.c_proj.weight": (F, C), f"{h}.mlp.c_proj.bias": (C,)})
    shapes["ln_f.weight"], shapes["ln_f.bias"] = (C,), (C,)
    return shapes


def gpt2_refusal(cfg: dict, words: list[str]) -> str | None:
    if cfg["policy"] != "pre_ln" or words:
        return f"policy '{'+'.join([cfg['policy']] + words)}': GPT-2 is plain Pre-LN (no extras)"
    for key, expected, why in (("final_norm", True, "GPT-2 ends in ln_f"),
                               ("tie_embeddings", True, "GPT-2's lm_head is wte"),
                               ("positions", "learned", "GPT-2 has a learned wpe"),
                               ("padding_idx", None, "GPT-2's positions start at row 0"),
                               ("embed_scale", False, "GPT-2 does not scale its embeddings"),
                               ("activation_dropout", 0.0, "GPT-2 has no dropout inside its MLP")):
        if cfg.get(key, {"embed_scale": False, "activation_dropout": 0.0}.get(key)) != expected:
            return f"{key} is {cfg.get(key)!r}, expected {expected!r}: {why}"
    return None


def normlab_to_gpt2(path: Path, dtype: torch.dtype | None) -> tuple[dict, dict]:
    """(GPT2Model state_dict without prefix, config.json) of a normlab checkpoint."""
    cfg, params = read_normlab_checkpoint(path)
    source = str(path)
    _, words = policy_of(cfg, source)
    why = gpt2_refusal(cfg, words)
    if why:
        fail(f"{source}: GPT-2 cannot express this model: {why}")
    check_parameters(source, params, ref.parameter_shapes(reference_config(cfg)), "this model")
    dtype = dtype or params["embed_tokens.weight"].dtype
    q = {k: v.detach().to(dtype) for k, v in params.items()}
    sd = OrderedDict([("wte.weight", q["embed_tokens.weight"]), ("wpe.weight", q["embed_positions.weight"])])
    for i in range(cfg["n_layers"]):
        h, p = f"h.{i}", f"layers.{i}"
        sd[f"{h}.ln_1.weight"] = q[f"{p}.self_attn_layer_norm.weight"]
        sd[f"{h}.ln_1.bias"] = q[f"{p}.self_attn_layer_norm.bias"]
        sd[f"{h}.attn.c_attn.weight"] = torch.cat([q[f"{p}.self_attn.{x}_proj.weight"].t() for x in "qkv"], dim=1)
        sd[f"{h}.attn.c_attn.bias"] = torch.cat([q[f"{p}.self_attn.{x}_proj.bias"] for x in "qkv"])
        sd[f"{h}.attn.c_proj.weight"] = q[f"{p}.self_attn.out_proj.weight"].t()
        sd[f"{h}.attn.c_proj.bias"] = q[f"{p}.self_attn.out_proj.bias"]
        sd[f"{h}.ln_2.weight"] = q[f"{p}.final_layer_norm.weight"]
        sd[f"{h}.ln_2.bias"] = q[f"{p}.final_layer_norm.bias"]
        sd[f"{h}.mlp.c_fc.weight"] = q[f"{p}.fc1.weight"].t()
        sd[f"{h}.mlp.c_fc.bias"] = q[f"{p}.fc1.bias"]
        sd[f"{h}.mlp.c_proj.weight"] = q[f"{p}.fc2.weight"].t()
        sd[f"{h}.mlp.c_proj.bias"] = q[f"{p}.fc2.bias"]
    sd["ln_f.weight"], sd["ln_f.bias"] = q["layer_norm.weight"], q["layer_norm.bias"]
    sd = OrderedDict((k, v.contiguous()) for k, v in sd.items())
    hf = {
        "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2", "vocab_size": cfg["vocab_size"],
        "n_positions": cfg["max_seq_len"], "n_ctx": cfg["max_seq_len"], "n_embd": cfg["d_model"],
        "n_layer": cfg["n_layers"], "n_head": cfg["n_heads"],
        "n_inner": cfg["d_ff"] if cfg["d_ff"] != 4 * cfg["d_model"] else None,
        "activation_function": {"gelu_tanh": "gelu_new", "gelu": "gelu", "relu": "relu"}[cfg["activation"]],
        "resid_pdrop": cfg["dropout"], "embd_pdrop": cfg.get("embed_dropout", 0.0),
        "attn_pdrop": cfg["attention_dropout"], "layer_norm_epsilon": cfg["ln_eps"],
        "scale_attn_weights": True, "tie_word_embeddings": True,
    }
    return sd, hf


def write_gpt2(path: Path, sd: dict, buffers: bool) -> None:
    P = sd["wpe.weight"].shape[0]
    out = OrderedDict()
    for name, t in sd.items():
        out[f"transformer.{name}"] = t
        m = re.fullmatch(r"h\.(\d+)\.attn\.c_proj\.bias", name)
        if buffers and m:
            mask = torch.tril(torch.ones(P, P, dtype=torch.bool)).view(1, 1, P, P)
            out[f"transformer.h.{m.group(1)}.attn.bias"] = mask
            out[f"transformer.h.{m.group(1)}.attn.masked_bias"] = torch.tensor(-1e4, dtype=t.dtype)
    if str(path).endswith(".safetensors"):
        # a safetensors file cannot hold the lm_head.weight alias; transformers ties it on load
        # and refuses a file whose metadata has no format
        write_atomic(path, safetensors_bytes(out, {"format": "pt"}))
    else:
        out["lm_head.weight"] = out["transformer.wte.weight"]
        write_atomic(path, torch_bytes(out))


# ---------------------------------------------------------------------------
# Command line


class Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors exit 1 too, with the one-line form
        self.print_usage(sys.stderr)
        print(f"{PROG}: error: {message}", file=sys.stderr)
        sys.exit(1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    doc = __doc__.split("\n\n")
    parser = Parser(prog=PROG, description=doc[0] + "\n\n" + doc[1],
                    epilog="See the module docstring (tools/import_fairseq.py) for what each layout maps to "
                           "and what is refused.", formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    dtype_help = "dtype of the written tensors (default: {})"

    p = sub.add_parser("fairseq", help="fairseq transformer_lm checkpoint (.pt) -> normlab checkpoint")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--padding-idx", type=int, default=None,
                   help="the dictionary's pad index (default: from the learned table's rows, else 1)")
    p.add_argument("--dtype", choices=DTYPES, default="f32", help=dtype_help.format("f32"))

    p = sub.add_parser("to-fairseq", help="normlab checkpoint -> fairseq transformer_lm checkpoint (.pt)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--dtype", choices=DTYPES, default=None, help=dtype_help.format("the checkpoint's"))

    p = sub.add_parser("gpt2", help="GPT-2 state_dict (.pt, .bin or .safetensors) -> normlab checkpoint")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--n-heads", type=int, default=None, help="attention heads (or from --hf-config)")
    p.add_argument("--hf-config", type=Path, default=None, help="the model's Hugging Face config.json")
    p.add_argument("--ln-eps", type=float, default=None,
                   help="LayerNorm epsilon (default: --hf-config's layer_norm_epsilon, else 1e-5)")
    p.add_argument("--dtype", choices=DTYPES, default="f32", help=dtype_help.format("f32"))

    p = sub.add_parser("to-gpt2", help="normlab checkpoint -> GPT2LMHeadModel state_dict (.pt or .safetensors)")
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--buffers", action="store_true", help="also write the attn.bias / attn.masked_bias buffers")
    p.add_argument("--hf-config-out", type=Path, default=None, help="also write a Hugging Face config.json")
    p.add_argument("--dtype", choices=DTYPES, default=None, help=dtype_help.format("the checkpoint's"))
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> str:
    if args.command == "fairseq":
        cfg, params = fairseq_to_normlab(args.input, args.padding_idx, DTYPES[args.dtype])
        write_normlab_checkpoint(args.output, cfg, params, DTYPES[args.dtype])
        return f"{args.output}: normlab checkpoint, {config_json(cfg)}"
    if args.command == "to-fairseq":
        checkpoint = normlab_to_fairseq(args.input, DTYPES.get(args.dtype))
        write_atomic(args.output, torch_bytes(checkpoint))
        return f"{args.output}: fairseq transformer_lm checkpoint, {len(checkpoint['model'])} state_dict entries"
    if args.command == "gpt2":
        if args.n_heads is not None and args.n_heads <= 0:
            fail(f"--n-heads must be positive, found {args.n_heads}")
        cfg, params = gpt2_to_normlab(args.input, args.n_heads, args.hf_config, args.ln_eps, DTYPES[args.dtype])
        write_normlab_checkpoint(args.output, cfg, params, DTYPES[args.dtype])
        return f"{args.output}: normlab checkpoint, {config_json(cfg)}"
    sd, hf = normlab_to_gpt2(args.input, DTYPES.get(args.dtype))
    write_gpt2(args.output, sd, args.buffers)
    if args.hf_config_out:
        write_atomic(args.hf_config_out, (json.dumps(hf, indent=2) + "\n").encode())
    return f"{args.output}: GPT-2 state_dict, {len(sd)} tensors"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    try:
        print(run(args))
    except ConversionError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        print(f"{PROG}: error: {e.filename or ''}: {e.strerror or e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
