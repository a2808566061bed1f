"""Segue's own MusicGen sampling loop.

Why not `model.generate()`: in transformers 5.x it prefills twice, ignores a static cache, does not
forward streamers and returns no codes. This loop does one prefill, then one decoder step per
position, and hands every step to a callback (progress, streaming decode, cancellation).

The delay pattern: codebook row j is delayed by d_j positions (d_j = j for mono models, j // 2 for
stereo ones, whose left/right codebooks are interleaved). Frame f of row j sits at position
f + 1 + d_j of the sequence; position 0 is the start token. A sequence holding T prompt frames and
N new frames therefore has L = 1 + T + N + D positions (D = largest delay) and takes N + D decoder
passes. Positions holding padding or prompt codes are fixed; the rest are sampled.
"""

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.prefill import prefill_by_row
from bridge.engine.musicgen.step_threads import small_ops_on_one_thread

if TYPE_CHECKING:
    from bridge.engine.musicgen.fast_decoder import FastDecoder
    from bridge.engine.musicgen.prefill import PromptRows


@dataclass(frozen=True)
class SamplingParams:
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg: float = 3.0
    greedy: bool = False

    @property
    def guided(self) -> bool:
        return self.cfg > 1.0


@dataclass
class Conditioning:
    """Projected, masked text-encoder states for the decoder's cross-attention.

    With guidance, the batch is [conditional rows; unconditional rows] (zero states, zero mask), as
    transformers' MusicGen `generate` builds it.
    """

    hidden_states: torch.Tensor
    attention_mask: torch.Tensor
    batch_size: int
    guided: bool
    # True for MusicGen-Melody: `hidden_states` (every row) are a prefix the decoder reads before the
    # first audio token, chroma then text (bridge/engine/musicgen/melody.py), not cross-attention states.
    prefix: bool = False


StepCallback = Callable[[int, int, torch.Tensor], None]


def codebook_delays(loaded: LoadedModel) -> list[int]:
    stereo = loaded.audio_channels == 2
    return [row // 2 if stereo else row for row in range(loaded.num_codebooks)]


@torch.inference_mode()
def text_states(loaded: LoadedModel, prompt: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One text's projected, masked encoder states (1, tokens, hidden) and its mask (1, tokens)."""
    model = loaded.model
    input_ids, attention_mask = (tensor.to(loaded.device) for tensor in loaded.tokenizer([prompt]))
    hidden = model.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
    hidden = getattr(hidden, "last_hidden_state", hidden)  # transformers' encoder (reference.py) returns outputs
    if hasattr(model, "enc_to_dec_proj"):
        hidden = model.enc_to_dec_proj(hidden)
    return hidden * attention_mask[..., None].to(hidden.dtype), attention_mask


@torch.inference_mode()
def encode_text(
    loaded: LoadedModel, prompt: str, batch_size: int, guided: bool,
    states: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Conditioning:
    """The conditioning of `batch_size` takes of one text: its encoder states (`states`, from text_states,
    else encoded now; every take has the same text, so the encoder runs once) repeated per take, then
    with guidance as many unconditional rows: zero states under a zero mask, as transformers' MusicGen
    `generate` builds them (its zeros through the projection are masked to zero)."""
    hidden, attention_mask = states if states is not None else text_states(loaded, prompt)
    hidden, attention_mask = hidden.expand(batch_size, -1, -1), attention_mask.expand(batch_size, -1)
    if guided:
        hidden = torch.cat([hidden, torch.zeros_like(hidden)], dim=0)
        attention_mask = torch.cat([attention_mask, torch.zeros_like(attention_mask)], dim=0)
    return Conditioning(hidden.contiguous(), attention_mask.contiguous(), batch_size, guided)


def build_sequence(
    loaded: LoadedModel, prompt_codes: torch.Tensor | None, batch_size: int, new_frames: int
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Return (sequence, fixed, first position to predict) laid out in the delay pattern.

    `prompt_codes` has shape (batch, codebooks, frames) or is None.
    """
    delays = codebook_delays(loaded)
    prompt_frames = 0 if prompt_codes is None else prompt_codes.shape[-1]
    length = 1 + prompt_frames + new_frames + max(delays)
    pad = loaded.model.generation_config.pad_token_id
    sequence = torch.full((batch_size, len(delays), length), pad, dtype=torch.long, device=loaded.device)
    fixed = torch.ones_like(sequence, dtype=torch.bool)
    for row, delay in enumerate(delays):
        first = 1 + delay
        if prompt_frames:
            sequence[:, row, first : first + prompt_frames] = prompt_codes[:, row].to(loaded.device)
        fixed[:, row, first + prompt_frames : first + prompt_frames + new_frames] = False
    return sequence, fixed, prompt_frames + 1


def undelay(loaded: LoadedModel, sequence: torch.Tensor, frames: int) -> torch.Tensor:
    """Frames 0..frames-1 of every row, shape (batch, codebooks, frames)."""
    rows = [sequence[:, row, 1 + delay : 1 + delay + frames] for row, delay in enumerate(codebook_delays(loaded))]
    return torch.stack(rows, dim=1)


def guide(logits: torch.Tensor, batch: int, params: SamplingParams) -> torch.Tensor:
    """(rows, codebooks, vocab) decoder logits -> (batch, codebooks, vocab) fp32 guided logits.

    In fp32 whatever the decoder's dtype, as transformers does (generation/utils.py casts each
    step's logits to fp32 before any logits processor, guidance included): on a GPU the decoder runs
    in fp16, and guidance's 3x difference in fp16 can change which token is the argmax, so "exact"
    would not mean the same on every device.
    """
    logits = logits.float().view(-1, batch, *logits.shape[1:])
    return logits[1] + (logits[0] - logits[1]) * params.cfg if logits.shape[0] == 2 else logits[0]


def process_logits(
    logits: torch.Tensor, params: SamplingParams, generators: list[torch.Generator] | None
) -> torch.Tensor:
    """Pick the next token of every (take, codebook) row. `logits`: (batch, codebooks, vocab), guided."""
    if params.greedy:
        return logits.argmax(dim=-1)
    logits = logits.float() / params.temperature
    if 0 < params.top_k < logits.shape[-1]:
        kth = torch.topk(logits, params.top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if 0.0 < params.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative - sorted_logits.softmax(dim=-1) > params.top_p  # keep the token that crosses top_p
        logits = logits.masked_fill(remove.scatter(-1, order, remove), float("-inf"))
    probs = logits.softmax(dim=-1)
    picks = [
        torch.multinomial(probs[take], 1, generator=None if generators is None else generators[take]).squeeze(-1)
        for take in range(probs.shape[0])
    ]
    return torch.stack(picks)


Runner = Callable[[torch.Tensor], torch.Tensor]


@torch.inference_mode()
def sample_codes(
    loaded: LoadedModel,
    conditioning: Conditioning,
    prompt_codes: torch.Tensor | None,
    new_frames: int,
    params: SamplingParams,
    generators: list[torch.Generator] | None = None,
    on_step: StepCallback | None = None,
    decoder: "FastDecoder | None" = None,
    kept: "PromptRows | None" = None,
) -> torch.Tensor:
    """Generate `new_frames` frames after `prompt_codes`; return all codes (batch, codebooks, frames).

    `on_step(step, total_steps, complete_codes)` runs after every decoder pass; complete_codes holds
    every frame whose codebooks are all known (prompt included). It may raise to stop generation.
    `decoder` runs the passes (bridge/engine/musicgen/fast_decoder.py); without one, the transformers
    modules of a reference model do (bridge/engine/musicgen/reference.py, tests). The decoder's prefill
    runs once per distinct row, reading prepared rows from `kept` and keeping the ones it computes
    there (bridge/engine/musicgen/prefill.py).
    """
    batch = conditioning.batch_size
    sequence, fixed, position = build_sequence(loaded, prompt_codes, batch, new_frames)
    length = sequence.shape[2]
    max_delay = max(codebook_delays(loaded))
    total_steps = length - position
    rows = 2 * batch if conditioning.guided else batch
    if decoder is None:
        from bridge.engine.musicgen.reference import reference_runner  # tests: imports transformers

        run = reference_runner(loaded, conditioning)
    else:
        run = decoder.start(
            conditioning.hidden_states, conditioning.attention_mask, batch, rows, length, prefix=conditioning.prefix
        )
    inputs = sequence[:, :, :position]
    for step in range(total_steps):
        decoded = prefill_by_row(run, conditioning, inputs, kept) if step == 0 and decoder is not None else None
        if decoded is None:
            decoded = run(inputs.repeat(2, 1, 1) if conditioning.guided else inputs)
        # Sampling works on a few thousand logits: the fast path keeps it off the sleeping threads.
        with small_ops_on_one_thread() if decoder is not None else contextlib.nullcontext():
            tokens = process_logits(guide(decoded, batch, params), params, generators)
            sequence[:, :, position] = torch.where(fixed[:, :, position], sequence[:, :, position], tokens)
            complete = None if on_step is None else undelay(loaded, sequence, max(0, position - max_delay))
        if on_step is not None:
            on_step(step + 1, total_steps, complete)
        inputs = sequence[:, :, position : position + 1]
        position += 1
    prompt_frames = 0 if prompt_codes is None else prompt_codes.shape[-1]
    return undelay(loaded, sequence, prompt_frames + new_frames)
