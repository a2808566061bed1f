"""Fades, seams and loudness: what a producer hears at clip edges and between clips."""

import math

import numpy as np
import pytest

from bridge.audio import dsp
from bridge.errors import InvalidParameterError

RATE = 48000


def noise(frames, channels=2, level=0.1, seed=0):
    return (np.random.default_rng(seed).standard_normal((frames, channels)) * level).astype(np.float32)


def sine(seconds, peak, frequency=1000.0, channels=2, rate=RATE):
    t = np.arange(round(seconds * rate)) / rate
    tone = (peak * np.sin(2 * math.pi * frequency * t)).astype(np.float32)
    return np.repeat(tone[:, None], channels, axis=1)


@pytest.mark.parametrize("fade", [dsp.fade_in, dsp.fade_out])
def test_fades_ramp_smoothly_from_silence_and_touch_nothing_else(fade):
    audio = np.ones((1000, 2), dtype=np.float32)
    faded = fade(audio, 100)
    ramp = faded[:100, 0] if fade is dsp.fade_in else faded[::-1][:100, 0]
    untouched = faded[100:] if fade is dsp.fade_in else faded[:-100]

    assert ramp[0] < 0.001, "the outer edge starts (or ends) in near silence"
    assert np.all(np.diff(ramp) > 0), "the ramp rises without steps back"
    assert ramp[-1] > 0.999
    np.testing.assert_array_equal(untouched, 1.0)
    np.testing.assert_array_equal(faded[:, 0], faded[:, 1])
    assert audio.min() == 1.0, "input left untouched"


def test_fade_longer_than_the_clip_covers_the_clip_and_negative_is_refused():
    assert dsp.fade_in(np.ones(10, dtype=np.float32), 50).shape == (10, 1)
    np.testing.assert_array_equal(dsp.fade_out(np.ones(10), 0), np.ones((10, 1)))
    with pytest.raises(InvalidParameterError, match="must not be negative"):
        dsp.fade_out(np.ones(10), -1)


def test_crossfade_is_equal_power_at_every_frame_of_the_seam():
    overlap = 480
    ones, zeros = np.ones((1000, 1), np.float32), np.zeros((1000, 1), np.float32)
    fading_out = dsp.crossfade(ones, zeros, overlap)[1000 - overlap : 1000, 0]
    fading_in = dsp.crossfade(zeros, ones, overlap)[1000 - overlap : 1000, 0]

    np.testing.assert_allclose(fading_out**2 + fading_in**2, 1.0, atol=1e-6)
    assert np.all(np.diff(fading_out) < 0) and np.all(np.diff(fading_in) > 0)


def test_crossfade_keeps_both_clips_outside_the_seam_and_has_the_combined_length():
    first, second = noise(5000, seed=1), noise(3000, seed=2)
    joined = dsp.crossfade(first, second, 1000)

    assert joined.shape == (7000, 2)
    np.testing.assert_array_equal(joined[:4000], first[:4000])
    np.testing.assert_array_equal(joined[5000:], second[1000:])
    np.testing.assert_array_equal(dsp.crossfade(first, second, 0), np.concatenate([first, second]))


def test_crossfade_of_unrelated_noise_keeps_its_loudness_through_the_seam():
    first, second = noise(RATE * 2, seed=3), noise(RATE * 2, seed=4)
    seam = dsp.crossfade(first, second, RATE)[RATE : 2 * RATE]
    rms_ratio = np.sqrt(np.mean(seam**2)) / np.sqrt(np.mean(first**2))
    assert abs(20 * math.log10(rms_ratio)) < 0.2


def test_crossfade_refuses_mismatched_channels_and_oversized_overlap():
    with pytest.raises(InvalidParameterError, match="2-channel audio into 1-channel"):
        dsp.crossfade(noise(100, 2), noise(100, 1), 10)
    with pytest.raises(InvalidParameterError, match="overlap must be 0-50 frames"):
        dsp.crossfade(noise(100), noise(50), 51)


def test_integrated_loudness_reads_the_ebu_reference_sine_at_minus_23_lufs():
    # EBU Tech 3341 case 1: a 1 kHz stereo sine at -23 dBFS in each channel reads -23.0 LUFS.
    reference = sine(20.0, peak=10 ** (-23 / 20))
    assert dsp.integrated_loudness(reference, RATE) == pytest.approx(-23.0, abs=0.1)


def test_integrated_loudness_of_silence_is_minus_infinity_and_short_audio_is_refused():
    assert dsp.integrated_loudness(np.zeros((RATE, 2), np.float32), RATE) == -math.inf
    with pytest.raises(InvalidParameterError, match="at least 0.4 s"):
        dsp.integrated_loudness(noise(RATE // 4), RATE)
    with pytest.raises(InvalidParameterError, match="up to 5 channels"):
        dsp.integrated_loudness(noise(RATE, channels=6), RATE)


def test_match_loudness_brings_a_clip_to_the_reference_loudness():
    reference = noise(RATE * 3, level=0.05, seed=8)
    clip = noise(RATE * 2, level=0.3, seed=9)
    target = dsp.integrated_loudness(reference, RATE)

    matched = dsp.match_loudness(clip, RATE, target)

    assert dsp.integrated_loudness(matched, RATE) == pytest.approx(target, abs=0.05)
    assert np.abs(matched).max() < 1.0


def test_match_loudness_scales_back_to_the_ceiling_instead_of_clipping():
    clip = sine(2.0, peak=0.5)
    matched = dsp.match_loudness(clip, RATE, target_lufs=0.0)

    assert np.abs(matched).max() == pytest.approx(1.0, abs=1e-6)
    assert np.abs(matched).max() <= 1.0
    assert dsp.integrated_loudness(matched, RATE) < 0.0
    np.testing.assert_allclose(matched, clip * 2.0, atol=1e-6)


def test_match_loudness_leaves_silence_alone_and_refuses_an_infinite_target():
    silence = np.zeros((RATE, 1), np.float32)
    np.testing.assert_array_equal(dsp.match_loudness(silence, RATE, -14.0), silence)
    with pytest.raises(InvalidParameterError, match="finite"):
        dsp.match_loudness(noise(RATE), RATE, -math.inf)


def test_limit_peak_only_touches_clips_that_would_clip():
    quiet = noise(1000, level=0.1)
    np.testing.assert_array_equal(dsp.limit_peak(quiet), quiet)

    loud = quiet * 40
    limited = dsp.limit_peak(loud)
    assert np.abs(limited).max() == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(limited, loud / np.abs(loud).max(), rtol=1e-5, atol=1e-7)
    with pytest.raises(InvalidParameterError, match="ceiling"):
        dsp.limit_peak(loud, ceiling=1.5)
