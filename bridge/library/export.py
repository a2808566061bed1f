"""Export a clip, or a whole continuation chain, as a WAV ready to drop into the DAW.

The WAV is written at the session's sample rate and bit depth, next to a JSON sidecar with the
metadata of every clip in it (prompt, model, seed, parameters), so the export can be reproduced.
"""

import json
import re
from pathlib import Path

import numpy as np

from bridge.audio.io import match_channels, read_audio, resample, write_audio_atomic, write_text_atomic
from bridge.errors import AudioFileError, LibraryError
from bridge.library.clip import Clip
from bridge.library.files import SIDECAR_SUFFIX
from bridge.library.store import ClipLibrary
from bridge.paths import output_dir

BIT_DEPTHS = {16: "PCM_16", 24: "PCM_24", 32: "FLOAT"}
EXPORT_FORMAT = "segue-export"


def exports_dir() -> Path:
    return output_dir() / "exports"


def export_clip(
    library: ClipLibrary,
    clip_id: int,
    sample_rate: int,
    bit_depth: int = 24,
    destination: str | Path | None = None,
    chain: bool = False,
) -> Path:
    """Write clip `clip_id` (with `chain`: it and everything it continues, in order) as one WAV.

    `destination` is a folder or a .wav path (default: `output_dir()/exports`). Returns the WAV path.
    """
    if bit_depth not in BIT_DEPTHS:
        raise LibraryError(f"bit depth must be one of {', '.join(map(str, BIT_DEPTHS))}, got {bit_depth}")
    if not 8000 <= sample_rate <= 384000:
        raise LibraryError(f"sample rate must be 8000-384000 Hz, got {sample_rate}")
    clips = library.chain(clip_id) if chain else [library.get(clip_id)]
    parts = render_clips(clips, sample_rate)
    audio = np.concatenate(parts)
    path = _export_path(destination, clips[-1], chain)
    if BIT_DEPTHS[bit_depth] != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)  # integer PCM cannot hold overshoots: clip rather than wrap
    write_audio_atomic(path, audio, sample_rate, subtype=BIT_DEPTHS[bit_depth])
    write_text_atomic(path.with_suffix(SIDECAR_SUFFIX), json.dumps(
        _sidecar(library, clips, parts, sample_rate, bit_depth, path), indent=2, ensure_ascii=False) + "\n")
    return path


def render_clips(clips: list[Clip], sample_rate: int) -> list[np.ndarray]:
    """Each clip's audio at `sample_rate`, all with the largest channel count among them.

    A clip written with its audio prompt in front (`include_prompt`) repeats the end of the clip
    before it; in a chain that repeat is left out.
    """
    parts = []
    for position, clip in enumerate(clips):
        try:
            audio, rate = read_audio(clip.file_path)
        except AudioFileError as error:
            raise LibraryError(f"cannot export clip {clip.id}: {error}") from None
        if position > 0:
            audio = audio[round(float(clip.params.get("includes_prompt_seconds") or 0.0) * rate):]
        parts.append(resample(audio, rate, sample_rate))
    channels = max(part.shape[1] for part in parts)
    return [match_channels(part, channels) for part in parts]


def _export_path(destination: str | Path | None, clip: Clip, chain: bool) -> Path:
    if destination is not None and Path(destination).suffix.lower() == ".wav":
        return Path(destination)
    folder = Path(destination) if destination is not None else exports_dir()
    slug = re.sub(r"[^a-z0-9]+", "-", clip.title.lower()).strip("-")[:40].rstrip("-") or "clip"
    return folder / f"{slug}-{clip.uid[:8]}{'-chain' if chain else ''}.wav"


def _sidecar(
    library: ClipLibrary, clips: list[Clip], parts: list[np.ndarray], sample_rate: int, bit_depth: int, path: Path
) -> dict:
    segments, start_frame = [], 0
    for clip, part in zip(clips, parts, strict=True):
        segments.append({"uid": clip.uid, "start_seconds": start_frame / sample_rate,
                         "duration_seconds": part.shape[0] / sample_rate})
        start_frame += part.shape[0]
    return {
        "format": EXPORT_FORMAT,
        "audio_file": path.name,
        "sample_rate": sample_rate,
        "bit_depth": bit_depth,
        "channels": int(parts[0].shape[1]),
        "duration_seconds": start_frame / sample_rate,
        "segments": segments,
        "clips": [clip.metadata(library.parent_uid(clip)) for clip in clips],
    }
