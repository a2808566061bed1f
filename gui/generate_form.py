"""The "what to make" half of the panel: prompt, preset, model, length, takes and the advanced fold.

It only collects values and turns them into a validated GenerationRequest; it never starts work.
"""

from collections.abc import Callable

from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtWidgets import (
    QAbstractSpinBox,
    QComboBox,
    QDoubleSpinBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from bridge.engine.request import DEFAULT_MODEL, MAX_SECONDS, GenerationRequest
from bridge.errors import InvalidParameterError
from bridge.models import ModelStatus
from bridge.models.store import BUILT, BUILT_ON_USE, FAILED, PARTIAL
from bridge.musical_time import TimeSignature, seconds_per_bar
from bridge.presets import Preset
from bridge.settings import PanelSettings
from gui.melody_well import MelodyWell
from gui.sound_mode import MUSIC, ModeSwitch, apply_mode, mode_of_model, models_for, presets_for

MAX_PANEL_VARIATIONS = 4
MAX_HISTORY = 30
SIGNATURES = ("4/4", "3/4", "6/8", "12/8", "5/4", "7/8", "2/4")
QUALITY_CHOICES = (("auto", "Auto"), ("exact", "Exact"), ("fast", "Fast"))
QUALITY_TIPS = "Auto: fast on CPU, exact on a GPU. Exact: reference sampling. Fast: quicker, nearly identical."
BARS, SECONDS = "bars", "seconds"


def model_label(status: ModelStatus) -> str:
    """'musicgen-small · 2.4 GB · ✓ downloaded': what the picker shows for one model."""
    name = status.model_id.split("/")[-1]
    size_gb = status.known.size_gb if status.known else status.disk_bytes / 1e9
    size = f"{size_gb:.1f} GB" if size_gb >= 0.1 else f"{max(1.0, size_gb * 1000):.0f} MB"
    if status.usable_offline:
        state = "✓ downloaded" if status.state not in (BUILT, BUILT_ON_USE) else "✓ built locally"
    elif status.state == PARTIAL:
        state = f"partly downloaded{f' ({status.detail})' if status.detail else ''}"
    elif status.state == FAILED:
        state = "download failed"
    else:
        state = "not downloaded"
    return f"{name} · {size} · {state}"


def model_details(status: ModelStatus) -> str:
    """Licence and description for a known model; where it lives for any other."""
    if status.known is not None:
        return f"{status.known.licence} · {status.known.description}"
    return f"{status.model_id} · {status.state} · licence: see the model's page"


class GenerateForm(QWidget):
    """Emits `submitted` when Enter is pressed in the prompt."""

    submitted = pyqtSignal()

    def __init__(
        self,
        presets: list[Preset],
        list_models: Callable[[], list[ModelStatus]],
        corner: QWidget | None = None,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self._presets = presets
        self._list_models = list_models
        self._statuses: dict[str, ModelStatus] = {}
        self.mode_switch = ModeSwitch()  # Music (MusicGen) or Sound (AudioGen): gui/sound_mode.py
        self.mode_switch.changed.connect(lambda mode: apply_mode(self, mode, self._presets))

        self.preset = QComboBox()
        self.preset.addItem("No preset", None)
        for preset in presets_for(presets, MUSIC):
            self.preset.addItem(preset.name, preset.id)
            self.preset.setItemData(self.preset.count() - 1, preset.description or preset.prompt,
                                    Qt.ItemDataRole.ToolTipRole)
        self.preset.setMaxVisibleItems(16)
        self.preset.currentIndexChanged.connect(self._apply_preset)

        self.prompt = QComboBox()
        self.prompt.setEditable(True)
        self.prompt.setInsertPolicy(QComboBox.InsertPolicy.NoInsert)
        self.prompt.lineEdit().setPlaceholderText("Describe the music: dusty lo-fi drums, warm bass, vinyl crackle")
        self.prompt.lineEdit().setClearButtonEnabled(True)
        self.prompt.lineEdit().returnPressed.connect(self.submitted)
        self.prompt.setToolTip("What MusicGen should play. ↓ or the arrow shows earlier prompts.")

        self.model = QComboBox()
        self.model_info = QLabel()
        self.model_info.setObjectName("muted")
        self.model_info.setWordWrap(True)
        self.refresh_models()
        self.model.currentIndexChanged.connect(self._show_model_info)
        self.quality = QComboBox()
        for value, label in QUALITY_CHOICES:
            self.quality.addItem(label, value)
        self.quality.setToolTip(QUALITY_TIPS)

        self.length = QDoubleSpinBox()
        self.length.setRange(0.1, MAX_SECONDS)
        self.length_unit = QComboBox()
        self.length_unit.addItems([BARS, SECONDS])
        self.length_unit.currentTextChanged.connect(self._convert_length)
        self._set_length(4.0, BARS)
        self.tempo = QDoubleSpinBox()
        self.tempo.setRange(20.0, 999.0)
        self.tempo.setDecimals(1)
        self.tempo.setValue(120.0)
        self.tempo.setSuffix(" BPM")
        self.tempo.setToolTip("Tempo for lengths in bars; follows the DAW while it is connected.")
        self.signature = QComboBox()
        self.signature.setEditable(True)
        self.signature.addItems(SIGNATURES)
        self.signature.setToolTip("Time signature; follows the DAW while it is connected.")
        self.variations = QSpinBox()
        self.variations.setRange(1, MAX_PANEL_VARIATIONS)
        self.variations.setValue(2)
        self.variations.setToolTip("How many takes to make at once (A/B between them).")

        self.temperature = _spin(0.05, 10.0, 1.0, 2, 0.05, "Higher: wilder; lower: safer and more repetitive.")
        self.top_k = QSpinBox()
        self.top_k.setRange(0, 2048)
        self.top_k.setValue(250)
        self.top_k.setSpecialValueText("off")
        self.top_k.setToolTip("Sample only from the k likeliest tokens (0: off).")
        self.guidance = _spin(0.0, 30.0, 3.0, 1, 0.5, "How strictly to follow the prompt (classifier-free guidance).")
        self.seed = QSpinBox()
        self.seed.setRange(-1, 2**31 - 1)
        self.seed.setValue(-1)
        self.seed.setSpecialValueText("random")
        self.seed.setToolTip("Same seed + same settings = same audio. 'random' picks a new one each time.")

        self.advanced_toggle = QToolButton()
        self.advanced_toggle.setObjectName("fold")
        self.advanced_toggle.setCheckable(True)
        self.advanced_toggle.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextBesideIcon)
        self.advanced_toggle.setArrowType(Qt.ArrowType.RightArrow)
        self.advanced_toggle.setText("Advanced")
        self.advanced_toggle.toggled.connect(self._fold)
        self.advanced = QWidget()
        advanced = QHBoxLayout(self.advanced)
        advanced.setContentsMargins(0, 0, 0, 0)
        for label, widget in (("Temperature", self.temperature), ("Top-k", self.top_k),
                              ("Guidance", self.guidance), ("Seed", self.seed)):
            advanced.addWidget(_label(label))
            advanced.addWidget(widget, 1)
        self.advanced.setVisible(False)
        self.melody = MelodyWell()
        self.model.currentIndexChanged.connect(lambda: self.melody.follow_model(self.model.currentData() or ""))
        self.tempo.valueChanged.connect(lambda bpm: self.melody.follow_tempo(bpm, self.signature.currentText()))
        self.melody.follow_model(self.model.currentData() or DEFAULT_MODEL)
        self.melody.follow_tempo(self.tempo.value(), self.signature.currentText())

        for spin in (self.length, self.tempo, self.variations, self.top_k, self.seed):
            spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
            spin.setKeyboardTracking(False)
        grid = QGridLayout()
        grid.setContentsMargins(0, 0, 0, 0)
        grid.setHorizontalSpacing(8)
        grid.setVerticalSpacing(6)
        grid.addWidget(_label("Preset"), 0, 0)
        preset_row = QHBoxLayout()
        preset_row.addWidget(self.mode_switch)
        preset_row.addWidget(self.preset, 1)
        if corner is not None:
            preset_row.addWidget(corner)
        grid.addLayout(preset_row, 0, 1)
        grid.addWidget(_label("Prompt"), 1, 0)
        grid.addWidget(self.prompt, 1, 1)
        grid.addWidget(_label("Model"), 2, 0)
        model_row = QHBoxLayout()
        model_row.addWidget(self.model, 1)
        model_row.addSpacing(6)
        model_row.addWidget(_label("Quality"))
        model_row.addWidget(self.quality)
        grid.addLayout(model_row, 2, 1)
        grid.addWidget(self.model_info, 3, 1)
        grid.addWidget(_label("Length"), 4, 0)
        length_row = QHBoxLayout()
        length_row.addWidget(self.length)
        length_row.addWidget(self.length_unit)
        length_row.addSpacing(10)
        length_row.addWidget(self.tempo)
        length_row.addWidget(self.signature)
        length_row.addSpacing(10)
        length_row.addWidget(_label("Takes"))
        length_row.addWidget(self.variations)
        length_row.addStretch(1)
        grid.addLayout(length_row, 4, 1)
        grid.addWidget(_label("Melody"), 5, 0)
        grid.addWidget(self.melody, 5, 1)
        grid.addWidget(self.advanced_toggle, 6, 0, 1, 2, Qt.AlignmentFlag.AlignLeft)
        grid.addWidget(self.advanced, 7, 1)
        grid.setColumnStretch(1, 1)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(grid)

    # -- values ----------------------------------------------------------------------------------

    def build_request(self, **extra) -> GenerationRequest:
        """The request the form describes, validated; `extra` adds the audio to continue (the melody well its melody)."""
        extra = self.melody.request_fields() | extra
        prompt = self.prompt.currentText().strip()
        seconds, bars = (None, self.length.value()) if self.length_unit.currentText() == BARS else (
            self.length.value(), None)
        request = GenerationRequest(
            prompt=prompt,
            model=self.model.currentData() or DEFAULT_MODEL,
            seconds=seconds,
            bars=bars,
            bpm=self.tempo.value(),
            signature=self.signature.currentText().strip(),
            variations=self.variations.value(),
            seed=None if self.seed.value() < 0 else self.seed.value(),
            temperature=self.temperature.value(),
            top_k=self.top_k.value(),
            cfg=self.guidance.value(),
            quality=self.quality.currentData(),
            **extra,
        )
        if not prompt and not request.is_continuation:
            raise InvalidParameterError("type a prompt (or pick a preset) to generate from text")
        return request.validate()

    def remember_prompt(self, prompt: str) -> None:
        """Put `prompt` at the top of the history (once), keeping the text in the box."""
        prompt = prompt.strip()
        if not prompt:
            return
        existing = self.prompt.findText(prompt, Qt.MatchFlag.MatchExactly)
        if existing >= 0:
            self.prompt.removeItem(existing)
        self.prompt.insertItem(0, prompt)
        while self.prompt.count() > MAX_HISTORY:
            self.prompt.removeItem(self.prompt.count() - 1)
        self.prompt.setCurrentIndex(0)

    def remember(self, panel: PanelSettings) -> None:
        """Write what the panel should remember (history, model, quality, unit, takes) into `panel`."""
        panel.prompt_history = self.history()
        panel.model = self.model.currentData()
        panel.quality = self.quality.currentData()
        panel.length_unit = self.length_unit.currentText()
        panel.variations = self.variations.value()

    def restore(self, panel: PanelSettings) -> None:
        self.set_history(panel.prompt_history)
        if panel.model:
            self.select_model(panel.model)
        self.quality.setCurrentIndex(max(0, self.quality.findData(panel.quality)))
        if panel.length_unit in (BARS, SECONDS):
            self._set_length(4.0 if panel.length_unit == BARS else 8.0, panel.length_unit)
        self.variations.setValue(min(MAX_PANEL_VARIATIONS, max(1, panel.variations)))

    def history(self) -> list[str]:
        return [self.prompt.itemText(row) for row in range(self.prompt.count())]

    def set_history(self, prompts: list[str]) -> None:
        """Fill the history (newest first), leaving the prompt box empty."""
        self.prompt.clear()
        self.prompt.addItems(prompts[:MAX_HISTORY])
        self.prompt.setCurrentIndex(-1)
        self.prompt.setEditText("")

    def select_model(self, model_id: str) -> None:
        if mode_of_model(model_id) != self.mode_switch.mode():  # an AudioGen model is picked in Sound mode
            self.mode_switch.last_model[mode_of_model(model_id)] = model_id
            self.mode_switch.set_mode(mode_of_model(model_id))
            return
        row = self.model.findData(model_id)
        if row < 0:
            self.model.addItem(model_id, model_id)
            row = self.model.count() - 1
        self.model.setCurrentIndex(row)

    def follow_transport(self, bpm: float | None, signature: TimeSignature | None) -> None:
        """Take the DAW's tempo and signature (unknown values leave the fields alone)."""
        if bpm is not None and abs(bpm - self.tempo.value()) > 1e-3:
            self.tempo.setValue(bpm)
        if signature is not None and str(signature) != self.signature.currentText():
            self.signature.setEditText(str(signature))

    def refresh_models(self) -> None:
        """Re-read which models are downloaded (after a download finishes)."""
        current = self.model.currentData() or DEFAULT_MODEL
        self.model.blockSignals(True)
        self.model.clear()
        self._statuses = {status.model_id: status for status in self._list_models()}
        for status in models_for(self._statuses.values(), self.mode_switch.mode()):
            self.model.addItem(model_label(status), status.model_id)
            self.model.setItemData(self.model.count() - 1, model_details(status), Qt.ItemDataRole.ToolTipRole)
        self.model.blockSignals(False)
        self.select_model(current)
        self._show_model_info()

    # -- reactions -------------------------------------------------------------------------------

    def _apply_preset(self) -> None:
        preset_id = self.preset.currentData()
        preset = next((p for p in self._presets if p.id == preset_id), None)
        if preset is None:
            return
        self.prompt.setEditText(preset.prompt)
        self._set_length(preset.bars, BARS)
        self.signature.setEditText(preset.signature)
        self.guidance.setValue(preset.guidance)
        self.temperature.setValue(preset.temperature)
        self.preset.setToolTip(preset.description or preset.prompt)

    def _show_model_info(self) -> None:
        status = self._statuses.get(self.model.currentData() or "")
        self.model_info.setText(model_details(status) if status else "a model folder or Hugging Face id")

    def _set_length(self, value: float, unit: str) -> None:
        self.length_unit.blockSignals(True)
        self.length_unit.setCurrentText(unit)
        self.length_unit.blockSignals(False)
        self._style_length(unit)
        self.length.setValue(value)

    def _style_length(self, unit: str) -> None:
        self.length.setDecimals(0 if unit == BARS else 1)
        self.length.setSingleStep(1.0)
        self.length.setMinimum(1.0 if unit == BARS else 0.5)

    def _convert_length(self, unit: str) -> None:
        """Keep the same duration when switching between bars and seconds."""
        try:
            bar_seconds = seconds_per_bar(self.tempo.value(), TimeSignature.parse(self.signature.currentText()))
        except InvalidParameterError:
            bar_seconds = 2.0
        value = self.length.value()
        converted = max(1.0, round(value / bar_seconds)) if unit == BARS else value * bar_seconds
        self._style_length(unit)
        self.length.setValue(converted)

    def _fold(self, open_: bool) -> None:
        self.advanced.setVisible(open_)
        self.advanced_toggle.setArrowType(Qt.ArrowType.DownArrow if open_ else Qt.ArrowType.RightArrow)


def _label(text: str) -> QLabel:
    label = QLabel(text)
    label.setObjectName("muted")
    label.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
    return label


def _spin(low: float, high: float, value: float, decimals: int, step: float, tip: str) -> QDoubleSpinBox:
    spin = QDoubleSpinBox()
    spin.setButtonSymbols(QAbstractSpinBox.ButtonSymbols.NoButtons)
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin
