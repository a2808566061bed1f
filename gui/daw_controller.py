"""The DAW link seen from the Qt thread: its transport for the status bar, and "send to DAW".

The link's threads update a TransportState; a 10 Hz QTimer reads its snapshot here, so no DAW
thread ever touches a widget. Placing a clip waits for the DAW's replies, so it runs in the
background and reports back through the window's Background helper.
"""

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from bridge import paths
from bridge.daw.connect import open_link
from bridge.daw.link import DawLink, NoDawLink
from bridge.daw.placement import ClipPlacer, ClipTarget, PlacedClip
from bridge.daw.transport import TransportSnapshot
from bridge.settings import DawSettings
from gui.background import Background

POLL_MILLISECONDS = 100


class DawController(QObject):
    transport_changed = pyqtSignal(object)  # TransportSnapshot

    def __init__(self, background: Background, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._background = background
        self.link: DawLink = NoDawLink()
        self._last: TransportSnapshot | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MILLISECONDS)
        self._timer.timeout.connect(self._poll)
        self._timer.start()

    def open(self, choice: DawSettings) -> None:
        """Follow the DAW in `choice` from now on; raises DawError if its port is taken (no link then)."""
        self.close()
        self.link = open_link(choice).start()
        self._poll()

    def snapshot(self) -> TransportSnapshot:
        return self.link.transport.snapshot()

    def send(self, path: Path, on_done: Callable[[PlacedClip], None], on_error: Callable[[str], None]) -> None:
        """Place the clip through the link (Live: a Session slot on a "Segue" track; REAPER: the edit
        cursor); when the DAW cannot, a copy goes to the export folder (Settings > Folders) and the
        result says to drag it in."""
        placer = ClipPlacer(None if isinstance(self.link, NoDawLink) else self.link, paths.export_dir())
        self._background.run(lambda: placer.place(ClipTarget(Path(path))), on_done, on_error)

    def close(self) -> None:
        self.link.close()
        self.link = NoDawLink()

    def _poll(self) -> None:
        snapshot = self.snapshot()
        # The time of the last message changes with every message; only what the producer sees counts.
        comparable = replace(snapshot, last_message_time=None)
        if comparable != self._last:
            self._last = comparable
            self.transport_changed.emit(snapshot)
