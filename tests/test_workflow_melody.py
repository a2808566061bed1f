"""Continue my track with a melody: the engine gets the melody's first bars, on the take's bar grid."""

import numpy as np

from tests.test_workflow_reroll import run

RATE = 44100
BAR_SAMPLES = 2 * RATE  # 120 BPM in 4/4, the scripted source's tempo


def test_the_engine_gets_the_melodys_first_bars_for_the_new_bars():
    melody = np.random.default_rng(1).normal(0, 0.1, (3 * BAR_SAMPLES, 2)).astype(np.float32)
    engine, _ = run([set()], melody=melody, melody_sample_rate=RATE)
    [request] = engine.requests
    assert request.melody_sample_rate == RATE
    np.testing.assert_array_equal(request.melody, melody[:BAR_SAMPLES].mean(axis=1))  # one new bar, mono


def test_a_melody_shorter_than_the_new_bars_is_looped_in_whole_bars():
    melody = np.random.default_rng(2).normal(0, 0.1, BAR_SAMPLES // 2).astype(np.float32)  # half a bar
    engine, _ = run([set()], melody=melody, melody_sample_rate=RATE)
    np.testing.assert_array_equal(engine.requests[0].melody, np.tile(melody, 2))
