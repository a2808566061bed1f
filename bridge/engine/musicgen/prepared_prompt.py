"""Audio prompts prepared before their job, kept by their audio's hash and the model.

In Continue my track the source is known long before the producer presses Continue. What depends on
it alone can run meanwhile: the EnCodec encoding of the prompt, the prefill of the unguided
row (bridge/engine/musicgen/prefill.py) and the streaming decoder's pass over the prompt's frames
(codec.prompt_stream_state). Once a text is given too (the panel's, as it stands) the guided row of
that text is prefilled as well, kept for the last KEPT_TEXTS texts. A job whose audio prompt hashes
to a prepared one reuses all it finds; re-rolls of the same source reuse them too. The key covers the
audio's samples, shape, dtype and rate, the window kept of it and the model, so a different source or
model never hits; a guided row is found by its decoder and its text.
"""

import hashlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from bridge.engine.last_used import LastUsed
from bridge.engine.musicgen.prefill import PromptRows, RowSlot

if TYPE_CHECKING:
    from bridge.engine.musicgen.codec import PromptStreamState

# A prepared prompt holds its rows' keys/values: each ~40 MB for 8 s of musicgen-small (fp16 cache),
# ~80 MB where the cache is fp32.
KEPT_PROMPTS = 2
KEPT_TEXTS = 2  # guided rows per prompt: the text as it stands and the one before


def prompt_key(model_id: str, audio: np.ndarray, sample_rate: int, window_seconds: float | None) -> str:
    """The cache key of an audio prompt as the producer gave it (before resampling and cutting)."""
    digest = hashlib.blake2b(digest_size=20)
    audio = np.ascontiguousarray(audio)
    digest.update(f"{model_id}|{audio.shape}|{audio.dtype}|{sample_rate}|{window_seconds!r}|".encode())
    digest.update(memoryview(audio).cast("B"))
    return digest.hexdigest()


@dataclass
class PreparedPrompt:
    """An audio prompt at the model's rate, cut to whole frames, its codes and its prefilled rows."""

    audio: np.ndarray
    codes: torch.Tensor  # (codebooks, frames)
    # by decoder: its unguided row's prefill over the first window's context
    unguided: dict[str, RowSlot] = field(default_factory=dict)
    # by decoder and text: the guided row's, the last KEPT_TEXTS texts used (newest last)
    guided: LastUsed[tuple[str, str], RowSlot] = field(default_factory=lambda: LastUsed(KEPT_TEXTS))
    # the streaming decoder's state over these codes (codec.prompt_stream_state), once prepared
    stream: "PromptStreamState | None" = None

    def rows(self, decoder: str, text: str | None) -> PromptRows:
        """The slots a job with `text` on `decoder` reads and fills (text None: a guided slot not kept)."""
        unguided = self.unguided.setdefault(decoder, RowSlot())
        if text is None:
            return PromptRows(unguided)
        return PromptRows(unguided, self.guided.get_or_make((decoder, text), RowSlot))
