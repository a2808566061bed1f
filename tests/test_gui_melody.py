"""The panel's Melody well, driven like a producer would: drop a chord part, generate on a melody model.

The screenshot of the well in use goes to test-artifacts/gui/melody-panel.png (docs/melody/panel.png,
which the README shows, is a copy).
"""

import json
from pathlib import Path

import numpy as np
import soundfile
from PyQt6.QtCore import QMimeData, QPointF, Qt, QUrl
from PyQt6.QtGui import QDragEnterEvent, QDropEvent
from PyQt6.QtWidgets import QApplication

from gui.melody_well import NO_MELODY_TEXT
from tests.test_gui import (  # noqa: F401  (fixtures)
    JOB_TIMEOUT_MS,
    engine,
    library,
    models_dir,
    screenshot,
    set_length,
    type_prompt,
    window,
)


def write_chords(path: Path, seconds: float = 4.0, rate: int = 44100) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    soundfile.write(path, 0.2 * np.sin(2 * np.pi * 392.0 * t) + 0.1 * np.sin(2 * np.pi * 493.88 * t), rate)
    return path


def drop_on(widget, path: Path) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    where = QPointF(widget.rect().center())
    enter = QDragEnterEvent(where.toPoint(), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                            Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, enter)
    drop = QDropEvent(where, Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
    QApplication.sendEvent(widget, drop)
    return enter.isAccepted() and drop.isAccepted()


def test_drop_a_chord_part_on_the_melody_well_and_generate_clips_that_follow_it(qtbot, window, tmp_path):  # noqa: F811
    window.form.select_model("tiny-melody")
    window.form.tempo.setValue(120.0)
    chords = write_chords(tmp_path / "chord track.wav")
    assert drop_on(window.form.melody, chords)
    assert window.form.melody.text.text() == "♪ chord track.wav · 4.0 s · 2.0 bars"

    type_prompt(qtbot, window, "warm strings")
    set_length(window, 1, "bars")
    window.form.variations.setValue(1)
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS) as ready:
        window.generate()
    [clip] = ready.args[1]
    sidecar = json.loads(Path(clip.path).with_suffix(".json").read_text())
    assert sidecar["parameters"]["melody_path"] == str(chords.resolve())
    assert window.banner.message == ""
    screenshot(window, "melody-panel")


def test_the_well_is_greyed_out_for_a_model_that_follows_no_melody(window, tmp_path):  # noqa: F811
    window.form.select_model("tiny-melody")
    window.form.melody.set_file(write_chords(tmp_path / "lead.wav"))
    window.form.select_model("tiny")
    assert not window.form.melody.isEnabled() and window.form.melody.text.text() == NO_MELODY_TEXT
    window.form.prompt.setEditText("drums")
    assert not window.form.build_request().has_melody  # the melody stays for when a melody model is back
    window.form.select_model("tiny-melody")
    assert window.form.build_request().melody_path.endswith("lead.wav")


def test_a_corrupt_melody_file_is_one_line_in_the_panel(window, tmp_path):  # noqa: F811
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    window.form.select_model("tiny-melody")
    drop_on(window.form.melody, broken)
    assert window.banner.message.startswith("Melody: cannot read broken.wav as audio")
    assert "\n" not in window.banner.message and window.form.melody.audio is None
