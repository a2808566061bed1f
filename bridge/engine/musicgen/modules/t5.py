"""T5's text encoder in plain torch, loaded from the weights MusicGen checkpoints carry.

MusicGen and AudioGen condition on the last hidden state of a T5 encoder (t5-base, t5-large; ReLU
feed-forward; T5 v1.1 checkpoints use a gated GELU). Importing transformers' T5 costs seconds at
startup (its modeling_utils pulls torch.distributed, torch._dynamo, scipy), so Segue computes the
same function here. Parameter names are transformers' `T5EncoderModel`'s (what MusicGen checkpoints
hold under `text_encoder.`), and every step follows transformers 5.24 models/t5/modeling_t5.py:
relative position buckets (bidirectional), no 1/sqrt(d) scaling of the scores, RMS norm computed in
fp32, and the fp16 overflow clamp after each sub-layer. tests/test_engine_own_t5.py keeps the two
equal.
"""

import math
from collections.abc import Mapping
from types import SimpleNamespace

import torch
from torch import nn

from bridge.errors import ModelError

# transformers 5.24 models/t5/configuration_t5.py, class T5Config: the defaults of the fields read here.
T5_DEFAULTS = {
    "vocab_size": 32128,
    "d_model": 512,
    "d_kv": 64,
    "d_ff": 2048,
    "num_layers": 6,
    "num_heads": 8,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "layer_norm_epsilon": 1e-6,
    "feed_forward_proj": "relu",
}
# T5Config.attribute_map: a config may name these fields by their generic names.
_ALIASES = {"hidden_size": "d_model", "num_attention_heads": "num_heads", "num_hidden_layers": "num_layers",
            "head_dim": "d_kv"}


def _new_gelu(x: torch.Tensor) -> torch.Tensor:
    """transformers' NewGELUActivation ("gelu_new"), as written there: F.gelu's tanh form differs in the last bits."""
    return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


# transformers activations.py ACT2CLS, the entries a T5 feed-forward can name.
_ACTIVATIONS = {"relu": torch.relu, "gelu": nn.functional.gelu, "gelu_new": _new_gelu}
# Checkpoints may store T5's input embedding twice: `encoder.embed_tokens` is tied to `shared`.
_TIED_EMBEDDING = "encoder.embed_tokens.weight"


def t5_config(values: Mapping) -> SimpleNamespace:
    """The fields the encoder reads, from a checkpoint's `text_encoder` config dict, T5Config's defaults filled in.

    `is_gated_act` and `dense_act_fn` are derived from `feed_forward_proj` as T5Config.__post_init__
    does ("gated-gelu" means the tanh GELU, "gelu_new") unless the dict states them. Raises ModelError
    for a projection T5Config refuses or an activation Segue does not implement.
    """
    given = {_ALIASES.get(key, key): value for key, value in values.items()}
    fields = {name: given.get(name, default) for name, default in T5_DEFAULTS.items()}
    projection = str(fields["feed_forward_proj"])
    parts = projection.split("-")
    if (len(parts) > 1 and parts[0] != "gated") or len(parts) > 2:  # T5Config.validate_architecture
        raise ModelError(f"the text encoder's feed_forward_proj {projection!r} is not 'ACT' or 'gated-ACT'")
    # A config.json saved by transformers also holds both derived fields; as in T5Config, those win.
    activation = given.get("dense_act_fn", "gelu_new" if projection == "gated-gelu" else parts[-1])
    if activation not in _ACTIVATIONS:
        raise ModelError(f"the text encoder's activation {activation!r} is not supported (relu, gelu, gelu_new)")
    return SimpleNamespace(**fields, is_gated_act=bool(given.get("is_gated_act", parts[0] == "gated")),
                           dense_act_fn=activation)


def t5_state(state: Mapping[str, torch.Tensor], config: SimpleNamespace) -> dict[str, torch.Tensor]:
    """The tensors `T5Encoder(config).load_state_dict(..., strict=True)` takes, from a checkpoint's T5 weights.

    `state` is keyed as transformers' T5EncoderModel (MusicGen checkpoints' keys with `text_encoder.`
    removed). The tied `encoder.embed_tokens.weight` is dropped; ModelError names the first missing or
    unknown key, or a tensor whose shape the config does not give.
    """
    with torch.device("meta"):
        expected = T5Encoder(config).state_dict()
    given = {name: tensor for name, tensor in state.items() if name != _TIED_EMBEDDING}
    missing, unknown = sorted(set(expected) - set(given)), sorted(set(given) - set(expected))
    if missing or unknown:
        problem = f"missing text_encoder.{missing[0]}" if missing else f"unknown text_encoder.{unknown[0]}"
        count = len(missing) + len(unknown)
        raise ModelError(f"the text encoder's weights do not fit T5 ({problem}; {count} key{'s' * (count > 1)} off)")
    for name, reference in expected.items():
        if tuple(given[name].shape) != tuple(reference.shape):
            raise ModelError(f"text_encoder.{name} has shape {tuple(given[name].shape)}, "
                             f"the config gives {tuple(reference.shape)}")
    return given


def load_t5_encoder(config: SimpleNamespace, state: Mapping[str, torch.Tensor]) -> "T5Encoder":
    """An eval-mode encoder whose parameters are `state`'s tensors (checked by `t5_state`), in their dtype.

    Built on the meta device, so no time goes into a random initialisation that the weights replace
    (0.5 s for t5-base on 2 cores); move it with `.to(device, dtype)` afterwards.
    """
    checked = t5_state(state, config)
    with torch.device("meta"):
        encoder = T5Encoder(config)
    encoder.load_state_dict(checked, strict=True, assign=True)
    return encoder.eval()


def _embedding(rows: int, size: int) -> nn.Embedding:
    """An embedding left uninitialised: the checkpoint fills it. Its default N(0, 1) init is also what
    makes building on the meta device slow: meta's normal_ imports torch's Python decompositions (1 s)."""
    return nn.Embedding(rows, size, _weight=torch.empty(rows, size))


class T5LayerNorm(nn.Module):
    """RMS norm without bias; the mean square is taken in fp32 even for fp16 weights."""

    def __init__(self, size: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        variance = hidden.to(torch.float32).pow(2).mean(-1, keepdim=True)
        hidden = hidden * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            hidden = hidden.to(self.weight.dtype)
        return self.weight * hidden


class T5Attention(nn.Module):
    def __init__(self, config: SimpleNamespace, has_relative_attention_bias: bool) -> None:
        super().__init__()
        self.num_heads, self.head_dim = config.num_heads, config.d_kv
        self.num_buckets = config.relative_attention_num_buckets
        self.max_distance = config.relative_attention_max_distance
        inner = config.num_heads * config.d_kv
        self.q = nn.Linear(config.d_model, inner, bias=False)
        self.k = nn.Linear(config.d_model, inner, bias=False)
        self.v = nn.Linear(config.d_model, inner, bias=False)
        self.o = nn.Linear(inner, config.d_model, bias=False)
        if has_relative_attention_bias:  # block 0 only; the other blocks reuse its bias
            self.relative_attention_bias = _embedding(self.num_buckets, config.num_heads)

    def position_bias(self, length: int, keep: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """(batch, heads, length, length) additive scores: learnt relative-position bias, the dtype's minimum on padding."""
        positions = torch.arange(length, device=keep.device)
        buckets = relative_position_bucket(positions[None, :] - positions[:, None], self.num_buckets, self.max_distance)
        bias = self.relative_attention_bias(buckets).permute(2, 0, 1).unsqueeze(0)
        # As transformers' sdpa path (integrations/sdpa_attention.py create_position_bias_mask): a padded
        # key gets the minimum, so its softmax weight is exactly zero, as with its eager additive mask.
        return torch.where(keep[:, None, None, :], bias, torch.finfo(dtype).min).contiguous()

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, _ = hidden.shape
        query, key, value = (
            projection(hidden).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
            for projection in (self.q, self.k, self.v)
        )
        # T5 does not scale the scores: its initialisation folds 1/sqrt(d) into q.
        attended = nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=bias, scale=1.0)
        return self.o(attended.transpose(1, 2).reshape(batch, length, -1))


def relative_position_bucket(relative_position: torch.Tensor, num_buckets: int, max_distance: int) -> torch.Tensor:
    """T5Attention._relative_position_bucket, bidirectional (the encoder's): half the buckets per direction,
    exact for small distances, logarithmic up to `max_distance`, the last bucket beyond."""
    num_buckets //= 2
    buckets = (relative_position > 0).to(torch.long) * num_buckets
    distance = torch.abs(relative_position)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    if_large = max_exact + (
        torch.log(distance.float() / max_exact) / math.log(max_distance / max_exact) * (num_buckets - max_exact)
    ).to(torch.long)
    if_large = torch.min(if_large, torch.full_like(if_large, num_buckets - 1))
    return buckets + torch.where(is_small, distance, if_large)


class T5DenseActDense(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.wi = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = _ACTIVATIONS[config.dense_act_fn]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.wo(_to_dtype_of(self.wo, self.act(self.wi(hidden))))


class T5DenseGatedActDense(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.wi_0 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = nn.Linear(config.d_model, config.d_ff, bias=False)
        self.wo = nn.Linear(config.d_ff, config.d_model, bias=False)
        self.act = _ACTIVATIONS[config.dense_act_fn]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.wo(_to_dtype_of(self.wo, self.act(self.wi_0(hidden)) * self.wi_1(hidden)))


def _to_dtype_of(linear: nn.Linear, hidden: torch.Tensor) -> torch.Tensor:
    # transformers keeps `wo` in fp32 when it loads T5 in fp16 (_keep_in_fp32_modules) and casts its input.
    return hidden.to(linear.weight.dtype)


class T5LayerSelfAttention(nn.Module):
    def __init__(self, config: SimpleNamespace, has_relative_attention_bias: bool) -> None:
        super().__init__()
        self.SelfAttention = T5Attention(config, has_relative_attention_bias)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        return hidden + self.SelfAttention(self.layer_norm(hidden), bias)


class T5LayerFF(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.DenseReluDense = T5DenseGatedActDense(config) if config.is_gated_act else T5DenseActDense(config)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return hidden + self.DenseReluDense(self.layer_norm(hidden))


class T5Block(nn.Module):
    def __init__(self, config: SimpleNamespace, has_relative_attention_bias: bool) -> None:
        super().__init__()
        self.layer = nn.ModuleList([T5LayerSelfAttention(config, has_relative_attention_bias), T5LayerFF(config)])

    def forward(self, hidden: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        hidden = _clamp_fp16(self.layer[0](hidden, bias))
        return _clamp_fp16(self.layer[1](hidden))


def _clamp_fp16(hidden: torch.Tensor) -> torch.Tensor:
    """T5Block's guard: fp16 activations of T5 can overflow; clamp to the finite range (1000 below it after an inf)."""
    if hidden.dtype != torch.float16:
        return hidden
    largest = torch.finfo(torch.float16).max
    limit = torch.where(torch.isinf(hidden).any(), largest - 1000, largest)
    return torch.clamp(hidden, min=-limit, max=limit)


class T5Stack(nn.Module):
    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.block = nn.ModuleList([T5Block(config, index == 0) for index in range(config.num_layers)])
        self.final_layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)


class T5Encoder(nn.Module):
    """transformers' T5EncoderModel for inference: token ids and mask in, last hidden state out.

    Its embeddings start uninitialised; load a checkpoint's weights (`load_t5_encoder`) before use.
    """

    def __init__(self, config: SimpleNamespace) -> None:
        super().__init__()
        self.config = config
        self.shared = _embedding(config.vocab_size, config.d_model)
        self.encoder = T5Stack(config)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(batch, tokens) ids and 1/0 mask -> (batch, tokens, d_model) states, in the weights' dtype.

        Padded positions get states too (as in transformers); callers mask them out downstream.
        """
        hidden = self.shared(input_ids)
        first = self.encoder.block[0].layer[0].SelfAttention
        bias = first.position_bias(input_ids.shape[1], attention_mask.bool(), hidden.dtype)
        for block in self.encoder.block:
            hidden = block(hidden, bias)
        return self.encoder.final_layer_norm(hidden)
