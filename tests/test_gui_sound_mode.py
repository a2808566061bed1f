"""The panel's Sound mode: AudioGen presets and models, a 16 kHz take cut to the bar, offscreen for real.

The screenshot goes to test-artifacts/gui/sound-mode.png; docs/sound-mode.png, which the README shows, is
a copy of it made by hand, so a test run leaves the repository unchanged.
"""

from pathlib import Path

import pytest
import soundfile
from PyQt6.QtWidgets import QApplication

from bridge.presets import MUSIC, SOUND, load_presets
from bridge.settings import PanelSettings
from gui.generate_form import GenerateForm
from gui.sound_mode import mode_of_model
from tests.test_gui import JOB_TIMEOUT_MS, engine, library, models_dir, set_length, window  # noqa: F401

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "gui"


def combo_data(combo) -> list:
    return [combo.itemData(row) for row in range(combo.count())]


def test_sound_mode_shows_audiogen_presets_and_models_and_makes_a_16khz_take_in_bars(qtbot, window):  # noqa: F811
    form = window.form
    music_presets = combo_data(form.preset)
    assert "techno-loop" in music_presets and "sound-riser" not in music_presets
    assert "facebook/audiogen-medium" not in combo_data(form.model)

    form.mode_switch.buttons[SOUND].click()
    assert form.mode_switch.mode() == SOUND
    assert combo_data(form.preset) == [None, "sound-ambience", "sound-foley", "sound-impact", "sound-riser",
                                       "sound-whoosh"]
    models = combo_data(form.model)
    assert {"facebook/audiogen-medium", "tiny-audiogen"} <= set(models)
    assert not any(mode_of_model(model) == MUSIC for model in models)
    assert form.model.currentData() == "facebook/audiogen-medium"  # the mode's default model
    assert "sound" in form.prompt.lineEdit().placeholderText().lower()

    form.select_model("tiny-audiogen")
    form.preset.setCurrentIndex(form.preset.findData("sound-impact"))
    assert form.prompt.currentText().startswith("massive cinematic impact hit")
    form.tempo.setValue(120.0)
    set_length(window, 2, "bars")
    form.variations.setValue(1)
    form.seed.setValue(7)  # the same screenshot every run
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS) as ready:
        window.generate()
    [clip] = ready.args[1]
    info = soundfile.info(clip.path)
    assert info.samplerate == 16000 and info.frames == 64000  # 2 bars at 120 BPM, to the sample
    assert clip.bars == pytest.approx(2.0)
    assert form.mode_switch.mode() == SOUND and form.model.currentData() == "tiny-audiogen"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    form.prompt.lineEdit().setCursorPosition(0)  # the screenshot shows the prompt from its start
    QApplication.processEvents()
    assert window.grab().save(str(ARTIFACTS / "sound-mode.png"))

    form.mode_switch.buttons[MUSIC].click()  # back to music: its presets and its model ("tiny") return
    assert form.model.currentData() == "tiny" and "techno-loop" in combo_data(form.preset)
    form.mode_switch.buttons[SOUND].click()
    assert form.model.currentData() == "tiny-audiogen"  # each mode keeps its own pick


def test_the_panel_reopens_in_sound_mode_with_the_sound_model(qtbot):
    presets = load_presets().presets
    first = GenerateForm(presets, lambda: [])
    qtbot.addWidget(first)
    first.select_model("tiny-audiogen")
    assert first.mode_switch.mode() == SOUND
    panel = PanelSettings()
    first.remember(panel)
    again = GenerateForm(presets, lambda: [])
    qtbot.addWidget(again)
    again.restore(panel)
    assert again.mode_switch.mode() == SOUND and again.model.currentData() == "tiny-audiogen"
