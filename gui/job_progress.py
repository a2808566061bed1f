"""The panel's activity line and progress bar: percentages, ETAs, a busy bar, and the model-loading ETA.

It only shows what it is told (by the job runner's engine and download slots); `is_busy` keeps an idle
message from overwriting a job that is already reporting.
"""

from collections.abc import Callable

from PyQt6.QtCore import QElapsedTimer, QTimer
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QWidget

LOADING_REFRESH_MILLISECONDS = 200


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    return f"ETA {seconds // 60}:{seconds % 60:02d}"


class ProgressDisplay:
    """Owns the `activity` label and the `progress` bar of the main window."""

    def __init__(self, parent: QWidget, is_busy: Callable[[], bool], is_loading: Callable[[], bool]) -> None:
        self._is_busy, self._is_loading = is_busy, is_loading
        self.activity = QLabel("Ready")
        self.activity.setObjectName("muted")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFixedWidth(220)
        self._loading_expected_seconds = 0.0
        self._loading_clock = QElapsedTimer()
        self._loading_timer = QTimer(parent, interval=LOADING_REFRESH_MILLISECONDS)
        self._loading_timer.timeout.connect(self.show_loading_progress)
        self.idle("Ready", 0)

    def row(self) -> QHBoxLayout:
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.activity, 1)
        progress_row.addWidget(self.progress)
        return progress_row

    def start_loading(self, expected_seconds: float) -> None:
        self._loading_expected_seconds = expected_seconds
        self._loading_clock.start()
        self.show_loading_progress()
        self._loading_timer.start()

    def show_loading_progress(self) -> None:
        """An ETA for loading, from how long this model took to load last time."""
        if not self._is_loading():
            self._loading_timer.stop()
            return
        elapsed = self._loading_clock.elapsed() / 1000.0
        expected = self._loading_expected_seconds
        self.show_fraction(min(elapsed / expected, 0.99), max(expected - elapsed, 0.0))

    def show_fraction(self, fraction: float, eta: float | None) -> None:
        percent = round(100 * fraction)
        self.progress.setRange(0, 100)
        self.progress.setValue(percent)
        eta_text = format_eta(eta)
        self.progress.setFormat(f"{percent}%" + (f"  ·  {eta_text}" if eta_text else ""))

    def busy(self) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat("")

    def idle(self, text: str, value: int) -> None:
        if self._is_busy():
            return  # the next job reports its own progress
        self.activity.setText(text)
        self.progress.setRange(0, 100)
        self.progress.setValue(value)
        self.progress.setFormat("")
