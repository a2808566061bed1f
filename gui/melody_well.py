"""The "Melody" drop well: the audio a melody model follows (a file, a take dragged from the results,
or the DAW's bars), shown with its length in bars; cleared with ×.

It only holds the melody and turns it into request fields; the engine fits it to the clip's bars.
"""

from pathlib import Path

import numpy as np
from PyQt6.QtCore import pyqtSignal
from PyQt6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QToolButton, QWidget

from bridge.engine.catalog import known_to_take_no_melody
from bridge.engine.melody_timeline import read_melody_file
from bridge.errors import SegueError
from bridge.musical_time import TimeSignature, seconds_per_bar
from gui.daw_capture import DEFAULT_SOURCE_BARS

EMPTY_TEXT = "Drop a melody or chord part here (an audio file, or a take from the results)"
NO_MELODY_TEXT = "This model follows no melody: pick a melody model to use one"
AUDIO_FILTER = "Audio (*.wav *.aif *.aiff *.flac *.ogg *.mp3);;All files (*)"


class MelodyWell(QFrame):
    """Emits `changed` when a melody is set or cleared; `failed(message)` for a file it cannot read."""

    changed = pyqtSignal()
    failed = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("melodyWell")
        self.setAcceptDrops(True)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setToolTip("Melody models follow this audio's melody and chords, from its first bar line; "
                        "it is cut or looped in whole bars to the clip's length. Use a soloed chord or lead "
                        "part: Segue hears the whole mix (no stem separation).")
        self.audio: np.ndarray | None = None
        self.sample_rate: int | None = None
        self.path: Path | None = None
        self.source_name = ""
        self._bar_seconds: float | None = None
        self._model_takes_melody = True

        self.text = QLabel(EMPTY_TEXT)
        self.text.setObjectName("muted")
        self.browse = QToolButton()
        self.browse.setText("…")
        self.browse.setToolTip("Choose an audio file to follow")
        self.browse.clicked.connect(self._choose_file)
        self.daw = QToolButton()
        self.daw.setText("From DAW")
        self.daw.setToolTip("Use the DAW's last bars (solo the chord or lead track first)")
        self.daw.setVisible(False)  # until offer_daw: only where a DAW link exists
        self.clear_button = QToolButton()
        self.clear_button.setText("×")
        self.clear_button.setToolTip("Follow no melody")
        self.clear_button.clicked.connect(self.clear)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 3, 3, 3)
        row.addWidget(self.text, 1)
        for button in (self.daw, self.browse, self.clear_button):
            row.addWidget(button)
        self._show()

    # -- what the request gets -------------------------------------------------------------------

    def request_fields(self) -> dict:
        """GenerationRequest fields for the melody (none when empty or when the model takes none)."""
        if self.audio is None or not self._model_takes_melody:
            return {}
        if self.path is not None:
            return {"melody_path": str(self.path)}
        return {"melody": self.audio, "melody_sample_rate": self.sample_rate}

    def options_fields(self) -> dict:
        """ContinueOptions fields for the melody (Continue my track)."""
        if self.audio is None or not self._model_takes_melody:
            return {}
        return {"melody": self.audio, "melody_sample_rate": self.sample_rate}

    # -- setting it ------------------------------------------------------------------------------

    def offer_daw(self, capture, background, bars: int = DEFAULT_SOURCE_BARS) -> None:
        """Show "From DAW": it takes the DAW's last `bars` bars (gui.daw_capture) in the background."""
        def take() -> None:
            self.text.setText(f"Taking the last {bars} bars from the DAW…")
            background.run(lambda: capture.take_bars(bars), lambda source: self.set_file(source.path), self._failed)

        self.daw.setVisible(True)
        self.daw.clicked.connect(take)

    def _failed(self, message: str) -> None:
        self._show()
        self.failed.emit(message)

    def set_file(self, path: Path) -> None:
        try:
            audio, rate = read_melody_file(path)
        except SegueError as error:
            self._failed(str(error))
            return
        self.path = Path(path).resolve()
        self._set(audio, rate, self.path.name)

    def set_audio(self, audio: np.ndarray, sample_rate: int, name: str) -> None:
        """A melody that is not a file (e.g. the DAW's captured bars)."""
        self.path = None
        self._set(np.asarray(audio, dtype=np.float32), sample_rate, name)

    def clear(self) -> None:
        self.audio = self.sample_rate = self.path = None
        self.source_name = ""
        self._show()
        self.changed.emit()

    def follow_model(self, model_id: str) -> None:
        """Grey the well out for a catalogued model that takes no melody."""
        self._model_takes_melody = not known_to_take_no_melody(model_id)
        self._show()

    def follow_tempo(self, bpm: float, signature_text: str) -> None:
        """Show the melody's length in bars at this tempo."""
        try:
            self._bar_seconds = seconds_per_bar(bpm, TimeSignature.parse(signature_text))
        except SegueError:
            self._bar_seconds = None
        self._show()

    def _set(self, audio: np.ndarray, rate: int, name: str) -> None:
        self.audio, self.sample_rate, self.source_name = audio, rate, name
        self._show()
        self.changed.emit()

    def _show(self) -> None:
        self.setEnabled(self._model_takes_melody)
        if not self._model_takes_melody:
            self.text.setText(NO_MELODY_TEXT)
        elif self.audio is None:
            self.text.setText(EMPTY_TEXT)
        else:
            seconds = self.audio.shape[0] / self.sample_rate
            bars = f" · {seconds / self._bar_seconds:.1f} bars" if self._bar_seconds else ""
            self.text.setText(f"♪ {self.source_name} · {seconds:.1f} s{bars}")
        self.clear_button.setVisible(self.audio is not None)

    def _choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Melody to follow", "", AUDIO_FILTER)
        if path:
            self.set_file(Path(path))

    # -- drag and drop ---------------------------------------------------------------------------

    def dragEnterEvent(self, event) -> None:
        if _dropped_file(event.mimeData()) is not None:
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        path = _dropped_file(event.mimeData())
        if path is not None:
            event.acceptProposedAction()
            self.set_file(path)


def _dropped_file(mime) -> Path | None:
    if not mime.hasUrls():
        return None
    local = [url.toLocalFile() for url in mime.urls() if url.isLocalFile()]
    return Path(local[0]) if len(local) == 1 else None
