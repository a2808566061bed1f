"""Bars, beats and tempo as Ableton and REAPER count them.

Tempo counts quarter notes per minute whatever the signature, so a 7/8 bar lasts 3.5 quarter notes
and a 6/8 bar 3. A span of N bars starting on bar line 0 lasts `round(N * samples_per_bar)` samples:
bar lines are placed by rounding the exact position, never by adding rounded bar lengths, so
errors never accumulate.
"""

import math
from dataclasses import dataclass

from bridge.errors import InvalidParameterError

MIN_BPM = 20.0
MAX_BPM = 999.0


@dataclass(frozen=True)
class TimeSignature:
    numerator: int = 4
    denominator: int = 4

    def __post_init__(self) -> None:
        if not 1 <= self.numerator <= 64:
            raise InvalidParameterError(f"time signature numerator must be 1-64, got {self.numerator}")
        if self.denominator not in (1, 2, 4, 8, 16, 32):
            raise InvalidParameterError(
                f"time signature denominator must be 1, 2, 4, 8, 16 or 32, got {self.denominator}"
            )

    @classmethod
    def parse(cls, text: str) -> "TimeSignature":
        """Parse '7/8' (also '7:8')."""
        parts = text.replace(":", "/").split("/")
        try:
            numerator, denominator = (int(p) for p in parts)
        except ValueError:
            raise InvalidParameterError(f"time signature must look like 4/4 or 7/8, got {text!r}") from None
        return cls(numerator, denominator)

    @property
    def quarter_notes_per_bar(self) -> float:
        return self.numerator * 4.0 / self.denominator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def check_bpm(bpm: float) -> float:
    if not MIN_BPM <= bpm <= MAX_BPM:
        raise InvalidParameterError(f"tempo must be between {MIN_BPM:g} and {MAX_BPM:g} BPM, got {bpm:g}")
    return float(bpm)


def seconds_per_bar(bpm: float, signature: TimeSignature) -> float:
    return signature.quarter_notes_per_bar * 60.0 / check_bpm(bpm)


def bars_to_seconds(bars: float, bpm: float, signature: TimeSignature) -> float:
    return bars * seconds_per_bar(bpm, signature)


def samples_per_bar(bpm: float, signature: TimeSignature, sample_rate: int) -> float:
    """Exact (fractional) number of samples in one bar."""
    return seconds_per_bar(bpm, signature) * sample_rate


def bar_line_sample(bar: float, bpm: float, signature: TimeSignature, sample_rate: int) -> int:
    """Sample index of bar line `bar` (0-based) counted from a bar line at sample 0."""
    return round(bar * samples_per_bar(bpm, signature, sample_rate))


def bars_to_samples(bars: float, bpm: float, signature: TimeSignature, sample_rate: int) -> int:
    """Length in samples of `bars` bars starting on a bar line."""
    return bar_line_sample(bars, bpm, signature, sample_rate)


def beats_to_seconds(beats: float, bpm: float) -> float:
    """Quarter-note beats (as AbletonOSC reports song time) to seconds."""
    return beats * 60.0 / check_bpm(bpm)


def seconds_to_beats(seconds: float, bpm: float) -> float:
    return seconds * check_bpm(bpm) / 60.0


def whole_bars_in(samples: int, bpm: float, signature: TimeSignature, sample_rate: int) -> int:
    """How many complete bars, starting on a bar line, fit in `samples` samples."""
    bars = int(samples / samples_per_bar(bpm, signature, sample_rate))
    # The float division can land one bar off at an exact boundary; the rounding rule decides.
    while bars > 0 and bars_to_samples(bars, bpm, signature, sample_rate) > samples:
        bars -= 1
    while bars_to_samples(bars + 1, bpm, signature, sample_rate) <= samples:
        bars += 1
    return bars


def bar_lines_in_span(
    start_sample: int,
    stop_sample: int,
    bpm: float,
    signature: TimeSignature,
    sample_rate: int,
    bar_zero_sample: int = 0,
) -> list[int]:
    """Sample indices of the bar lines in [start_sample, stop_sample).

    `bar_zero_sample` is where one bar line falls (any bar line: the grid extends both ways), so a
    span cut from the middle of a song finds the same bar lines the whole song has.
    """
    length = samples_per_bar(bpm, signature, sample_rate)
    first_bar = math.floor((start_sample - bar_zero_sample) / length) - 1
    last_bar = math.ceil((stop_sample - bar_zero_sample) / length) + 1
    lines = (
        bar_zero_sample + bar_line_sample(bar, bpm, signature, sample_rate)
        for bar in range(first_bar, last_bar + 1)
    )
    return [line for line in lines if start_sample <= line < stop_sample]
