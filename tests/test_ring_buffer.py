"""The ring buffer between audio callbacks and the rest of Segue: history for capture, queue for playback."""

import numpy as np
import pytest

from bridge.audio.ring_buffer import RingBuffer
from bridge.errors import CaptureError, InvalidParameterError


def frames(start, count, channels=2):
    """Frames whose every sample holds its absolute frame number: easy to check after wrapping."""
    return np.repeat(np.arange(start, start + count, dtype=np.float32)[:, None], channels, axis=1)


def test_history_keeps_the_newest_frames_across_the_wrap():
    ring = RingBuffer(1000, 2)
    for start in range(0, 2600, 130):
        ring.write(frames(start, 130), overwrite=True)

    assert ring.frames_written == 2600 and ring.oldest_frame == 1600
    np.testing.assert_array_equal(ring.copy(1600, 2600), frames(1600, 1000))
    np.testing.assert_array_equal(ring.copy(1990, 2010), frames(1990, 20))  # across the wrap
    assert ring.overflows == 0, "overwriting history is not an overflow"


def test_history_refuses_spans_it_no_longer_or_not_yet_holds():
    ring = RingBuffer(100, 1)
    ring.write(frames(0, 250, 1), overwrite=True)
    with pytest.raises(CaptureError, match="frames 149-160 are not in the buffer .it holds 150-250."):
        ring.copy(149, 160)
    with pytest.raises(CaptureError, match="not in the buffer"):
        ring.copy(240, 251)
    with pytest.raises(InvalidParameterError, match="must not end before it starts"):
        ring.copy(200, 190)


def test_history_write_larger_than_the_ring_keeps_its_tail():
    ring = RingBuffer(100, 1)
    ring.write(frames(0, 350, 1), overwrite=True)
    assert ring.frames_written == 350
    np.testing.assert_array_equal(ring.copy(250, 350), frames(250, 100, 1))


def test_a_copy_overtaken_by_a_write_in_progress_is_reported_torn():
    ring = RingBuffer(100, 1)
    ring.write(frames(0, 100, 1), overwrite=True)
    out = np.empty((10, 1), np.float32)
    assert ring.copy_into(0, out)
    ring._claimed = 105  # a write of frames 100-104 has begun and overwrites frames 0-4
    assert not ring.copy_into(0, out)
    assert ring.copy_into(5, out)


def test_queue_hands_frames_over_in_order_and_never_overwrites_unread_ones():
    ring = RingBuffer(1000, 2)
    out = np.empty((300, 2), np.float32)
    taken = []
    for start in range(0, 3000, 250):
        assert ring.write(frames(start, 250)) == 250
        while ring.readable_frames >= 300:
            assert ring.read_into(out) == 300
            taken.append(out.copy())
    assert ring.read_into(out) == ring.frames_written - 300 * len(taken)
    np.testing.assert_array_equal(np.concatenate(taken), frames(0, 300 * len(taken)))


def test_queue_counts_what_does_not_fit_as_overflow():
    ring = RingBuffer(100, 1)
    assert ring.write(frames(0, 80, 1)) == 80
    assert ring.write(frames(80, 50, 1)) == 20
    assert (ring.overflows, ring.overflow_frames, ring.free_frames) == (1, 30, 0)
    out = np.empty((100, 1), np.float32)
    assert ring.read_into(out) == 100
    np.testing.assert_array_equal(out, frames(0, 100, 1))


def test_queue_rewinds_to_replay_a_finished_clip():
    ring = RingBuffer(100, 1)
    ring.write(frames(0, 60, 1))
    out = np.empty((60, 1), np.float32)
    ring.read_into(out)
    ring.rewind(0)
    assert ring.read_into(out) == 60
    np.testing.assert_array_equal(out, frames(0, 60, 1))
    ring.write(frames(60, 90, 1))
    with pytest.raises(CaptureError, match="no longer held"):
        ring.rewind(0)


def test_ring_buffer_needs_room():
    with pytest.raises(InvalidParameterError, match="at least one frame and one channel"):
        RingBuffer(0, 2)
