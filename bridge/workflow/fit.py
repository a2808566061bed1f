"""Step 4, fit: turn a raw take into a clip that continues the source without a seam.

- Length: exactly M bars at the session tempo, in the source's sample rate and channels, so it
  lines up with the DAW's grid to the sample (bridge.musical_time's rounding rule).
- Seam: the engine's take starts exactly where the source ends, but it is the codec's decode, not the
  source: its first sample does not continue the source's last one. The only model audio that
  overlaps the source is the decode of the prompt's last frames, and it lies *before* the seam, in
  the part of the song the DAW already plays from the producer's own clip, which Segue must not
  touch. So the crossfade happens after the seam, inside the take: over a few milliseconds the take
  fades in, equal-power, from the source's last milliseconds played backwards (their first sample is
  the source's last sample, so source + take is continuous at the seam; the two are unrelated
  signals, which is what equal-power gains keep at a constant loudness).
- Loudness: the take's integrated loudness (BS.1770) is brought to the source's; peaks that gain
  would push past -1 dBFS are turned down by a smooth look-ahead limiter, never clipped, and the
  gain is re-measured so the result still lands on the target.
- First beat: a take that is (nearly) silent for its first beat would leave a hole at the seam;
  it is flagged, and the session can re-roll it with a new seed.
"""

import math
from dataclasses import dataclass

import numpy as np

from bridge.audio.dsp import crossfade, fit_to_bars, integrated_loudness, limit_peak, limit_peaks_smoothly
from bridge.audio.io import as_frames, match_channels, resample
from bridge.errors import InvalidParameterError
from bridge.musical_time import TimeSignature

SEAM_CROSSFADE_SECONDS = 0.005
PEAK_CEILING = 10 ** (-1.0 / 20)  # -1 dBFS: room for the inter-sample peaks of a later resampling
LOUDNESS_TOLERANCE_LU = 0.1
MAX_LOUDNESS_ROUNDS = 5
# Gain beyond the loudness difference that may be added back for what the limiter took.
MAX_MAKEUP_DB = 3.0
# A first beat this far below the take's own level, or below the floor, counts as silent.
SILENT_BELOW_TAKE_DB = 30.0
SILENT_FLOOR_DBFS = -60.0


@dataclass(frozen=True)
class FitReport:
    """What fitting did and found, for the producer (the panel shows it next to each take)."""

    first_beat_silent: bool
    source_lufs: float  # -inf for a silent source (then the take keeps its level)
    take_lufs: float
    gain_db: float
    limiter_db: float  # how far the limiter turned the loudest peak down (0: untouched)

    @property
    def loudness_difference_lu(self) -> float:
        if not (math.isfinite(self.source_lufs) and math.isfinite(self.take_lufs)):
            return 0.0
        return self.take_lufs - self.source_lufs


def beat_frames(bpm: float, signature: TimeSignature, sample_rate: int) -> int:
    """One beat in the signature's own unit (an eighth note in 7/8), in frames."""
    return round(60.0 / bpm * 4.0 / signature.denominator * sample_rate)


def _rms_db(audio: np.ndarray) -> float:
    power = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    return 10.0 * math.log10(power) if power > 0 else -math.inf


def first_beat_is_silent(audio: np.ndarray, bpm: float, signature: TimeSignature, sample_rate: int) -> bool:
    """True when the first beat is 30 dB quieter than the whole take, or below -60 dBFS."""
    audio = as_frames(audio)
    first = _rms_db(audio[: beat_frames(bpm, signature, sample_rate)])
    return first < SILENT_FLOOR_DBFS or first < _rms_db(audio) - SILENT_BELOW_TAKE_DB


def match_source_loudness(
    audio: np.ndarray, sample_rate: int, target_lufs: float, ceiling: float = PEAK_CEILING
) -> tuple[np.ndarray, float, float]:
    """`audio` brought to `target_lufs`, its peaks kept under `ceiling` without clipping.

    Returns (audio, gain in dB, how far the loudest peak was turned down in dB). The limiter takes a little
    loudness away, so the gain is raised by what is missing and the measurement repeated.
    """
    audio = as_frames(audio)
    loudness = integrated_loudness(audio, sample_rate)
    if not (math.isfinite(loudness) and math.isfinite(target_lufs)):
        return audio.copy(), 0.0, 0.0
    first_gain_db = gain_db = target_lufs - loudness
    for _ in range(MAX_LOUDNESS_ROUNDS):
        louder = audio * np.float32(10.0 ** (gain_db / 20.0))
        limited = limit_peaks_smoothly(louder, sample_rate, ceiling)
        missing = target_lufs - integrated_loudness(limited, sample_rate)
        if abs(missing) <= LOUDNESS_TOLERANCE_LU:
            break
        # Past a few dB the limiter would be squashing the whole take: stay quieter instead.
        gain_db = min(gain_db + missing, first_gain_db + MAX_MAKEUP_DB)
    loudest = float(np.max(np.abs(louder)))
    limiter_db = 20.0 * math.log10(loudest / float(np.max(np.abs(limited)))) if loudest > ceiling else 0.0
    return limited, gain_db, limiter_db


def seam_crossfade(source: np.ndarray, take: np.ndarray, frames: int) -> np.ndarray:
    """The take, its first `frames` frames faded in (equal-power) from the source's end played backwards.

    The result has the take's length; its first sample continues the source's last one.
    """
    source, take = as_frames(source), as_frames(take)
    frames = min(frames, source.shape[0], take.shape[0])
    if frames == 0:
        return take.copy()
    mirrored_tail = source[::-1][:frames]
    return crossfade(mirrored_tail, take, frames)


def fit_take(
    audio: np.ndarray,
    sample_rate: int,
    source: np.ndarray,
    source_sample_rate: int,
    bars: int,
    bpm: float,
    signature: TimeSignature,
    lead_frames: int = 0,
) -> tuple[np.ndarray, FitReport]:
    """Fit a raw take (at the model's `sample_rate`) to continue `source`; returns (clip, report).

    `lead_frames` model-rate frames at the start of `audio` overlap the source (a chained take starts
    on a codec frame boundary, slightly before the end of its source) and are dropped first. The clip
    is at `source_sample_rate`, with the source's channels, exactly `bars` bars long.
    """
    if lead_frames < 0 or lead_frames >= as_frames(audio).shape[0]:
        raise InvalidParameterError(f"cannot drop {lead_frames} frames from a take of {as_frames(audio).shape[0]}")
    source = as_frames(source)
    take = as_frames(audio)[lead_frames:]
    take = match_channels(resample(take, sample_rate, source_sample_rate), source.shape[1])
    take = fit_to_bars(take, bars, bpm, signature, source_sample_rate)
    silent = first_beat_is_silent(take, bpm, signature, source_sample_rate)
    source_lufs = integrated_loudness(source, source_sample_rate)
    take, gain_db, limiter_db = match_source_loudness(take, source_sample_rate, source_lufs)
    take = seam_crossfade(source, take, round(SEAM_CROSSFADE_SECONDS * source_sample_rate))
    take = limit_peak(take, 1.0)  # two full-scale signals could add up inside the few-ms fade
    report = FitReport(
        first_beat_silent=silent,
        source_lufs=source_lufs,
        take_lufs=integrated_loudness(take, source_sample_rate),
        gain_db=gain_db,
        limiter_db=limiter_db,
    )
    return take, report
