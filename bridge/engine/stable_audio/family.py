"""Which models the Stable Audio family runs and what it can be asked, checked without loading torch.

The family claims the built-in random models, Stability's Stable Audio ids and any diffusers folder
whose model_index.json names a Stable Audio pipeline (a converted checkpoint or a downloaded one).
"""

import json
from pathlib import Path

from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.open_random_model import OPEN_ARCHITECTURES, TINY_OPEN_MAX_SECONDS
from bridge.engine.stable_audio.random_models import ARCHITECTURES, TINY_MAX_SECONDS
from bridge.errors import InvalidParameterError

HUB_PREFIX = "stabilityai/stable-audio"
# SA3's duration embedder clamps at 384 s (diffusers' StableAudio3DurationEmbedder.max_val).
SA3_MAX_SECONDS = 384.0
# Stable Audio Open 1.0's window: 1024 latent frames x 2048 samples at 44.1 kHz = 47.55 s, floored.
OPEN_MAX_SECONDS = 47.5


def folder_pipeline(folder: str | Path) -> str | None:
    """The `_class_name` in a diffusers folder's model_index.json, or None when it is not one."""
    try:
        index = Path(folder).expanduser() / "model_index.json"
        return str(json.loads(index.read_text(encoding="utf-8")).get("_class_name"))
    except (OSError, ValueError, AttributeError):
        return None


def is_stable_audio_open(model_id: str) -> bool:
    """Stable Audio Open (diffusers' StableAudioPipeline): text to audio and variations, no inpainting."""
    return (
        model_id in OPEN_ARCHITECTURES
        or "stable-audio-open" in model_id.lower()
        or folder_pipeline(model_id) == "StableAudioPipeline"
    )


def cannot_continue_message(model_id: str) -> str:
    return f"{model_id} cannot continue audio (Stable Audio Open has no inpainting); use a Stable Audio 3 model or MusicGen"


def claims(model_id: str) -> bool:
    if model_id in ARCHITECTURES or model_id in OPEN_ARCHITECTURES or model_id.lower().startswith(HUB_PREFIX):
        return True
    return (folder_pipeline(model_id) or "").startswith("StableAudio")


def max_seconds(model_id: str) -> float:
    if model_id in ARCHITECTURES:
        return TINY_MAX_SECONDS
    if model_id in OPEN_ARCHITECTURES:
        return TINY_OPEN_MAX_SECONDS
    if is_stable_audio_open(model_id):
        return OPEN_MAX_SECONDS
    return _converted_max_seconds(model_id) or SA3_MAX_SECONDS


def _converted_max_seconds(model_id: str) -> float | None:
    """The duration clamp of a converted folder (the small models' differs from Medium's), read without torch."""
    folder = checkpoint_folder(model_id)
    if folder is None:
        return None
    try:
        config = json.loads((folder / "duration_embedder" / "config.json").read_text(encoding="utf-8"))
        return float(config["max_val"])
    except (TypeError, OSError, ValueError, KeyError):
        return None


def checkpoint_folder(model_id: str) -> Path | None:
    """The folder `model_id` names, or the one Segue downloaded it to; None when there is neither."""
    from bridge.models.store import installed_model_dir

    local = Path(model_id).expanduser()
    return local if local.is_dir() else installed_model_dir(model_id)


def missing_checkpoint(model_id: str) -> str | None:
    """Why `model_id` cannot load here (it must be downloaded first), or None: a built-in random model, a
    folder or a download Segue finished. Stability's ids are not fetched at load: SA3 is converted at download."""
    if model_id in ARCHITECTURES or model_id in OPEN_ARCHITECTURES or checkpoint_folder(model_id) is not None:
        return None
    return not_downloaded_message(model_id)


def not_downloaded_message(model_id: str) -> str:
    if "stable-audio-open" in model_id.lower():
        return f"{model_id} is not downloaded: segue models download {model_id}"
    return (
        f"{model_id} is not downloaded: run `segue models download {model_id}` (it converts Stability's "
        "format once), or pass a converted folder with --model"
    )


def check(request: GenerationRequest) -> None:
    """Raise InvalidParameterError for what this family cannot do with `request` in one pass."""
    if request.prompt_codes is not None:
        raise InvalidParameterError(f"{request.model} cannot continue from MusicGen codes; give the audio instead")
    if request.has_melody:
        raise InvalidParameterError(
            f"{request.model} takes no melody; use a melody model (e.g. facebook/musicgen-melody) to follow one"
        )
    if request.is_continuation and is_stable_audio_open(request.model):
        raise InvalidParameterError(cannot_continue_message(request.model))
    longest = max_seconds(request.model)
    if request.init_audio_path is None and request.duration_seconds() > longest:
        raise InvalidParameterError(
            f"{request.model} makes at most {longest:g} s in one pass, got {request.duration_seconds():g} s: "
            f"ask for {longest:g} s or less"
        )


def load(model_id: str, device: str):
    from bridge.engine.stable_audio.generator import StableAudioGenerator
    from bridge.engine.stable_audio.loading import load_stable_audio
    from bridge.engine.stable_audio.open_generator import StableAudioOpenGenerator
    from bridge.engine.stable_audio.open_pipeline import LoadedStableAudioOpen

    loaded = load_stable_audio(model_id, device)
    return StableAudioOpenGenerator(loaded) if isinstance(loaded, LoadedStableAudioOpen) else StableAudioGenerator(loaded)
