"""Bar arithmetic: exact lengths and bar lines for any tempo 40-240 BPM and any n/4 or n/8 signature."""

import random
from fractions import Fraction

import numpy as np
import pytest

from bridge.audio.dsp import fit_to_bars
from bridge.errors import InvalidParameterError
from bridge.musical_time import (
    TimeSignature,
    bar_lines_in_span,
    bars_to_samples,
    samples_per_bar,
    whole_bars_in,
)

RATES = (32000, 44100, 48000)


def random_cases(count, seed=1234):
    """(bpm, signature, sample_rate, bars) drawn over the ranges producers use."""
    rng = random.Random(seed)
    for _ in range(count):
        signature = TimeSignature(rng.randint(1, 15), rng.choice((4, 8)))
        yield rng.uniform(40.0, 240.0), signature, rng.choice(RATES), rng.randint(1, 8)


def exact_bar_samples(bars, bpm, signature, sample_rate):
    """The reference: bars * quarter notes per bar * 60 / bpm seconds, in exact rational arithmetic."""
    quarter_notes = Fraction(bars * signature.numerator * 4, signature.denominator)
    return quarter_notes * 60 * sample_rate / Fraction(bpm)


def test_bar_length_is_exact_for_every_tempo_and_signature():
    for bpm, signature, sample_rate, bars in random_cases(5000):
        exact = exact_bar_samples(bars, bpm, signature, sample_rate)
        assert abs(bars_to_samples(bars, bpm, signature, sample_rate) - exact) <= Fraction(1, 2), (
            bpm, signature, sample_rate, bars)


def test_fit_to_bars_trims_or_pads_to_the_exact_bar_length():
    rng = np.random.default_rng(7)
    for bpm, signature, sample_rate, bars in random_cases(300, seed=77):
        exact = exact_bar_samples(bars, bpm, signature, sample_rate)
        input_frames = int(exact * Fraction(rng.uniform(0.5, 1.5)))
        audio = (np.arange(input_frames, dtype=np.float32) % 251 + 1)[:, None]

        fitted = fit_to_bars(audio, bars, bpm, signature, sample_rate)

        assert abs(fitted.shape[0] - exact) <= Fraction(1, 2), (bpm, signature, sample_rate, bars)
        kept = min(input_frames, fitted.shape[0])
        np.testing.assert_array_equal(fitted[:kept], audio[:kept])
        assert not fitted[kept:].any(), "padding must be silence"


def test_fit_to_bars_accepts_mono_and_leaves_input_untouched():
    audio = np.ones(1000, dtype=np.float32)
    fitted = fit_to_bars(audio, 1, 120.0, TimeSignature(4, 4), 100)
    assert fitted.shape == (200, 1)
    assert audio.shape == (1000,) and audio.all()


def test_fit_to_bars_rejects_zero_bars():
    with pytest.raises(InvalidParameterError, match="at least one bar"):
        fit_to_bars(np.zeros((10, 1)), 0, 120.0, TimeSignature(), 48000)


def test_seven_eight_bar_lasts_three_and_a_half_quarter_notes():
    # 7/8 at 120 BPM: 3.5 quarter notes of 0.5 s each = 1.75 s = 84000 samples at 48 kHz.
    assert bars_to_samples(1, 120.0, TimeSignature(7, 8), 48000) == 84000
    assert bars_to_samples(2, 90.0, TimeSignature(6, 8), 44100) == 176400


def test_whole_bars_in_is_the_largest_count_that_fits():
    for bpm, signature, sample_rate, _ in random_cases(300, seed=99):
        one_bar = samples_per_bar(bpm, signature, sample_rate)
        for samples in (0, 1, int(one_bar) - 1, bars_to_samples(3, bpm, signature, sample_rate),
                        bars_to_samples(3, bpm, signature, sample_rate) - 1, int(one_bar * 7.9)):
            bars = whole_bars_in(samples, bpm, signature, sample_rate)
            assert bars_to_samples(bars, bpm, signature, sample_rate) <= samples
            assert bars_to_samples(bars + 1, bpm, signature, sample_rate) > samples


def test_bar_lines_in_span_match_the_grid_from_bar_zero():
    rng = random.Random(5)
    for bpm, signature, sample_rate, _ in random_cases(200, seed=11):
        bar_zero = rng.randint(-10**6, 10**6)
        start = bar_zero + rng.randint(-10**6, 10**6)
        stop = start + rng.randint(0, 10**6)

        lines = bar_lines_in_span(start, stop, bpm, signature, sample_rate, bar_zero_sample=bar_zero)

        length = exact_bar_samples(1, bpm, signature, sample_rate)
        expected = [
            bar_zero + round(bar * length)
            for bar in range(int((start - bar_zero) / length) - 2, int((stop - bar_zero) / length) + 2)
        ]
        assert lines == [line for line in expected if start <= line < stop]


def test_bar_lines_include_start_and_exclude_stop():
    # 120 BPM 4/4 at 48 kHz: a bar is exactly 96000 samples.
    assert bar_lines_in_span(96000, 288000, 120.0, TimeSignature(), 48000) == [96000, 192000]
    assert bar_lines_in_span(96001, 96002, 120.0, TimeSignature(), 48000) == []
