"""The steps of "Continue my track" on arrays and files: describe, fit, chain, beat alignment, file source."""

import math

import numpy as np
import pytest
import soundfile

from bridge.audio.dsp import integrated_loudness, limit_peaks_smoothly
from bridge.errors import AudioFileError, InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow.beat_alignment import align_to_beats
from bridge.workflow.chain import codes_prompt
from bridge.workflow.describe import DEFAULT_DESCRIPTION, check_key, continuation_text
from bridge.workflow.fit import PEAK_CEILING, first_beat_is_silent, fit_take, seam_crossfade
from bridge.workflow.source import check_bars, last_bars, source_from_file

SEVEN_EIGHT = TimeSignature(7, 8)
BPM = 93.7


def click_track(bars, bpm, signature, rate, lead_frames=0, seed=7, channels=1):
    """A beat of noise bursts, downbeats louder, each burst different (so a span has one place)."""
    beat = 60.0 / bpm * 4.0 / signature.denominator * rate
    frames = lead_frames + bars_to_samples(bars, bpm, signature, rate) + rate // 10
    audio = np.zeros((frames, channels), np.float32)
    rng = np.random.default_rng(seed)
    for k in range(bars * signature.numerator):
        start = lead_frames + round(k * beat)
        level = 0.5 if k % signature.numerator == 0 else 0.25
        audio[start : start + rate // 100] += rng.uniform(-level, level, (rate // 100, channels))
    return audio


def music_like(frames, rate, seed=0, level=0.2, channels=1, noise=0.3):
    """A few sine partials under noise: sustained, so a seam jump would show."""
    t = np.arange(frames) / rate
    tone = sum(np.sin(2 * np.pi * f * t + p) for f, p in ((110, 0.3), (220, 1.1), (330, 2.0)))
    noise = np.random.default_rng(seed).normal(0, noise, frames)
    mono = level * (tone / 3 + noise).astype(np.float32)
    return np.repeat(mono[:, None], channels, axis=1)


def seam_jump(source, take):
    """The step from the source's last sample to the take's first, over the source's typical step."""
    joined = np.concatenate([source, take])[:, 0]
    steps = np.abs(np.diff(joined))
    seam = source.shape[0] - 1
    return steps[seam] / np.median(steps[: seam - 1])


# -- describe -------------------------------------------------------------------------------------


def test_guidance_text_is_never_empty_and_carries_tempo_and_an_accepted_key():
    assert continuation_text("", 93.7) == f"{DEFAULT_DESCRIPTION}, 94 bpm"
    assert continuation_text("  dusty   drums ", 120, "A minor") == "dusty drums, 120 bpm, A minor"
    # What the producer already wrote is not repeated.
    assert continuation_text("house at 124 BPM in F major", 124, "F major") == "house at 124 BPM in F major"
    assert check_key("Eb  major") == "Eb major"
    with pytest.raises(InvalidParameterError, match="a key looks like"):
        continuation_text("drums", 90, "H minor")


# -- fit ------------------------------------------------------------------------------------------


def test_a_take_is_cut_to_exactly_the_bars_at_the_source_rate_and_channels():
    source = music_like(bars_to_samples(4, BPM, SEVEN_EIGHT, 48000), 48000, channels=2)
    raw = music_like(bars_to_samples(4, BPM, SEVEN_EIGHT, 32000) + 640, 32000, seed=1, level=0.05)

    fitted, report = fit_take(raw, 32000, source, 48000, 4, BPM, SEVEN_EIGHT)

    assert fitted.shape == (bars_to_samples(4, BPM, SEVEN_EIGHT, 48000), 2)  # 430,310 frames
    assert abs(report.take_lufs - report.source_lufs) < 1.0
    assert abs(integrated_loudness(fitted, 48000) - integrated_loudness(source, 48000)) < 1.0
    assert not report.first_beat_silent


def test_the_seam_continues_the_source_without_a_jump():
    rate = 48000
    source = music_like(rate * 4, rate, seed=2, noise=0.01)
    # Another phase and an offset: far from the source's last sample.
    raw = music_like(rate * 4 + 777, rate, seed=3, noise=0.01)[777:] + np.float32(0.2)
    naive_jump = seam_jump(source, raw)

    fitted, _ = fit_take(raw, rate, source, rate, 2, 60.0, TimeSignature(4, 4))

    assert naive_jump > 20
    assert seam_jump(source, fitted) < 1.0  # no bigger than the source's own median step
    # Past the few milliseconds of the fade the take is untouched but for its loudness gain.
    gain = fitted[1000, 0] / raw[1000, 0]
    np.testing.assert_allclose(fitted[1000:5000, 0], raw[1000:5000, 0] * gain, rtol=1e-4, atol=1e-6)


def test_the_seam_fade_is_equal_power_from_the_source_tail_played_backwards():
    source = np.arange(1, 11, dtype=np.float32)[:, None]
    take = np.full((20, 1), 100.0, np.float32)
    faded = seam_crossfade(source, take, 4)
    angles = (np.arange(4) + 0.5) / 4 * math.pi / 2
    expected = np.array([10, 9, 8, 7]) * np.cos(angles) + 100 * np.sin(angles)
    np.testing.assert_allclose(faded[:4, 0], expected, rtol=1e-6)
    np.testing.assert_array_equal(faded[4:], take[4:])


def test_a_loud_source_is_matched_without_clipping_by_limiting_the_peaks():
    rate = 48000
    frames = bars_to_samples(2, 120, TimeSignature(), rate)
    source = np.clip(music_like(frames, rate, level=0.8, noise=0.05), -0.95, 0.95)  # a loud, limited master
    raw = music_like(frames, rate, seed=5, level=0.05, noise=0.05)
    raw[::24000] = 0.4  # a hit on every beat: matching the loudness pushes it far past full scale
    assert integrated_loudness(source, rate) > -11

    fitted, report = fit_take(raw, rate, source, rate, 2, 120, TimeSignature())

    assert report.limiter_db > 3
    assert np.max(np.abs(fitted[rate // 100 :])) <= PEAK_CEILING + 1e-6
    assert abs(report.loudness_difference_lu) < 1.0


def test_the_limiter_only_turns_down_and_never_past_what_a_frame_needs():
    rate = 48000
    audio = music_like(rate, rate, level=0.3)
    audio[20000] = 3.0
    limited = limit_peaks_smoothly(audio, rate, ceiling=0.9)
    assert np.max(np.abs(limited)) <= 0.9
    gain = limited[:, 0] / np.where(audio[:, 0] == 0, 1, audio[:, 0])
    assert np.all(gain <= 1.0 + 1e-6)
    assert np.all(np.abs(np.diff(gain[19000:21000])) < 0.01), "the gain moves smoothly"
    quiet = audio * np.float32(0.1)
    np.testing.assert_array_equal(limit_peaks_smoothly(quiet, rate), quiet)


def test_a_take_that_starts_with_a_silent_beat_is_flagged():
    rate = 32000
    take = music_like(rate * 4, rate)
    beat = round(60 / BPM * 4 / 8 * rate)
    assert not first_beat_is_silent(take, BPM, SEVEN_EIGHT, rate)
    take[:beat] *= 0.001
    assert first_beat_is_silent(take, BPM, SEVEN_EIGHT, rate)


# -- chain ----------------------------------------------------------------------------------------


def test_continue_again_prompts_with_whole_codec_frames_and_drops_the_overlap():
    codes = np.arange(4 * 300).reshape(4, 300)
    # A take of 100,000 model frames whose codes started 250 frames before it.
    prompt = codes_prompt(codes, codes_lead_frames=250, take_frames=100_000, model_sample_rate=32000)
    end = 250 + 100_000
    assert prompt.codes.shape == (4, end // 640)
    np.testing.assert_array_equal(prompt.codes, codes[:, : end // 640])
    assert prompt.lead_frames == end - (end // 640) * 640  # 410: new material starts that much early
    with pytest.raises(InvalidParameterError, match="codes stop before its end"):
        codes_prompt(codes[:, :100], 0, 100_000, 32000)


# -- beat alignment -------------------------------------------------------------------------------


def test_a_bar_grid_off_by_tens_of_milliseconds_is_put_back_on_the_beat():
    rate = 48000
    true_start = 30000
    audio = click_track(5, BPM, SEVEN_EIGHT, rate, lead_frames=true_start)
    audio += np.random.default_rng(0).normal(0, 0.005, audio.shape).astype(np.float32)
    for error in (-1500, 700, 1900):  # -31 ms .. +40 ms
        alignment = align_to_beats(audio, rate, true_start + error, 4, BPM, SEVEN_EIGHT)
        assert alignment.used
        assert abs(true_start + error + alignment.offset_frames - true_start) <= 2


def test_without_a_beat_the_prediction_is_kept():
    noise = np.random.default_rng(1).normal(0, 0.1, (48000 * 12, 1)).astype(np.float32)
    alignment = align_to_beats(noise, 48000, 30000, 4, BPM, SEVEN_EIGHT)
    assert (alignment.used, alignment.offset_frames) == (False, 0)


# -- file source ----------------------------------------------------------------------------------


def test_a_file_source_is_its_last_whole_bars(tmp_path):
    rate = 44100
    audio = music_like(bars_to_samples(6, BPM, SEVEN_EIGHT, rate) + 123, rate, channels=2)
    path = tmp_path / "loop.wav"
    soundfile.write(path, audio, rate, subtype="FLOAT")

    source = source_from_file(path, 4, BPM, SEVEN_EIGHT)
    assert (source.bars, source.sample_rate, source.kind) == (4, rate, "file")
    np.testing.assert_array_equal(source.audio, audio[-bars_to_samples(4, BPM, SEVEN_EIGHT, rate) :])

    short = source_from_file(path, 8, BPM, SEVEN_EIGHT)
    assert short.bars == 6 and "holds 6 whole bars" in short.note

    soundfile.write(tmp_path / "blip.wav", audio[:1000], rate)
    with pytest.raises(AudioFileError, match="shorter than one bar"):
        source_from_file(tmp_path / "blip.wav", 4, BPM, SEVEN_EIGHT)


def test_source_length_limits_and_render_slack():
    with pytest.raises(InvalidParameterError, match="use 3 bars or fewer"):
        check_bars(4, 30.0, TimeSignature())  # 32 s
    audio = np.ones((998, 1), np.float32)
    padded = last_bars(audio, 1000, slack_frames=2)
    assert padded.shape == (1000, 1) and padded[:2].sum() == 0 and padded[-1, 0] == 1
    with pytest.raises(AudioFileError):
        last_bars(audio, 1001, slack_frames=2)
