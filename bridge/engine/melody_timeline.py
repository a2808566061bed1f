"""A melody on a clip's timeline: fitted to the clip's bars, read window by window (no torch: the
panel and Continue my track use it too).

The melody's start is the clip's first bar line; it is cut to the clip's length or, when shorter,
looped in whole bars, so a 2-bar chord loop under an 8-bar clip plays four times on the bar grid.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.audio.io import read_audio, resample
from bridge.engine.request import GenerationRequest
from bridge.errors import AudioFileError
from bridge.musical_time import TimeSignature, bars_to_seconds


def to_mono(audio: np.ndarray) -> np.ndarray:
    """(samples,) or (samples, channels) -> (samples,) float32, channels averaged."""
    audio = np.asarray(audio, dtype=np.float32)
    return audio if audio.ndim == 1 else audio.mean(axis=1)


@dataclass
class MelodyTimeline:
    """What the chroma of each generation window is computed from, mono at the model rate.

    `melody` (samples,) starts at the first new sample and repeats forever after its end;
    `before` (samples,) is the audio prompt that precedes the new material, or None.
    """

    melody: np.ndarray | None
    before: np.ndarray | None
    sample_rate: int

    def window_audio(self, start_sample: int, length_samples: int) -> np.ndarray:
        """Audio of the timeline from `start_sample` (0 = first new sample; negative = in the prompt)."""
        positions = np.arange(start_sample, start_sample + length_samples)
        audio = np.zeros(length_samples, dtype=np.float32)
        if self.melody is not None:
            after = positions >= 0
            audio[after] = self.melody[positions[after] % len(self.melody)]
        if self.before is not None:
            inside = (positions < 0) & (positions >= -len(self.before))
            audio[inside] = self.before[positions[inside] + len(self.before)]
        return audio


def read_melody_file(path: str | Path) -> tuple[np.ndarray, int]:
    """read_audio, with errors that say the melody is at fault ("melody: cannot read x.wav as audio ...")."""
    try:
        return read_audio(path)
    except AudioFileError as error:
        raise AudioFileError(f"melody: {error}") from None


def load_melody(request: GenerationRequest, sample_rate: int) -> np.ndarray | None:
    """The request's melody as mono float32 at `sample_rate`, or None when it has none."""
    if request.melody_path is not None:
        audio, rate = read_melody_file(request.melody_path)
    elif request.melody is not None:
        audio, rate = np.asarray(request.melody, dtype=np.float32), int(request.melody_sample_rate)
    else:
        return None
    if audio.size == 0:
        raise AudioFileError("the melody is empty")
    return to_mono(resample(audio, rate, sample_rate))


def fit_melody(melody: np.ndarray, clip_samples: int, bar_samples: float | None) -> np.ndarray:
    """Cut `melody` to `clip_samples`, or loop it up to that length: in whole bars when it holds one or more.

    A melody of 2.5 bars under a 4-bar clip loops its first 2 bars, so every repeat starts on a bar
    line; one shorter than a bar (or a clip measured in seconds) loops as it is.
    """
    if len(melody) >= clip_samples:
        return melody[:clip_samples]
    unit = melody
    if bar_samples is not None and len(melody) >= bar_samples:
        unit = melody[: round(math.floor(len(melody) / bar_samples) * bar_samples)]
    return np.resize(unit, clip_samples)


def bar_samples_of(request: GenerationRequest, sample_rate: int) -> float | None:
    """Samples per bar of a request with a tempo, or None (a length in seconds without one)."""
    if request.bpm is None:
        return None
    return bars_to_seconds(1, request.bpm, request.time_signature) * sample_rate


def melody_with_lead_in(
    melody: np.ndarray, sample_rate: int, bars: int, bpm: float, signature: TimeSignature, lead_in_seconds: float
) -> np.ndarray:
    """`bars` bars of `melody` (looped in whole bars) preceded by `lead_in_seconds` of its own end.

    A continuation's new material can start a little before the bar line (Continue my track's codes
    prompt overlaps the take it continues); the lead-in keeps the melody's bar lines on the take's.
    """
    bar_samples = bars_to_seconds(1, bpm, signature) * sample_rate
    fitted = fit_melody(to_mono(melody), round(bars * bar_samples), bar_samples)
    lead_in = round(lead_in_seconds * sample_rate)
    return np.concatenate([fitted[len(fitted) - lead_in :], fitted]) if lead_in else fitted
