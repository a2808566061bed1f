"""The bottom line: where the DAW is (tempo, signature, bar, play state), what the engine does, audio health."""

from PyQt6.QtWidgets import QLabel, QStatusBar, QWidget

from bridge.daw.transport import TransportSnapshot
from gui import theme

DAW_NAMES = {"ableton": "Ableton Live", "reaper": "REAPER", "none": "no DAW"}


class PanelStatusBar(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizeGripEnabled(False)
        self.daw = QLabel()
        self.tempo = QLabel()
        self.position = QLabel()
        self.play_state = QLabel()
        self.engine = QLabel()
        self.audio = QLabel()
        # The status line may clip in a narrow window, but never makes the window wider.
        for label in (self.tempo, self.position, self.play_state, self.engine):
            label.setMinimumWidth(24)
        for label in (self.daw, self.tempo, self.position, self.play_state):
            self.addWidget(label)
        self.addPermanentWidget(self.engine)
        self.addPermanentWidget(self.audio)
        self.show_transport(TransportSnapshot())
        self.show_engine("idle")
        self.show_audio_health(None)

    def show_transport(self, snapshot: TransportSnapshot) -> None:
        name = DAW_NAMES.get(snapshot.daw, snapshot.daw)
        if snapshot.daw == "none":
            self._set(self.daw, "○ no DAW", theme.MUTED, "No DAW link: pick Ableton Live or REAPER in Settings.")
        elif snapshot.connected:
            self._set(self.daw, f"● {name}", theme.GOOD, f"{name} is connected")
        else:
            self._set(self.daw, f"● {name}", theme.ERROR, f"{name} is not answering; check its OSC setup")
        live = snapshot.connected
        tempo = f"{snapshot.tempo_bpm:.1f} BPM" if live and snapshot.tempo_bpm else "– BPM"
        signature = str(snapshot.signature) if live and snapshot.signature else ""
        self.tempo.setText(f"{tempo}  {signature}".rstrip())
        bar_beat = snapshot.bar_and_beat() if live else None
        self.position.setText(f"bar {bar_beat[0]}.{int(bar_beat[1])}" if bar_beat else "bar –")
        if live and snapshot.recording:
            self._set(self.play_state, "●", theme.ERROR, "The DAW is recording")
        elif live and snapshot.playing:
            self._set(self.play_state, "▶", theme.GOOD, "The DAW is playing")
        else:
            self._set(self.play_state, "■", theme.MUTED, "The DAW is stopped")

    def show_engine(self, state: str, model: str | None = None, device: str | None = None) -> None:
        """`state`: idle, starting, loading, generating or ready; ready shows the device."""
        busy = state in ("loading", "generating", "starting")
        text = f"engine {state}" + (f" · {device}" if state == "ready" and device else "")
        tip = "The generation engine, in its own process"
        if model:
            tip += f": {model} on {device}"
        self._set(self.engine, text, theme.ACCENT if busy else theme.MUTED, tip)

    def show_audio_health(self, counters: tuple[int, int] | None, device: str | None = None) -> None:
        """`counters` are (underruns, overflows) since the audio devices opened; None: no audio open."""
        if counters is None:
            self._set(self.audio, "audio idle", theme.MUTED, "No audio device open yet (it opens on the first audition)")
            return
        underruns, overflows = counters
        tip = f"{device or 'audio'}: {underruns} underruns (output ran dry), {overflows} overflows (input dropped)"
        if underruns or overflows:
            self._set(self.audio, f"audio {underruns} under · {overflows} over", theme.WARNING, tip)
        else:
            self._set(self.audio, "audio ok", theme.GOOD, tip)

    @staticmethod
    def _set(label: QLabel, text: str, colour: str, tip: str) -> None:
        label.setText(text)
        label.setStyleSheet(f"color: {colour};")
        label.setToolTip(tip)
