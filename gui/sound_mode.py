"""The panel's Music / Sound switch: MusicGen for music, AudioGen for sound design.

Sound mode shows the presets written for AudioGen (risers, impacts, whooshes, foley, ambiences:
`mode = "sound"` in their TOML) and the models whose catalogue kind is "sound" (or a local folder
converted from AudioGen); Music mode shows the rest. Each mode remembers the model last picked in
it, so switching back and forth keeps both choices. Lengths stay in bars or seconds in both modes:
AudioGen's 16 kHz takes are cut to the bar like MusicGen's.
"""

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import QButtonGroup, QHBoxLayout, QToolButton, QWidget

from bridge.engine.catalog import find_known_model
from bridge.engine.musicgen.audiogen import is_audiogen_folder
from bridge.engine.request import DEFAULT_MODEL
from bridge.models import ModelStatus, installed_model_dir
from bridge.presets import MUSIC, SOUND, Preset

if TYPE_CHECKING:
    from gui.generate_form import GenerateForm

DEFAULT_SOUND_MODEL = "facebook/audiogen-medium"
DEFAULT_MODELS = {MUSIC: DEFAULT_MODEL, SOUND: DEFAULT_SOUND_MODEL}
PLACEHOLDERS = {
    MUSIC: "Describe the music: dusty lo-fi drums, warm bass, vinyl crackle",
    SOUND: "Describe the sound: glass shatter, rising noise sweep, rain on a tin roof",
}
PROMPT_TIPS = {
    MUSIC: "What MusicGen should play. ↓ or the arrow shows earlier prompts.",
    SOUND: "What AudioGen should make: one sound or scene, described plainly. ↓ shows earlier prompts.",
}
MODE_TIPS = {
    MUSIC: "Music: MusicGen makes loops and parts that fit the song.",
    SOUND: "Sound: AudioGen makes effects and ambiences (risers, impacts, whooshes, foley), 16 kHz.",
}


def mode_of_model(model_id: str, folder: Path | None = None) -> str:
    """SOUND for AudioGen models (by the catalogue, or a converted folder: local or in the store), else MUSIC."""
    known = find_known_model(model_id)
    if known is not None:
        return SOUND if known.kind == SOUND else MUSIC
    local = folder or installed_model_dir(model_id) or Path(model_id).expanduser()
    return SOUND if local.is_dir() and is_audiogen_folder(local) else MUSIC


def models_for(statuses: Iterable[ModelStatus], mode: str) -> list[ModelStatus]:
    return [status for status in statuses if mode_of_model(status.model_id, status.path) == mode]


def presets_for(presets: Iterable[Preset], mode: str) -> list[Preset]:
    return [preset for preset in presets if preset.mode == mode]


class ModeSwitch(QWidget):
    """Two exclusive buttons, Music and Sound; `changed(mode)` when the producer flips them."""

    changed = pyqtSignal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.last_model: dict[str, str] = dict(DEFAULT_MODELS)
        self._group = QButtonGroup(self)
        self._group.setExclusive(True)
        self.buttons: dict[str, QToolButton] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        for mode, label in ((MUSIC, "Music"), (SOUND, "Sound")):
            button = QToolButton()
            button.setObjectName("mode")
            button.setText(label)
            button.setCheckable(True)
            button.setToolTip(MODE_TIPS[mode])
            button.setAccessibleName(f"{label} mode")
            self._group.addButton(button)
            self.buttons[mode] = button
            layout.addWidget(button)
        self.buttons[MUSIC].setChecked(True)
        self._group.buttonToggled.connect(self._toggled)

    def mode(self) -> str:
        return SOUND if self.buttons[SOUND].isChecked() else MUSIC

    def set_mode(self, mode: str) -> None:
        self.buttons[mode].setChecked(True)  # emits `changed` if it flips

    def _toggled(self, button: QToolButton, checked: bool) -> None:
        if checked:
            self.changed.emit(SOUND if button is self.buttons[SOUND] else MUSIC)


def apply_mode(form: "GenerateForm", mode: str, presets: list[Preset], model_id: str | None = None) -> None:
    """Show `mode`'s presets and models in `form`, selecting `model_id` or the mode's last model."""
    switch = form.mode_switch
    previous = form.model.currentData()
    if previous and mode_of_model(previous) != mode:
        switch.last_model[mode_of_model(previous)] = previous
    form.preset.blockSignals(True)
    form.preset.clear()
    form.preset.addItem("No preset", None)
    for preset in presets_for(presets, mode):
        form.preset.addItem(preset.name, preset.id)
        form.preset.setItemData(form.preset.count() - 1, preset.description or preset.prompt,
                                Qt.ItemDataRole.ToolTipRole)
    form.preset.blockSignals(False)
    form.prompt.lineEdit().setPlaceholderText(PLACEHOLDERS[mode])
    form.prompt.setToolTip(PROMPT_TIPS[mode])
    target = model_id or switch.last_model.get(mode) or DEFAULT_MODELS[mode]
    form.model.blockSignals(True)
    form.model.clear()
    form.model.addItem(target, target)  # refresh_models keeps the current model selected
    form.model.blockSignals(False)
    form.refresh_models()
