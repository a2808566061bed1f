"""A preallocated ring of float32 frames between an audio callback and the rest of Segue.

One writer, addressed by absolute frame number: frame n is the n-th frame ever written. Writing and
reading copy into or out of memory allocated once, never wait and never log, so an audio callback
can do either. Two uses:

- history (capture): `write(block, overwrite=True)` keeps the newest `capacity_frames` frames, and
  readers `copy(start, stop)` any span still held;
- queue (playback): `write(block)` stores what fits in the free space and counts the rest as
  overflow; the one consumer takes frames in order with `read_into(out)`.
"""

import numpy as np

from bridge.errors import CaptureError, InvalidParameterError


class RingBuffer:
    def __init__(self, capacity_frames: int, channels: int) -> None:
        if capacity_frames < 1 or channels < 1:
            raise InvalidParameterError(
                f"a ring buffer needs at least one frame and one channel, got {capacity_frames}x{channels}"
            )
        self._data = np.zeros((capacity_frames, channels), dtype=np.float32)
        self.frames_written = 0  # published after the copy: frames below it are complete
        self.frames_read = 0  # the queue consumer's position
        self.overflows = 0  # writes that did not fit (queue use)
        self.overflow_frames = 0
        # Frames below `_claimed - capacity` may be overwritten by a write in progress.
        self._claimed = 0

    @property
    def capacity_frames(self) -> int:
        return self._data.shape[0]

    @property
    def channels(self) -> int:
        return self._data.shape[1]

    @property
    def oldest_frame(self) -> int:
        """The first frame still held (history use)."""
        return max(0, self.frames_written - self.capacity_frames)

    @property
    def readable_frames(self) -> int:
        """Frames written and not yet consumed (queue use)."""
        return self.frames_written - self.frames_read

    @property
    def free_frames(self) -> int:
        return self.capacity_frames - self.readable_frames

    def write(self, block: np.ndarray, overwrite: bool = False) -> int:
        """Append `block` (frames, channels); return how many frames were stored.

        Without `overwrite`, frames not yet consumed are never overwritten: what does not fit is
        dropped and counted in `overflows` / `overflow_frames`. With it, the oldest frames make room.
        """
        frames = block.shape[0]
        if overwrite:
            if frames > self.capacity_frames:  # only the newest capacity's worth can be kept
                self.frames_written += frames - self.capacity_frames
                block = block[frames - self.capacity_frames :]
        elif frames > self.free_frames:
            self.overflows += 1
            self.overflow_frames += frames - self.free_frames
            block = block[: self.free_frames]
        stored = block.shape[0]
        start = self.frames_written
        self._claimed = start + stored
        self._copy_in(start, block)
        self.frames_written = start + stored
        if overwrite and self.frames_read < self.oldest_frame:
            self.frames_read = self.oldest_frame
        return stored

    def read_into(self, out: np.ndarray) -> int:
        """Queue consumer: copy the next unread frames into `out`; return how many (may be fewer)."""
        frames = min(out.shape[0], self.readable_frames)
        self._copy_out(self.frames_read, out[:frames])
        self.frames_read += frames
        return frames

    def rewind(self, frame: int) -> None:
        """Queue consumer: read again from `frame` (to loop a finished clip). Only while nothing writes."""
        if not self.oldest_frame <= frame <= self.frames_written:
            raise CaptureError(f"frame {frame} is no longer held (held: {self.oldest_frame}-{self.frames_written})")
        self.frames_read = frame

    def copy_into(self, start: int, out: np.ndarray) -> bool:
        """Copy frames [start, start + len(out)) into `out`; False if any of them is not held intact."""
        stop = start + out.shape[0]
        if start < self.oldest_frame or stop > self.frames_written:
            return False
        self._copy_out(start, out)
        # A write that began during the copy may have overwritten the oldest frames under us.
        return start >= self._claimed - self.capacity_frames

    def copy(self, start: int, stop: int) -> np.ndarray:
        """A new array with frames [start, stop). Raises CaptureError if they are not all held."""
        if stop < start:
            raise InvalidParameterError(f"a span must not end before it starts, got frames {start}-{stop}")
        out = np.empty((stop - start, self.channels), dtype=np.float32)
        if not self.copy_into(start, out):
            raise CaptureError(
                f"frames {start}-{stop} are not in the buffer (it holds {self.oldest_frame}-{self.frames_written})"
            )
        return out

    def clear(self) -> None:
        """Forget everything. Only while nothing writes or reads."""
        self.frames_written = self.frames_read = self._claimed = 0
        self.overflows = self.overflow_frames = 0

    def _copy_in(self, start: int, block: np.ndarray) -> None:
        at = start % self.capacity_frames
        first = min(block.shape[0], self.capacity_frames - at)
        self._data[at : at + first] = block[:first]
        self._data[: block.shape[0] - first] = block[first:]

    def _copy_out(self, start: int, out: np.ndarray) -> None:
        at = start % self.capacity_frames
        first = min(out.shape[0], self.capacity_frames - at)
        out[:first] = self._data[at : at + first]
        out[first:] = self._data[: out.shape[0] - first]
