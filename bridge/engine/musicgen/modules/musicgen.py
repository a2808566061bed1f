"""MusicGen (and MusicGen-Melody) as Segue holds it: transformers' module tree and parameter names,
none of its machinery.

Importing transformers' MusicGen costs seconds before any work (its `modeling_utils` pulls
torch.distributed, torch._dynamo and scipy): most of a short CLI job. Segue runs the decoder itself
(bridge/engine/musicgen/fast_decoder.py), so here the decoder is only a container of weights named
as transformers names them, so that a checkpoint's state dict loads into it as it is and the fast
decoder reads `model.decoder.model.decoder.layers[i].self_attn.q_proj` on either tree. The text
encoder (modules/t5.py) and EnCodec (modules/encodec.py) have forward passes of their own.
transformers stays the reference: tests/test_engine_own_modules.py loads the same checkpoints both
ways and compares.

The configuration is the checkpoint's config.json read as it is, with transformers 5.24's defaults
(configuration_musicgen.py, configuration_musicgen_melody.py) for what it leaves out.
"""

import math
from types import SimpleNamespace

import torch
from torch import nn

from bridge.engine.musicgen.modules.encodec import EncodecModel, encodec_config
from bridge.engine.musicgen.modules.t5 import T5Encoder, t5_config

MELODY_MODEL_TYPE = "musicgen_melody"
MODEL_TYPES = ("musicgen", MELODY_MODEL_TYPE)

# transformers 5.24 MusicgenDecoderConfig / MusicgenMelodyDecoderConfig class defaults (the same for
# every field read here), for config.json files that leave a value out.
DECODER_DEFAULTS = {
    "vocab_size": 2048,
    "max_position_embeddings": 2048,
    "num_hidden_layers": 24,
    "ffn_dim": 4096,
    "num_attention_heads": 16,
    "activation_function": "gelu",
    "hidden_size": 1024,
    "num_codebooks": 4,
    "audio_channels": 1,
    "pad_token_id": 2048,
    "bos_token_id": 2048,
    "cross_attention_hidden_size": None,
}
# MusicgenMelodyConfig: the chromagram the melody models read.
MELODY_DEFAULTS = {"num_chroma": 12, "chroma_length": 235}


def musicgen_config(values: dict) -> SimpleNamespace:
    """A checkpoint's config.json as attributes, defaults filled in, named as transformers' config."""
    model_type = values.get("model_type")
    if model_type not in MODEL_TYPES:
        raise ValueError(f"model type {model_type!r} is not MusicGen ({' or '.join(MODEL_TYPES)})")
    decoder = {**DECODER_DEFAULTS, **values.get("decoder", {})}
    decoder.setdefault("model_type", f"{model_type}_decoder")
    top = {**MELODY_DEFAULTS, **values} if model_type == MELODY_MODEL_TYPE else dict(values)
    top.update(
        decoder=SimpleNamespace(**decoder),
        text_encoder=t5_config(values.get("text_encoder", {})),
        audio_encoder=encodec_config(values.get("audio_encoder", {})),
    )
    return SimpleNamespace(**top)


def generation_config(values: dict, config: SimpleNamespace) -> SimpleNamespace:
    """generation_config.json's token ids; without one, the decoder config's (as transformers derives it)."""
    pad = values.get("pad_token_id", config.decoder.pad_token_id)
    start = values.get("decoder_start_token_id", config.decoder.bos_token_id)
    return SimpleNamespace(pad_token_id=pad, decoder_start_token_id=start)


class SinusoidalPositions(nn.Module):
    """`MusicgenSinusoidalPositionalEmbedding`'s table: cos then sin halves, as transformers computes it."""

    def __init__(self, num_positions: int, embedding_dim: int) -> None:
        super().__init__()
        self.embedding_dim = embedding_dim
        self.num_positions = num_positions
        self.register_buffer("weights", sinusoidal_table(num_positions, embedding_dim), persistent=False)

    def make_weights(self, num_positions: int, embedding_dim: int) -> None:
        self.weights = sinusoidal_table(num_positions, embedding_dim).to(self.weights.dtype)
        self.num_positions = num_positions


def sinusoidal_table(num_positions: int, embedding_dim: int) -> torch.Tensor:
    """On the CPU even while the model is built on the meta device: the table is computed, not loaded
    (and torch's meta `arange` imports torch._dynamo, ~1 s)."""
    half = embedding_dim // 2
    cpu = torch.device("cpu")
    frequencies = torch.exp(torch.arange(half, dtype=torch.int64, device=cpu).float() * -(math.log(10000) / (half - 1)))
    angles = torch.arange(num_positions, dtype=torch.int64, device=cpu).float()[:, None] * frequencies[None]
    table = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
    if embedding_dim % 2:
        table = torch.cat([table, torch.zeros(num_positions, 1, device=cpu)], dim=1)
    return table


class Attention(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.out_proj = nn.Linear(width, width, bias=False)


class DecoderLayer(nn.Module):
    """Pre-norm self-attention, cross-attention to the text (MusicGen only) and a GELU feed-forward."""

    def __init__(self, config: SimpleNamespace, cross_attention: bool) -> None:
        super().__init__()
        width = config.hidden_size
        self.self_attn = Attention(width)
        self.self_attn_layer_norm = nn.LayerNorm(width)
        if cross_attention:
            self.encoder_attn = Attention(width)
            self.encoder_attn_layer_norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, config.ffn_dim, bias=False)
        self.fc2 = nn.Linear(config.ffn_dim, width, bias=False)
        self.final_layer_norm = nn.LayerNorm(width)


class Decoder(nn.Module):
    def __init__(self, config: SimpleNamespace, cross_attention: bool) -> None:
        super().__init__()
        # vocab_size + 1 rows: the last is the start/pad token. Given a weight, not initialised:
        # nn.Embedding's normal_ init on the meta device imports sympy (~1 s).
        rows = config.vocab_size + 1
        self.embed_tokens = nn.ModuleList(
            nn.Embedding(rows, config.hidden_size, _weight=torch.empty(rows, config.hidden_size))
            for _ in range(config.num_codebooks)
        )
        self.embed_positions = SinusoidalPositions(config.max_position_embeddings, config.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(config, cross_attention) for _ in range(config.num_hidden_layers))
        self.layer_norm = nn.LayerNorm(config.hidden_size)


class DecoderModel(nn.Module):
    def __init__(self, config: SimpleNamespace, cross_attention: bool) -> None:
        super().__init__()
        self.decoder = Decoder(config, cross_attention)


class MusicgenCausalLM(nn.Module):
    """The decoder's weights: `model.decoder` (embeddings, positions, layers, final norm) and a head per codebook."""

    def __init__(self, config: SimpleNamespace, cross_attention: bool) -> None:
        super().__init__()
        self.config = config
        self.num_codebooks = config.num_codebooks
        self.model = DecoderModel(config, cross_attention)
        self.lm_heads = nn.ModuleList(
            nn.Linear(config.hidden_size, config.vocab_size, bias=False) for _ in range(config.num_codebooks)
        )


class MusicgenModules(nn.Module):
    """Text encoder, EnCodec, decoder and the projections between them, as `MusicgenForConditionalGeneration`
    (or the melody one) holds them."""

    def __init__(self, config: SimpleNamespace, generation: SimpleNamespace) -> None:
        super().__init__()
        self.config = config
        self.generation_config = generation
        melody = config.model_type == MELODY_MODEL_TYPE
        decoder = config.decoder
        self.text_encoder = T5Encoder(config.text_encoder)
        self.audio_encoder = EncodecModel(config.audio_encoder)
        self.decoder = MusicgenCausalLM(decoder, cross_attention=not melody)
        # The projections exist exactly when transformers creates them (modeling_musicgen.py
        # MusicgenForConditionalGeneration.__init__; the melody model's checks no cross-attention size).
        text_width = config.text_encoder.d_model
        if text_width != decoder.hidden_size and (melody or decoder.cross_attention_hidden_size is None):
            self.enc_to_dec_proj = nn.Linear(text_width, decoder.hidden_size)
        if melody and config.num_chroma != decoder.hidden_size:
            self.audio_enc_to_dec_proj = nn.Linear(config.num_chroma, decoder.hidden_size)
