"""Musical DSP on audio arrays: exact bar lengths, seams, fades and loudness. No devices.

Every function takes float32 (frames, channels) arrays (mono (frames,) is accepted and returned as
(frames, 1)), returns a new array and leaves its input untouched. Bar arithmetic comes from
bridge.musical_time, so a clip trimmed here lines up with the bar lines found there.
"""

import math

import numpy as np

from bridge.audio.io import as_frames
from bridge.errors import InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples

# BS.1770 measures loudness over 400 ms gating blocks; anything shorter has no integrated loudness.
LOUDNESS_BLOCK_SECONDS = 0.4


def fit_to_bars(
    audio: np.ndarray, bars: int, bpm: float, signature: TimeSignature, sample_rate: int
) -> np.ndarray:
    """Trim, or pad with silence, to exactly `bars` bars starting on a bar line.

    The result has `bars_to_samples(bars, ...)` frames, the length every part of Segue computes for
    that many bars. A trimmed end is cut hard: follow with `fade_out` unless the clip loops.
    """
    if bars < 1:
        raise InvalidParameterError(f"a clip must last at least one bar, got {bars}")
    audio = as_frames(audio)
    frames = bars_to_samples(bars, bpm, signature, sample_rate)
    if audio.shape[0] >= frames:
        return audio[:frames].copy()
    padding = np.zeros((frames - audio.shape[0], audio.shape[1]), dtype=np.float32)
    return np.concatenate([audio, padding])


def _ramp_up(frames: int) -> np.ndarray:
    """A raised-cosine ramp from 0 towards 1 over `frames` samples: no corner at either end."""
    positions = (np.arange(frames, dtype=np.float64) + 0.5) / frames
    return (np.sin(positions * math.pi / 2) ** 2).astype(np.float32)[:, None]


def _check_ramp(audio: np.ndarray, frames: int, what: str) -> int:
    if frames < 0:
        raise InvalidParameterError(f"{what} length must not be negative, got {frames} frames")
    return min(frames, audio.shape[0])


def fade_in(audio: np.ndarray, frames: int) -> np.ndarray:
    """Ramp the first `frames` frames up from silence (a few ms removes the click of a hard start)."""
    audio = as_frames(audio).copy()
    frames = _check_ramp(audio, frames, "fade-in")
    if frames:
        audio[:frames] *= _ramp_up(frames)
    return audio


def fade_out(audio: np.ndarray, frames: int) -> np.ndarray:
    """Ramp the last `frames` frames down to silence."""
    audio = as_frames(audio).copy()
    frames = _check_ramp(audio, frames, "fade-out")
    if frames:
        audio[audio.shape[0] - frames :] *= _ramp_up(frames)[::-1]
    return audio


def crossfade(first: np.ndarray, second: np.ndarray, overlap_frames: int) -> np.ndarray:
    """Join two clips, overlapping the end of `first` with the start of `second` by an equal-power fade.

    Gains are cos and sin of a quarter turn, so their squares sum to one at every frame: two
    unrelated signals keep a constant loudness through the seam. The result lasts
    len(first) + len(second) - overlap_frames frames.
    """
    first, second = as_frames(first), as_frames(second)
    if first.shape[1] != second.shape[1]:
        raise InvalidParameterError(
            f"cannot crossfade {first.shape[1]}-channel audio into {second.shape[1]}-channel audio"
        )
    if not 0 <= overlap_frames <= min(first.shape[0], second.shape[0]):
        raise InvalidParameterError(
            f"crossfade overlap must be 0-{min(first.shape[0], second.shape[0])} frames "
            f"(the shorter clip), got {overlap_frames}"
        )
    head = first[: first.shape[0] - overlap_frames]
    tail = second[overlap_frames:]
    angles = (np.arange(overlap_frames, dtype=np.float64) + 0.5) / max(overlap_frames, 1) * math.pi / 2
    fading_out = first[first.shape[0] - overlap_frames :] * np.cos(angles).astype(np.float32)[:, None]
    fading_in = second[:overlap_frames] * np.sin(angles).astype(np.float32)[:, None]
    return np.concatenate([head, fading_out + fading_in, tail])


def integrated_loudness(audio: np.ndarray, sample_rate: int) -> float:
    """Integrated loudness in LUFS (ITU-R BS.1770-4 via pyloudnorm); -inf for silence.

    Raises InvalidParameterError for audio shorter than one 400 ms gating block or with more than
    the five channels BS.1770 weights.
    """
    audio = as_frames(audio)
    if audio.shape[0] < round(LOUDNESS_BLOCK_SECONDS * sample_rate):
        raise InvalidParameterError(
            f"loudness needs at least {LOUDNESS_BLOCK_SECONDS:g} s of audio, "
            f"got {audio.shape[0] / sample_rate:.3f} s"
        )
    if audio.shape[1] > 5:
        raise InvalidParameterError(f"loudness is defined for up to 5 channels, got {audio.shape[1]}")
    import pyloudnorm  # with scipy: ~0.7 s to import, and the CLI's parser loads this module

    return float(pyloudnorm.Meter(sample_rate).integrated_loudness(audio.astype(np.float64)))


def limit_peak(audio: np.ndarray, ceiling: float = 1.0) -> np.ndarray:
    """Scale down to `ceiling` only if the peak exceeds it; quieter audio comes back unchanged."""
    if not 0 < ceiling <= 1:
        raise InvalidParameterError(f"peak ceiling must be in (0, 1], got {ceiling:g}")
    audio = as_frames(audio)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= ceiling:
        return audio.copy()
    # Clip after scaling only to absorb float32 rounding: the scaled peak is the ceiling itself.
    return np.clip(audio * np.float32(ceiling / peak), -ceiling, ceiling).astype(np.float32)


def match_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling: float = 1.0
) -> np.ndarray:
    """Apply the gain that brings `audio` to `target_lufs` (e.g. a reference clip's loudness).

    If that gain would push the peak past `ceiling`, the clip is scaled back down to the ceiling
    and ends up quieter than the target rather than clipped. Silence is returned unchanged.
    """
    if not math.isfinite(target_lufs):
        raise InvalidParameterError(f"target loudness must be a finite LUFS value, got {target_lufs}")
    audio = as_frames(audio)
    loudness = integrated_loudness(audio, sample_rate)
    if not math.isfinite(loudness):
        return audio.copy()
    gain = np.float32(10.0 ** ((target_lufs - loudness) / 20.0))
    return limit_peak(audio * gain, ceiling)


def limit_peaks_smoothly(
    audio: np.ndarray,
    sample_rate: int,
    ceiling: float = 1.0,
    attack_seconds: float = 0.005,
    hold_seconds: float = 0.04,
) -> np.ndarray:
    """Keep every sample within `ceiling` by turning the gain down smoothly around the peaks only.

    A look-ahead limiter without clipping: the gain needed at each frame is held over the frames
    `hold_seconds` before and `attack_seconds` after it (a running minimum), then ramped by a moving
    average over `attack_seconds`; every frame's gain stays at or below what that frame needs, so no
    sample passes the ceiling, and the gain never jumps. Quieter audio comes back unchanged.
    """
    if not 0 < ceiling <= 1:
        raise InvalidParameterError(f"peak ceiling must be in (0, 1], got {ceiling:g}")
    audio = as_frames(audio)
    peaks = np.max(np.abs(audio), axis=1) if audio.size else np.zeros(0, np.float32)
    if not audio.size or float(peaks.max()) <= ceiling:
        return audio.copy()
    attack = max(1, round(attack_seconds * sample_rate))
    hold = max(attack, round(hold_seconds * sample_rate))
    needed = np.minimum(1.0, ceiling / np.maximum(peaks.astype(np.float64), 1e-12))
    # Running minimum over frames [n - hold, n + attack - 1] (scipy's origin places the window).
    size = attack + hold
    import scipy.ndimage  # lazily, as pyloudnorm above

    held = scipy.ndimage.minimum_filter1d(needed, size, mode="nearest", origin=hold - size // 2)
    # Moving average over frames [n - attack + 1, n]: each of them held frame n's need, so none exceeds it.
    padded = np.concatenate([np.full(attack - 1, held[0]), held])
    sums = np.cumsum(np.concatenate([[0.0], padded]))
    gain = (sums[attack:] - sums[:-attack]) / attack
    limited = audio * gain.astype(np.float32)[:, None]
    # float32 rounding may leave a sample a hair above the ceiling; scaling never clips.
    return np.clip(limited, -ceiling, ceiling)
