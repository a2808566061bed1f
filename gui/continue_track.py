"""The "Continue my track" window: the bar-locked continuation workflow, step by step.

1 source (the DAW's last bars, or a file at a tempo), 2 describe (prompt, tempo, the key estimate to
accept), 3 generate (bars, takes), 4 the fitted takes with their flags, 5 place at the bar where the
source ends, play live on the next bar line, or continue again. Everything is bridge.workflow's
ContinueMyTrack (the session DawCapture keeps for the linked DAW and loopback input); every step that
waits runs on the panel's Background pool, and this window only shows what comes back.
"""

import contextlib
from collections.abc import Callable
from pathlib import Path

from PyQt6.QtCore import QTimer, pyqtSignal
from PyQt6.QtGui import QColor
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDoubleSpinBox,
    QFileDialog,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QWidget,
)

from bridge.audio.playback import Player
from bridge.errors import SegueError
from bridge.workflow import Continuation, ContinueMyTrack, ContinueOptions, Source
from bridge.workflow.describe import Suggestions, continuation_text
from gui import theme
from gui.audition import Auditioner
from gui.background import Background
from gui.banner import MessageBanner
from gui.clip_store import ClipEntry, ClipStore
from gui.continue_track_layout import arrange_steps, spin, take_line, wrapped
from gui.controls import push_button
from gui.daw_capture import DawCapture
from gui.melody_well import MelodyWell
from gui.seam_view import SeamView

SOURCE_DAW, SOURCE_FILE = "daw", "file"
# After the words stop changing for this long, the engine prefills the text's row (for an 8 s source,
# 2.3-2.6 s of the first chunk's wait on the 2-core AVX2 EPYC of README's Performance section); a
# keystroke sooner would only waste it.
PREPARE_TEXT_AFTER_MS = 700


class ContinueTrackWindow(QDialog):
    _progressed = pyqtSignal(float)  # from the engine's thread
    _prepared = pyqtSignal()  # from the engine's thread: a preparation is ready

    def __init__(
        self,
        capture: DawCapture,
        store: ClipStore,
        background: Background,
        auditioner: Auditioner,
        model_id: Callable[[], str],
        on_takes: Callable[[list[ClipEntry]], None],
        prompt: str = "",
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setWindowTitle("Continue my track")
        self.capture, self.store, self.background, self.auditioner = capture, store, background, auditioner
        self._model_id, self._on_takes = model_id, on_takes
        self.source: Source | None = None
        self.suggestions: Suggestions | None = None
        self.continuation: Continuation | None = None
        self.entries: list[ClipEntry] = []
        self._player: Player | None = None
        self._file: Path | None = None
        self._next_source: Callable[[], Source] | None = None  # what the next Continue starts from, to prepare

        self.source_kind = QComboBox()
        self.source_kind.addItem("The DAW: loop end or playhead", SOURCE_DAW)
        self.source_kind.addItem("An audio file…", SOURCE_FILE)
        self.source_bars = spin(1, 16, 4, " bars")
        self.file_bpm = QDoubleSpinBox()
        self.file_bpm.setRange(20.0, 999.0)
        self.file_bpm.setDecimals(2)
        self.file_bpm.setSuffix(" BPM")
        self.file_bpm.setValue(120.0)
        self.file_bpm.setToolTip("The file's tempo (the DAW's when one is linked)")
        self.take_button = push_button("Take the bars", "Capture or render the last bars (or read the file)")
        self.source_info = wrapped("No source yet: play your song in the DAW, or choose a file.")
        self.seam = SeamView()

        self.prompt = QLineEdit(prompt)
        self.prompt.setPlaceholderText("Optional: what should come next (strings enter, drums drop out…)")
        self.use_key = QCheckBox("Ask for the key")
        self.use_key.setEnabled(False)
        self.tempo_info = wrapped("")
        self.use_tempo = push_button("Use it", "Continue the file at the estimated tempo")
        self.use_tempo.setVisible(False)
        self.text_preview = wrapped("")
        self.text_preview.setToolTip("“prepared”: the engine has run the source and these words through the model "
                                     "already, so Continue starts generating at once")
        self.melody = MelodyWell()  # follow a melody too (melody models): a file, a take, the DAW's bars
        self.melody.offer_daw(capture, background)
        self.melody.failed.connect(lambda message: self.banner.show_message(message))

        self.new_bars = spin(1, 32, 4, " bars")
        self.takes = spin(1, 8, 2, " takes")
        self.reroll = QCheckBox("Re-roll a take whose first beat is silent")
        self.reroll.setChecked(True)
        self.listen = QCheckBox("Hear take 1 while it is generated")
        self.listen.setChecked(True)
        self.listen.setToolTip("Streams the first take to the output device as soon as enough is buffered")
        self.continue_button = push_button("Continue", "Generate the takes, fitted to the bars", primary=True)
        self.cancel_button = push_button("Cancel", "Stop generating")
        self.progress = QProgressBar()
        self.progress.setRange(0, 100)
        self.progress.setFormat("")

        self.take_list = QListWidget()
        self.take_list.setMinimumHeight(90)
        self.audition_button = push_button("▶ Audition", "Play the selected take through the output device")
        self.place_button = push_button("Place", "Put the selected take into the DAW where the source ends")
        self.play_button = push_button("Play on next bar", "Play the selected take into the loopback output, "
                                 "starting on the DAW's next bar line")
        self.again_button = push_button("Continue again", "Continue from the end of the placed take (its codes)")
        self.banner = MessageBanner()
        self.status = wrapped("")

        arrange_steps(self)

        self.source_kind.currentIndexChanged.connect(self._update)
        self.take_button.clicked.connect(self.take_source)
        self.use_tempo.clicked.connect(self._use_estimated_tempo)
        self.prompt.textChanged.connect(self._update)
        self.use_key.toggled.connect(self._update)
        self._prepare_timer = QTimer(self, singleShot=True, interval=PREPARE_TEXT_AFTER_MS)
        self._prepare_timer.timeout.connect(self._prepare)
        self.prompt.textChanged.connect(self._prepare_timer.start)
        self.use_key.toggled.connect(self._prepare_timer.start)
        self.continue_button.clicked.connect(self.continue_)
        self.cancel_button.clicked.connect(self.cancel)
        self.take_list.currentRowChanged.connect(self._update)
        self.take_list.currentRowChanged.connect(self._show_seam)
        self.audition_button.clicked.connect(self.audition)
        self.place_button.clicked.connect(self.place)
        self.play_button.clicked.connect(self.play)
        self.again_button.clicked.connect(self.continue_again)
        self._progressed.connect(lambda fraction: self.progress.setValue(round(100 * fraction)))
        self._prepared.connect(self._update)
        self._busy = False
        self._update()
        self.resize(620, 720)

    # -- 1. source ---------------------------------------------------------------------------------

    @property
    def session(self) -> ContinueMyTrack:
        if self.capture.session is None:
            raise SegueError("no DAW link is open: choose a DAW (or none) in Settings")
        return self.capture.session

    def take_source(self) -> None:
        if self.source_kind.currentData() == SOURCE_FILE:
            name, _ = QFileDialog.getOpenFileName(self, "Continue an audio file", "", "Audio (*.wav *.aif *.aiff *.flac *.ogg *.mp3)")
            if name:
                self.take_file(Path(name))
            return
        bars = self.source_bars.value()
        self._take(f"Taking the last {bars} bars…", lambda: self.session.source_from_daw(bars))

    def take_file(self, path: Path) -> None:
        """Continue `path` at the DAW's tempo, else the tempo in the BPM box."""
        self._file = Path(path)
        index = self.source_kind.findData(SOURCE_FILE)
        self.source_kind.setCurrentIndex(index)
        snapshot = self.session.link.transport.snapshot()
        bpm = None if snapshot.connected and snapshot.tempo_bpm else self.file_bpm.value()
        bars = self.source_bars.value()
        path = self._file
        self._take(f"Reading {path.name}…", lambda: self.session.source_from_file(path, bars, bpm))

    def _take(self, message: str, get_source: Callable[[], Source]) -> None:
        """Take the source, and its key and tempo estimates, on a worker thread."""

        def take() -> tuple[Source, Suggestions]:
            source = get_source()
            return source, self.session.suggest(source)

        self._start(message, take, self._source_taken)

    def _source_taken(self, taken) -> None:
        source, suggestions = taken
        self.source, self.suggestions = source, suggestions
        self._next_source = lambda: source  # prepared (by _idle below) while the producer writes the prompt
        self._describe_source()
        self.file_bpm.setValue(source.bpm)
        key = suggestions.key_text
        self.use_key.setText(f"Ask for the key: {key} (estimated)" if key else "No clear key in the source")
        self.use_key.setEnabled(key is not None)
        self.use_key.setChecked(key is not None)
        # The DAW's tempo is the grid; only a file's tempo is open to the estimate.
        tempo = suggestions.tempo
        offer = bool(source.kind == "file" and tempo is not None and abs(tempo.bpm - source.bpm) > 0.5)
        self.tempo_info.setText(
            f"The audio suggests {tempo.bpm:.1f} BPM" if offer else f"Tempo {source.bpm:g} BPM in {source.signature}"
        )
        self.use_tempo.setVisible(offer)
        self.continuation, self.entries = None, []
        self.take_list.clear()
        self._idle("Source ready")
        self._show_seam()

    def _prepare(self) -> None:
        """Have the engine prepare what the next Continue starts from (the source, or the placed take) with
        the words as they stand; the session skips a repeat and cancels what they replace."""
        if self._next_source is not None and not self._busy:
            with contextlib.suppress(SegueError):  # options the session refuses, no link: Continue will say so
                session = self.session
                session.on_prepared = self._prepared.emit
                session.prepare_source(self._next_source(), self.options())

    def _describe_source(self) -> None:
        text = self.source.describe()
        note = f" · {self.source.note}" if self.source.note else ""
        self.source_info.setText(text[:1].upper() + text[1:] + note)

    def _use_estimated_tempo(self) -> None:
        if self.suggestions is not None and self.suggestions.tempo is not None and self._file is not None:
            self.file_bpm.setValue(self.suggestions.tempo.bpm)
            self.take_file(self._file)

    # -- 3. generate -------------------------------------------------------------------------------

    def options(self) -> ContinueOptions:
        key = self.suggestions.key_text if self.suggestions is not None and self.use_key.isChecked() else None
        return ContinueOptions(
            prompt=self.prompt.text(), bars=self.new_bars.value(), takes=self.takes.value(), key=key,
            model=self._model_id(), reroll_silent_start=self.reroll.isChecked(), **self.melody.options_fields(),
        )

    def continue_(self) -> None:
        if self.source is None:
            self.banner.show_message("take the source bars first (step 1)")
            return
        source, options = self.source, self.options()
        self._start("Generating…" + self._listen_while_generating(), lambda: self._with_entries(
            self.session.continue_source(source, options, self._progressed.emit)), self._continued, generating=True)

    def continue_again(self) -> None:
        options = self.options()
        self._start("Continuing from the placed take…" + self._listen_while_generating(), lambda: self._with_entries(
            self.session.continue_again(options, on_progress=self._progressed.emit)), self._continued, generating=True)

    def _listen_while_generating(self) -> str:
        """Give the session the output to stream take 1 to (none if unticked or the device fails);
        a note for the status line when listening is not possible."""
        session = self.session
        session.audition = None
        if self.listen.isChecked():
            try:
                session.audition = self._output()
            except SegueError as error:
                return f" (not listening: {error})"
        return ""

    def _output(self) -> Player:
        """The chosen output device (the loopback the DAW records, or speakers), opened once."""
        if self._player is None:
            self._player = Player().start()
        return self._player

    def cancel(self) -> None:
        if self.capture.session is not None:
            self.capture.session.cancel()

    def _with_entries(self, continuation: Continuation) -> tuple[Continuation, list[ClipEntry]]:
        """The takes as panel entries (waveforms computed here, off the Qt thread)."""
        return continuation, [self.store.entry(take.clip_id, take.audio) for take in continuation.takes]

    def _continued(self, done) -> None:
        self.continuation, self.entries = done
        self.source = self.continuation.source
        self._describe_source()
        bars = self.continuation.options.bars
        self.take_list.clear()
        for take in self.continuation.takes:
            item = QListWidgetItem(take_line(take, bars) + ("\n⚠  " + " · ".join(take.flags) if take.flags else ""))
            if take.report.first_beat_silent:
                item.setForeground(QColor(theme.WARNING))
            self.take_list.addItem(item)
        self.take_list.setCurrentRow(0)
        self._on_takes(self.entries)
        self._show_seam()
        self.progress.setValue(100)
        self._idle(f"{len(self.entries)} take{'s' if len(self.entries) != 1 else ''} ready: "
                   f"“{self.continuation.text}”")

    # -- 5. into the song ----------------------------------------------------------------------------

    def selected(self) -> int | None:
        row = self.take_list.currentRow()
        return row if self.continuation is not None and row >= 0 else None

    def audition(self) -> None:
        index = self.selected()
        if index is not None:
            try:
                self.auditioner.toggle(self.entries[index])
            except SegueError as error:
                self.banner.show_message(str(error))

    def place(self) -> None:
        index, continuation = self.selected(), self.continuation
        if index is not None:
            self._start("Placing…", lambda: self.session.place(continuation, index),
                        lambda placed: self._placed(continuation, index, placed))

    def _placed(self, continuation: Continuation, index: int, placed) -> None:
        self._next_source = lambda: self.session.take_as_source(continuation, index)  # Continue again's
        self._idle(f"Take {index + 1}: {placed.message}")

    def play(self) -> None:
        index, continuation = self.selected(), self.continuation
        if index is None:
            return

        def play():
            self.session.player = self._output()
            return self.session.play(continuation, index)

        def playing(live) -> None:
            bar = live.start_beats / continuation.source.signature.quarter_notes_per_bar + 1
            self._idle(f"Take {index + 1} plays into {self._player.device.label} from bar {bar:g}")

        self._start("Waiting for the next bar…", play, playing)

    def closeEvent(self, event) -> None:
        if self.capture.session is not None:
            self.capture.session.on_prepared = None  # set again by the next _prepare
        if self._player is not None:
            self._player.close()
            self._player = None
        super().closeEvent(event)

    # -- plumbing ----------------------------------------------------------------------------------

    def _start(
        self, message: str, work: Callable[[], object], done: Callable[[object], None], generating: bool = False
    ) -> None:
        self.banner.hide()
        self.status.setText(message)
        self._busy = True
        if generating:
            self.progress.setValue(0)
        self._update()
        self.background.run(work, done, self._failed)

    def _failed(self, message: str) -> None:
        self._idle("")
        self.banner.show_message(message)

    def _idle(self, message: str) -> None:
        self._busy = False
        self.status.setText(message)
        self._update()
        self._prepare()

    def _update(self, *_args) -> None:
        busy = self._busy
        self.melody.follow_model(self._model_id())
        has_take = self.selected() is not None and not busy
        self.take_button.setEnabled(not busy)
        self.file_bpm.setVisible(self.source_kind.currentData() == SOURCE_FILE)
        self.continue_button.setEnabled(self.source is not None and not busy)
        self.cancel_button.setEnabled(busy)
        for button in (self.audition_button, self.place_button, self.play_button):
            button.setEnabled(has_take)
        self.again_button.setEnabled(not busy and self.capture.session is not None
                                     and self.capture.session.last_placed is not None)
        if self.source is not None:
            bar = self.source.end_beats
            where = f"at bar {bar / self.source.signature.quarter_notes_per_bar + 1:g}" if bar is not None else ""
            self.place_button.setText(f"Place {where}".strip())
            try:
                options = self.options()
                text = f"The model hears: “{continuation_text(options.prompt, self.source.bpm, options.key)}”"
                session = self.capture.session
                if session is not None and session.prepared_for(self.source, options):
                    text += "  ·  prepared"
                self.text_preview.setText(text)
            except SegueError as error:
                self.text_preview.setText(str(error))

    def _show_seam(self, *_args) -> None:
        if self.source is None:
            return
        index = self.selected()
        take = self.continuation.takes[index].audio if index is not None else None
        bar = self.source.end_beats
        label = f"bar {bar / self.source.signature.quarter_notes_per_bar + 1:g}" if bar is not None else "seam"
        self.seam.show_audio(self.source.audio, take, label)
