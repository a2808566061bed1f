"""Turn a generated take into files a DAW can use: a WAV plus a JSON sidecar that can reproduce it."""

import json
import re
import time
from pathlib import Path

import numpy as np

from bridge import __version__
from bridge.audio.io import WAV_SUBTYPES, resample, write_audio_atomic, write_text_atomic
from bridge.engine.events import GenerationResult, Take
from bridge.errors import InvalidParameterError

SIDECAR_SUFFIX = ".json"


def clip_stem(result: GenerationResult, take: Take) -> str:
    """A readable, unique-enough file name: time, prompt words, seed."""
    words = re.sub(r"[^a-z0-9]+", "-", result.request.prompt.lower()).strip("-")[:40].strip("-") or "clip"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{stamp}-{words}-s{take.seed}"


def take_metadata(result: GenerationResult, take: Take, sample_rate: int, source: str | None) -> dict:
    request = result.request
    return {
        "segue_version": __version__,
        "model": result.model_id,
        "device": result.device,
        "quality": result.quality,
        "precision": result.precision,
        "kernel": result.kernel,
        "prompt": request.prompt,
        "seed": take.seed,
        "variation": take.index,
        "parameters": request.describe(),
        "source_file": source,
        "sample_rate": sample_rate,
        "model_sample_rate": result.sample_rate,
        "frames": int(take.audio.shape[0]),
        "seconds": take.audio.shape[0] / result.sample_rate,
        "channels": int(take.audio.shape[1]),
        "bpm": request.bpm,
        "signature": request.signature,
        "bars": request.bars,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "reproduce": "run the same parameters with the same seed (and variations count) on the same model",
    }


def write_take(
    result: GenerationResult,
    take: Take,
    out_dir: str | Path | None = None,
    path: str | Path | None = None,
    sample_rate: int | None = None,
    bit_depth: str = "float",
    include_prompt: bool = False,
) -> Path:
    """Write `take` as WAV (atomically) with a JSON sidecar beside it; return the WAV path.

    `path` names the file; otherwise a name is made inside `out_dir`. `bit_depth` is "float", "24"
    or "16". With `include_prompt` the audio prompt precedes the new material in the same file.
    """
    if bit_depth not in WAV_SUBTYPES:
        raise InvalidParameterError(f"bit depth must be one of {', '.join(WAV_SUBTYPES)}, got {bit_depth!r}")
    if path is None:
        if out_dir is None:
            raise InvalidParameterError("write_take needs a path or an output folder")
        path = Path(out_dir) / f"{clip_stem(result, take)}-{take.index + 1}.wav"
    path = Path(path)
    audio = take.audio
    if include_prompt and take.prompt_audio is not None:
        audio = np.concatenate([take.prompt_audio, audio], axis=0)
    rate = sample_rate or result.sample_rate
    audio = resample(audio, result.sample_rate, rate)
    if bit_depth != "float":
        audio = np.clip(audio, -1.0, 1.0)
    write_audio_atomic(path, audio, rate, WAV_SUBTYPES[bit_depth])
    metadata = take_metadata(result, take, rate, result.request.audio_path)
    metadata["includes_prompt"] = bool(include_prompt and take.prompt_audio is not None)
    metadata["file"] = path.name
    write_text_atomic(path.with_suffix(SIDECAR_SUFFIX), json.dumps(metadata, indent=2, default=str) + "\n")
    return path
