"""Stream clocks: placing frames on a stream's time line from late, jittery callback stamps."""

import random

import pytest

from bridge.audio.stream_clock import StreamClock, stream_time_offset
from bridge.errors import DeviceError

RATE = 48000


def test_clock_finds_the_true_line_under_late_and_occasionally_early_stamps():
    origin_seconds, block = 12.345, 256
    clock = StreamClock(RATE)
    rng = random.Random(3)
    for index in range(1000):
        frame = index * block
        delay = 0.0 if index % 10 == 0 else rng.uniform(0.0, 0.004)  # every tenth block is on time
        early = -0.0005 if index == 500 else 0.0  # one smoothed stamp lands early
        clock.tick(frame, origin_seconds + frame / RATE + delay + early)

    assert clock.frame_at(origin_seconds + 100000 / RATE) == pytest.approx(100000, abs=0.01)
    assert clock.time_at(100000) == pytest.approx(origin_seconds + 100000 / RATE, abs=1e-9)
    assert clock.frame_at(clock.time_at(123456.5)) == pytest.approx(123456.5, abs=1e-6)


def test_clock_ignores_blocks_without_a_time_and_says_when_it_knows_nothing():
    clock = StreamClock(RATE)
    clock.tick(0, 0.0)  # host API without timing
    assert not clock.ready
    with pytest.raises(DeviceError, match="has not reported its timing"):
        clock.frame_at(1.0)


def test_clock_forgets_old_blocks_so_drift_does_not_pile_up():
    clock = StreamClock(RATE, window_blocks=100)
    for index in range(100):
        clock.tick(index * 256, 1.0 + index * 256 / RATE)
    for index in range(100, 300):  # the line has since moved 10 frames later
        clock.tick(index * 256, 1.0 + (index * 256 + 10) / RATE)
    assert clock.frame_at(1.0 + 100000 / RATE) == pytest.approx(99990, abs=0.01)


def test_offset_between_whole_frame_clocks_is_exact():
    # Like JACK: each stream's clock counts whole frames from when it was opened.
    ticks = iter(range(10**6))
    now = {"frames": 0}

    def advance():
        now["frames"] += next(ticks) % 3 == 0  # real time moves on between reads

    def read_a():
        advance()
        return (now["frames"] + 5000) / RATE

    def read_b():
        advance()
        return (now["frames"] + 123) / RATE

    assert stream_time_offset(read_a, read_b) * RATE == pytest.approx(4877, abs=1e-6)
