"""When playback of a clip still being generated may start: never dry, and no later than needed."""

import pytest

from bridge.engine.musicgen.codec import HOLDBACK_FRAMES
from bridge.engine.schedule import MAX_CHUNK_FRAMES, start_threshold_seconds, stream_lag_seconds

FRAME_RATE = 50
DELAY = 3


def chunk_arrivals(total_frames: int, steps_per_second: float) -> list[tuple[float, float]]:
    """(time, seconds of audio) of every chunk, as the streaming decoder emits them at a steady speed."""
    arrivals, emitted, next_chunk = [], 0, 4
    for step in range(1, total_frames + DELAY + 1):
        complete = max(0, step - DELAY)
        stable = complete - HOLDBACK_FRAMES
        if stable - emitted >= next_chunk and complete < total_frames:
            arrivals.append((step / steps_per_second, (stable - emitted) / FRAME_RATE))
            emitted, next_chunk = stable, min(2 * next_chunk, MAX_CHUNK_FRAMES)
    arrivals.append(((total_frames + DELAY) / steps_per_second, (total_frames - emitted) / FRAME_RATE))
    return arrivals


def dry_seconds(arrivals, threshold_of) -> float:
    """Play from the moment the buffer reaches the threshold; return the longest time it ran dry."""
    buffered, started, worst = 0.0, None, 0.0
    for time, seconds in arrivals:
        if started is not None:
            played_by_now = time - started
            worst = max(worst, played_by_now - buffered)
        buffered += seconds
        if started is None and buffered >= threshold_of(time, buffered) - 1e-9:
            started = time
    return worst


@pytest.mark.parametrize("realtime", [0.2, 0.5, 0.8, 0.95, 1.0, 1.5, 4.0])
@pytest.mark.parametrize("clip_seconds", [1.0, 4.0, 12.0, 30.0])
def test_playback_started_at_the_threshold_never_runs_dry(realtime, clip_seconds):
    steps_per_second = realtime * FRAME_RATE
    total_frames = round(clip_seconds * FRAME_RATE)
    arrivals = chunk_arrivals(total_frames, steps_per_second)
    lag = stream_lag_seconds(FRAME_RATE)

    def threshold(time, buffered):  # decided on the speed measured so far, which is steady here
        steps_done = time * steps_per_second
        return start_threshold_seconds(buffered, total_frames + DELAY - steps_done, steps_per_second, FRAME_RATE, lag)

    assert dry_seconds(arrivals, threshold) <= 0.0


@pytest.mark.parametrize("realtime", [0.3, 0.6, 0.9])
def test_starting_without_the_threshold_would_run_dry(realtime):
    """The threshold is needed: playing from the first chunk, or buffering only (1 - r) of the clip
    without the lag, runs dry when generation is slower than real time."""
    steps_per_second = realtime * FRAME_RATE
    arrivals = chunk_arrivals(8 * FRAME_RATE, steps_per_second)
    assert dry_seconds(arrivals, lambda time, buffered: 0.0) > 0.0
    assert dry_seconds(arrivals, lambda time, buffered: (1 - realtime) * 8.0 * 0.9) > 0.0


def test_faster_than_real_time_starts_with_the_first_chunks_and_a_finished_clip_at_once():
    lag = stream_lag_seconds(FRAME_RATE)
    assert start_threshold_seconds(0.1, 400, 150.0, FRAME_RATE, lag) == pytest.approx(lag)
    assert start_threshold_seconds(3.0, 0, 10.0, FRAME_RATE, lag) == 3.0
    # Very slow generation: wait for (nearly) the whole clip, never more than the clip.
    assert start_threshold_seconds(0.1, 400, 1.0, FRAME_RATE, lag) == pytest.approx(8.1)
