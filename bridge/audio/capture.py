"""Keep the last minute of an input device (the DAW through a loopback device) ready to snapshot.

The Recorder writes every block into a preallocated ring buffer at the device's own rate; its
callback copies and counts, nothing else. A snapshot asks for "the last N seconds" or "the N bars
that end on this bar line": the DAW reports where its playhead was at some moment (a BeatAnchor on
the recorder's stream clock), the DAW's sound reaches the buffer `latency_frames` later (measured by
bridge.audio.calibration), and the tempo turns beats into frames from there.
"""

import logging
import time
from dataclasses import dataclass

import numpy as np

from bridge.audio.devices import DeviceStream
from bridge.audio.ring_buffer import RingBuffer
from bridge.audio.stream_clock import StreamClock
from bridge.errors import CaptureError, InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples, beats_to_seconds

DEFAULT_HISTORY_SECONDS = 60.0
POLL_SECONDS = 0.005
SLACK_SECONDS = 1.0

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BeatAnchor:
    """The DAW's playhead was at `beat` (quarter notes from the song start) when the recorder's
    stream clock read `stream_time` seconds (Recorder.stream_time() at the moment the DAW said so)."""

    beat: float
    stream_time: float


def bar_span_frames(
    bars: int,
    end_beat: float,
    bpm: float,
    signature: TimeSignature,
    sample_rate: int,
    anchor_beat: float,
    anchor_frame: float,
) -> tuple[int, int]:
    """Frames [start, stop) of the `bars` bars ending on the bar line at `end_beat`, when beat
    `anchor_beat` sits at (fractional) frame `anchor_frame`. The end lands on the bar line's nearest
    frame and the span lasts exactly bars_to_samples(bars) frames, the length generation works with.
    """
    if bars < 1:
        raise InvalidParameterError(f"a snapshot needs at least one bar, got {bars}")
    stop = round(anchor_frame + beats_to_seconds(end_beat - anchor_beat, bpm) * sample_rate)
    return stop - bars_to_samples(bars, bpm, signature, sample_rate), stop


class Recorder(DeviceStream):
    """Records an input device into memory, keeping the last `history_seconds`.

    `device`: an index or part of the name (None: the remembered input, else the default).
    `latency_frames`: the measured round trip (calibration), by which bar snapshots are shifted.
    BeatAnchors are stamped with stream_time(), this stream's clock. Use as a context manager, or
    call start() and close().
    """

    kind = "input"

    def __init__(
        self,
        device: str | int | None = None,
        history_seconds: float = DEFAULT_HISTORY_SECONDS,
        channels: int | None = None,
        latency_frames: int = 0,
    ) -> None:
        if history_seconds <= 0:
            raise InvalidParameterError(f"history must be longer than 0 s, got {history_seconds:g}")
        super().__init__(device, channels)
        self.latency_frames = latency_frames
        self.overflows = 0  # blocks the device or host dropped before we got them
        self.history_frames = round(history_seconds * self.sample_rate)
        # The slack keeps the oldest promised second from being overwritten while a snapshot copies it.
        self._ring = RingBuffer(self.history_frames + round(SLACK_SECONDS * self.sample_rate), self.channels)
        self._clock = StreamClock(self.sample_rate)

    # ------------------------------------------------------------------ stream

    def close(self) -> None:
        running = self._stream is not None
        super().close()
        if running and self.overflows:
            log.warning("%s dropped input %d times while recording", self.device.label, self.overflows)

    def _callback(self, indata, frames, time_info, status) -> None:
        if status.input_overflow:
            self.overflows += 1
        self._clock.tick(self._ring.frames_written, time_info.currentTime)
        self._ring.write(indata, overwrite=True)

    # ------------------------------------------------------------------ clock

    @property
    def frames_recorded(self) -> int:
        return self._ring.frames_written

    def frame_at_time(self, stream_time: float) -> float:
        """The frame the recorder was receiving at `stream_time` (before any latency shift)."""
        return self._clock.frame_at(stream_time)

    def time_at_frame(self, frame: float) -> float:
        """The stream time at which the recorder was receiving `frame` (the inverse of frame_at_time)."""
        return self._clock.time_at(frame)

    def beat_frame(self, anchor: BeatAnchor) -> float:
        """Where the DAW's sound at `anchor.beat` lands in the recording: shifted by the latency."""
        return self.frame_at_time(anchor.stream_time) + self.latency_frames

    # ------------------------------------------------------------------ snapshots

    def frames(self, start: int, stop: int, timeout_seconds: float = 0.0) -> np.ndarray:
        """Frames [start, stop) of the recording, waiting up to `timeout_seconds` for them to arrive.

        Raises CaptureError if they are not recorded in time or have left the history already.
        """
        deadline = time.monotonic() + timeout_seconds
        while self._ring.frames_written < stop and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if self._ring.frames_written < stop:
            raise CaptureError(
                f"the recording has not reached that point yet "
                f"({(stop - self._ring.frames_written) / self.sample_rate:.2f} s to go)"
            )
        if start < self._ring.frames_written - self.history_frames:
            raise CaptureError(
                f"that audio is older than the {self.history_frames / self.sample_rate:g} s the recorder keeps"
            )
        return self._ring.copy(start, stop)

    def last_seconds(self, seconds: float) -> np.ndarray:
        """The most recent `seconds` of audio (fewer if the recorder has not run that long)."""
        stop = self._ring.frames_written
        start = max(stop - round(seconds * self.sample_rate), stop - self.history_frames, 0)
        return self.frames(start, stop)

    def last_bars(
        self,
        bars: int,
        end_beat: float,
        bpm: float,
        signature: TimeSignature,
        anchor: BeatAnchor,
        timeout_seconds: float = 0.0,
    ) -> np.ndarray:
        """The `bars` bars ending on the bar line at `end_beat` (quarter notes from the song start),
        exactly bars_to_samples(bars) frames long, waiting up to `timeout_seconds` for the bar line
        to be recorded. The DAW position comes from `anchor`, shifted by `latency_frames`.
        """
        start, stop = bar_span_frames(
            bars, end_beat, bpm, signature, self.sample_rate, anchor.beat, self.beat_frame(anchor)
        )
        return self.frames(start, stop, timeout_seconds)
