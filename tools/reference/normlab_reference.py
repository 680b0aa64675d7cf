"""PyTorch reference of normlab's decoder-only GPT and every normalization placement.

This file is the slow, obviously-correct oracle that the C++ library is tested
against (DESIGN.md section 1). It is functional (parameters live in a plain
dict keyed by fairseq ``state_dict`` names), computes in float64 and has no
dropout.

Notation: x is the residual stream (B,T,C), H heads of width D = C/H, d_ff the
feed-forward width, N the number of layers, LN a normalization over the last
axis (affine LayerNorm, or RMSNorm when ``norm == "rms_norm"``).

Policies (one layer; LN1 = self_attn_layer_norm, LN2 = final_layer_norm):

  post_ln     x = LN1(x + Attn(x));            x = LN2(x + FFN(x))
  deepnorm    x = LN1(alpha x + Attn(x));      x = LN2(alpha x + FFN(x)),  alpha = (2N)^(1/4)
  pre_ln      x = x + Attn(LN1(x));            x = x + FFN(LN2(x))
  normformer  pre_ln + head_scale + attn_ln + ffn_ln
  sandwich    pre_ln + attn_ln + ffn_out_ln

Extras on top of any pre_ln-based policy (alone or combined):

  head_scale  Attn scales each head by a learned c_attn[h]; where depends on
              ``head_scale``:
                before_out_proj (NormFormer paper, the default):
                    MHA = Concat(c_1 h_1, ..., c_H h_H) W_O + b_O
                after_out_proj (fairseq's released code):
                    y = Concat(h_1, ..., h_H) W_O + b_O, then channel group h
                    (channels h*D .. h*D+D-1) of y is multiplied by c_h
  attn_ln     x = x + attn_ln(Attn(LN1(x)))
  ffn_ln      FFN(z) = fc2(ffn_layernorm(act(fc1(z))))        (ffn_layernorm has width d_ff)
  ffn_out_ln  x = x + ffn_out_ln(FFN(LN2(x)))
  resid_scale (config key, not an extra) x = w_resid * x + FFN(LN2(x)): the FFN
              residual's skip path only, w_resid per channel (C,)

Pre-LN-based policies end with a final ``layer_norm``; post_ln and deepnorm
do not (``final_norm`` in the config says which, explicitly).

Embeddings (fairseq's TransformerDecoder, written out here from its semantics):

  h_0 = s E[tokens] + P[pos]      s = sqrt(C) with embed_scale, else 1
  pos = t                                        without padding_idx
  pos = padding_idx + cumsum(tokens != pad) * (tokens != pad)   with padding_idx
        (fairseq's make_positions: the t-th token of a row without padding reads
        row padding_idx + 1 + t; a pad token reads row padding_idx)
  P   = embed_positions.weight, (max_seq_len + padding_idx + 1, C) with a
        padding index, or sinusoids of the same rows: P[p, i] = sin(p w_i),
        P[p, C/2 + i] = cos(p w_i), w_i = 10000^(-i / (C/2 - 1)), row
        padding_idx zero
  The tied output projection uses E unscaled.

Padding (with padding_idx): keys whose token is padding_idx get -1e9 added to
their scores (fairseq adds -inf; -1e9 keeps a query that sees only padding
finite, and is exactly 0 after softmax for every other query), and the loss
ignores targets equal to padding_idx.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

POLICIES = ("post_ln", "pre_ln", "normformer", "sandwich", "deepnorm")
EXTRAS = ("head_scale", "attn_ln", "ffn_ln", "ffn_out_ln")  # canonical order
HEAD_SCALE_PLACEMENTS = ("before_out_proj", "after_out_proj")
ACTIVATIONS = ("gelu", "relu", "gelu_tanh")
NORMS = ("layer_norm", "rms_norm")

# Extras each preset policy implies; a config's ``extras`` list adds to these.
POLICY_EXTRAS = {
    "post_ln": (),
    "deepnorm": (),
    "pre_ln": (),
    "normformer": ("head_scale", "attn_ln", "ffn_ln"),
    "sandwich": ("attn_ln", "ffn_out_ln"),
}
POST_LN_POLICIES = ("post_ln", "deepnorm")

CONFIG_KEYS = (
    "vocab_size", "d_model", "n_heads", "n_layers", "d_ff", "max_seq_len",
    "policy", "head_scale", "resid_scale", "activation", "ln_eps",
    "final_norm", "tie_embeddings", "extras", "norm",
)
# Written only when not at their default, so that the configs of the cases
# without them stay byte for byte what they were.
OPTIONAL_KEYS = {"positions": "learned", "embed_scale": False, "padding_idx": None}
POSITIONS = ("learned", "sinusoidal")
PAD_KEY_BIAS = -1e9


@dataclass(frozen=True)
class Config:
    """Hyper-parameters of the model; mirrors the keys of normlab's config.json."""

    vocab_size: int
    d_model: int
    n_heads: int
    n_layers: int
    d_ff: int
    max_seq_len: int
    policy: str = "pre_ln"
    head_scale: str = "before_out_proj"
    resid_scale: bool = False
    activation: str = "gelu"
    ln_eps: float = 1e-5
    final_norm: bool | None = None  # None: true for pre_ln-based policies, false otherwise
    tie_embeddings: bool = True
    extras: tuple[str, ...] = field(default_factory=tuple)
    norm: str = "layer_norm"
    positions: str = "learned"
    embed_scale: bool = False
    padding_idx: int | None = None

    def __post_init__(self):
        if self.positions not in POSITIONS:
            raise ValueError(f"positions {self.positions!r} is not one of {POSITIONS}")
        if self.padding_idx is not None and not 0 <= self.padding_idx < self.vocab_size:
            raise ValueError(f"padding_idx {self.padding_idx} is not in [0, {self.vocab_size})")
        if self.policy not in POLICIES:
            raise ValueError(f"policy {self.policy!r} is not one of {POLICIES}")
        if self.head_scale not in HEAD_SCALE_PLACEMENTS:
            raise ValueError(f"head_scale {self.head_scale!r} is not one of {HEAD_SCALE_PLACEMENTS}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation {self.activation!r} is not one of {ACTIVATIONS}")
        if self.norm not in NORMS:
            raise ValueError(f"norm {self.norm!r} is not one of {NORMS}")
        unknown = [e for e in self.extras if e not in EXTRAS]
        if unknown:
            raise ValueError(f"extras {unknown} are not among {EXTRAS}")
        if self.d_model % self.n_heads != 0:
            raise ValueError(f"d_model {self.d_model} is not divisible by n_heads {self.n_heads}")
        if self.is_post_ln and (self.extras or self.resid_scale):
            raise ValueError(f"policy {self.policy!r} takes no extras and no resid_scale")
        if self.final_norm is None:
            object.__setattr__(self, "final_norm", not self.is_post_ln)
        object.__setattr__(self, "extras", tuple(self.extras))

    @property
    def is_post_ln(self) -> bool:
        return self.policy in POST_LN_POLICIES

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def active_extras(self) -> tuple[str, ...]:
        """Extras of the policy preset united with the config's own, in canonical order."""
        on = set(POLICY_EXTRAS[self.policy]) | set(self.extras)
        return tuple(e for e in EXTRAS if e in on)

    def has(self, extra: str) -> bool:
        return extra in self.active_extras

    @property
    def position_offset(self) -> int:
        """Row of the position table that position 0 reads: padding_idx + 1, or 0."""
        return 0 if self.padding_idx is None else self.padding_idx + 1

    @property
    def position_rows(self) -> int:
        return self.max_seq_len + self.position_offset

    @property
    def ignore_index(self) -> int:
        """Targets the loss ignores: padding_idx when set, else -100."""
        return -100 if self.padding_idx is None else self.padding_idx

    @property
    def residual_alpha(self) -> float:
        """Weight of the skip path in post-LN layers: (2N)^(1/4) for DeepNorm, else 1."""
        return (2 * self.n_layers) ** 0.25 if self.policy == "deepnorm" else 1.0

    def to_json_dict(self) -> dict:
        """The config.json object, keys in CONFIG_KEYS order; extras fully resolved."""
        d = {k: getattr(self, k) for k in CONFIG_KEYS}
        d["extras"] = list(self.active_extras)
        for key, default in OPTIONAL_KEYS.items():
            if getattr(self, key) != default:
                d[key] = getattr(self, key)
        return d

    @staticmethod
    def from_json_dict(d: dict) -> "Config":
        d = dict(d)
        d["extras"] = tuple(d.get("extras", ()) or ())
        return Config(**d)


# ---------------------------------------------------------------------------
# Parameters


def norm_param_names(cfg: Config, prefix: str) -> list[str]:
    """LayerNorm has weight and bias; RMSNorm has weight only."""
    names = [f"{prefix}.weight"]
    if cfg.norm == "layer_norm":
        names.append(f"{prefix}.bias")
    return names


def parameter_shapes(cfg: Config) -> dict[str, tuple[int, ...]]:
    """Every parameter of the model, name -> shape, in construction order."""
    C, V, d_ff, H = cfg.d_model, cfg.vocab_size, cfg.d_ff, cfg.n_heads
    shapes: dict[str, tuple[int, ...]] = {"embed_tokens.weight": (V, C)}
    if cfg.positions == "learned":
        shapes["embed_positions.weight"] = (cfg.position_rows, C)

    def add_norm(prefix, width):
        for name in norm_param_names(cfg, prefix):
            shapes[name] = (width,)

    for i in range(cfg.n_layers):
        p = f"layers.{i}"
        for proj in ("q_proj", "k_proj", "v_proj", "out_proj"):
            shapes[f"{p}.self_attn.{proj}.weight"] = (C, C)
            shapes[f"{p}.self_attn.{proj}.bias"] = (C,)
        add_norm(f"{p}.self_attn_layer_norm", C)
        if cfg.has("head_scale"):
            shapes[f"{p}.c_attn"] = (H,)
        if cfg.has("attn_ln"):
            add_norm(f"{p}.attn_ln", C)
        shapes[f"{p}.fc1.weight"] = (d_ff, C)
        shapes[f"{p}.fc1.bias"] = (d_ff,)
        if cfg.has("ffn_ln"):
            add_norm(f"{p}.ffn_layernorm", d_ff)
        shapes[f"{p}.fc2.weight"] = (C, d_ff)
        shapes[f"{p}.fc2.bias"] = (C,)
        if cfg.has("ffn_out_ln"):
            add_norm(f"{p}.ffn_out_ln", C)
        add_norm(f"{p}.final_layer_norm", C)
        if cfg.resid_scale:
            shapes[f"{p}.w_resid"] = (C,)
    if cfg.final_norm:
        add_norm("layer_norm", C)
    if not cfg.tie_embeddings:
        shapes["output_projection.weight"] = (V, C)
    return shapes


def init_parameters(cfg: Config) -> dict[str, torch.Tensor]:
    """Random float64 parameters for fixtures, drawn from torch's global generator
    in parameter_shapes order (seed it first with torch.manual_seed).

    Norm weights, c_attn and w_resid are pushed away from 1 and norm biases away
    from 0 on purpose: at the usual init (1 / 0) a misplaced op would be invisible.
      linear weights N(0, 0.3), linear biases N(0, 0.1), embeddings N(0, 0.5),
      norm weight 1 + 0.3 N(0,1), norm bias 0.2 N(0,1),
      c_attn 1 + 0.4 N(0,1), w_resid 1 + 0.4 N(0,1).
    """
    params = {}
    for name, shape in parameter_shapes(cfg).items():
        z = torch.randn(shape, dtype=torch.float64)
        module, leaf = name.split(".")[-2:]
        if name.startswith(("embed_tokens", "embed_positions")):
            value = 0.5 * z
        elif leaf in ("c_attn", "w_resid"):
            value = 1.0 + 0.4 * z
        elif module.endswith(("layer_norm", "attn_ln", "ffn_layernorm", "ffn_out_ln")):
            value = 1.0 + 0.3 * z if leaf == "weight" else 0.2 * z
        elif leaf == "weight":  # q/k/v/out_proj, fc1, fc2, output_projection
            value = 0.3 * z
        else:
            value = 0.1 * z
        params[name] = value
    return params


# ---------------------------------------------------------------------------
# Sublayers


def layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    """LayerNorm over the last axis: y = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias,
    var the biased (1/C) variance."""
    mean = x.mean(dim=-1, keepdim=True)
    var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm over the last axis: y = x / sqrt(mean(x^2) + eps) * weight (no bias)."""
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + eps) * weight


def norm(x: torch.Tensor, params: dict, prefix: str, cfg: Config) -> torch.Tensor:
    """The model's normalization named ``prefix`` (LayerNorm or RMSNorm per cfg.norm)."""
    if cfg.norm == "rms_norm":
        return rms_norm(x, params[f"{prefix}.weight"], cfg.ln_eps)
    return layer_norm(x, params[f"{prefix}.weight"], params[f"{prefix}.bias"], cfg.ln_eps)


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """y = x W^T + b, W of shape (out, in) as in torch."""
    y = x @ weight.transpose(0, 1)
    return y if bias is None else y + bias


def activation(x: torch.Tensor, name: str) -> torch.Tensor:
    """gelu: exact x * Phi(x) (erf); gelu_tanh: the tanh approximation; relu: max(x, 0)."""
    if name == "gelu":
        return F.gelu(x)
    if name == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    return F.relu(x)


def causal_attention_heads(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                           key_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Per head: softmax(q k^T + key_bias + M) v, M[i, j] = -inf for key j > query i.
    q, k, v: (B,H,T,D), q already scaled by D^-0.5; key_bias (B,1,1,T) or None.
    Returns (B,H,T,D)."""
    T = q.shape[-2]
    scores = q @ k.transpose(-2, -1)  # (B,H,T,T)
    if key_bias is not None:
        scores = scores + key_bias
    future = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
    scores = scores.masked_fill(future, float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return probs @ v


def self_attention(x: torch.Tensor, params: dict, prefix: str, cfg: Config,
                   key_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Causal multi-head self-attention of x (B,T,C), prefix ``layers.{i}``.

      q = (x W_q^T + b_q) D^-0.5,  k = x W_k^T + b_k,  v = x W_v^T + b_v
      h_h = softmax(q_h k_h^T + key_bias + causal mask) v_h       per head h
      no head scale:    y = Concat(h_1..h_H) W_O^T + b_O
      before_out_proj:  y = Concat(c_1 h_1, ..., c_H h_H) W_O^T + b_O
      after_out_proj:   y = (Concat(h_1..h_H) W_O^T + b_O) * c  with c_h
                        repeated over channel group h (D channels each)
    """
    B, T, C = x.shape
    H, D = cfg.n_heads, cfg.head_dim
    a = f"{prefix}.self_attn"

    def heads(t):  # (B,T,C) -> (B,H,T,D)
        return t.view(B, T, H, D).transpose(1, 2)

    q = heads(linear(x, params[f"{a}.q_proj.weight"], params[f"{a}.q_proj.bias"]) * D ** -0.5)
    k = heads(linear(x, params[f"{a}.k_proj.weight"], params[f"{a}.k_proj.bias"]))
    v = heads(linear(x, params[f"{a}.v_proj.weight"], params[f"{a}.v_proj.bias"]))
    attn = causal_attention_heads(q, k, v, key_bias)  # (B,H,T,D)

    scale_heads = cfg.has("head_scale")
    if scale_heads and cfg.head_scale == "before_out_proj":
        attn = attn * params[f"{prefix}.c_attn"].view(1, H, 1, 1)
    merged = attn.transpose(1, 2).reshape(B, T, C)  # (B,T,C)
    y = linear(merged, params[f"{a}.out_proj.weight"], params[f"{a}.out_proj.bias"])
    if scale_heads and cfg.head_scale == "after_out_proj":
        y = (y.view(B, T, H, D) * params[f"{prefix}.c_attn"].view(1, 1, H, 1)).reshape(B, T, C)
    return y


def feed_forward(z: torch.Tensor, params: dict, prefix: str, cfg: Config) -> torch.Tensor:
    """FFN(z) = fc2(act(fc1(z))); with ffn_ln: fc2(ffn_layernorm(act(fc1(z))))."""
    h = activation(linear(z, params[f"{prefix}.fc1.weight"], params[f"{prefix}.fc1.bias"]), cfg.activation)
    if cfg.has("ffn_ln"):
        h = norm(h, params, f"{prefix}.ffn_layernorm", cfg)  # (B,T,d_ff)
    return linear(h, params[f"{prefix}.fc2.weight"], params[f"{prefix}.fc2.bias"])


def post_ln_layer(x: torch.Tensor, params: dict, prefix: str, cfg: Config,
                  key_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Post-LN (alpha = 1) and DeepNorm (alpha = (2N)^(1/4)):
      x = LN1(alpha x + Attn(x));  x = LN2(alpha x + FFN(x))"""
    alpha = cfg.residual_alpha
    x = norm(alpha * x + self_attention(x, params, prefix, cfg, key_bias), params, f"{prefix}.self_attn_layer_norm", cfg)
    x = norm(alpha * x + feed_forward(x, params, prefix, cfg), params, f"{prefix}.final_layer_norm", cfg)
    return x


def pre_ln_layer(x: torch.Tensor, params: dict, prefix: str, cfg: Config,
                 key_bias: torch.Tensor | None = None) -> torch.Tensor:
    """Pre-LN with optional extras (NormFormer, Sandwich and compositions):
      a = Attn(LN1(x))                     (head scale inside Attn)
      x = x + [attn_ln](a)
      f = FFN(LN2(x))                      (ffn_layernorm inside FFN)
      x = [w_resid *] x + [ffn_out_ln](f)  (w_resid scales the skip path only)
    """
    a = self_attention(norm(x, params, f"{prefix}.self_attn_layer_norm", cfg), params, prefix, cfg, key_bias)
    if cfg.has("attn_ln"):
        a = norm(a, params, f"{prefix}.attn_ln", cfg)
    x = x + a

    f = feed_forward(norm(x, params, f"{prefix}.final_layer_norm", cfg), params, prefix, cfg)
    if cfg.has("ffn_out_ln"):
        f = norm(f, params, f"{prefix}.ffn_out_ln", cfg)
    skip = params[f"{prefix}.w_resid"] * x if cfg.resid_scale else x
    return skip + f


# ---------------------------------------------------------------------------
# Model


def sinusoidal_table(rows: int, dim: int, padding_idx: int | None) -> torch.Tensor:
    """(rows, dim): P[p, i] = sin(p w_i), P[p, dim/2 + i] = cos(p w_i),
    w_i = 10000^(-i / (dim/2 - 1)); a zero last column for odd dim; row
    padding_idx zero (fairseq's SinusoidalPositionalEmbedding.get_embedding)."""
    half = dim // 2
    step = math.log(10000.0) / (half - 1) if half > 1 else 0.0
    w = torch.exp(torch.arange(half, dtype=torch.float64) * -step)  # (half,)
    angle = torch.arange(rows, dtype=torch.float64)[:, None] * w[None, :]  # (rows, half)
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(rows, 1, dtype=torch.float64)], dim=1)
    if padding_idx is not None:
        table[padding_idx] = 0
    return table


def position_indices(tokens: torch.Tensor, cfg: Config) -> torch.Tensor:
    """(B,T) rows of the position table: t without padding_idx; else fairseq's
    make_positions, padding_idx + cumsum(not pad) for tokens, padding_idx for pads."""
    B, T = tokens.shape
    if cfg.padding_idx is None:
        return torch.arange(T).expand(B, T)
    mask = tokens.ne(cfg.padding_idx).long()
    return torch.cumsum(mask, dim=1) * mask + cfg.padding_idx


def padding_key_bias(tokens: torch.Tensor, cfg: Config) -> torch.Tensor | None:
    """(B,1,1,T): PAD_KEY_BIAS at keys whose token is padding_idx, else 0;
    None without padding_idx or without a pad token."""
    if cfg.padding_idx is None or not tokens.eq(cfg.padding_idx).any():
        return None
    B, T = tokens.shape
    bias = torch.zeros(B, 1, 1, T, dtype=torch.float64)
    return bias.masked_fill(tokens.eq(cfg.padding_idx).view(B, 1, 1, T), PAD_KEY_BIAS)


def embed(params: dict, tokens: torch.Tensor, cfg: Config) -> torch.Tensor:
    """h_0 = s embed_tokens[tokens] + P[position_indices]  (B,T,C); s = sqrt(C) with embed_scale.

    With padding_idx, both lookups are F.embedding(..., padding_idx) as fairseq's
    nn.Embedding and LearnedPositionalEmbedding do: row padding_idx of either table
    gets no gradient from them (a tied output projection still adds to embed_tokens')."""
    x = F.embedding(tokens, params["embed_tokens.weight"], padding_idx=cfg.padding_idx)
    if cfg.embed_scale:
        x = math.sqrt(cfg.d_model) * x
    if cfg.positions == "learned":
        table = params["embed_positions.weight"]
    else:
        table = sinusoidal_table(cfg.position_rows, cfg.d_model, cfg.padding_idx)
    return x + F.embedding(position_indices(tokens, cfg), table, padding_idx=cfg.padding_idx)


def forward(params: dict, tokens: torch.Tensor, cfg: Config) -> torch.Tensor:
    """Logits (B,T,V) of tokens (B,T).

      h = embed(tokens)                                      (scale, positions: see the top)
      h = layer_i(h) for i in 0..N-1                         (pad keys masked)
      h = layer_norm(h)                                      if final_norm
      logits = h W^T,  W = output_projection.weight, or embed_tokens.weight when tied
    """
    B, T = tokens.shape
    if T > cfg.max_seq_len:
        raise ValueError(f"sequence length {T} exceeds max_seq_len {cfg.max_seq_len}")
    h = embed(params, tokens, cfg)  # (B,T,C)
    key_bias = padding_key_bias(tokens, cfg)
    layer = post_ln_layer if cfg.is_post_ln else pre_ln_layer
    for i in range(cfg.n_layers):
        h = layer(h, params, f"layers.{i}", cfg, key_bias)
    if cfg.final_norm:
        h = norm(h, params, "layer_norm", cfg)
    w_out = params["embed_tokens.weight"] if cfg.tie_embeddings else params["output_projection.weight"]
    return linear(h, w_out, None)  # (B,T,V)


def cross_entropy_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100) -> torch.Tensor:
    """Mean over positions whose target is not ignore_index of -log softmax(logits)[target]
    (torch.nn.functional.cross_entropy, reduction='mean'); ignore_index is
    cfg.ignore_index: padding_idx when set, else -100."""
    V = logits.shape[-1]
    return F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=ignore_index)


def parameter_count(params: dict) -> int:
    return sum(p.numel() for p in params.values())
