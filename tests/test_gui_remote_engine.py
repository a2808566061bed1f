"""The panel on a remote engine: Settings' Engine box tests the connection, then jobs run remotely."""

from pathlib import Path

import pytest
from PyQt6.QtCore import Qt
from PyQt6.QtWidgets import QApplication

from bridge.engine.remote import token_store
from bridge.engine.request import GenerationRequest
from bridge.library import ClipLibrary
from bridge.settings import Settings, load_settings, update_settings
from gui.background import Background
from gui.clip_store import ClipStore
from gui.engine_controller import EngineController
from gui.settings_dialog import SettingsDialog
from gui.theme import apply_theme

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts" / "gui"

# Deadlines (a lost replica fails its job within 5 s) and Ray's own processes: run alone.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_settings_test_the_remote_engine_then_the_panel_generates_on_it(qtbot, qapp, remote_engine):
    apply_theme(qapp)
    background = Background()
    dialog = SettingsDialog(Settings(), background)
    qtbot.addWidget(dialog)
    box = dialog.engine
    assert not box.url.isEnabled()  # "This computer" by default
    box.kind.setCurrentIndex(box.kind.findData("remote"))
    box.url.setText(remote_engine.url)

    box.token.setText("a guess")
    qtbot.mouseClick(box.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: "token is wrong" in box.status.text(), timeout=10_000)

    box.token.setText(remote_engine.token)
    qtbot.mouseClick(box.test_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: box.status.text().startswith("Connected"), timeout=10_000)
    assert "tiny (musicgen) on cpu" in box.status.text() and "CPU" in box.status.text()
    dialog.show()
    QApplication.processEvents()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    assert dialog.grab().save(str(ARTIFACTS / "11-settings-remote-engine.png"))

    chosen = dialog.chosen()
    update_settings(lambda current: setattr(current, "engine", chosen.engine))
    assert load_settings().engine.kind == "remote"
    assert token_store.load_token(remote_engine.url) == remote_engine.token  # the 0600 file on this machine
    background.shutdown()

    with ClipLibrary() as library:
        controller = EngineController(ClipStore(library), device="cpu")
        try:
            with qtbot.waitSignal(controller.clips_ready, timeout=60_000) as ready:
                controller.submit(GenerationRequest(prompt="remote", model="tiny", seconds=1.0, seed=9))
            (entry,) = ready.args[1]
            assert Path(entry.path).is_file()
            assert controller.loaded_model == "tiny" and controller.loaded_device == "cpu"
        finally:
            controller.close()
