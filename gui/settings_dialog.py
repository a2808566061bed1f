"""Settings: audio devices and latency calibration, the DAW and its ports, folders for clips and models.

The dialog edits a copy of the settings; OK hands the copy back and the window saves and applies it.
Calibration runs in the background (it plays a click through the chosen devices) and is saved by
bridge.audio.calibration for that pair of devices.
"""

import copy

from PyQt6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from bridge import paths
from bridge.audio.calibration import Calibration, calibrate
from bridge.audio.devices import list_devices
from bridge.errors import SegueError
from bridge.settings import Settings
from gui.background import Background
from gui.controls import muted_label
from gui.engine_settings import EngineSettingsBox

SYSTEM_DEFAULT = "System default"
DAW_LABELS = (("none", "None (drag clips in by hand)"), ("ableton", "Ableton Live (AbletonOSC)"),
              ("reaper", "REAPER (OSC + Segue scripts)"))


class SettingsDialog(QDialog):
    def __init__(self, settings: Settings, background: Background, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Segue settings")
        self.setMinimumWidth(520)
        self._settings = copy.deepcopy(settings)
        self._background = background

        self.output_device = QComboBox()
        self.input_device = QComboBox()
        self.calibrate_button = QPushButton("Calibrate latency")
        self.calibrate_button.setToolTip(
            "Plays a click into the output and listens for it on the input: route the output into the input first."
        )
        self.calibrate_button.clicked.connect(self.calibrate)
        self.calibration = QLabel("Not calibrated for these devices")
        self.calibration.setObjectName("muted")
        self.calibration.setWordWrap(True)
        self._fill_devices()

        audio = QGroupBox("Audio")
        audio_form = QFormLayout(audio)
        self.output_device.setToolTip("Where auditions (and live playback into the DAW) go")
        self.input_device.setToolTip("The loopback device the DAW plays into, for capturing bars")
        audio_form.addRow("Output", self.output_device)
        audio_form.addRow("Input (loopback)", self.input_device)
        calibrate_row = QHBoxLayout()
        calibrate_row.addWidget(self.calibrate_button)
        calibrate_row.addWidget(self.calibration, 1)
        audio_form.addRow(calibrate_row)

        self.daw = QComboBox()
        for value, label in DAW_LABELS:
            self.daw.addItem(label, value)
        self.daw.setCurrentIndex(max(0, self.daw.findData(self._settings.daw.daw)))
        self.ableton_port = _port(self._settings.daw.ableton_port, "AbletonOSC listens here (11000)")
        self.reaper_port = _port(self._settings.daw.reaper_port, "REAPER's local listen port (8000)")
        self.reaper_listen_port = _port(self._settings.daw.reaper_listen_port,
                                        "REAPER's device port: Segue listens here (9000)")
        self.ports = QStackedWidget()
        self.ports.addWidget(muted_label("Clips stay in the output folder; drag them into any DAW.", wrap=True))
        self.ports.addWidget(_pair("Live port", self.ableton_port, "Reply port", muted_label("11001 (AbletonOSC's, fixed)")))
        self.ports.addWidget(_pair("REAPER port", self.reaper_port, "Segue port", self.reaper_listen_port))
        self.daw.currentIndexChanged.connect(self.ports.setCurrentIndex)
        self.ports.setCurrentIndex(self.daw.currentIndex())
        daw = QGroupBox("DAW")
        daw_form = QFormLayout(daw)
        daw_form.addRow("Follow", self.daw)
        daw_form.addRow("OSC ports", self.ports)

        self.output_dir = _folder_field(self._settings.folders.output_dir, "the Music folder's Segue folder")
        self.models_dir = _folder_field(self._settings.folders.models_dir, "Segue's cache folder")
        folders = QGroupBox("Folders")
        folders_form = QFormLayout(folders)
        folders_form.addRow("Clips", _browse_row(self.output_dir, self))
        folders_form.addRow("Models", _browse_row(self.models_dir, self))
        self.export_dir = _folder_field(self._settings.folders.export_dir, "“DAW export” in the clips folder")
        self.export_dir.setToolTip("Clips the DAW could not take go here: add it to Live's Places or REAPER's Media Explorer")
        folders_form.addRow("DAW export", _browse_row(self.export_dir, self))

        self.engine = EngineSettingsBox(self._settings, background)

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        self.ok_button = buttons.button(QDialogButtonBox.StandardButton.Ok)
        layout = QVBoxLayout(self)
        layout.addWidget(audio)
        layout.addWidget(daw)
        layout.addWidget(folders)
        layout.addWidget(self.engine)
        layout.addWidget(buttons)

    def chosen(self) -> Settings:
        """The settings as edited (a copy: nothing is saved until the window does it)."""
        settings = self._settings
        settings.audio.output_device = self.output_device.currentData()
        settings.audio.input_device = self.input_device.currentData()
        settings.daw.daw = self.daw.currentData()
        settings.daw.ableton_port = self.ableton_port.value()
        settings.daw.reaper_port = self.reaper_port.value()
        settings.daw.reaper_listen_port = self.reaper_listen_port.value()
        settings.folders.output_dir = self.output_dir.text().strip() or None
        settings.folders.models_dir = self.models_dir.text().strip() or None
        settings.folders.export_dir = self.export_dir.text().strip() or None
        self.engine.apply(settings)
        return settings

    def calibrate(self) -> None:
        self.calibrate_button.setEnabled(False)
        self.calibration.setText("Listening for the click…")
        self._background.run(
            lambda: calibrate(self.input_device.currentData(), self.output_device.currentData()),
            self._calibrated, self._calibration_failed,
        )

    def _calibrated(self, result: Calibration) -> None:
        self.calibrate_button.setEnabled(True)
        self.calibration.setText(
            f"Round trip {result.round_trip_seconds * 1000:.1f} ms ({result.round_trip_frames} frames at "
            f"{result.sample_rate} Hz): captures are shifted by this much"
        )

    def _calibration_failed(self, message: str) -> None:
        self.calibrate_button.setEnabled(True)
        self.calibration.setText(message[:1].upper() + message[1:])

    def _fill_devices(self) -> None:
        for combo, kind, chosen in ((self.output_device, "output", self._settings.audio.output_device),
                                    (self.input_device, "input", self._settings.audio.input_device)):
            combo.addItem(SYSTEM_DEFAULT, None)
            try:
                devices = list_devices(kind)
            except SegueError as error:
                self.calibration.setText(str(error))
                devices = []
            for device in devices:
                combo.addItem(device.label, device.label)
            if chosen is not None and combo.findData(chosen) < 0:
                combo.addItem(f"{chosen} (not connected)", chosen)
            combo.setCurrentIndex(max(0, combo.findData(chosen)))


def _port(value: int, tip: str) -> QSpinBox:
    spin = QSpinBox()
    spin.setButtonSymbols(QSpinBox.ButtonSymbols.NoButtons)
    spin.setMinimumWidth(70)
    spin.setRange(0, 65535)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


def _pair(first_label: str, first: QWidget, second_label: str, second: QWidget) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.addWidget(QLabel(first_label))
    layout.addWidget(first)
    layout.addSpacing(12)
    layout.addWidget(QLabel(second_label))
    layout.addWidget(second)
    layout.addStretch(1)
    return row


def _folder_field(value: str | None, default_description: str) -> QLineEdit:
    field = QLineEdit(value or "")
    field.setPlaceholderText(f"Default: {default_description}")
    return field


def _browse_row(field: QLineEdit, parent: QWidget) -> QWidget:
    row = QWidget()
    layout = QHBoxLayout(row)
    layout.setContentsMargins(0, 0, 0, 0)
    browse = QPushButton("Browse…")

    def pick() -> None:
        start = field.text() or str(paths.output_dir())
        folder = QFileDialog.getExistingDirectory(parent, "Choose a folder", start)
        if folder:
            field.setText(folder)

    browse.clicked.connect(pick)
    layout.addWidget(field, 1)
    layout.addWidget(browse)
    return row


