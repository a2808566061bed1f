"""Vary a clip from the panel's results list: right-click, "Vary…", a prompt and a strength, and the
variation joins the list. The real offscreen window and engine process (tiny models)."""

import json

import pytest
import soundfile
from PyQt6.QtCore import Qt

from tests.test_gui import (  # noqa: F401  (fixtures)
    JOB_TIMEOUT_MS,
    engine,
    library,
    models_dir,
    screenshot,
    screenshot_widget,
    set_length,
    type_prompt,
    window,
)

pytestmark = pytest.mark.slow


def test_right_click_a_clip_vary_it_and_the_variation_joins_the_list(qtbot, window):  # noqa: F811
    type_prompt(qtbot, window, "dusty lo-fi drums")
    set_length(window, 1.5, "seconds")
    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
        qtbot.mouseClick(window.generate_button, Qt.MouseButton.LeftButton)
    source, count = window.results_model.entries[0], len(window.results_model.entries)

    view = window.results
    view.customContextMenuRequested.emit(view.visualRect(view.model().index(0)).center())
    assert [action.text() for action in window.vary.menu.actions()] == ["Vary…"]
    window.vary.menu.actions()[0].trigger()
    dialog = window.vary.dialog
    qtbot.waitExposed(dialog)
    assert dialog.prompt.text() == "dusty lo-fi drums" and dialog.model.findText("tiny-stable-audio") >= 0
    dialog.prompt.setText("played on a rhodes")
    dialog.strength.setValue(0.3)
    dialog.model.setCurrentText("tiny-stable-audio")
    screenshot_widget(dialog, "10-vary-dialog")

    with qtbot.waitSignal(window.engine.clips_ready, timeout=JOB_TIMEOUT_MS):
        dialog.accept()
    variation = window.results_model.entries[0]
    assert variation.path != source.path and variation.prompt == "played on a rhodes"
    audio, rate = soundfile.read(variation.path)
    assert rate == 44100 and audio.shape == (round(1.5 * 44100), 2)  # the clip's length, Stable Audio's format
    parameters = json.loads(variation.path.with_suffix(".json").read_text())["parameters"]
    assert parameters["init_audio_path"] == str(source.path) and parameters["strength"] == 0.3
    assert window.banner.message == ""
    screenshot(window, "11-varied")

    # A model that cannot run here is one line in the window, and nothing joins the list.
    window.vary.open()
    window.vary.dialog.model.setCurrentText("stabilityai/stable-audio-3-small-music")
    window.vary.dialog.accept()
    qtbot.waitUntil(lambda: window.banner.message != "", timeout=JOB_TIMEOUT_MS)
    assert "\n" not in window.banner.message, window.banner.message
    assert len(window.results_model.entries) == count + 1
