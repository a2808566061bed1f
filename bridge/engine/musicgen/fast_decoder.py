"""Segue's own MusicGen decoder pass, built for one-token steps; the transformers modules are the reference.

Same maths as `MusicgenForCausalLM` (tests/test_engine_fast.py keeps the codes equal), less work per
step:
- self-attention keys/values go into a cache preallocated for the whole window, no concatenation;
- the cross-attention keys/values of the text are computed once per window, and only for the
  guided rows: the unguided rows attend to all-zero text states, so their cross-attention adds
  exactly zero and is skipped;
- with int8 weights, q, k and v come from one fused matmul, the four codebook heads from another;
- both guidance branches go through every matmul together, so each weight is read once per step;
- a one-token step runs its small ops on one thread, waking the others only for the matmuls and a
  long cache (bridge/engine/musicgen/step_threads.py); fast mode attends in one native call per layer
  where Segue's kernel library is built (native_attention.py), else with two matmuls
  (`one_query_attention`), faster than PyTorch's CPU SDPA for one query over a long cache;
- `precision="int8"` swaps every decoder matmul for int8 weights run by `kernel`
  (bridge/engine/musicgen/quantize.py; bridge/engine/musicgen/kernels.py picks it per machine).

The interface, for every model family that runs through it:
- `FastDecoder(loaded, precision, graphed, kernel)` reads the weights of `loaded.model.decoder`
  (a `MusicgenForCausalLM`: embeddings per codebook, sinusoidal positions, pre-norm layers with
  self-attention, cross-attention and a GELU feed-forward, one head per codebook). It checks that
  layout first and raises ModelError naming what is missing, so a transformers release that moves
  a module fails at load, not in the middle of a job.
- `start(text_states, text_mask, guided_rows, rows, length)` opens one window and returns a session;
  `session(input_ids)` feeds (rows, codebooks, tokens) and returns the last position's logits
  (rows, codebooks, vocab), or every position's with `all_positions=True`. Only the first call of a
  window may feed several tokens (the prefill, e.g. an audio prompt, run as GEMMs).

On CUDA the one-token step can be captured in a CUDA graph (graphed_step.py), which replays the whole
step as one launch; the step then works on fixed buffers and masks the cache instead of slicing it.
"""

import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from bridge.engine.musicgen.fused_step import LayerNorm, linear_around
from bridge.engine.musicgen.graphed_step import GraphedStep
from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.native_attention import (
    attend_causally,
    attend_one_query,
    attend_to_text,
    causal_attention_applies,
    native_cache_dtype,
)
from bridge.engine.musicgen.quantize import DenseLinear, QuantisedLinear, make_linear
from bridge.engine.musicgen.resident_memory import drop_resident_pages, return_free_memory
from bridge.engine.musicgen.step_threads import on_every_thread, small_ops_on_one_thread
from bridge.errors import CancelledError, ModelError

PRECISIONS = ("native", "int8")
# From this many cached positions on, a step's attention reads enough to wake every thread for it:
# 24 layers took the same on one thread and two at 400 positions, 1.9x less on two at 800 (2-core
# AVX2, load ~6); below it the wake-up costs more than it saves (more still on a busy machine).
THREADED_ATTENTION_POSITIONS = 512
Linear = DenseLinear | QuantisedLinear

# What this module reads of transformers' MusicGen decoder (transformers 5.24; see check_layout).
LAYER_PARTS = (
    "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj", "self_attn_layer_norm",
    "fc1", "fc2", "final_layer_norm",
)
# MusicGen's layers cross-attend to the text; MusicGen-Melody's have no cross-attention (a prefix instead).
CROSS_ATTENTION_PARTS = (
    "encoder_attn.q_proj", "encoder_attn.k_proj", "encoder_attn.v_proj", "encoder_attn.out_proj",
    "encoder_attn_layer_norm",
)
PREFIX_CONDITIONED_DECODERS = ("musicgen_melody_decoder",)
DECODER_PARTS = ("model.decoder.layers", "model.decoder.embed_tokens", "model.decoder.embed_positions.weights",
                 "model.decoder.layer_norm", "lm_heads", "config.num_codebooks", "config.num_attention_heads")


def check_layout(causal_lm: torch.nn.Module) -> None:
    """Raise ModelError unless the decoder has every module this decoder pass reads."""

    def missing(root: object, parts: tuple[str, ...]) -> list[str]:
        absent = []
        for dotted in parts:
            node = root
            for name in dotted.split("."):
                node = getattr(node, name, None)
                if node is None:
                    absent.append(dotted)
                    break
        return absent

    absent = missing(causal_lm, DECODER_PARTS)
    layers = getattr(getattr(getattr(causal_lm, "model", None), "decoder", None), "layers", None) or []
    parts = LAYER_PARTS
    if getattr(getattr(causal_lm, "config", None), "model_type", None) not in PREFIX_CONDITIONED_DECODERS:
        parts += CROSS_ATTENTION_PARTS
    absent += [f"layers[0].{part}" for part in missing(layers[0], parts)] if len(layers) else []
    if absent:
        raise ModelError(
            f"this transformers ({importlib.metadata.version('transformers')}) lays out MusicGen's decoder differently from "
            f"the 5.24 that Segue supports (missing: {', '.join(absent[:4])}); install transformers 5.24"
        )


@dataclass
class _Layer:
    self_norm: LayerNorm
    qkv: Linear
    self_out: Linear
    # None for MusicGen-Melody, whose layers have no cross-attention (its conditioning is a prefix)
    cross_norm: LayerNorm | None
    cross_q: Linear | None
    cross_k: torch.Tensor | None  # used once per window: the module's own weights
    cross_v: torch.Tensor | None
    cross_out: Linear | None
    ffn_norm: LayerNorm
    fc1: Linear
    fc2: Linear


class FastDecoder:
    """The decoder of a loaded MusicGen, ready for `start(conditioning rows, window length)`."""

    def __init__(
        self, loaded: LoadedModel, precision: str = "native", graphed: bool = False, kernel: str = "bf16-int8",
        native_bf16: bool = True,
    ) -> None:
        """`kernel` runs the int8 weights (see quantize.KERNELS); `native_bf16`: whether this CPU has
        bf16 arithmetic (the bf16-int8 kernel's prefill widens its weights to bf16 then, else to fp32)."""
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        causal_lm = loaded.model.decoder
        check_layout(causal_lm)
        self.loaded = loaded
        self.precision = precision
        self.kernel = kernel if precision == "int8" else "dense"
        self.graphed = graphed  # one-token steps through GraphedStep (a CUDA graph on CUDA)
        decoder = causal_lm.model.decoder
        config = causal_lm.config
        self.num_codebooks = config.num_codebooks
        self.vocab_size = config.vocab_size
        self.hidden_size = config.hidden_size
        self.num_heads = config.num_attention_heads
        self.head_dim = self.hidden_size // self.num_heads
        # fast mode's one-token self-attention in one native call per layer (native_attention.py), over a
        # cache of this dtype (fp16 where it takes one); None: PyTorch's ops, the cache in the model's dtype
        self.cache_dtype = native_cache_dtype(loaded.device, self.head_dim) if precision == "int8" else None
        self.native_attention = self.cache_dtype is not None
        # a prefill's causal self-attention natively too (kernels.py times it against PyTorch's SDPA per machine)
        self.native_prefill_attention = self.native_attention
        self.embeddings = [table.weight for table in decoder.embed_tokens]
        self.positions = decoder.embed_positions.weights
        self.final_norm = LayerNorm.of(decoder.layer_norm)
        released: list[torch.Tensor] = []

        def linear(*modules: torch.nn.Linear) -> Linear:
            weights = [module.weight.detach() for module in modules]
            if self.kernel != "dense":
                released.extend(weights)
            return make_linear(self.kernel, *weights, native_bf16=native_bf16)

        self.layers = []
        for block in decoder.layers:
            attention, cross = block.self_attn, getattr(block, "encoder_attn", None)
            has_cross = cross is not None
            self.layers.append(
                _Layer(
                    self_norm=LayerNorm.of(block.self_attn_layer_norm),
                    qkv=linear(attention.q_proj, attention.k_proj, attention.v_proj),
                    self_out=linear(attention.out_proj),
                    cross_norm=LayerNorm.of(block.encoder_attn_layer_norm) if has_cross else None,
                    cross_q=linear(cross.q_proj) if has_cross else None,
                    cross_k=cross.k_proj.weight if has_cross else None,
                    cross_v=cross.v_proj.weight if has_cross else None,
                    cross_out=linear(cross.out_proj) if has_cross else None,
                    ffn_norm=LayerNorm.of(block.final_layer_norm),
                    fc1=linear(block.fc1),
                    fc2=linear(block.fc2),
                )
            )
            drop_resident_pages(released)  # layer by layer: fp32 and int8 copies never both resident
            if released:
                return_free_memory()  # and the quantisers' temporaries go back too, or the heap keeps them
            released.clear()
        self.lm_heads = linear(*causal_lm.lm_heads)
        drop_resident_pages(released)
        if precision == "int8":
            return_free_memory()

    @property
    def weight_bytes(self) -> int:
        """Bytes of matmul weights read per step."""
        parts = [self.lm_heads]
        for layer in self.layers:
            parts += [layer.qkv, layer.self_out, layer.cross_q, layer.cross_out, layer.fc1, layer.fc2]
        return sum(part.nbytes for part in parts if part is not None)

    @torch.inference_mode()
    def start(
        self, text_states: torch.Tensor, text_mask: torch.Tensor, guided_rows: int, rows: int, length: int,
        prefix: bool = False,
    ) -> "DecoderSession | GraphedStep":
        """A fresh cache for one window of `length` positions; call the result with input ids.

        `text_states` (rows, tokens, hidden) are the projected, masked text states of every row;
        only the first `guided_rows` rows have any (the rest are the unguided branch).
        With `prefix` (MusicGen-Melody), `text_states` are instead the states of every row that the
        decoder reads before the first token (bridge/engine/musicgen/melody.py).
        """
        if prefix:
            session = DecoderSession(self, None, None, rows, length, prefix=text_states, zeroed=self.graphed)
        else:
            session = DecoderSession(self, text_states[:guided_rows], text_mask[:guided_rows], rows, length,
                                     zeroed=self.graphed)
        return GraphedStep(session) if self.graphed else session

    def embed(self, input_ids: torch.Tensor, start: int) -> torch.Tensor:
        """(rows, codebooks, tokens) -> (rows, tokens, hidden): codebook embeddings summed, plus positions."""
        hidden = F.embedding(input_ids[:, 0], self.embeddings[0])
        for codebook in range(1, self.num_codebooks):
            hidden = hidden + F.embedding(input_ids[:, codebook], self.embeddings[codebook])
        return hidden + self.positions[start : start + input_ids.shape[-1]]

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """(rows, [positions,] hidden) -> (rows, [positions,] codebooks, vocab)."""
        return linear_around(self.lm_heads, hidden, norm=self.final_norm).view(*hidden.shape[:-1], self.num_codebooks,
                                                                               self.vocab_size)


class DecoderSession:
    """One window: the static self-attention cache and the text's cross-attention keys/values."""

    def __init__(
        self, decoder: FastDecoder, text_states: torch.Tensor | None, text_mask: torch.Tensor | None, rows: int,
        length: int, prefix: torch.Tensor | None = None, zeroed: bool = True,
    ):
        """`zeroed`: the cache starts as zeros, as the fixed-shape step needs (it reads all of it); an
        eager session reads only the positions it has written, so it skips writing hundreds of MB."""
        self.decoder = decoder
        self.rows = rows
        self.prefix = prefix  # (rows, positions, hidden) fed before the first token, or None
        self.prefix_length = 0 if prefix is None else prefix.shape[1]
        self.length = length + self.prefix_length
        self.position = 0
        self.should_cancel: Callable[[], bool] | None = None  # asked between a prefill's layers
        heads, head_dim = decoder.num_heads, decoder.head_dim
        states = text_states if prefix is None else prefix
        dtype, device = states.dtype, states.device
        shape = (len(decoder.layers), rows, heads, self.length, head_dim)
        # Late in a window this cache is read each step and outweighs the weights. Native attention
        # reads it in fp16 (decoder.cache_dtype); PyTorch's CPU attention ran 2x slower on a bf16
        # cache than on fp32 (measured at 1200 positions), so without it the cache is the model's dtype.
        allocate = torch.zeros if zeroed else torch.empty
        self.keys = allocate(shape, dtype=decoder.cache_dtype or dtype, device=device)
        self.values = allocate(shape, dtype=decoder.cache_dtype or dtype, device=device)
        self.cross_keys, self.cross_values, self.cross_mask = [], [], None
        self.native_cross_attention = False
        if text_states is None:
            self.guided_rows = 0
            return
        self.guided_rows = text_states.shape[0]
        tokens = text_states.shape[1]
        # Padding tokens of the text are masked; all-ones masks need none, and then a step attends natively
        # (its keys and values contiguous for that).
        self.cross_mask = None if bool(text_mask.all()) else text_mask[:, None, None, :].bool()
        self.native_cross_attention = decoder.native_attention and self.cross_mask is None and dtype == torch.float32
        for layer in decoder.layers:
            for weight, kept in ((layer.cross_k, self.cross_keys), (layer.cross_v, self.cross_values)):
                projected = F.linear(text_states, weight).view(-1, tokens, heads, head_dim).transpose(1, 2)
                kept.append(projected.contiguous() if self.native_cross_attention else projected)

    def __call__(self, input_ids: torch.Tensor, all_positions: bool = False) -> torch.Tensor:
        """Feed (rows, codebooks, tokens) at the next positions; return the last position's logits
        (rows, codebooks, vocab), or with `all_positions` every fed position's (rows, tokens, codebooks, vocab),
        a melody prefix's positions left out."""
        if input_ids.shape[-1] > 1 and self.position != 0:
            raise ValueError("several tokens at once only as the first call of a window (the prefill)")
        if input_ids.shape[-1] > 1 or self.prefix is not None and self.position == 0:
            return self._run(input_ids, all_positions)  # a prefill: every op is big enough for every thread
        with small_ops_on_one_thread():  # a step: only the weights' and the cache's reads get every thread
            return self._run(input_ids, all_positions)

    def _run(self, input_ids: torch.Tensor, all_positions: bool) -> torch.Tensor:
        start = self.position
        decoder = self.decoder
        hidden = decoder.embed(input_ids, start + (self.prefix_length if start == 0 else 0))
        prefix_tokens = 0
        if start == 0 and self.prefix is not None:
            hidden = torch.cat([self.prefix + decoder.positions[: self.prefix_length], hidden], dim=1)
            prefix_tokens = self.prefix_length
        tokens = hidden.shape[1]
        end = start + tokens
        if end > self.length:
            raise ValueError(f"window of {self.length} positions is full")
        rows, hidden_size = self.rows, decoder.hidden_size
        guided = self.guided_rows
        # Of a prefill's last layer only the keys and values of every position are read again; the logits
        # want the last position alone, so past its self-attention the layer runs that one (~1/24 of a
        # musicgen-small prefill's products, and its last attention but one query)
        last_alone = len(decoder.layers) - 1 if tokens > 1 and not all_positions else None
        should_cancel = self.should_cancel if tokens > 1 else None  # a step is too short to need it
        for index, layer in enumerate(decoder.layers):  # linear_around: the norms, GELU and sums in one call
            if should_cancel is not None and should_cancel():
                raise CancelledError("cancelled during a prefill")
            qkv = linear_around(layer.qkv, hidden, norm=layer.self_norm)
            if index == last_alone:
                attended = self.self_attention(index, qkv, start, last_query_only=True)
                hidden, tokens = hidden[:, -1:], 1
            else:
                attended = self.self_attention(index, qkv, start)
            hidden = linear_around(layer.self_out, attended.transpose(1, 2).reshape(rows, tokens, hidden_size),
                                   residual=hidden)
            if guided:
                attended = self.cross_attention(index, linear_around(layer.cross_q, hidden[:guided], norm=layer.cross_norm))
                hidden[:guided] += linear_around(layer.cross_out, attended.transpose(1, 2).reshape(guided, tokens, hidden_size))
            hidden = linear_around(layer.fc2, linear_around(layer.fc1, hidden, norm=layer.ffn_norm, gelu=True),
                                   residual=hidden)
        self.position = end
        return decoder.logits(hidden[:, prefix_tokens:] if all_positions else hidden[:, -1])

    def self_attention(self, index: int, qkv: torch.Tensor, start: int, last_query_only: bool = False) -> torch.Tensor:
        """Append layer `index`'s keys and values at `start` to the cache; attend over the cache so far.
        `qkv`: (rows, tokens, 3 x hidden) -> (rows, heads, tokens, head dim), or with `last_query_only`
        the last token's attention alone (rows, heads, 1, head dim)."""
        rows, tokens = qkv.shape[:2]
        if tokens == 1 and self.decoder.native_attention:
            return attend_one_query(qkv, self.keys[index], self.values[index], start, self.decoder.num_heads)
        projections = qkv
        qkv = qkv.view(rows, tokens, 3, self.decoder.num_heads, self.decoder.head_dim).permute(2, 0, 3, 1, 4)
        end = start + tokens
        self.keys[index, :, :, start:end] = qkv[1]
        self.values[index, :, :, start:end] = qkv[2]
        keys, values = self.keys[index, :, :, :end], self.values[index, :, :, :end]
        if keys.dtype != qkv.dtype:  # an fp16 cache: a prefill (from position 0) attends with its own fp32
            # keys and values; a step without native attention (tests) with the cache widened
            keys, values = (qkv[1], qkv[2]) if start == 0 else (keys.to(qkv.dtype), values.to(qkv.dtype))
        if tokens == 1 and self.decoder.precision == "int8":
            if end < THREADED_ATTENTION_POSITIONS:
                return one_query_attention(qkv[0], keys, values)
            return on_every_thread(one_query_attention, qkv[0], keys, values)
        if (start == 0 and tokens > 1 and not last_query_only and self.decoder.native_prefill_attention
                and causal_attention_applies(projections, self.decoder.head_dim)):  # fast mode's prefill
            return attend_causally(projections, self.decoder.num_heads)
        if last_query_only:  # the last position sees every key: no mask
            return on_every_thread(F.scaled_dot_product_attention, qkv[0][:, :, -1:], keys, values)
        return on_every_thread(F.scaled_dot_product_attention, qkv[0], keys, values, is_causal=tokens > 1)

    def cross_attention(self, index: int, query: torch.Tensor) -> torch.Tensor:
        """The guided rows' attention to the text: (guided rows, tokens, hidden) -> (guided rows, heads, tokens, head dim)."""
        guided, tokens = query.shape[:2]
        if tokens == 1 and self.native_cross_attention:
            return attend_to_text(query, self.cross_keys[index], self.cross_values[index])
        query = query.view(guided, tokens, self.decoder.num_heads, self.decoder.head_dim).transpose(1, 2)
        return F.scaled_dot_product_attention(
            query, self.cross_keys[index], self.cross_values[index], attn_mask=self.cross_mask
        )

    def static_step(self, input_ids: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
        """One token per row at the position held in a 0-d tensor, with fixed shapes throughout.

        Same result as `__call__` for one token, but every tensor keeps its shape from step to step
        (the cache is masked, not sliced; the position is data, not a Python int), which is what a
        CUDA graph needs. Does not advance `self.position`.
        """
        decoder = self.decoder
        rows, hidden_size, heads, head_dim = self.rows, decoder.hidden_size, decoder.num_heads, decoder.head_dim
        guided = self.guided_rows
        where = position.view(1)
        hidden = F.embedding(input_ids[:, 0], decoder.embeddings[0])
        for codebook in range(1, decoder.num_codebooks):
            hidden = hidden + F.embedding(input_ids[:, codebook], decoder.embeddings[codebook])
        hidden = hidden + decoder.positions.index_select(0, where)
        visible = (torch.arange(self.length, device=position.device) <= position).view(1, 1, 1, -1)
        for index, layer in enumerate(decoder.layers):
            qkv = layer.qkv(layer.self_norm(hidden)).view(rows, 1, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
            self.keys[index].index_copy_(2, where, qkv[1])
            self.values[index].index_copy_(2, where, qkv[2])
            attended = F.scaled_dot_product_attention(qkv[0], self.keys[index], self.values[index], attn_mask=visible)
            hidden = hidden + layer.self_out(attended.transpose(1, 2).reshape(rows, 1, hidden_size))
            if guided:
                query = layer.cross_q(layer.cross_norm(hidden[:guided])).view(guided, 1, heads, head_dim).transpose(1, 2)
                attended = F.scaled_dot_product_attention(
                    query, self.cross_keys[index], self.cross_values[index], attn_mask=self.cross_mask
                )
                hidden[:guided] += layer.cross_out(attended.transpose(1, 2).reshape(guided, 1, hidden_size))
            hidden = hidden + layer.fc2(F.gelu(layer.fc1(layer.ffn_norm(hidden))))
        return decoder.logits(hidden[:, -1])


def one_query_attention(query: torch.Tensor, keys: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(head dim)) v for one query position, as two batched matmuls.

    PyTorch's CPU `scaled_dot_product_attention` (a flash-attention kernel, built for many queries)
    read a long cache at a third of these matmuls' speed for one query: 121 vs 45 ms per step over
    24 layers at 1500 positions (2 cores, AVX2, load ~6); equal at 400. Same maths to float
    rounding, so fast mode uses it; exact mode keeps SDPA, the reference's own op, for equal codes.
    """
    scores = torch.matmul(query * query.shape[-1] ** -0.5, keys.transpose(-1, -2))
    return torch.matmul(scores.softmax(dim=-1), values)
