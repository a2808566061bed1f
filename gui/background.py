"""Run a slow bridge call (library scan, DAW placement, calibration) off the Qt thread.

The result, or the SegueError message, comes back on the Qt thread through a queued signal; an
unexpected exception goes to sys.excepthook there (logged, shown as one line).
"""

import sys
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

from PyQt6.QtCore import QObject, Qt, pyqtSignal

from bridge.errors import SegueError


class Background(QObject):
    _finished = pyqtSignal(object, object)  # the future, its callbacks

    def __init__(self, parent: QObject | None = None, workers: int = 2) -> None:
        super().__init__(parent)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="segue-panel")
        self._pending: set[Future] = set()
        self._finished.connect(self._deliver, Qt.ConnectionType.QueuedConnection)

    def run(self, work: Callable[[], object], on_done: Callable[[object], None],
            on_error: Callable[[str], None]) -> Future:
        future = self._pool.submit(work)
        self._pending.add(future)
        future.add_done_callback(lambda done: self._finished.emit(done, (on_done, on_error)))
        return future

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _deliver(self, future: Future, callbacks) -> None:
        self._pending.discard(future)
        on_done, on_error = callbacks
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            on_done(future.result())
        elif isinstance(error, SegueError):
            on_error(str(error))
        else:
            sys.excepthook(type(error), error, error.__traceback__)
