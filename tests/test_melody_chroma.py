"""The chromagram a melody model follows, against librosa's independent computation, and fitting a melody to bars."""

import librosa
import numpy as np
import pytest

from bridge.engine.melody_timeline import MelodyTimeline, fit_melody, melody_with_lead_in
from bridge.engine.musicgen.chroma import (
    CHROMA_FFT_SAMPLES,
    CHROMA_HOP_SAMPLES,
    chroma_frames,
    pitch_class_filters,
)
from bridge.musical_time import TimeSignature

RATE = 32000
PITCH_CLASS_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def chord(frequencies_hz: list[float], seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in frequencies_hz).astype(np.float32)


def test_filter_bank_is_librosas():
    expected = librosa.filters.chroma(sr=RATE, n_fft=CHROMA_FFT_SAMPLES, tuning=0, n_chroma=12)
    np.testing.assert_allclose(pitch_class_filters(RATE).numpy(), expected, atol=1e-6)


def test_chroma_follows_a_chord_progression_as_librosa_hears_it():
    # D major (D F# A, D loudest), then G major (G B D, G loudest), then E minor, 2 s each.
    progression = np.concatenate([
        chord([293.66, 369.99 * 0.5, 440.0 * 0.5], 2.0),
        chord([392.0, 493.88 * 0.5, 587.33 * 0.5], 2.0),
        chord([329.63, 392.0 * 0.5, 493.88 * 0.5], 2.0),
    ])
    ours = chroma_frames(progression, RATE)
    reference = librosa.feature.chroma_stft(
        y=progression, sr=RATE, n_fft=CHROMA_FFT_SAMPLES, hop_length=CHROMA_HOP_SAMPLES, tuning=0,
        norm=np.inf, center=True, pad_mode="reflect", window="hann",
    )
    assert ours.shape == (1 + len(progression) // CHROMA_HOP_SAMPLES, 12)
    assert (ours.sum(axis=1) == 1).all()  # one-hot: the strongest pitch class, as audiocraft's argmax
    np.testing.assert_array_equal(ours.argmax(axis=1), reference.argmax(axis=0))
    names = [PITCH_CLASS_NAMES[i] for i in ours.argmax(axis=1)]
    assert names[5] == "D" and names[20] == "G" and names[40] == "E"


def test_silence_is_all_c_the_models_no_melody_input():
    chroma = chroma_frames(np.zeros(RATE, np.float32), RATE)
    assert (chroma.argmax(axis=1) == 0).all()


def test_a_melody_shorter_than_a_window_is_padded_like_audiocrafts():
    chroma = chroma_frames(chord([440.0], 0.2), RATE)  # under one 16384-sample window
    assert chroma.shape == (5, 12) and PITCH_CLASS_NAMES[int(chroma[2].argmax())] == "A"


def test_a_longer_melody_is_cut_to_the_clip():
    melody = np.arange(10_000, dtype=np.float32)
    np.testing.assert_array_equal(fit_melody(melody, 4_000, bar_samples=1_000.0), melody[:4_000])


def test_a_shorter_melody_loops_in_whole_bars():
    bar = 1_000.0
    melody = np.arange(2_500, dtype=np.float32)  # two and a half bars
    fitted = fit_melody(melody, 8_000, bar_samples=bar)
    assert len(fitted) == 8_000
    for start in range(0, 8_000, 2_000):  # bars 1-2 repeat on every other bar line
        np.testing.assert_array_equal(fitted[start : start + 2_000], melody[:2_000])


def test_a_melody_under_one_bar_loops_as_it_is():
    melody = np.arange(300, dtype=np.float32)
    fitted = fit_melody(melody, 1_000, bar_samples=800.0)
    np.testing.assert_array_equal(fitted, np.resize(melody, 1_000))


@pytest.mark.parametrize("start", [-300, 0, 2_500])
def test_each_window_reads_the_prompt_then_the_looped_melody(start):
    prompt = -np.arange(1, 501, dtype=np.float32)  # 500 samples, all negative
    melody = np.arange(1_000, dtype=np.float32)
    audio = MelodyTimeline(melody, prompt, RATE).window_audio(start, 1_000)
    positions = np.arange(start, start + 1_000)
    expected = np.where(positions < 0, prompt[np.clip(positions + 500, 0, 499)], melody[positions % 1_000])
    np.testing.assert_array_equal(audio, expected)


def test_a_continuations_melody_starts_early_by_the_lead_in_so_its_bar_lines_stay_on_the_takes():
    bar_seconds = 2.0  # 120 BPM, 4/4
    melody = np.arange(round(3 * bar_seconds * 100), dtype=np.float32)  # 3 bars at 100 Hz
    shifted = melody_with_lead_in(melody, 100, bars=2, bpm=120, signature=TimeSignature(4, 4), lead_in_seconds=0.05)
    np.testing.assert_array_equal(shifted[5:], melody[:400])  # bars 1-2 start after the 5-sample lead-in
    np.testing.assert_array_equal(shifted[:5], melody[395:400])  # the lead-in is the end of bar 2
