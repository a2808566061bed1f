"""Model downloads seen from the Qt thread: progress with a speed-based ETA, cancel, done.

bridge.models.download_model does the work on a background thread and reports bytes; this class
turns that into signals for the progress bar and keeps the cancel flag.
"""

import threading
import time

from PyQt6.QtCore import QObject, Qt, pyqtSignal

from bridge.models import DownloadProgress, download_model
from gui.background import Background

MEGABYTE = 1_000_000


def describe_download(progress: DownloadProgress) -> str:
    """'Downloading musicgen-small: 120 of 2400 MB' (or '... verifying it loads')."""
    name = progress.model_id.split("/")[-1]
    if progress.stage == "verifying":
        return f"Checking that {name} loads…"
    if progress.stage == "converting":  # AudioGen: audiocraft's pickles become safetensors, once
        return f"Converting {name} for Segue…"
    return f"Downloading {name}: {progress.bytes_done / MEGABYTE:.0f} of {progress.bytes_total / MEGABYTE:.0f} MB"


class ModelDownloads(QObject):
    progress = pyqtSignal(object, object)  # DownloadProgress, ETA in seconds or None
    finished = pyqtSignal(str)  # model id
    failed = pyqtSignal(str, str)  # model id, message
    cancelled = pyqtSignal(str)

    _reported = pyqtSignal(object, object)

    def __init__(self, background: Background, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._background = background
        self._cancel = threading.Event()
        self.active: str | None = None
        self._reported.connect(self.progress, Qt.ConnectionType.QueuedConnection)

    def start(self, model_id: str) -> None:
        """Download `model_id` (resuming an earlier attempt); one download at a time."""
        if self.active is not None:
            return
        self.active = model_id
        self._cancel = threading.Event()
        started = time.monotonic()
        first_bytes: list[int] = []

        def report(progress: DownloadProgress) -> None:  # the download thread
            first_bytes[:1] = first_bytes[:1] or [progress.bytes_done]  # resumed bytes don't count for speed
            elapsed = time.monotonic() - started
            fetched = progress.bytes_done - first_bytes[0]
            eta = None
            if fetched > 0 and elapsed > 0.5 and progress.stage == "downloading":
                eta = (progress.bytes_total - progress.bytes_done) / (fetched / elapsed)
            self._reported.emit(progress, eta)

        cancel = self._cancel
        self._background.run(
            lambda: download_model(model_id, on_progress=report, cancel=cancel), self._done, self._failed
        )

    def cancel(self) -> None:
        self._cancel.set()

    def _done(self, _folder) -> None:
        model_id, self.active = self.active, None
        self.finished.emit(model_id)

    def _failed(self, message: str) -> None:
        model_id, self.active = self.active, None
        if self._cancel.is_set():
            self.cancelled.emit(model_id)
        else:
            self.failed.emit(model_id, message)


