"""Generate, Continue, Retry and Cancel: the job buttons, the requests they build, and the engine's and
downloads' signals that report back (into the window's progress display and results list).

A model that is not on disk is downloaded first; the request waits here and is submitted when the
download finishes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, Qt
from PyQt6.QtWidgets import QComboBox, QHBoxLayout

from bridge.engine.request import DEFAULT_MODEL, GenerationRequest
from bridge.errors import SegueError
from bridge.models import DownloadProgress, model_status
from bridge.workflow import Source
from gui.clip_store import ClipEntry
from gui.continue_track import ContinueTrackWindow
from gui.controls import muted_label as _muted
from gui.controls import push_button as _button
from gui.daw_capture import DEFAULT_SOURCE_BARS
from gui.model_downloads import describe_download

if TYPE_CHECKING:
    from gui.main_window import MainWindow

# The end of the audio a continuation listens to (the engine's limit is 30 s).
CONTINUE_PROMPT_SECONDS = 10.0
SOURCE_CLIP, SOURCE_FILE, SOURCE_DAW = "clip", "file", "daw"


class JobRunner(QObject):
    """Owns the job buttons and the Continue source; starts jobs and shows how they go."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)  # a child: its connections end with the window
        self.window = window
        self.last_request: GenerationRequest | None = None
        self._waiting_for_download: GenerationRequest | None = None
        self._dropped_file: Path | None = None
        self._job_takes: dict[int, int] = {}
        self.continue_track: ContinueTrackWindow | None = None

        self.generate_button = _button("Generate", "Make new clips from the prompt (Ctrl+Enter)", primary=True)
        self.continue_button = _button("Continue", "Continue the chosen audio with the prompt (Ctrl+Shift+Enter)")
        self.continue_source = QComboBox()
        self.continue_source.addItem("selected clip", SOURCE_CLIP)
        self.continue_source.addItem(f"DAW: last {DEFAULT_SOURCE_BARS} bars", SOURCE_DAW)
        self.continue_source.setItemData(
            1, "Captured from the loopback input (or rendered by REAPER), ending at the loop end or the "
            "last bar line before the playhead", Qt.ItemDataRole.ToolTipRole)
        self.continue_source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.continue_source.setToolTip("What Continue extends. Drop an audio file on the window to add it here.")
        self.continue_track_button = _button(
            "Continue my track…", "Continue your song's last bars, locked to its grid, and put the take back (Ctrl+T)"
        )
        self.continue_track_button.clicked.connect(self.open_continue_track)
        self.retry_button = _button("Retry", "Run the last job again with a new seed (Ctrl+R)")
        self.cancel_button = _button("Cancel", "Stop the running job or download (Esc)")
        self.generate_button.clicked.connect(self.generate)
        self.continue_button.clicked.connect(self.continue_)
        self.retry_button.clicked.connect(self.retry)
        self.cancel_button.clicked.connect(self.cancel)

    def row(self) -> QHBoxLayout:
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.continue_button, 1)
        buttons.addWidget(_muted("from"))
        buttons.addWidget(self.continue_source, 1)
        buttons.addWidget(self.continue_track_button, 1)
        buttons.addWidget(self.retry_button, 1)
        buttons.addWidget(self.cancel_button, 1)
        return buttons

    def connect_signals(self) -> None:
        engine, downloads = self.window.engine, self.window.downloads
        engine.job_started.connect(self._job_started)
        engine.model_loading.connect(self._model_loading)
        engine.progress.connect(self._progress)
        engine.clips_ready.connect(self._clips_ready)
        engine.job_failed.connect(self._job_failed)
        engine.job_cancelled.connect(self._job_cancelled)
        downloads.progress.connect(self._download_progress)
        downloads.finished.connect(self._download_finished)
        downloads.failed.connect(self._download_failed)
        downloads.cancelled.connect(self._download_cancelled)

    def update_buttons(self) -> None:
        self.cancel_button.setEnabled(self.window.engine.busy or self.window.downloads.active is not None)
        self.retry_button.setEnabled(self.last_request is not None)

    # -- starting jobs ---------------------------------------------------------------------------

    def generate(self) -> None:
        self._run(lambda: self.window.form.build_request())

    def continue_(self) -> None:
        if self.continue_source.currentData() == SOURCE_DAW:
            self.continue_from_daw()
            return

        def request() -> GenerationRequest:
            path = self._continue_source_path()
            return self.window.form.build_request(audio_path=str(path), prompt_seconds=CONTINUE_PROMPT_SECONDS)

        self._run(request)

    def continue_from_daw(self, bars: int = DEFAULT_SOURCE_BARS) -> None:
        """Take the DAW's last bars (in the background), then continue them at the DAW's tempo."""
        window = self.window
        window.banner.hide()
        window.activity.setText(f"Taking the last {bars} bars from {window.daw.link.display_name}…")
        window.progress_display.busy()

        def taken(source: Source) -> None:
            window.progress_display.idle(source.describe()[:1].upper() + source.describe()[1:], 0)

            def request() -> GenerationRequest:
                built = window.form.build_request(
                    audio_path=str(source.path), prompt_seconds=source.seconds
                )
                return dataclasses.replace(built, bpm=source.bpm, signature=str(source.signature)).validate()

            self._run(request)

        def failed(message: str) -> None:
            window.progress_display.idle("Ready", 0)
            window.show_error(message)

        window.background.run(lambda: window.capture.take_bars(bars), taken, failed)

    def continue_file(self, path: Path) -> None:
        """Continue an audio file (a drop): it becomes the Continue source, and a job starts."""
        path = Path(path).resolve()
        self._dropped_file = path
        row = self.continue_source.findData(SOURCE_FILE)
        label = f"file: {_shorten(path.name, 22)}"
        if row < 0:
            self.continue_source.addItem(label, SOURCE_FILE)
            row = self.continue_source.count() - 1
        self.continue_source.setItemText(row, label)
        self.continue_source.setItemData(row, str(path), Qt.ItemDataRole.ToolTipRole)
        self.continue_source.setCurrentIndex(row)
        self.continue_()

    def open_continue_track(self) -> ContinueTrackWindow:
        """The Continue my track window (one, kept while the panel runs)."""
        window = self.window
        if self.continue_track is None:
            self.continue_track = ContinueTrackWindow(
                window.capture, window.engine.store, window.background, window.auditioner,
                model_id=lambda: window.form.model.currentData() or DEFAULT_MODEL,
                on_takes=self._continued_track, prompt=window.form.prompt.currentText(), parent=window,
            )
        self.continue_track.show()
        self.continue_track.raise_()
        return self.continue_track

    def _continued_track(self, entries: list[ClipEntry]) -> None:
        """Fitted takes from Continue my track join the results, to audition, keep or drag."""
        self.window.results_model.add(entries)
        if entries:
            self.window.results.select_entry(entries[0])

    def retry(self) -> None:
        """The last job again, same input and settings, with a new seed."""
        if self.last_request is None:
            self.window.show_error("nothing to retry yet: generate or continue first")
            return
        self._run(lambda: dataclasses.replace(self.last_request, seed=None))

    def cancel(self) -> None:
        window = self.window
        if window.downloads.active:
            self._waiting_for_download = None
            window.downloads.cancel()
            window.activity.setText("Cancelling the download…")
        if window.engine.busy:
            window.engine.cancel_all()
            window.activity.setText("Cancelling…")

    def _run(self, make_request: Callable[[], GenerationRequest]) -> None:
        window = self.window
        try:
            request = make_request()
            needs_download = not model_status(request.model).usable_offline
        except SegueError as error:
            window.show_error(str(error))
            return
        window.banner.hide()
        self.last_request = request
        window.form.remember_prompt(request.prompt)
        window.wiring.save_panel_memory()
        if needs_download:
            self._waiting_for_download = request
            window.downloads.start(request.model)
            window.activity.setText(f"Preparing to download {request.model}…")
            window.progress_display.busy()
        else:
            self._submit(request)
        window._update_buttons()

    def _submit(self, request: GenerationRequest) -> None:
        window = self.window
        try:
            job_id = window.engine.submit(request)
        except SegueError as error:
            window.show_error(str(error))
            return
        self._job_takes[job_id] = request.variations
        queued = len(window.engine.active_jobs) - 1
        window.activity.setText("Starting the engine…" if not queued else f"Queued behind {queued} job(s)")
        if not queued:
            window.progress_display.busy()

    def _continue_source_path(self) -> Path:
        if self.continue_source.currentData() == SOURCE_FILE and self._dropped_file is not None:
            return self._dropped_file
        entry = self.window.results.selected_entry()
        if entry is None:
            raise SegueError("select a clip to continue, or drop an audio file on the window")
        return entry.path

    # -- engine and download signals -------------------------------------------------------------

    def _job_started(self, job_id: int) -> None:
        takes = self._job_takes.get(job_id, 1)
        self.window.activity.setText(f"Generating {takes} take{'s' if takes != 1 else ''}…")
        self.window.progress_display.busy()

    def _model_loading(self, job_id: int, message: str, expected_seconds: float | None) -> None:
        self.window.activity.setText(message[:1].upper() + message[1:] + "…")
        if expected_seconds is None:  # first load of this model here: nothing to base an ETA on
            self.window.progress_display.busy()
            return
        self.window.progress_display.start_loading(expected_seconds)

    def _progress(self, job_id: int, done: int, total: int, eta: float | None) -> None:
        takes = self._job_takes.get(job_id, 1)
        self.window.activity.setText(f"Generating {takes} take{'s' if takes != 1 else ''}…")
        self.window.progress_display.show_fraction(done / total if total else 0.0, eta if done < total else None)

    def _clips_ready(self, job_id: int, entries: list[ClipEntry]) -> None:
        window = self.window
        self._job_takes.pop(job_id, None)
        window.results_model.add(entries)
        window.form.refresh_models()  # a random model may just have been built
        if entries:
            window.results.select_entry(entries[0])
            window.results.scrollToTop()
        window._update_buttons()
        window.progress_display.idle(f"Done: {len(entries)} new clip{'s' if len(entries) != 1 else ''}", 100)

    def _job_failed(self, job_id: int, message: str) -> None:
        self._job_takes.pop(job_id, None)
        self.window.show_error(message)
        self.window.progress_display.idle("Failed", 0)

    def _job_cancelled(self, job_id: int) -> None:
        self._job_takes.pop(job_id, None)
        self.window.progress_display.idle("Cancelled", 0)

    def _download_progress(self, progress: DownloadProgress, eta: float | None) -> None:
        self.window.activity.setText(describe_download(progress))
        if progress.stage in ("verifying", "converting"):
            self.window.progress_display.busy()
        else:
            self.window.progress_display.show_fraction(progress.fraction, eta)

    def _download_finished(self, model_id: str) -> None:
        self.window.form.refresh_models()
        request, self._waiting_for_download = self._waiting_for_download, None
        if request is not None and request.model == model_id:
            self._submit(request)
        else:
            self.window.progress_display.idle(f"{model_id} is downloaded", 100)
        self.window._update_buttons()

    def _download_failed(self, model_id: str, message: str) -> None:
        self._waiting_for_download = None
        self.window.form.refresh_models()
        self.window.show_error(message)
        self.window.progress_display.idle("Download failed", 0)
        self.window._update_buttons()

    def _download_cancelled(self, model_id: str) -> None:
        self.window.form.refresh_models()  # it is partly downloaded now; the next Generate resumes
        self.window.progress_display.idle("Download cancelled", 0)
        self.window._update_buttons()


def _shorten(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
