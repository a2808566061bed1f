"""The control panel: compose the form, the job buttons, progress, results and status over bridge's APIs.

Every action is started here and finished by a signal; nothing in this window waits for the engine,
a download, the audio devices or the DAW.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import soundfile
from PyQt6.QtCore import QElapsedTimer, Qt, QTimer
from PyQt6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bridge.daw.placement import PlacedClip
from bridge.engine.request import DEFAULT_MODEL, GenerationRequest
from bridge.errors import SegueError
from bridge.models import DownloadProgress, ModelStatus, all_model_statuses, model_status
from bridge.presets import PresetCatalogue, load_presets
from bridge.settings import Settings, load_settings, update_settings
from bridge.workflow import Source
from gui.audition import Auditioner
from gui.background import Background
from gui.banner import MessageBanner
from gui.clip_store import ClipEntry
from gui.continue_track import ContinueTrackWindow
from gui.controls import muted_label as _muted
from gui.controls import push_button as _button
from gui.daw_capture import DEFAULT_SOURCE_BARS, DawCapture
from gui.daw_controller import DawController
from gui.engine_controller import EngineController
from gui.generate_form import GenerateForm
from gui.model_downloads import ModelDownloads, describe_download
from gui.results import ResultsModel, ResultsView
from gui.settings_dialog import SettingsDialog
from gui.setup_page import open_setup_page
from gui.status_bar import PanelStatusBar
from gui.vary import VaryAction

# The end of the audio a continuation listens to (the engine's limit is 30 s).
CONTINUE_PROMPT_SECONDS = 10.0
AUDIO_SUFFIXES = frozenset(f".{kind.lower()}" for kind in soundfile.available_formats()) | {".aif", ".oga"}
SOURCE_CLIP, SOURCE_FILE, SOURCE_DAW = "clip", "file", "daw"
HEALTH_POLL_MILLISECONDS = 1000


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and path.is_file()


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return ""
    seconds = max(0, round(seconds))
    return f"ETA {seconds // 60}:{seconds % 60:02d}"


class MainWindow(QMainWindow):
    def __init__(
        self,
        engine: EngineController,
        presets: PresetCatalogue | None = None,
        list_models: Callable[[], list[ModelStatus]] = all_model_statuses,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Segue")
        self.setAcceptDrops(True)
        self.engine = engine
        self.background = Background(self)
        self.auditioner = Auditioner(parent=self)
        self.daw = DawController(self.background, self)
        self.downloads = ModelDownloads(self.background, self)
        self.capture = DawCapture(engine.store.library, engine)
        self.continue_track: ContinueTrackWindow | None = None
        self.settings_dialog: SettingsDialog | None = None
        presets = presets if presets is not None else load_presets()
        self._last_request: GenerationRequest | None = None
        self._waiting_for_download: GenerationRequest | None = None
        self._dropped_file: Path | None = None
        self._job_takes: dict[int, int] = {}

        self.settings_button = QToolButton()
        self.settings_button.setText("⚙")
        self.settings_button.setToolTip("Settings: audio devices, DAW, folders (Ctrl+,)")
        self.settings_button.clicked.connect(self.open_settings)
        self.form = GenerateForm(presets.presets, list_models, corner=self.settings_button)
        self.form.submitted.connect(self.generate)
        self.form.melody.failed.connect(self.show_error)
        self.form.melody.offer_daw(self.capture, self.background)

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
        buttons = QHBoxLayout()
        buttons.setSpacing(6)
        buttons.addWidget(self.generate_button, 2)
        buttons.addWidget(self.continue_button, 1)
        buttons.addWidget(_muted("from"))
        buttons.addWidget(self.continue_source, 1)
        buttons.addWidget(self.continue_track_button, 1)
        buttons.addWidget(self.retry_button, 1)
        buttons.addWidget(self.cancel_button, 1)

        self.activity = QLabel("Ready")
        self.activity.setObjectName("muted")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setFixedWidth(220)
        self._idle_progress("Ready", 0)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.activity, 1)
        progress_row.addWidget(self.progress)

        self.banner = MessageBanner()

        self.results_model = ResultsModel(self)
        self.results = ResultsView()
        self.results.setModel(self.results_model)
        self.results.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.results_model.rename_requested.connect(self.rename)
        self.results.drag_started.connect(self._mark_dragged)
        self.results.command.connect(self._list_command)
        self.results.clicked.connect(lambda index: self.audition(self.results.selected_entry()))
        self.vary = VaryAction(self.results, lambda: self.form.model.currentData(), self._run)  # right-click "Vary…"
        results_title = QLabel("RESULTS")
        results_title.setObjectName("section")
        results_hint = _muted("Click to audition · drag into your DAW · drop audio here to continue it")

        self.play_button = _button("▶ Play", "Audition the selected clip through the output device (Space, Ctrl+P)")
        self.ab_button = _button("A/B", "Switch to the other take of the same batch, at the same beat (Tab)")
        self.loop_button = _button("Loop", "Loop auditions")
        self.loop_button.setCheckable(True)
        self.loop_button.setChecked(self.auditioner.loop)
        self.keep_button = _button("☆ Keep", "Mark the selected clip as a keeper, or unmark it (K)")
        self.rename_button = _button("Rename", "Rename the selected clip (F2)")
        self.discard_button = _button("Discard", "Move the selected clip to Segue's trash (Delete)")
        self.send_button = _button("Send to DAW", "Place the selected clip in the DAW through the DAW link")
        self.play_button.clicked.connect(lambda: self.audition(self.results.selected_entry()))
        self.ab_button.clicked.connect(self.switch_take)
        self.loop_button.toggled.connect(self._set_loop)
        self.keep_button.clicked.connect(self.toggle_keep)
        self.rename_button.clicked.connect(self.rename_selected)
        self.discard_button.clicked.connect(self.discard_selected)
        self.send_button.clicked.connect(self.send_to_daw)
        clip_actions = QHBoxLayout()
        clip_actions.setSpacing(6)
        for widget in (self.play_button, self.ab_button, self.loop_button):
            clip_actions.addWidget(widget)
        clip_actions.addSpacing(10)
        for widget in (self.keep_button, self.rename_button, self.discard_button):
            clip_actions.addWidget(widget)
        clip_actions.addStretch(1)
        clip_actions.addWidget(self.send_button)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 10, 12, 8)
        layout.setSpacing(8)
        layout.addWidget(self.form)
        layout.addLayout(buttons)
        layout.addLayout(progress_row)
        layout.addWidget(self.banner)
        results_header = QHBoxLayout()
        results_header.addWidget(results_title)
        results_header.addStretch(1)
        results_header.addWidget(results_hint)
        layout.addSpacing(4)
        layout.addLayout(results_header)
        layout.addWidget(self.results, 1)
        layout.addLayout(clip_actions)
        self.setCentralWidget(body)

        self.status = PanelStatusBar()
        self.setStatusBar(self.status)

        self._add_shortcut("Generate", "Ctrl+Return", self.generate)
        self._add_shortcut("Continue", "Ctrl+Shift+Return", self.continue_)
        self._add_shortcut("Retry", "Ctrl+R", self.retry)
        self._add_shortcut("Continue my track", "Ctrl+T", self.open_continue_track)
        self._add_shortcut("Cancel", "Esc", self.cancel)
        self._add_shortcut("Audition", "Ctrl+P", lambda: self.audition(self.results.selected_entry()))
        self._add_shortcut("Settings", QKeySequence(QKeySequence.StandardKey.Preferences).toString() or "Ctrl+,",
                           self.open_settings)
        self._add_shortcut("Setup checks", "Ctrl+Shift+D", lambda: open_setup_page(self))

        engine.job_started.connect(self._job_started)
        engine.model_loading.connect(self._model_loading)
        self._loading_expected_seconds = 0.0
        self._loading_clock = QElapsedTimer()
        self._loading_timer = QTimer(self, interval=200)
        self._loading_timer.timeout.connect(self._show_loading_progress)
        engine.progress.connect(self._progress)
        engine.clips_ready.connect(self._clips_ready)
        engine.job_failed.connect(self._job_failed)
        engine.job_cancelled.connect(self._job_cancelled)
        engine.busy_changed.connect(self._update_buttons)
        engine.state_changed.connect(self._show_engine_state)
        self.downloads.progress.connect(self._download_progress)
        self.downloads.finished.connect(self._download_finished)
        self.downloads.failed.connect(self._download_failed)
        self.downloads.cancelled.connect(self._download_cancelled)
        self.auditioner.started.connect(self._audition_changed)
        self.auditioner.stopped.connect(self._audition_changed)
        self.daw.transport_changed.connect(self._transport_changed)
        self.results.selectionModel().selectionChanged.connect(self._update_buttons)
        self._health_timer = QTimer(self)
        self._health_timer.setInterval(HEALTH_POLL_MILLISECONDS)
        self._health_timer.timeout.connect(self._show_audio_health)
        self._health_timer.start()

        self._show_engine_state(engine.state)
        if presets.problems:
            self.show_error("; ".join(str(problem) for problem in presets.problems))
        self.settings = self._load_settings()
        self.form.restore(self.settings.panel)
        self._open_daw()
        self._update_buttons()
        self.resize(660, 760)
        QTimer.singleShot(0, self.engine.start)
        self.load_recent_clips()

    # -- jobs ------------------------------------------------------------------------------------

    def generate(self) -> None:
        self._run(lambda: self.form.build_request())

    def continue_(self) -> None:
        if self.continue_source.currentData() == SOURCE_DAW:
            self.continue_from_daw()
            return

        def request() -> GenerationRequest:
            path = self._continue_source_path()
            return self.form.build_request(audio_path=str(path), prompt_seconds=CONTINUE_PROMPT_SECONDS)

        self._run(request)

    def continue_from_daw(self, bars: int = DEFAULT_SOURCE_BARS) -> None:
        """Take the DAW's last bars (in the background), then continue them at the DAW's tempo."""
        self.banner.hide()
        self.activity.setText(f"Taking the last {bars} bars from {self.daw.link.display_name}…")
        self._busy_progress()

        def taken(source: Source) -> None:
            self._idle_progress(source.describe()[:1].upper() + source.describe()[1:], 0)

            def request() -> GenerationRequest:
                built = self.form.build_request(
                    audio_path=str(source.path), prompt_seconds=source.seconds
                )
                return dataclasses.replace(built, bpm=source.bpm, signature=str(source.signature)).validate()

            self._run(request)

        def failed(message: str) -> None:
            self._idle_progress("Ready", 0)
            self.show_error(message)

        self.background.run(lambda: self.capture.take_bars(bars), taken, failed)

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
        if self.continue_track is None:
            self.continue_track = ContinueTrackWindow(
                self.capture, self.engine.store, self.background, self.auditioner,
                model_id=lambda: self.form.model.currentData() or DEFAULT_MODEL,
                on_takes=self._continued_track, prompt=self.form.prompt.currentText(), parent=self,
            )
        self.continue_track.show()
        self.continue_track.raise_()
        return self.continue_track

    def _continued_track(self, entries: list[ClipEntry]) -> None:
        """Fitted takes from Continue my track join the results, to audition, keep or drag."""
        self.results_model.add(entries)
        if entries:
            self.results.select_entry(entries[0])

    def retry(self) -> None:
        """The last job again, same input and settings, with a new seed."""
        if self._last_request is None:
            self.show_error("nothing to retry yet: generate or continue first")
            return
        self._run(lambda: dataclasses.replace(self._last_request, seed=None))

    def cancel(self) -> None:
        if self.downloads.active:
            self._waiting_for_download = None
            self.downloads.cancel()
            self.activity.setText("Cancelling the download…")
        if self.engine.busy:
            self.engine.cancel_all()
            self.activity.setText("Cancelling…")

    def _run(self, make_request: Callable[[], GenerationRequest]) -> None:
        try:
            request = make_request()
            needs_download = not model_status(request.model).usable_offline
        except SegueError as error:
            self.show_error(str(error))
            return
        self.banner.hide()
        self._last_request = request
        self.form.remember_prompt(request.prompt)
        self._save_panel_memory()
        if needs_download:
            self._waiting_for_download = request
            self.downloads.start(request.model)
            self.activity.setText(f"Preparing to download {request.model}…")
            self._busy_progress()
        else:
            self._submit(request)
        self._update_buttons()

    def _submit(self, request: GenerationRequest) -> None:
        try:
            job_id = self.engine.submit(request)
        except SegueError as error:
            self.show_error(str(error))
            return
        self._job_takes[job_id] = request.variations
        queued = len(self.engine.active_jobs) - 1
        self.activity.setText("Starting the engine…" if not queued else f"Queued behind {queued} job(s)")
        if not queued:
            self._busy_progress()

    def _continue_source_path(self) -> Path:
        if self.continue_source.currentData() == SOURCE_FILE and self._dropped_file is not None:
            return self._dropped_file
        entry = self.results.selected_entry()
        if entry is None:
            raise SegueError("select a clip to continue, or drop an audio file on the window")
        return entry.path

    # -- engine and download signals -------------------------------------------------------------

    def _job_started(self, job_id: int) -> None:
        takes = self._job_takes.get(job_id, 1)
        self.activity.setText(f"Generating {takes} take{'s' if takes != 1 else ''}…")
        self._busy_progress()

    def _model_loading(self, job_id: int, message: str, expected_seconds: float | None) -> None:
        self.activity.setText(message[:1].upper() + message[1:] + "…")
        if expected_seconds is None:  # first load of this model here: nothing to base an ETA on
            self._busy_progress()
            return
        self._loading_expected_seconds = expected_seconds
        self._loading_clock.start()
        self._show_loading_progress()
        self._loading_timer.start()

    def _show_loading_progress(self) -> None:
        """An ETA for loading, from how long this model took to load last time."""
        if self.engine.state != "loading":
            self._loading_timer.stop()
            return
        elapsed = self._loading_clock.elapsed() / 1000.0
        expected = self._loading_expected_seconds
        self._show_fraction(min(elapsed / expected, 0.99), max(expected - elapsed, 0.0))

    def _progress(self, job_id: int, done: int, total: int, eta: float | None) -> None:
        takes = self._job_takes.get(job_id, 1)
        self.activity.setText(f"Generating {takes} take{'s' if takes != 1 else ''}…")
        self._show_fraction(done / total if total else 0.0, eta if done < total else None)

    def _clips_ready(self, job_id: int, entries: list[ClipEntry]) -> None:
        self._job_takes.pop(job_id, None)
        self.results_model.add(entries)
        self.form.refresh_models()  # a random model may just have been built
        if entries:
            self.results.select_entry(entries[0])
            self.results.scrollToTop()
        self._update_buttons()
        self._idle_progress(f"Done: {len(entries)} new clip{'s' if len(entries) != 1 else ''}", 100)

    def _job_failed(self, job_id: int, message: str) -> None:
        self._job_takes.pop(job_id, None)
        self.show_error(message)
        self._idle_progress("Failed", 0)

    def _job_cancelled(self, job_id: int) -> None:
        self._job_takes.pop(job_id, None)
        self._idle_progress("Cancelled", 0)

    def _download_progress(self, progress: DownloadProgress, eta: float | None) -> None:
        self.activity.setText(describe_download(progress))
        if progress.stage in ("verifying", "converting"):
            self._busy_progress()
        else:
            self._show_fraction(progress.fraction, eta)

    def _download_finished(self, model_id: str) -> None:
        self.form.refresh_models()
        request, self._waiting_for_download = self._waiting_for_download, None
        if request is not None and request.model == model_id:
            self._submit(request)
        else:
            self._idle_progress(f"{model_id} is downloaded", 100)
        self._update_buttons()

    def _download_failed(self, model_id: str, message: str) -> None:
        self._waiting_for_download = None
        self.form.refresh_models()
        self.show_error(message)
        self._idle_progress("Download failed", 0)
        self._update_buttons()

    def _download_cancelled(self, model_id: str) -> None:
        self.form.refresh_models()  # it is partly downloaded now; the next Generate resumes
        self._idle_progress("Download cancelled", 0)
        self._update_buttons()

    def _show_fraction(self, fraction: float, eta: float | None) -> None:
        percent = round(100 * fraction)
        self.progress.setRange(0, 100)
        self.progress.setValue(percent)
        eta_text = format_eta(eta)
        self.progress.setFormat(f"{percent}%" + (f"  ·  {eta_text}" if eta_text else ""))

    def _busy_progress(self) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat("")

    def _idle_progress(self, text: str, value: int) -> None:
        if self.engine.busy or self.downloads.active:
            return  # the next job reports its own progress
        self.activity.setText(text)
        self.progress.setRange(0, 100)
        self.progress.setValue(value)
        self.progress.setFormat("")

    def _show_engine_state(self, state: str) -> None:
        self.status.show_engine(state, self.engine.loaded_model, self.engine.loaded_device)

    # -- results ---------------------------------------------------------------------------------

    def audition(self, entry: ClipEntry | None) -> None:
        """Play `entry` (stop it if it is the one playing) through the chosen output device."""
        if entry is not None:
            self._guard(lambda: self.auditioner.toggle(entry))

    def switch_take(self) -> None:
        """A/B: the next take of the same batch, from the same beat."""
        current = self.auditioner.playing or self.results.selected_entry()
        if current is None:
            return
        takes = self.results_model.siblings(current)
        following = takes[(takes.index(current) + 1) % len(takes)] if current in takes else current
        self.results.select_entry(following)
        self._guard(lambda: self.auditioner.switch_to(following))

    def _set_loop(self, loop: bool) -> None:
        self.auditioner.loop = loop

    def _audition_changed(self, *_args) -> None:
        self.results_model.set_playing(self.auditioner.playing)
        self.play_button.setText("■ Stop" if self.auditioner.playing else "▶ Play")
        self._show_audio_health()

    def toggle_keep(self) -> None:
        entry = self.results.selected_entry()
        if entry is not None:
            self._guard(lambda: self.engine.store.set_kept(entry, not entry.kept))
            self.results_model.refresh(entry)
            self._update_buttons()

    def rename_selected(self) -> None:
        index = self.results.currentIndex()
        if index.isValid():
            self.results.edit(index)

    def rename(self, entry: ClipEntry, name: str) -> None:
        self._guard(lambda: self.engine.store.rename(entry, name))
        self.results_model.refresh(entry)

    def discard_selected(self) -> None:
        entry = self.results.selected_entry()
        if entry is None:
            return
        if self.auditioner.playing is entry:
            self.auditioner.stop()
        trashed = self._guard(lambda: self.engine.store.discard(entry))
        if trashed is None:
            return
        self.results_model.remove(entry)
        if trashed:
            note = f"{entry.name} is in Segue's trash (segue library restore {entry.clip_id})"
        else:
            note = f"{entry.name} left the list; its file stays because your DAW may use it"
        self.note(note)
        self._update_buttons()

    def send_to_daw(self) -> None:
        entry = self.results.selected_entry()
        if entry is None:
            return
        self.send_button.setEnabled(False)

        def placed(result: PlacedClip) -> None:
            entry.used_in_daw = entry.used_in_daw or result.in_project
            self.note(result.message)
            self._update_buttons()

        def failed(message: str) -> None:
            self.show_error(message)
            self._update_buttons()

        self.daw.send(entry.path, placed, failed)

    def _list_command(self, command: str) -> None:
        actions = {
            "keep": self.toggle_keep,
            "discard": self.discard_selected,
            "audition": lambda: self.audition(self.results.selected_entry()),
            "switch": self.switch_take,
        }
        actions[command]()

    def load_recent_clips(self) -> None:
        """Show the library's newest clips below anything generated meanwhile (read off the Qt thread)."""
        self.background.run(self.engine.store.recent, self._recent_loaded, self.show_error)

    def _recent_loaded(self, entries: list[ClipEntry]) -> None:
        shown = {entry.clip_id for entry in self.results_model.entries}
        self.results_model.add([entry for entry in entries if entry.clip_id not in shown], at_end=True)
        self._update_buttons()

    def _mark_dragged(self, _drag) -> None:
        entry = self.results.selected_entry()
        if entry is not None:
            entry.used_in_daw = True

    # -- DAW, audio health, settings -------------------------------------------------------------

    def _transport_changed(self, snapshot) -> None:
        self.status.show_transport(snapshot)
        if snapshot.connected:
            self.form.follow_transport(snapshot.tempo_bpm, snapshot.signature)

    def _show_audio_health(self) -> None:
        output, overflows = self.auditioner.health(), self.capture.overflows
        if output is None and overflows is None:
            self.status.show_audio_health(None)
            return
        underruns = sum(output) if output is not None else 0
        devices = " / ".join(label for label in (self.auditioner.device_label(), self.capture.device_label()) if label)
        self.status.show_audio_health((underruns, overflows or 0), devices)

    def open_settings(self) -> None:
        self.settings_dialog = SettingsDialog(self.settings, self.background, self)
        self.settings_dialog.accepted.connect(lambda: self.apply_settings(self.settings_dialog.chosen()))
        self.settings_dialog.open()

    def apply_settings(self, chosen: Settings) -> None:
        """Save what the dialog chose and put it to work: output device, DAW link, folders.

        Only the dialog's fields are written over the file as it is now: a calibration or a device
        chosen with `segue devices` meanwhile is kept."""
        def change(current: Settings) -> None:
            current.audio.output_device = chosen.audio.output_device
            current.audio.input_device = chosen.audio.input_device
            current.daw = chosen.daw
            current.folders = chosen.folders
            current.engine = chosen.engine
            self.form.remember(current.panel)

        previous = self.settings
        saved = self._guard(lambda: update_settings(change))
        if not saved:
            return
        self.settings = saved
        if saved.audio.output_device != previous.audio.output_device:
            self.auditioner.close()  # the next audition opens the newly chosen output
        if saved.daw != previous.daw:
            self._open_daw()
        elif saved.audio.input_device != previous.audio.input_device:
            self._open_capture()
        if saved.folders != previous.folders:
            self.form.refresh_models()
        if saved.engine != previous.engine:
            self.engine.switch_engine()

    def _open_daw(self) -> None:
        if self._guard(lambda: self.daw.open(self.settings.daw)) is None:
            self.daw.close()
        self._open_capture()

    def _open_capture(self) -> None:
        """Record the chosen loopback input for "Continue from the DAW" (nothing if none is chosen)."""
        self._guard(lambda: self.capture.open(self.daw.link, self.settings.audio.input_device))
        self._show_audio_health()

    def _load_settings(self) -> Settings:
        try:
            return load_settings()
        except SegueError as error:
            self.show_error(f"{error} (using the defaults meanwhile)")
            return Settings()

    def _save_panel_memory(self) -> None:
        """Write the panel section only (other parts of Segue may have saved theirs meanwhile)."""
        self._guard(lambda: update_settings(lambda current: self.form.remember(current.panel)))

    def closeEvent(self, event) -> None:
        self._save_panel_memory()
        self.auditioner.close()
        self.capture.close()
        self.daw.close()
        self._health_timer.stop()
        super().closeEvent(event)

    # -- drops -----------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if event.source() is None and self._dropped_audio(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if event.source() is None and self._dropped_audio(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = self._dropped_audio(event) if event.source() is None else []
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.continue_file(files[0])

    @staticmethod
    def _dropped_audio(event) -> list[Path]:
        mime = event.mimeData()
        if not mime.hasUrls():
            return []
        paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
        return [path for path in paths if is_audio_file(path)]

    # -- plumbing --------------------------------------------------------------------------------

    def show_error(self, message: str) -> None:
        self.banner.show_message(message)

    def note(self, message: str) -> None:
        """A one-line outcome ("placed in Live ...") in the activity line, unless a job is reporting there."""
        if not (self.engine.busy or self.downloads.active):
            self.activity.setText(message[:1].upper() + message[1:])
            self.activity.setToolTip(message)

    def _guard(self, action: Callable[[], object]) -> object | None:
        """Run a quick bridge call; a SegueError becomes a message in the window (and None)."""
        try:
            result = action()
        except SegueError as error:
            self.show_error(str(error))
            return None
        return True if result is None else result

    def _update_buttons(self, *_args) -> None:
        self.cancel_button.setEnabled(self.engine.busy or self.downloads.active is not None)
        self.retry_button.setEnabled(self._last_request is not None)
        selected = self.results.selected_entry()
        has_clip = selected is not None
        self.keep_button.setText("★ Kept" if selected is not None and selected.kept else "☆ Keep")
        for button in (self.play_button, self.rename_button, self.discard_button, self.keep_button,
                       self.send_button, self.ab_button):
            button.setEnabled(has_clip)

    def _add_shortcut(self, name: str, keys: str, slot) -> QAction:
        action = QAction(name, self)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action


def _shorten(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"
