"""Load Stable Audio Open (diffusers' StableAudioPipeline: `stabilityai/stable-audio-open-1.0` or a folder
in its format, or the built-in `tiny-stable-audio-open`).

It has one pipeline: text to audio, and audio to audio through its `initial_audio_waveforms` (the
clip's latents plus noise at the sampler's highest noise level, which the generator lowers to make a
variation). No inpainting: it cannot continue audio.
"""

import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from bridge.engine.random_model_folder import is_random_model
from bridge.engine.stable_audio.loading import LoadedStableAudio
from bridge.errors import ModelError


@dataclass
class LoadedStableAudioOpen(LoadedStableAudio):
    """`text_to_audio` is a diffusers StableAudioPipeline; `inpaint` and `audio_to_audio` are None."""

    @property
    def samples_per_latent_frame(self) -> int:
        return int(self.text_to_audio.vae.hop_length)

    @property
    def window_frames(self) -> int:
        """Latent frames the pipeline always diffuses (the longest clip, silence-padded past the end)."""
        return int(self.text_to_audio.transformer.config.sample_size)

    @property
    def max_seconds(self) -> float:
        """The window (47.55 s for 1.0), floored to 0.1 s, within the seconds conditioner's range."""
        window = self.window_frames * self.samples_per_latent_frame / self.sample_rate
        return min(math.floor(window * 10) / 10, float(self.text_to_audio.projection_model.config.max_value))


def load_stable_audio_open(model_id: str, folder: Path, target: torch.device, dtype: torch.dtype) -> LoadedStableAudioOpen:
    """StableAudioPipeline from `folder` on `target`; ModelError with a producer-readable reason."""
    from diffusers import StableAudioPipeline

    # torchsde warns at every step that the sampler's last noise level (0) lies outside its Brownian
    # tree (sigma_min..sigma_max): diffusers' schedule ends there by design.
    warnings.filterwarnings("ignore", message="Should have", module="torchsde")
    try:
        pipeline = StableAudioPipeline.from_pretrained(folder, use_safetensors=True, dtype=dtype)
    except ImportError:
        raise ModelError(f"{model_id}'s sampler needs torchsde: pip install 'torchsde>=0.2.6,<0.3'") from None
    except (OSError, ValueError, KeyError, RuntimeError, TypeError, AttributeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"{model_id} is not a loadable Stable Audio Open checkpoint: {first_line}") from None
    pipeline.to(target)
    pipeline.set_progress_bar_config(disable=True)
    return LoadedStableAudioOpen(
        model_id=model_id, text_to_audio=pipeline, inpaint=None, audio_to_audio=None, device=target, dtype=dtype,
        is_random=is_random_model(folder),
    )
