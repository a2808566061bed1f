"""Reading, writing, resampling and channel matching of audio arrays.

Arrays are always float32 of shape (frames, channels). Files are written atomically: a clip is
either complete on disk or not there at all.
"""

import os
from pathlib import Path

import numpy as np
import soundfile
import soxr

from bridge.atomic_files import replacing
from bridge.errors import AudioFileError, InvalidParameterError

WAV_SUBTYPES = {"float": "FLOAT", "24": "PCM_24", "16": "PCM_16"}


def as_frames(audio: np.ndarray) -> np.ndarray:
    """View any mono (frames,) or (frames, channels) array as float32 (frames, channels)."""
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 1:
        audio = audio[:, None]
    if audio.ndim != 2 or audio.shape[1] == 0:
        raise InvalidParameterError(f"audio must have shape (frames,) or (frames, channels), got {audio.shape}")
    return audio


def read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """Read any format soundfile reads into float32 (frames, channels) and its sample rate.

    Raises AudioFileError for a missing, unreadable or empty file.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"no audio file at {path}")
    try:
        audio, sample_rate = soundfile.read(path, dtype="float32", always_2d=True)
    except soundfile.LibsndfileError as error:
        raise AudioFileError(f"cannot read {path.name} as audio: {error.error_string.rstrip('.')}") from None
    except (RuntimeError, ValueError) as error:
        raise AudioFileError(f"cannot read {path.name} as audio: {error}") from None
    if audio.shape[0] == 0:
        raise AudioFileError(f"{path.name} contains no audio (zero length)")
    if not np.isfinite(audio).all():
        raise AudioFileError(f"{path.name} contains invalid samples (NaN or infinity)")
    return audio, int(sample_rate)


def resample(audio: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """High-quality resampling with soxr; returns (frames, channels) float32."""
    audio = as_frames(audio)
    if from_rate == to_rate:
        return audio
    if from_rate <= 0 or to_rate <= 0:
        raise InvalidParameterError(f"sample rates must be positive, got {from_rate} and {to_rate}")
    return np.ascontiguousarray(soxr.resample(audio, from_rate, to_rate, quality="HQ"), dtype=np.float32)


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """Mix down to mono by averaging, or spread mono to every channel."""
    audio = as_frames(audio)
    have = audio.shape[1]
    if have == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=1, keepdims=True)
    if have == 1:
        return np.repeat(audio, channels, axis=1)
    raise InvalidParameterError(f"cannot convert {have}-channel audio to {channels} channels")


def write_audio_atomic(
    path: str | os.PathLike, audio: np.ndarray, sample_rate: int, subtype: str = "FLOAT"
) -> Path:
    """Write a WAV (or any soundfile format, by extension) that appears complete or not at all."""
    with replacing(path) as temporary:
        soundfile.write(temporary, as_frames(audio), sample_rate, subtype=subtype)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    with replacing(path, suffix=".tmp") as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)
