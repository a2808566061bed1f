"""The control panel: compose the form, the job buttons, progress, results and status over bridge's APIs.

Every action is started here and finished by a signal; nothing in this window waits for the engine,
the audio devices or the DAW.
"""

import dataclasses
from collections.abc import Callable
from pathlib import Path

import soundfile
from PyQt6.QtCore import Qt, QTimer
from PyQt6.QtGui import QAction, QDragEnterEvent, QDropEvent, QKeySequence
from PyQt6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from bridge.engine.request import GenerationRequest
from bridge.errors import SegueError
from bridge.presets import PresetCatalogue, load_presets
from gui.background import Background
from gui.banner import MessageBanner
from gui.clip_store import ClipEntry
from gui.engine_controller import EngineController
from gui.generate_form import GenerateForm
from gui.results import ResultsModel, ResultsView
from gui.status_bar import PanelStatusBar

# The end of the audio a continuation listens to (the engine's limit is 30 s).
CONTINUE_PROMPT_SECONDS = 10.0
AUDIO_SUFFIXES = frozenset(f".{kind.lower()}" for kind in soundfile.available_formats()) | {".aif", ".oga"}
SOURCE_CLIP, SOURCE_FILE = "clip", "file"


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
        is_downloaded: Callable[[str], bool] | None = None,
    ) -> None:
        super().__init__()
        self.setWindowTitle("Segue")
        self.setAcceptDrops(True)
        self.engine = engine
        presets = presets if presets is not None else load_presets()
        if is_downloaded is None:
            from bridge.models import is_downloaded
        self._last_request: GenerationRequest | None = None
        self._dropped_file: Path | None = None
        self._job_takes: dict[int, int] = {}

        self.form = GenerateForm(presets.presets, is_downloaded)
        self.form.submitted.connect(self.generate)

        self.generate_button = _button("Generate", "Make new clips from the prompt (Ctrl+Enter)", primary=True)
        self.continue_button = _button("Continue", "Continue the chosen audio with the prompt (Ctrl+Shift+Enter)")
        self.continue_source = QComboBox()
        self.continue_source.addItem("selected clip", SOURCE_CLIP)
        self.continue_source.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.continue_source.setToolTip("What Continue extends. Drop an audio file on the window to add it here.")
        self.retry_button = _button("Retry", "Run the last job again with a new seed (Ctrl+R)")
        self.cancel_button = _button("Cancel", "Stop the running job (Esc)")
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
        buttons.addWidget(self.retry_button, 1)
        buttons.addWidget(self.cancel_button, 1)

        self.activity = QLabel("Ready")
        self.activity.setObjectName("muted")
        self.progress = QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setRange(0, 100)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.progress.setFixedWidth(220)
        progress_row = QHBoxLayout()
        progress_row.addWidget(self.activity, 1)
        progress_row.addWidget(self.progress)

        self.banner = MessageBanner()

        self.results_model = ResultsModel(self)
        self.results = ResultsView()
        self.results.setModel(self.results_model)
        self.results_model.rename_requested.connect(self.rename)
        self.results.drag_started.connect(self._mark_dragged)
        self.results.command.connect(self._list_command)
        self.background = Background(self)
        self.results.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.results_title = QLabel("RESULTS")
        self.results_title.setObjectName("section")
        self.results_hint = _muted("Click to audition · drag into your DAW · drop audio here to continue it")

        self.rename_button = _button("Rename", "Rename the selected clip (F2)")
        self.discard_button = _button("Discard", "Remove the selected clip from the list (Delete)")
        self.keep_button = _button("★ Keep", "Mark the selected clip as a keeper (K)")
        self.rename_button.clicked.connect(self.rename_selected)
        self.discard_button.clicked.connect(self.discard_selected)
        self.keep_button.clicked.connect(self.toggle_keep)
        self.clip_actions = QHBoxLayout()
        self.clip_actions.setSpacing(6)
        self.clip_actions.addWidget(self.keep_button)
        self.clip_actions.addWidget(self.rename_button)
        self.clip_actions.addWidget(self.discard_button)
        self.clip_actions.addStretch(1)

        body = QWidget()
        layout = QVBoxLayout(body)
        layout.setContentsMargins(12, 10, 12, 8)
        layout.setSpacing(8)
        layout.addWidget(self.form)
        layout.addLayout(buttons)
        layout.addLayout(progress_row)
        layout.addWidget(self.banner)
        results_header = QHBoxLayout()
        results_header.addWidget(self.results_title)
        results_header.addStretch(1)
        results_header.addWidget(self.results_hint)
        layout.addSpacing(4)
        layout.addLayout(results_header)
        layout.addWidget(self.results, 1)
        layout.addLayout(self.clip_actions)
        self.setCentralWidget(body)

        self.status = PanelStatusBar()
        self.setStatusBar(self.status)

        self._add_shortcut("Generate", "Ctrl+Return", self.generate)
        self._add_shortcut("Continue", "Ctrl+Shift+Return", self.continue_)
        self._add_shortcut("Retry", "Ctrl+R", self.retry)
        self._add_shortcut("Cancel", "Esc", self.cancel)

        engine.job_started.connect(self._job_started)
        engine.model_loading.connect(self._model_loading)
        engine.progress.connect(self._progress)
        engine.clips_ready.connect(self._clips_ready)
        engine.job_failed.connect(self._job_failed)
        engine.job_cancelled.connect(self._job_cancelled)
        engine.busy_changed.connect(self._update_buttons)
        engine.state_changed.connect(self.status.show_engine)
        self.status.show_engine(engine.state)
        self.results.selectionModel().selectionChanged.connect(self._update_buttons)
        self._update_buttons()
        if presets.problems:
            self.show_error("; ".join(str(problem) for problem in presets.problems))
        self.resize(640, 720)
        QTimer.singleShot(0, self.engine.start)
        self.load_recent_clips()

    # -- jobs ------------------------------------------------------------------------------------

    def generate(self) -> None:
        self._run(lambda: self.form.build_request())

    def continue_(self) -> None:
        def request() -> GenerationRequest:
            path = self._continue_source_path()
            return self.form.build_request(audio_path=str(path), prompt_seconds=CONTINUE_PROMPT_SECONDS)

        self._run(request)

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

    def retry(self) -> None:
        """The last job again, same input and settings, with a new seed."""
        if self._last_request is None:
            self.show_error("nothing to retry yet: generate or continue first")
            return
        self._run(lambda: dataclasses.replace(self._last_request, seed=None))

    def cancel(self) -> None:
        if self.engine.busy:
            self.engine.cancel_all()
            self.activity.setText("Cancelling…")

    def _run(self, make_request: Callable[[], GenerationRequest]) -> None:
        try:
            request = make_request()
            job_id = self.engine.submit(request)
        except SegueError as error:
            self.show_error(str(error))
            return
        self.banner.hide()
        self._last_request = request
        self._job_takes[job_id] = request.variations
        self.form.remember_prompt(request.prompt)
        queued = len(self.engine.active_jobs) - 1
        self.activity.setText("Starting the engine…" if not queued else f"Queued behind {queued} job(s)")
        if not queued:
            self._busy_progress()
        self._update_buttons()

    def _continue_source_path(self) -> Path:
        if self.continue_source.currentData() == SOURCE_FILE and self._dropped_file is not None:
            return self._dropped_file
        entry = self.results.selected_entry()
        if entry is None:
            raise SegueError("select a clip to continue, or drop an audio file on the window")
        return entry.path

    # -- engine signals --------------------------------------------------------------------------

    def _job_started(self, job_id: int) -> None:
        takes = self._job_takes.get(job_id, 1)
        self.activity.setText(f"Generating {takes} take{'s' if takes != 1 else ''}…")
        self._busy_progress()

    def _model_loading(self, job_id: int, message: str) -> None:
        self.activity.setText(message[:1].upper() + message[1:] + "…")
        self._busy_progress()

    def _progress(self, job_id: int, done: int, total: int, eta: float | None) -> None:
        takes = self._job_takes.get(job_id, 1)
        percent = round(100 * done / total) if total else 0
        self.activity.setText(f"Generating {takes} take{'s' if takes != 1 else ''}…")
        self.progress.setRange(0, 100)
        self.progress.setValue(percent)
        eta_text = format_eta(eta)
        self.progress.setFormat(f"{percent}%" + (f"  ·  {eta_text}" if eta_text and done < total else ""))

    def _clips_ready(self, job_id: int, entries: list[ClipEntry]) -> None:
        self._job_takes.pop(job_id, None)
        self.results_model.add(entries)
        self.form.refresh_models()  # the model may just have been downloaded or built
        if entries:
            self.results.select_entry(entries[0])
            self.results.scrollToTop()
        self._idle_progress(f"Done: {len(entries)} new clip{'s' if len(entries) != 1 else ''}", 100)

    def _job_failed(self, job_id: int, message: str) -> None:
        self._job_takes.pop(job_id, None)
        self.show_error(message)
        self._idle_progress("Failed", 0)

    def _job_cancelled(self, job_id: int) -> None:
        self._job_takes.pop(job_id, None)
        self._idle_progress("Cancelled", 0)

    def _busy_progress(self) -> None:
        self.progress.setRange(0, 0)
        self.progress.setFormat("")

    def _idle_progress(self, text: str, value: int) -> None:
        if self.engine.busy:
            return  # the next queued job reports its own progress
        self.activity.setText(text)
        self.progress.setRange(0, 100)
        self.progress.setValue(value)
        self.progress.setFormat("")

    # -- results ---------------------------------------------------------------------------------

    def toggle_keep(self) -> None:
        entry = self.results.selected_entry()
        if entry is not None:
            self._guard(lambda: self.engine.store.set_kept(entry, not entry.kept))
            self.results_model.refresh(entry)

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
        trashed = self._guard(lambda: self.engine.store.discard(entry))
        if trashed is None:
            return
        self.results_model.remove(entry)
        if trashed:
            note = f"{entry.name} is in Segue's trash (segue library restore {entry.clip_id})"
        else:
            note = f"{entry.name} left the list; its file stays because your DAW may use it"
        self.statusBar().showMessage(note, 8000)

    def _list_command(self, command: str) -> None:
        {"keep": self.toggle_keep, "discard": self.discard_selected}.get(command, lambda: None)()

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

    def _guard(self, action: Callable[[], object]) -> object | None:
        """Run a quick bridge call; a SegueError becomes a message in the window (and None)."""
        try:
            return action()
        except SegueError as error:
            self.show_error(str(error))
            return None

    def _update_buttons(self, *_args) -> None:
        busy = self.engine.busy
        self.cancel_button.setEnabled(busy)
        self.retry_button.setEnabled(self._last_request is not None)
        has_clip = self.results.selected_entry() is not None
        for button in (self.rename_button, self.discard_button, self.keep_button):
            button.setEnabled(has_clip)

    def _add_shortcut(self, name: str, keys: str, slot) -> QAction:
        action = QAction(name, self)
        action.setShortcut(QKeySequence(keys))
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.triggered.connect(slot)
        self.addAction(action)
        return action


def _button(text: str, tip: str, primary: bool = False) -> QPushButton:
    button = QPushButton(text)
    button.setToolTip(tip)
    if primary:
        button.setObjectName("primary")
    return button


def _shorten(text: str, max_chars: int) -> str:
    return text if len(text) <= max_chars else text[: max_chars - 1] + "…"


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    return label
