"""The control panel: compose the form, the job buttons, progress, results and status over bridge's APIs.

Every action is started here and finished by a signal; nothing in this window waits for the engine,
a download, the audio devices or the DAW. The parts live in their own modules: `job_runner` (jobs,
downloads, Continue sources), `job_progress` (activity line, progress bar, ETAs), `clip_actions` (what
to do with a result), `panel_wiring` (DAW link, capture, audio health, settings), `audio_drops`.
"""

from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bridge.engine.request import GenerationRequest
from bridge.errors import SegueError
from bridge.models import ModelStatus, all_model_statuses
from bridge.presets import PresetCatalogue, load_presets
from bridge.settings import Settings
from gui.audio_drops import dropped_audio
from gui.audition import Auditioner
from gui.background import Background
from gui.banner import MessageBanner
from gui.clip_actions import ClipActions
from gui.clip_store import ClipEntry
from gui.continue_track import ContinueTrackWindow
from gui.controls import muted_label as _muted
from gui.daw_capture import DEFAULT_SOURCE_BARS, DawCapture
from gui.daw_controller import DawController
from gui.engine_controller import EngineController
from gui.generate_form import GenerateForm
from gui.job_progress import ProgressDisplay
from gui.job_runner import JobRunner
from gui.model_downloads import ModelDownloads
from gui.panel_wiring import PanelWiring
from gui.results import ResultsModel, ResultsView
from gui.settings_dialog import SettingsDialog
from gui.setup_page import open_setup_page
from gui.status_bar import PanelStatusBar
from gui.vary import VaryAction


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
        self.wiring = PanelWiring(self)
        presets = presets if presets is not None else load_presets()

        self.settings_button = QToolButton()
        self.settings_button.setText("⚙")
        self.settings_button.setToolTip("Settings: audio devices, DAW, folders (Ctrl+,)")
        self.settings_button.clicked.connect(self.open_settings)
        self.form = GenerateForm(presets.presets, list_models, corner=self.settings_button)
        self.form.submitted.connect(self.generate)
        self.form.melody.failed.connect(self.show_error)
        self.form.melody.offer_daw(self.capture, self.background)

        self.jobs = JobRunner(self)
        self.generate_button, self.continue_button = self.jobs.generate_button, self.jobs.continue_button
        self.continue_source, self.continue_track_button = self.jobs.continue_source, self.jobs.continue_track_button
        self.retry_button, self.cancel_button = self.jobs.retry_button, self.jobs.cancel_button
        self.progress_display = ProgressDisplay(
            self, is_busy=lambda: self.engine.busy or bool(self.downloads.active),
            is_loading=lambda: self.engine.state == "loading",
        )
        self.activity, self.progress = self.progress_display.activity, self.progress_display.progress
        self.banner = MessageBanner()

        self.results_model = ResultsModel(self)
        self.results = ResultsView()
        self.results.setModel(self.results_model)
        self.results.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.clips = ClipActions(self)
        self.vary = VaryAction(self.results, lambda: self.form.model.currentData(), self.jobs._run)  # right-click "Vary…"
        self.play_button, self.ab_button, self.loop_button = (
            self.clips.play_button, self.clips.ab_button, self.clips.loop_button)
        self.keep_button, self.rename_button = self.clips.keep_button, self.clips.rename_button
        self.discard_button, self.send_button = self.clips.discard_button, self.clips.send_button
        self.setCentralWidget(self._lay_out())
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

        self.jobs.connect_signals()
        self.clips.connect_signals()
        engine.busy_changed.connect(self._update_buttons)
        engine.state_changed.connect(self.wiring.show_engine_state)
        self.results.selectionModel().selectionChanged.connect(self._update_buttons)
        self.wiring.connect_signals()

        self.wiring.show_engine_state(engine.state)
        if presets.problems:
            self.show_error("; ".join(str(problem) for problem in presets.problems))
        self.form.restore(self.wiring.load_settings().panel)
        self.wiring.open_daw()
        self._update_buttons()
        self.resize(660, 760)
        QTimer.singleShot(0, self.engine.start)
        self.load_recent_clips()

    def _lay_out(self) -> QWidget:
        results_title = QLabel("RESULTS")
        results_title.setObjectName("section")
        results_hint = _muted("Click to audition · drag into your DAW · drop audio here to continue it")
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 10, 12, 8)
        layout.setSpacing(8)
        layout.addWidget(self.form)
        layout.addLayout(self.jobs.row())
        layout.addLayout(self.progress_display.row())
        layout.addWidget(self.banner)
        results_header = QHBoxLayout()
        results_header.addWidget(results_title)
        results_header.addStretch(1)
        results_header.addWidget(results_hint)
        layout.addSpacing(4)
        layout.addLayout(results_header)
        layout.addWidget(self.results, 1)
        layout.addLayout(self.clips.row())
        return body

    # -- jobs (gui.job_runner) -------------------------------------------------------------------

    def generate(self) -> None:
        self.jobs.generate()

    def continue_(self) -> None:
        self.jobs.continue_()

    def continue_from_daw(self, bars: int = DEFAULT_SOURCE_BARS) -> None:
        self.jobs.continue_from_daw(bars)

    def continue_file(self, path: Path) -> None:
        self.jobs.continue_file(path)

    def open_continue_track(self) -> ContinueTrackWindow:
        return self.jobs.open_continue_track()

    def retry(self) -> None:
        self.jobs.retry()

    def cancel(self) -> None:
        self.jobs.cancel()

    @property
    def continue_track(self) -> ContinueTrackWindow | None:
        return self.jobs.continue_track

    @property
    def _last_request(self) -> GenerationRequest | None:
        return self.jobs.last_request

    # -- results (gui.clip_actions) --------------------------------------------------------------

    def audition(self, entry: ClipEntry | None) -> None:
        self.clips.audition(entry)

    def switch_take(self) -> None:
        self.clips.switch_take()

    def toggle_keep(self) -> None:
        self.clips.toggle_keep()

    def rename_selected(self) -> None:
        self.clips.rename_selected()

    def rename(self, entry: ClipEntry, name: str) -> None:
        self.clips.rename(entry, name)

    def discard_selected(self) -> None:
        self.clips.discard_selected()

    def send_to_daw(self) -> None:
        self.clips.send_to_daw()

    def load_recent_clips(self) -> None:
        self.clips.load_recent_clips()

    # -- DAW, audio health, settings (gui.panel_wiring) ------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.wiring.settings

    @property
    def settings_dialog(self) -> SettingsDialog | None:
        return self.wiring.settings_dialog

    def open_settings(self) -> None:
        self.wiring.open_settings()

    def apply_settings(self, chosen: Settings) -> None:
        self.wiring.apply_settings(chosen)

    def _show_audio_health(self) -> None:
        self.wiring.show_audio_health()

    def closeEvent(self, event) -> None:
        self.wiring.close()
        super().closeEvent(event)

    # -- drops (gui.audio_drops) -----------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if dropped_audio(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        if dropped_audio(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        files = dropped_audio(event)
        if not files:
            event.ignore()
            return
        event.acceptProposedAction()
        self.continue_file(files[0])

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
        self.jobs.update_buttons()
        self.clips.update_buttons()

    def _add_shortcut(self, name: str, keys: str, slot) -> QAction:
        action = QAction(name, self)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action
