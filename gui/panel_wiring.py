"""The main window's links to the world outside the panel: the DAW link and its transport, the loopback
capture, the audio health line, and the settings (loading, the Settings dialog, applying its choices).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QTimer

from bridge.errors import SegueError
from bridge.settings import Settings, load_settings, update_settings
from gui.settings_dialog import SettingsDialog

if TYPE_CHECKING:
    from gui.main_window import MainWindow

HEALTH_POLL_MILLISECONDS = 1000


class PanelWiring(QObject):
    """Keeps the DAW link, capture and status bar in step with the settings."""

    def __init__(self, window: MainWindow) -> None:
        super().__init__(window)  # a child: its connections end with the window
        self.window = window
        self.settings_dialog: SettingsDialog | None = None
        self.settings = Settings()
        self._health_timer = QTimer(window)
        self._health_timer.setInterval(HEALTH_POLL_MILLISECONDS)
        self._health_timer.timeout.connect(self.show_audio_health)

    def connect_signals(self) -> None:
        self.window.daw.transport_changed.connect(self._transport_changed)
        self._health_timer.start()

    def _transport_changed(self, snapshot) -> None:
        self.window.status.show_transport(snapshot)
        if snapshot.connected:
            self.window.form.follow_transport(snapshot.tempo_bpm, snapshot.signature)

    def show_audio_health(self) -> None:
        window = self.window
        output, overflows = window.auditioner.health(), window.capture.overflows
        if output is None and overflows is None:
            window.status.show_audio_health(None)
            return
        underruns = sum(output) if output is not None else 0
        devices = " / ".join(
            label for label in (window.auditioner.device_label(), window.capture.device_label()) if label
        )
        window.status.show_audio_health((underruns, overflows or 0), devices)

    def show_engine_state(self, state: str) -> None:
        engine = self.window.engine
        self.window.status.show_engine(state, engine.loaded_model, engine.loaded_device)

    def open_settings(self) -> None:
        self.settings_dialog = SettingsDialog(self.settings, self.window.background, self.window)
        self.settings_dialog.accepted.connect(lambda: self.apply_settings(self.settings_dialog.chosen()))
        self.settings_dialog.open()

    def apply_settings(self, chosen: Settings) -> None:
        """Save what the dialog chose and put it to work: output device, DAW link, folders.

        Only the dialog's fields are written over the file as it is now: a calibration or a device
        chosen with `segue devices` meanwhile is kept."""
        window = self.window

        def change(current: Settings) -> None:
            current.audio.output_device = chosen.audio.output_device
            current.audio.input_device = chosen.audio.input_device
            current.daw = chosen.daw
            current.folders = chosen.folders
            current.engine = chosen.engine
            window.form.remember(current.panel)

        previous = self.settings
        saved = window._guard(lambda: update_settings(change))
        if not saved:
            return
        self.settings = saved
        if saved.audio.output_device != previous.audio.output_device:
            window.auditioner.close()  # the next audition opens the newly chosen output
        if saved.daw != previous.daw:
            self.open_daw()
        elif saved.audio.input_device != previous.audio.input_device:
            self._open_capture()
        if saved.folders != previous.folders:
            window.form.refresh_models()
        if saved.engine != previous.engine:
            window.engine.switch_engine()

    def open_daw(self) -> None:
        window = self.window
        if window._guard(lambda: window.daw.open(self.settings.daw)) is None:
            window.daw.close()
        self._open_capture()

    def _open_capture(self) -> None:
        """Record the chosen loopback input for "Continue from the DAW" (nothing if none is chosen)."""
        window = self.window
        window._guard(lambda: window.capture.open(window.daw.link, self.settings.audio.input_device))
        self.show_audio_health()

    def load_settings(self) -> Settings:
        try:
            self.settings = load_settings()
        except SegueError as error:
            self.window.show_error(f"{error} (using the defaults meanwhile)")
            self.settings = Settings()
        return self.settings

    def save_panel_memory(self) -> None:
        """Write the panel section only (other parts of Segue may have saved theirs meanwhile)."""
        self.window._guard(lambda: update_settings(lambda current: self.window.form.remember(current.panel)))

    def close(self) -> None:
        self.save_panel_memory()
        self.window.auditioner.close()
        self.window.capture.close()
        self.window.daw.close()
        self._health_timer.stop()
