"""Key and tempo estimates of a source clip, offered to the producer as prompt suggestions.

Both are classic, dependency-free estimators: tempo from the autocorrelation of a spectral-flux
onset envelope; key from a chroma vector matched against the Krumhansl-Kessler profiles. They are
suggestions the user accepts or edits, never silent inputs.
"""

from dataclasses import dataclass

import numpy as np

from bridge.audio.io import as_frames

PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
# Krumhansl & Kessler (1982) probe-tone profiles, starting on the tonic.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])

_FRAME = 4096
_HOP = 512


@dataclass(frozen=True)
class KeyEstimate:
    tonic: str
    mode: str  # "major" or "minor"
    confidence: float  # correlation with the best profile, -1..1

    def __str__(self) -> str:
        return f"{self.tonic} {self.mode}"


@dataclass(frozen=True)
class TempoEstimate:
    bpm: float
    confidence: float  # peak height of the normalised autocorrelation, 0..1


def _magnitudes(audio: np.ndarray, frame: int = _FRAME, hop: int = _HOP) -> np.ndarray:
    mono = as_frames(audio).mean(axis=1)
    if mono.shape[0] < frame:
        mono = np.pad(mono, (0, frame - mono.shape[0]))
    count = 1 + (mono.shape[0] - frame) // hop
    frames = np.lib.stride_tricks.sliding_window_view(mono, frame)[::hop][:count]
    return np.abs(np.fft.rfft(frames * np.hanning(frame), axis=1))


def estimate_key(audio: np.ndarray, sample_rate: int) -> KeyEstimate | None:
    """The most likely key, or None for silence.

    Noise, drums and single notes still get a key with a low confidence: callers decide how much
    confidence a suggestion needs (the clip library keeps keys at 0.7 and above).
    """
    spectrum = _magnitudes(audio) ** 2
    freqs = np.fft.rfftfreq(_FRAME, 1.0 / sample_rate)
    usable = (freqs >= 55.0) & (freqs <= 4200.0)
    if spectrum[:, usable].sum() <= 1e-9:
        return None
    pitch = np.round(12 * np.log2(freqs[usable] / 440.0)).astype(int) % 12  # 0 = A
    chroma = np.bincount(pitch, weights=spectrum[:, usable].sum(axis=0), minlength=12)
    chroma = np.roll(chroma, -3)  # re-index so that 0 = C
    best = None
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            score = float(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1])
            if best is None or score > best[0]:
                best = (score, tonic, mode)
    score, tonic, mode = best
    return KeyEstimate(PITCH_CLASSES[tonic], mode, score)


def estimate_tempo(
    audio: np.ndarray, sample_rate: int, min_bpm: float = 60.0, max_bpm: float = 200.0
) -> TempoEstimate | None:
    """The most likely tempo in quarter notes per minute, or None when there are no onsets."""
    frame, hop = 1024, 256
    magnitudes = np.log1p(100.0 * _magnitudes(audio, frame, hop))
    flux = np.maximum(np.diff(magnitudes, axis=0), 0.0).sum(axis=1)
    flux -= flux.mean()
    if flux.size < 8 or not np.any(flux > 0):
        return None
    envelope_rate = sample_rate / hop
    spectrum = np.fft.rfft(flux, n=2 * flux.size)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum))[: flux.size]
    if autocorrelation[0] <= 0:
        return None
    autocorrelation /= autocorrelation[0]
    lags = np.arange(flux.size)
    with np.errstate(divide="ignore"):
        bpm_of_lag = 60.0 * envelope_rate / lags
    candidates = np.flatnonzero((bpm_of_lag >= min_bpm) & (bpm_of_lag <= max_bpm))
    if candidates.size == 0:
        return None
    # A mild preference for tempos near 120 BPM resolves half/double-tempo ties, as most trackers do.
    prior = np.exp(-0.5 * (np.log2(bpm_of_lag[candidates] / 120.0) / 1.0) ** 2)
    lag = int(candidates[np.argmax(autocorrelation[candidates] * prior)])
    # Parabolic interpolation around the peak for sub-frame precision.
    if 0 < lag < flux.size - 1:
        left, centre, right = autocorrelation[lag - 1 : lag + 2]
        denominator = left - 2 * centre + right
        offset = 0.5 * (left - right) / denominator if denominator != 0 else 0.0
    else:
        offset = 0.0
    return TempoEstimate(60.0 * envelope_rate / (lag + offset), float(max(0.0, autocorrelation[lag])))
