"""Audio pieces that need no device: bar spans for snapshots, chunk conversion, click location."""

import random

import numpy as np
import pytest

from bridge.audio.calibration import click, locate
from bridge.audio.capture import bar_span_frames
from bridge.audio.io import resample
from bridge.audio.playback import ChunkConverter
from bridge.errors import InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples


def test_bar_span_is_exact_and_ends_on_the_bar_line_for_any_tempo_and_signature():
    rng = random.Random(21)
    for _ in range(2000):
        bpm, rate = rng.uniform(40, 240), rng.choice((44100, 48000))
        signature = TimeSignature(rng.randint(1, 15), rng.choice((4, 8)))
        bars, end_bar = rng.randint(1, 8), rng.randint(8, 40)
        # The DAW reported some beat at some frame; bar line 0 sits wherever that puts it.
        anchor_beat = rng.uniform(0, 200)
        anchor_frame = rng.uniform(0, 10**7)
        bar_zero = anchor_frame - anchor_beat * 60 / bpm * rate

        start, stop = bar_span_frames(
            bars, end_bar * signature.quarter_notes_per_bar, bpm, signature, rate, anchor_beat, anchor_frame
        )

        assert stop - start == bars_to_samples(bars, bpm, signature, rate)
        exact_stop = bar_zero + end_bar * signature.quarter_notes_per_bar * 60 / bpm * rate
        assert abs(stop - exact_stop) <= 0.5 + 1e-6


def test_bar_span_counts_from_the_anchor():
    # 120 BPM 4/4 at 48 kHz: 96000 frames a bar. Beat 2 was heard at frame 1000, so bar line 2
    # (beat 8) is 6 beats = 144000 frames later.
    assert bar_span_frames(1, 8.0, 120.0, TimeSignature(), 48000, 2.0, 1000.0) == (49000, 145000)
    with pytest.raises(InvalidParameterError, match="at least one bar"):
        bar_span_frames(0, 8.0, 120.0, TimeSignature(), 48000, 0.0, 0.0)


@pytest.mark.parametrize("from_rate, to_rate, channels", [(32000, 48000, 2), (32000, 44100, 1), (48000, 48000, 2)])
def test_chunk_conversion_equals_converting_the_whole_clip(from_rate, to_rate, channels):
    clip = (np.random.default_rng(1).standard_normal((from_rate, 1)) * 0.1).astype(np.float32)
    converter = ChunkConverter(from_rate, to_rate, channels)
    rng = np.random.default_rng(2)
    pieces, at = [], 0
    while at < clip.shape[0]:
        size = int(rng.integers(1, 4000))
        pieces.append(converter.convert(clip[at : at + size]))
        at += size
    pieces.append(converter.flush())

    streamed = np.concatenate(pieces)
    whole = np.repeat(resample(clip, from_rate, to_rate), channels, axis=1)
    assert streamed.shape == whole.shape
    np.testing.assert_allclose(streamed, whole, atol=1e-6)


def test_locate_finds_the_click_to_the_sample_under_noise_and_reports_silence():
    rate = 48000
    burst = click(rate)
    recording = (np.random.default_rng(4).standard_normal((rate, 2)) * 0.01).astype(np.float32)
    recording[12345 : 12345 + burst.shape[0]] += burst * 0.5

    found, clarity = locate(recording, burst)

    assert found == 12345 and clarity > 4
    assert locate(np.zeros((rate, 2), np.float32), burst) == (0, 0.0)

