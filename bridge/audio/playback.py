"""Play audio into an output device (a loopback into the DAW): finished clips, or chunks as they are generated.

Chunks arrive at the model's rate from whatever thread receives them; `feed` converts them to the
device's channels and rate with one soxr streaming resampler per clip, so chunk boundaries leave no
seams, and queues them in a preallocated ring buffer. The device callback only copies from that
buffer, and counts an underrun whenever the buffer runs dry before the clip is complete.

The producer-side methods (begin, feed, finish, play, stop) may be called from different threads.
"""

import logging
import math
import threading
import time

import numpy as np
import soxr

from bridge.audio.devices import DeviceStream
from bridge.audio.io import as_frames, match_channels
from bridge.audio.ring_buffer import RingBuffer
from bridge.audio.stream_clock import StreamClock
from bridge.errors import DeviceError, InvalidParameterError

DEFAULT_BUFFER_SECONDS = 60.0
POLL_SECONDS = 0.005

# The callback's states. BUFFERING waits for the start threshold (or the end of the clip).
IDLE, BUFFERING, PLAYING = 0, 1, 2

log = logging.getLogger(__name__)


class ChunkConverter:
    """Turns a clip's chunks into device audio: channels matched, rate converted by one streaming
    soxr resampler, so the result equals converting the whole clip at once (no seams at chunk edges).
    """

    def __init__(self, from_rate: int, to_rate: int, channels: int) -> None:
        if from_rate <= 0 or to_rate <= 0:
            raise InvalidParameterError(f"sample rates must be positive, got {from_rate} and {to_rate}")
        self.channels = channels
        self._resampler = (
            None if from_rate == to_rate else soxr.ResampleStream(from_rate, to_rate, channels, dtype="float32")
        )

    def convert(self, chunk: np.ndarray) -> np.ndarray:
        block = np.ascontiguousarray(match_channels(as_frames(chunk), self.channels))
        return block if self._resampler is None else self._resampler.resample_chunk(block)

    def flush(self) -> np.ndarray:
        """The frames the resampler holds back until it knows the clip has ended."""
        if self._resampler is None:
            return np.zeros((0, self.channels), np.float32)
        return self._resampler.resample_chunk(np.zeros((0, self.channels), np.float32), last=True)


class Player(DeviceStream):
    """Plays into `device` (an index, part of the name, or None: the remembered output, else the
    default) at the device's own rate. The stream runs from start() to close(), silent between clips,
    so a clip starts within one block. Use as a context manager, or call start() and close().
    """

    kind = "output"

    def __init__(
        self,
        device: str | int | None = None,
        channels: int | None = None,
        buffer_seconds: float = DEFAULT_BUFFER_SECONDS,
    ) -> None:
        super().__init__(device, channels)
        self._ring = RingBuffer(round(buffer_seconds * self.sample_rate), self.channels)
        self._clock = StreamClock(self.sample_rate)
        self._lock = threading.Lock()  # producer side only; the callback never takes it
        self._converter: ChunkConverter | None = None
        self._session = 0  # bumped by stop(), so a feed in progress knows to give up
        # Counters: read anywhere, written by the callback.
        self.underruns = 0  # blocks of the current clip that found the buffer empty before its end
        self.underrun_frames = 0
        self.device_underflows = 0  # blocks the host reports as played late
        # Callback state: the producer sets it only while the callback is IDLE, and asks the callback
        # to go IDLE through `_stop_requested` (the callback may be mid-transition itself).
        self._state = IDLE
        self._stop_requested = False
        self._start_threshold = 1
        self._input_done = False
        self._loop = False
        self._device_frames = 0
        self._clip_device_frame: int | None = None  # device frame at which the clip's frame 0 played
        self._start_frame: int | None = None  # device frame a scheduled clip must start on

    # ------------------------------------------------------------------ stream

    def close(self) -> None:
        if self._stream is not None:
            self.stop()
        super().close()

    def _callback(self, outdata, frames, time_info, status) -> None:
        if status.output_underflow:
            self.device_underflows += 1
        self._clock.tick(self._device_frames, time_info.currentTime)
        if self._stop_requested:
            self._state = IDLE
            self._stop_requested = False
        silent = 0  # frames of this block before a scheduled clip starts
        if self._state == BUFFERING and (
            self._ring.readable_frames >= self._start_threshold or self._input_done
        ):
            silent = 0 if self._start_frame is None else max(0, self._start_frame - self._device_frames)
            if silent < frames:
                self._state = PLAYING
                self._clip_device_frame = self._device_frames + silent
            else:
                silent = 0
        played = silent
        if self._state == PLAYING:
            played += self._ring.read_into(outdata[silent:])
            while played < frames and self._loop and self._ring.frames_written:
                self._ring.rewind(0)
                played += self._ring.read_into(outdata[played:])
            if played < frames:
                if self._input_done and not self._ring.readable_frames:
                    self._state = IDLE
                else:
                    self.underruns += 1
                    self.underrun_frames += frames - played
        outdata[:silent] = 0
        outdata[played:] = 0
        self._device_frames += frames

    # ------------------------------------------------------------------ clips

    def begin(self, sample_rate: int, start_after_seconds: float = 0.0, start_time: float | None = None) -> None:
        """Get ready for a clip that will arrive in chunks at `sample_rate` (stops the current one).

        Playback starts once `start_after_seconds` of audio are buffered (0: with the first chunk),
        or when finish() says the clip is complete, whichever comes first; with `start_time` (this
        stream's clock, see stream_time()) not before the frame the device plays at that time, to
        the frame. A start time already past starts at once.
        """
        if start_after_seconds < 0:
            raise InvalidParameterError(f"start threshold must not be negative, got {start_after_seconds:g} s")
        self.stop()
        start_frame = None if start_time is None else round(self._clock.frame_at(start_time))
        with self._lock:
            self._start_frame = start_frame
            self._converter = ChunkConverter(sample_rate, self.sample_rate, self.channels)
            capacity = self._ring.capacity_frames
            threshold = start_after_seconds * self.sample_rate
            self._start_threshold = capacity if threshold >= capacity else max(1, round(threshold))
            self.underruns = self.underrun_frames = 0
            self._state = BUFFERING

    def feed(self, audio: np.ndarray, timeout_seconds: float | None = None) -> None:
        """Queue the next chunk of the clip begun with begin() (float32 (frames, channels) or mono).

        Waits while the buffer is full, up to `timeout_seconds` (None: as long as the stream plays).
        Returns early, dropping the chunk, if stop() is called meanwhile.
        """
        with self._lock:
            if self._state == IDLE or self._input_done:
                raise InvalidParameterError("call begin() before feeding a clip")
            session = self._session
            block = self._converter.convert(audio)
        self._queue(block, session, timeout_seconds)

    def finish(self) -> None:
        """The clip is complete: play out what is queued, then fall silent."""
        with self._lock:
            if self._converter is None:
                raise InvalidParameterError("call begin() before finishing a clip")
            session = self._session
            tail = self._converter.flush()
        self._queue(tail, session, None)
        with self._lock:
            if session == self._session:
                self._input_done = True

    def play(
        self, audio: np.ndarray, sample_rate: int, loop: bool = False, start_time: float | None = None
    ) -> None:
        """Play a finished clip (resampled to the device), looping it if asked: at once, or from the
        moment `start_time` on this stream's clock (stream_time()), to the frame."""
        self.stop()
        audio = as_frames(audio)
        frames = math.ceil(audio.shape[0] * self.sample_rate / sample_rate) + 64
        with self._lock:
            if frames > self._ring.capacity_frames:  # idle now, so the callback holds no reference
                self._ring = RingBuffer(frames, self.channels)
        # Starts when finish() completes the clip (and not before start_time).
        self.begin(sample_rate, start_after_seconds=math.inf, start_time=start_time)
        self.feed(audio)
        self._loop = loop
        self.finish()

    def stop(self) -> None:
        """Fall silent at once and forget the current clip."""
        with self._lock:
            self._session += 1
            if self._stream is not None and self._stream.active:
                self._stop_requested = True
                deadline = time.monotonic() + 1.0
                while self._stop_requested and time.monotonic() < deadline:
                    time.sleep(POLL_SECONDS / 5)
            # Once the callback has seen the request it no longer touches the buffer.
            self._state = IDLE
            self._stop_requested = False
            self._ring.clear()
            self._input_done = self._loop = False
            self._clip_device_frame = self._start_frame = None
            self._converter = None

    def wait(self, timeout_seconds: float | None = None) -> bool:
        """Wait until the clip has played out; False on timeout. Logs underruns the clip suffered."""
        deadline = math.inf if timeout_seconds is None else time.monotonic() + timeout_seconds
        while self._state != IDLE and time.monotonic() < deadline:
            time.sleep(POLL_SECONDS)
        if self.underruns:
            log.warning("playback ran dry %d times (%d frames of silence inserted)", self.underruns,
                        self.underrun_frames)
        return self._state == IDLE

    # ------------------------------------------------------------------ state

    @property
    def is_playing(self) -> bool:
        return self._state == PLAYING

    @property
    def clip_started(self) -> bool:
        """The current clip has begun to play (it may have finished since)."""
        return self._clip_device_frame is not None

    @property
    def buffered_frames(self) -> int:
        return self._ring.readable_frames

    def time_of_clip_frame(self, frame: float) -> float:
        """Stream time at which frame `frame` (device rate) of the current clip is handed to the
        device, assuming no underrun before it. Raises DeviceError before the clip has started."""
        if self._clip_device_frame is None:
            raise DeviceError("the clip has not started playing yet")
        return self._clock.time_at(self._clip_device_frame + frame)

    def _queue(self, block: np.ndarray, session: int, timeout_seconds: float | None) -> None:
        deadline = math.inf if timeout_seconds is None else time.monotonic() + timeout_seconds
        while block.shape[0]:
            with self._lock:
                if session != self._session:
                    return
                stored = self._ring.write(block[: self._ring.free_frames])
            block = block[stored:]
            if not block.shape[0]:
                return
            if self._stream is None or not self._stream.active:
                raise DeviceError(f"the player's buffer is full and {self.device.label} is not playing")
            if time.monotonic() >= deadline:
                raise DeviceError(f"the player's buffer stayed full for {timeout_seconds:g} s")
            time.sleep(POLL_SECONDS)
