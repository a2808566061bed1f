"""Put a captured span exactly on the bar line, by listening for the beats in the audio itself.

The DAW's playhead reports place its beats in the recording to within a few tens of milliseconds
(they cannot see the DAW's own output latency); a bar line must be right to the millisecond, or the
continuation starts early or late. Music puts its attacks on the beats, so a grid of the session's
beats (downbeats weighted double) is slid over an onset curve of the audio around the predicted
position, and the shift where the most attack energy falls on the grid wins. When no shift stands
out (pads, drones), the prediction is kept.
"""

from dataclasses import dataclass

import numpy as np

from bridge.audio.io import as_frames
from bridge.musical_time import TimeSignature

SEARCH_SECONDS = 0.04
ONSET_WINDOW_SECONDS = 0.002
# The best shift must score this many times the median shift, or the audio has no usable beat.
MIN_CLARITY = 3.0


@dataclass(frozen=True)
class Alignment:
    offset_frames: int  # add to the predicted start; 0 when the audio gave no clear answer
    clarity: float  # best score over the median score
    used: bool


def onset_curve(audio: np.ndarray, window_frames: int) -> np.ndarray:
    """Attack strength at every frame: energy of the slope in the window after it minus the window before.

    The slope (first difference) favours attacks over sustained low notes. A sound starting at
    frame s from silence peaks exactly at s.
    """
    mono = as_frames(audio).mean(axis=1).astype(np.float64)
    slope = np.diff(mono, prepend=0.0)
    energy = np.concatenate([[0.0], np.cumsum(slope * slope)])
    curve = np.zeros(mono.shape[0])
    frames = np.arange(window_frames, mono.shape[0] - window_frames)
    after = energy[frames + window_frames] - energy[frames]
    before = energy[frames] - energy[frames - window_frames]
    curve[frames] = np.maximum(after - before, 0.0)
    return curve


def beat_grid(bars: int, bpm: float, signature: TimeSignature, sample_rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Frames of every beat (the signature's unit) in `bars` bars from 0, and their weights."""
    beats = np.arange(bars * signature.numerator)
    beat_frames = 60.0 / bpm * 4.0 / signature.denominator * sample_rate
    weights = np.where(beats % signature.numerator == 0, 2.0, 1.0)
    return np.round(beats * beat_frames).astype(np.int64), weights


def align_to_beats(
    audio: np.ndarray,
    sample_rate: int,
    predicted_start: int,
    bars: int,
    bpm: float,
    signature: TimeSignature,
    search_seconds: float = SEARCH_SECONDS,
) -> Alignment:
    """How far the bar grid that starts at frame `predicted_start` of `audio` must move to sit on the beats.

    `audio` must hold the `bars` bars plus `search_seconds` on each side of the prediction.
    """
    search = round(search_seconds * sample_rate)
    curve = onset_curve(audio, max(1, round(ONSET_WINDOW_SECONDS * sample_rate)))
    positions, weights = beat_grid(bars, bpm, signature, sample_rate)
    shifts = np.arange(-search, search + 1)
    frames = predicted_start + positions[None, :] + shifts[:, None]
    inside = (frames >= 0) & (frames < curve.shape[0])
    scores = (np.where(inside, curve[np.clip(frames, 0, curve.shape[0] - 1)], 0.0) * weights).sum(axis=1)
    best = int(np.argmax(scores))
    median = float(np.median(scores))
    clarity = float(scores[best]) / median if median > 0 else (np.inf if scores[best] > 0 else 0.0)
    used = clarity >= MIN_CLARITY
    return Alignment(int(shifts[best]) if used else 0, clarity, used)
