"""Key and tempo suggestions on synthesised music whose key and tempo are known."""

import numpy as np
import pytest

from bridge.audio.analysis import estimate_key, estimate_tempo

RATE = 32000
NOTE = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}


def chord(root_midi: int, intervals, seconds: float) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    out = np.zeros_like(t)
    for interval in intervals:
        frequency = 440.0 * 2 ** ((root_midi + interval - 69) / 12)
        for harmonic in (1, 2, 3):
            out += np.sin(2 * np.pi * frequency * harmonic * t) / harmonic
    return out * np.hanning(t.size) ** 0.2


def progression(chords) -> np.ndarray:
    major, minor = (0, 4, 7), (0, 3, 7)
    parts = [chord(60 + NOTE[name[0]] - (12 if NOTE[name[0]] > 7 else 0), minor if name.endswith("m") else major, 1.0)
             for name in chords]
    audio = np.concatenate(parts * 2)
    return (0.2 * audio / np.abs(audio).max()).astype(np.float32)


@pytest.mark.parametrize(
    ("chords", "expected"),
    [(["C", "F", "G", "C"], "C major"), (["Am", "Dm", "E", "Am"], "A minor"), (["G", "C", "D", "G"], "G major")],
)
def test_key_of_a_chord_progression(chords, expected):
    assert str(estimate_key(progression(chords), RATE)) == expected


def click_track(bpm: float, seconds: float, rate: int = RATE) -> np.ndarray:
    audio = np.zeros(round(seconds * rate), np.float32)
    click = (np.sin(2 * np.pi * 1500 * np.arange(400) / rate) * np.exp(-np.arange(400) / 60)).astype(np.float32)
    beat = 0
    while (start := round(beat * 60.0 / bpm * rate)) + click.size < audio.size:
        audio[start : start + click.size] += click * (1.0 if beat % 4 == 0 else 0.6)
        beat += 1
    return audio


@pytest.mark.parametrize("bpm", [72.0, 93.7, 128.0, 174.0])
def test_tempo_of_a_click_track(bpm):
    estimate = estimate_tempo(click_track(bpm, 12.0), RATE)
    assert estimate is not None and abs(estimate.bpm - bpm) < 1.0, estimate


def test_silence_has_no_key_and_no_tempo():
    silence = np.zeros(RATE * 4, np.float32)
    assert estimate_key(silence, RATE) is None
    assert estimate_tempo(silence, RATE) is None
