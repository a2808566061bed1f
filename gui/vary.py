"""Vary a clip from the results list: right-click a clip, "Vary…", a prompt and a strength.

A variation redraws the whole clip from a noised copy of it (audio to audio): low strengths keep its
rhythm and sound, 1 keeps nothing of it. Only Stable Audio 3 models can do that; the dialog offers
those and the request is validated like any other, so a mistake is one line in the window.
"""

from collections.abc import Callable

from PyQt6.QtCore import QPoint, Qt
from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLineEdit,
    QMenu,
    QWidget,
)

from bridge.engine.catalog import KNOWN_MODELS
from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.family import claims
from gui.clip_store import ClipEntry
from gui.results import ResultsView

VARY_TEXT = "Vary…"
DEFAULT_STRENGTH = 0.5


def variation_models(current_model: str | None) -> list[str]:
    """The Stable Audio models to offer, the form's own model first when it is one."""
    models = [model.model_id for model in KNOWN_MODELS if claims(model.model_id)]
    if current_model and claims(current_model):
        models = [current_model] + [model for model in models if model != current_model]
    return models


class VaryDialog(QDialog):
    """Prompt, strength and model for a variation of `entry`."""

    def __init__(self, entry: ClipEntry, models: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.entry = entry
        self.setWindowTitle(f"Vary {entry.name or entry.path.name}")
        self.prompt = QLineEdit(entry.prompt)
        self.prompt.setPlaceholderText("how the variation should sound, e.g. played on a rhodes")
        self.strength = QDoubleSpinBox()
        self.strength.setRange(0.05, 1.0)
        self.strength.setSingleStep(0.05)
        self.strength.setValue(DEFAULT_STRENGTH)
        self.strength.setToolTip("How far from the clip: low keeps its rhythm and sound, 1 keeps nothing of it")
        self.model = QComboBox()
        self.model.addItems(models)
        form = QFormLayout(self)
        form.addRow("Prompt", self.prompt)
        form.addRow("Strength", self.strength)
        form.addRow("Model", self.model)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Vary")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def build_request(self) -> GenerationRequest:
        """The variation request, validated (InvalidParameterError names what is wrong)."""
        return GenerationRequest(
            prompt=self.prompt.text().strip(), model=self.model.currentText(), bpm=self.entry.bpm,
            init_audio_path=str(self.entry.path), strength=self.strength.value(),
        ).validate()


class VaryAction:
    """Puts "Vary…" in the results list's context menu; `run(make_request)` submits like Generate does."""

    def __init__(
        self, view: ResultsView, current_model: Callable[[], str | None],
        run: Callable[[Callable[[], GenerationRequest]], None],
    ) -> None:
        self.view = view
        self.current_model = current_model
        self.run = run
        self.dialog: VaryDialog | None = None
        self.menu: QMenu | None = None
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._menu)

    def _menu(self, position: QPoint) -> None:
        index = self.view.indexAt(position)
        if not index.isValid():
            return
        self.view.setCurrentIndex(index)
        self.menu = QMenu(self.view)
        self.menu.addAction(VARY_TEXT, self.open)
        self.menu.popup(self.view.viewport().mapToGlobal(position))

    def open(self) -> VaryDialog | None:
        """The dialog for the selected clip (shown, not blocking); on Vary the request is run."""
        entry = self.view.selected_entry()
        if entry is None:
            return None
        self.dialog = VaryDialog(entry, variation_models(self.current_model()), self.view.window())
        self.dialog.accepted.connect(lambda dialog=self.dialog: self.run(dialog.build_request))
        self.dialog.open()
        return self.dialog
