"""One self-updating status line for a job on a terminal: starting, loading (with its ETA), generating.

On a terminal a producer sees what the engine is doing at every moment, even while a model loads and
the worker sends nothing (a ticker redraws the elapsed time and counts the ETA down). Piped or
redirected output stays free of it: scripts read only the final summary and the paths.
"""

import shutil
import sys
import threading
import time
from typing import TextIO

from bridge.engine.events import EngineEvent, EngineReady, JobStarted, ModelLoading, Progress

REDRAW_SECONDS = 0.25
BAR_CELLS = 20
CLEAR_LINE = "\r\x1b[K"


class JobStatusLine:
    """Feed it the engine's events (from any thread); `close()` clears the line. Inert unless `stream` is a TTY."""

    def __init__(self, model_id: str, quality: str, stream: TextIO = sys.stderr) -> None:
        self.stream = stream
        self.enabled = _is_terminal(stream)
        self.model_id = model_id
        self.quality = quality
        self.device: str | None = None
        self.stage = "starting the engine"
        self.stage_started = time.monotonic()
        self.expected_load_seconds: float | None = None
        self.progress: Progress | None = None
        self.progress_at = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        if self.enabled:
            threading.Thread(target=self._tick, name="segue-status-line", daemon=True).start()

    def on_event(self, event: EngineEvent) -> None:
        with self._lock:
            now = time.monotonic()
            if isinstance(event, JobStarted):
                self.stage, self.stage_started = "waiting for the engine", now
            elif isinstance(event, ModelLoading):
                self.stage, self.stage_started = f"loading {event.model_id}", now
                self.expected_load_seconds = event.expected_seconds
            elif isinstance(event, EngineReady):
                self.device = event.device
            elif isinstance(event, Progress):
                if event.steps_done >= event.steps_total:  # the last audio is decoded, the result sent
                    self.stage, self.stage_started = "finishing", now
                else:
                    self.stage = "generating"
                self.progress, self.progress_at = event, now
            else:
                return
        self._draw()

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        if self.enabled:
            with self._lock:
                self.stream.write(CLEAR_LINE)
                self.stream.flush()

    def text(self, now: float | None = None) -> str:
        """The line as it reads at `now` (time.monotonic())."""
        now = time.monotonic() if now is None else now
        with self._lock:
            if self.stage == "generating" and self.progress is not None:
                text = self._generating_text(now)
            else:
                text = f"{self.stage}… {now - self.stage_started:.0f} s"
                if self.stage.startswith("loading") and self.expected_load_seconds:
                    text += f" of about {self.expected_load_seconds:.0f} s (last time)"
            where = f"{self.device}, " if self.device else ""
            return f"{text} · {where}quality {self.quality}"

    def _generating_text(self, now: float) -> str:
        progress = self.progress
        filled = round(progress.fraction * BAR_CELLS)
        bar = "█" * filled + "·" * (BAR_CELLS - filled)
        text = f"generating {bar} {progress.fraction:4.0%} {progress.steps_done}/{progress.steps_total} steps"
        if progress.eta_seconds is not None:
            remaining = max(0.0, progress.eta_seconds - (now - self.progress_at))
            text += f", ETA {_duration(remaining)}"
        return text

    def _draw(self) -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((80, 24)).columns
        line = self.text()[: max(10, width - 1)]
        with self._lock:
            if self._closed.is_set():
                return
            self.stream.write(CLEAR_LINE + line)
            self.stream.flush()

    def _tick(self) -> None:
        while not self._closed.wait(REDRAW_SECONDS):
            self._draw()


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or unusual stream
        return False


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"
