"""Load a Stable Audio 3 pipeline (diffusers format: a local folder, a downloaded model or a built-in
random model) and the inpainting and audio-to-audio pipelines that share its weights.

safetensors only, never remote code. fp32 on the CPU and MPS (diffusers' notes: fp16 on MPS makes
noise), fp16 on CUDA.
"""

from dataclasses import dataclass
from pathlib import Path

import torch

from bridge import paths
from bridge.engine.random_model_folder import is_random_model
from bridge.engine.stable_audio.family import checkpoint_folder, folder_pipeline, not_downloaded_message
from bridge.engine.stable_audio.open_random_model import OPEN_ARCHITECTURES, save_random_stable_audio_open
from bridge.engine.stable_audio.random_models import ARCHITECTURES, save_random_stable_audio
from bridge.errors import ModelError

RANDOM_MODELS = (*ARCHITECTURES, *OPEN_ARCHITECTURES)
# model_index.json `_class_name`s this family runs.
SA3_PIPELINE = "StableAudio3Pipeline"
STABLE_AUDIO_OPEN_PIPELINE = "StableAudioPipeline"


@dataclass
class LoadedStableAudio:
    model_id: str
    text_to_audio: object  # diffusers StableAudio3Pipeline
    inpaint: object  # StableAudio3InpaintPipeline over the same modules
    audio_to_audio: object  # StableAudio3AudioToAudioPipeline over the same modules
    device: torch.device
    dtype: torch.dtype
    is_random: bool

    @property
    def sample_rate(self) -> int:
        return int(self.text_to_audio.vae.config.sampling_rate)

    @property
    def audio_channels(self) -> int:
        return int(self.text_to_audio.vae.config.audio_channels)

    @property
    def samples_per_latent_frame(self) -> int:
        return int(self.text_to_audio.vae.downsampling_ratio)

    @property
    def max_seconds(self) -> float:
        """The longest clip the model is conditioned for: its duration embedder's clamp."""
        return float(self.text_to_audio.duration_embedder.config.max_val)


def resolve_checkpoint(model_id: str) -> Path:
    """The diffusers folder for `model_id`; raise ModelError when there is none Segue can load."""
    if model_id in RANDOM_MODELS:
        folder = paths.models_dir() / f"segue-{model_id}"
        if not is_random_model(folder):
            save = save_random_stable_audio_open if model_id in OPEN_ARCHITECTURES else save_random_stable_audio
            save(model_id, folder)
        return folder
    folder = checkpoint_folder(model_id)
    if folder is None:
        raise ModelError(not_downloaded_message(model_id))
    if folder_pipeline(folder) not in (SA3_PIPELINE, STABLE_AUDIO_OPEN_PIPELINE):
        raise ModelError(
            f"{model_id} is not a Stable Audio model in diffusers format "
            f"(no {SA3_PIPELINE} or {STABLE_AUDIO_OPEN_PIPELINE} in model_index.json)"
        )
    return folder


def load_stable_audio(model_id: str, device: str = "auto") -> LoadedStableAudio:
    """Load the three pipelines on `device`; raise ModelError with a producer-readable reason."""
    import diffusers
    from diffusers import StableAudio3AudioToAudioPipeline, StableAudio3InpaintPipeline, StableAudio3Pipeline

    from bridge.engine.musicgen.loading import resolve_device

    target = resolve_device(device)
    folder = resolve_checkpoint(model_id)
    diffusers.utils.logging.set_verbosity_error()
    diffusers.utils.logging.disable_progress_bar()
    dtype = torch.float16 if target.type == "cuda" else torch.float32
    if folder_pipeline(folder) == STABLE_AUDIO_OPEN_PIPELINE:
        from bridge.engine.stable_audio.open_pipeline import load_stable_audio_open

        return load_stable_audio_open(model_id, folder, target, dtype)
    try:
        pipeline = StableAudio3Pipeline.from_pretrained(folder, use_safetensors=True, dtype=dtype)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as error:
        first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelError(f"{model_id} is not a loadable Stable Audio 3 checkpoint: {first_line}") from None
    pipeline.to(target)
    inpaint = StableAudio3InpaintPipeline(**pipeline.components)
    audio_to_audio = StableAudio3AudioToAudioPipeline(**pipeline.components)
    for pipe in (pipeline, inpaint, audio_to_audio):
        pipe.set_progress_bar_config(disable=True)
    return LoadedStableAudio(
        model_id=model_id,
        text_to_audio=pipeline,
        inpaint=inpaint,
        audio_to_audio=audio_to_audio,
        device=target,
        dtype=dtype,
        is_random=is_random_model(folder),
    )
