"""Continue from the DAW: the last bars of the producer's music, through bridge.workflow.

A Recorder keeps the last minute of the chosen loopback input while the panel runs, so "the last 4
bars" is there the moment Continue is pressed; with REAPER and no loopback, REAPER renders them.
Taking the bars waits for the DAW (and maybe the bar line), so `take_bars` runs on a worker thread.
"""

import logging

from bridge import paths
from bridge.audio.calibration import saved_round_trip
from bridge.audio.capture import Recorder
from bridge.audio.devices import chosen_device
from bridge.daw.link import DawLink
from bridge.errors import SegueError
from bridge.library import ClipLibrary
from bridge.workflow import ContinueMyTrack, Source
from gui.engine_controller import ClaimedEngine, EngineController

DEFAULT_SOURCE_BARS = 4
log = logging.getLogger(__name__)


class DawCapture:
    def __init__(self, library: ClipLibrary, engine: EngineController | None = None) -> None:
        self._library = library
        self._engine = engine
        self.recorder: Recorder | None = None
        self.session: ContinueMyTrack | None = None

    def open(self, link: DawLink, input_device: str | None) -> None:
        """Follow `link`; record `input_device` (a loopback the DAW plays into) if one is chosen.

        None records nothing: the system default input is usually a microphone, not the DAW.
        Raises DeviceError when the chosen input cannot be opened (then only REAPER renders work).
        """
        self.close()
        try:
            if input_device is not None:
                self.recorder = Recorder(input_device).start()
                self.recorder.latency_frames = self._round_trip(self.recorder)
        finally:
            # The session generates through the panel's engine process (Continue my track's window).
            port = ClaimedEngine(self._engine) if self._engine is not None else None
            self.session = ContinueMyTrack(
                port, link=link, recorder=self.recorder, library=self._library, export_dir=paths.export_dir()
            )
            if port is not None:
                port.listener = self.session.on_engine_event

    def take_bars(self, bars: int = DEFAULT_SOURCE_BARS) -> Source:
        """The last `bars` bars before the loop end or the playhead, as a file (blocks; worker thread)."""
        if self.session is None:
            raise SegueError("no DAW is linked: choose one in Settings")
        source = self.session.source_from_daw(bars)
        if source.path is None:
            raise SegueError("the DAW's audio could not be saved for the engine")
        return source

    @property
    def overflows(self) -> int | None:
        return self.recorder.overflows if self.recorder is not None else None

    def device_label(self) -> str | None:
        return self.recorder.device.label if self.recorder is not None else None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
        if self.recorder is not None:
            self.recorder.close()
            self.recorder = None

    @staticmethod
    def _round_trip(recorder: Recorder) -> int:
        """The calibrated round trip for this input and the chosen output, or 0 if never calibrated."""
        try:
            output = chosen_device("output")
        except SegueError as error:
            log.info("no output device to look up a calibration for: %s", error)
            return 0
        return saved_round_trip(recorder.device, output, recorder.sample_rate) or 0
