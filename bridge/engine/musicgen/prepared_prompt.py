"""Audio prompts prepared before the text is known, kept by their audio's hash and the model.

In Continue my track the source is known long before the producer presses Continue. What depends on
it alone can run meanwhile: the EnCodec encoding of the prompt, the prefill of the unguided
row (bridge/engine/musicgen/prefill.py) and the streaming decoder's pass over the prompt's frames
(codec.prompt_stream_state). A job whose audio prompt hashes to a prepared one reuses
both; re-rolls of the same source reuse them too. The key covers the audio's samples, shape, dtype
and rate, the window kept of it and the model, so a different source or model never hits.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from bridge.engine.musicgen.prefill import UnguidedSlot

if TYPE_CHECKING:
    from bridge.engine.musicgen.codec import PromptStreamState

# A prepared prompt holds its unguided row's keys/values: ~80 MB for 8 s of musicgen-small.
KEPT_PROMPTS = 2


def prompt_key(model_id: str, audio: np.ndarray, sample_rate: int, window_seconds: float | None) -> str:
    """The cache key of an audio prompt as the producer gave it (before resampling and cutting)."""
    digest = hashlib.blake2b(digest_size=20)
    audio = np.ascontiguousarray(audio)
    digest.update(f"{model_id}|{audio.shape}|{audio.dtype}|{sample_rate}|{window_seconds!r}|".encode())
    digest.update(memoryview(audio).cast("B"))
    return digest.hexdigest()


@dataclass
class PreparedPrompt:
    """An audio prompt at the model's rate, cut to whole frames, its codes and its unguided rows."""

    audio: np.ndarray
    codes: torch.Tensor  # (codebooks, frames)
    # by decoder precision: its unguided row's prefill over the first window's context
    unguided: dict[str, UnguidedSlot] = field(default_factory=dict)
    # the streaming decoder's state over these codes (codec.prompt_stream_state), once prepared
    stream: "PromptStreamState | None" = None

    def unguided_slot(self, precision: str) -> UnguidedSlot:
        return self.unguided.setdefault(precision, UnguidedSlot())


class PromptCache:
    """The last KEPT_PROMPTS prepared prompts of one loaded model, newest last."""

    def __init__(self, capacity: int = KEPT_PROMPTS) -> None:
        self.capacity = capacity
        self._prompts: OrderedDict[str, PreparedPrompt] = OrderedDict()

    def get(self, key: str) -> PreparedPrompt | None:
        prompt = self._prompts.get(key)
        if prompt is not None:
            self._prompts.move_to_end(key)
        return prompt

    def put(self, key: str, prompt: PreparedPrompt) -> PreparedPrompt:
        self._prompts[key] = prompt
        self._prompts.move_to_end(key)
        while len(self._prompts) > self.capacity:
            self._prompts.popitem(last=False)
        return prompt

    def __contains__(self, key: str) -> bool:
        return key in self._prompts

    def __len__(self) -> int:
        return len(self._prompts)
