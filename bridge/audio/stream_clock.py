"""Where a stream's frames sit on its clock, so a DAW position or another stream can be placed in it.

PortAudio stamps every callback with the stream's time (`time_info.currentTime`, the clock that
`Stream.time` reads). A callback runs late by a scheduling delay that varies from block to block, so
the blocks that look earliest, relative to their frame numbers, show the true line:
time = (frame + origin) / rate. The callback records one number per block into a preallocated window
of recent blocks (recent, so the slow drift of a sound card's crystal against the system clock does
not pile up); readers take a low percentile of it rather than the minimum, because some host APIs
(JACK) smooth their timestamps and now and then stamp a block slightly early.

How close this gets depends on the host API. On JACK, PortAudio stamps each stream with
`jack_frame_time()` at the moment that stream's own callback runs (pa_jack.c 375345a, l.1461 and
1597-1650), so one stream's line is exact to a frame or two, but a second stream in the same JACK
cycle trails by however long the first stream's callback took: up to a fraction of a period, which
is why tests compare two streams to within a quarter period, not a few frames.
"""

import math

import numpy as np

from bridge.errors import DeviceError

WINDOW_BLOCKS = 1024
EARLIEST_PERCENTILE = 2.0


class StreamClock:
    def __init__(self, sample_rate: float, window_blocks: int = WINDOW_BLOCKS) -> None:
        self.sample_rate = float(sample_rate)
        self._lags = np.full(window_blocks, math.inf)  # stream time in frames minus frame number
        self._blocks = 0

    def tick(self, frame: int, stream_time: float) -> None:
        """Callback side: the block starting at `frame` was handed over at `stream_time` seconds."""
        if stream_time > 0.0:  # 0 means the host API does not report time for this block
            self._lags[self._blocks % self._lags.shape[0]] = stream_time * self.sample_rate - frame
            self._blocks += 1

    def reset(self) -> None:
        self._lags.fill(math.inf)
        self._blocks = 0

    @property
    def ready(self) -> bool:
        return self._blocks > 0

    def frame_at(self, stream_time: float) -> float:
        """The (fractional) frame number the stream reaches at `stream_time` seconds."""
        return stream_time * self.sample_rate - self._origin()

    def time_at(self, frame: float) -> float:
        """The stream time in seconds at which `frame` is handed over."""
        return (frame + self._origin()) / self.sample_rate

    def _origin(self) -> float:
        if not self._blocks:
            raise DeviceError("the audio stream has not reported its timing yet; start it and wait a moment")
        filled = self._lags[: min(self._blocks, self._lags.shape[0])]
        return float(np.percentile(filled, EARLIEST_PERCENTILE))


def stream_time_offset(read_a, read_b, tries: int = 8) -> float:
    """Seconds to add to a time on clock B to get the same moment on clock A.

    `read_a` and `read_b` return the current time of two streams (e.g. `lambda: stream.time`).
    Most host APIs share one clock between streams (offset ~0); JACK starts each stream's clock at
    zero when it opens. Clock A is read either side of B, and the tightest sandwich wins; on JACK,
    whose clocks tick in whole frames, a sandwich with both A readings equal is exact.
    """
    best_width, best_offset = math.inf, 0.0
    for _ in range(tries):
        before, b, after = read_a(), read_b(), read_a()
        if after - before < best_width:
            best_width, best_offset = after - before, (before + after) / 2 - b
    return best_offset
