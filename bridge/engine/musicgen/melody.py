"""MusicGen-Melody: the melody a clip follows, fitted to the clip's bars and turned into the decoder's prefix.

A melody model reads, before its first audio token, a prefix of `chroma_length` (235) projected
chroma frames covering 30 s, then the projected text (audiocraft's "prepend" fuser; transformers'
`MusicgenMelodyForConditionalGeneration`). It has no cross-attention. With guidance, the
unconditional rows read one-hot C chroma (the models' "no melody" input) and zero text.

The melody is laid on the clip's timeline, fitted to its bars (bridge/engine/melody_timeline.py).
Each 30 s generation window reads the 30 s of that timeline it covers
(audiocraft loops the melody the same way for long clips, audiocraft/models/musicgen.py
`_generate_tokens`); the part of a window before the new material (an audio prompt being continued)
reads the prompt's own chroma, so the model hears the music it continues as it is.
"""

import math

import numpy as np
import torch

from bridge.engine.catalog import no_melody_message
from bridge.engine.melody_timeline import MelodyTimeline, bar_samples_of, fit_melody, load_melody, to_mono
from bridge.engine.musicgen.chroma import chroma_frames
from bridge.engine.musicgen.codec import decode_codes
from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.sampling import Conditioning
from bridge.engine.request import GenerationRequest
from bridge.errors import InvalidParameterError

# The melody models were trained on 30 s segments: their chroma prefix always spans 30 s.
MELODY_WINDOW_SECONDS = 30.0


def check_melody_request(loaded: LoadedModel, request: GenerationRequest) -> None:
    """A melody for a model that takes none is a mistake the producer should hear about, not silently drop."""
    if request.has_melody and not loaded.takes_melody:
        raise InvalidParameterError(no_melody_message(loaded.model_id))


class MelodyConditioner:
    """The conditioning of each generation window of one request on a melody model."""

    def __init__(self, loaded: LoadedModel, text: Conditioning, timeline: MelodyTimeline) -> None:
        self.loaded, self.text, self.timeline = loaded, text, timeline

    def for_window(self, start_sample: int) -> Conditioning:
        """The prefix of the window whose first position is `start_sample` of the timeline."""
        return melody_prefix(self.loaded, self.text, window_chroma(self.loaded, self.timeline, start_sample))


def melody_conditioner(
    loaded: LoadedModel,
    request: GenerationRequest,
    text: Conditioning,
    clip_samples: int,
    prompt_audio: np.ndarray | None,
    prompt_codes: torch.Tensor | None,
) -> MelodyConditioner | None:
    """For a melody model, its per-window conditioning (None for other models)."""
    if not loaded.takes_melody:
        return None
    if prompt_audio is None and prompt_codes is not None and request.has_melody:
        prompt_audio = decode_codes(loaded, prompt_codes[None])[0]  # continuing a take: hear its codes
    return MelodyConditioner(loaded, text, melody_timeline(loaded, request, clip_samples, prompt_audio))


def melody_timeline(
    loaded: LoadedModel, request: GenerationRequest, clip_samples: int, prompt_audio: np.ndarray | None
) -> MelodyTimeline:
    """The timeline of a request on a melody model (its melody fitted to the clip's bars)."""
    rate = loaded.sample_rate
    melody = load_melody(request, rate)
    if melody is not None:
        melody = fit_melody(melody, clip_samples, bar_samples_of(request, rate))
    before = None if prompt_audio is None else to_mono(prompt_audio)
    return MelodyTimeline(melody, before, rate)


def window_chroma(loaded: LoadedModel, timeline: MelodyTimeline, start_sample: int) -> np.ndarray | None:
    """One-hot chroma (chroma_length, 12) of the 30 s of timeline from `start_sample`; None without a melody.

    Without a melody every row reads the null chroma, even over a prompt, as in transformers.
    """
    if timeline.melody is None:
        return None
    window = timeline.window_audio(start_sample, round(MELODY_WINDOW_SECONDS * timeline.sample_rate))
    chroma = chroma_frames(window, timeline.sample_rate)
    return _fit_frames(chroma, int(loaded.model.config.chroma_length))


def null_chroma(loaded: LoadedModel) -> np.ndarray:
    """The models' "no melody" input: one-hot C (transformers and audiocraft use the same)."""
    chroma = np.zeros((int(loaded.model.config.chroma_length), int(loaded.model.config.num_chroma)), np.float32)
    chroma[:, 0] = 1.0
    return chroma


@torch.inference_mode()
def melody_prefix(loaded: LoadedModel, text: Conditioning, chroma: np.ndarray | None) -> Conditioning:
    """The decoder prefix of every row: projected chroma then the text states of `text` (encode_text's).

    Guided rows read `chroma` (or the null chroma), unguided rows the null chroma and zero text.
    """
    model = loaded.model
    null = torch.as_tensor(null_chroma(loaded), device=loaded.device, dtype=loaded.dtype)
    given = null if chroma is None else torch.as_tensor(chroma, device=loaded.device, dtype=loaded.dtype)
    rows = [given] * text.batch_size + ([null] * text.batch_size if text.guided else [])
    audio_states = torch.stack(rows)
    if hasattr(model, "audio_enc_to_dec_proj"):
        audio_states = model.audio_enc_to_dec_proj(audio_states)
    prefix = torch.cat([audio_states, text.hidden_states], dim=1)
    mask = torch.ones(prefix.shape[:2], dtype=text.attention_mask.dtype, device=prefix.device)
    return Conditioning(prefix, mask, text.batch_size, text.guided, prefix=True)


def _fit_frames(chroma: np.ndarray, length: int) -> np.ndarray:
    """Repeat or cut to `length` frames, as the model does with a chroma of another length."""
    repeats = math.ceil(length / len(chroma))
    return np.tile(chroma, (repeats, 1))[:length]
