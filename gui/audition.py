"""Audition clips through the chosen output device, and flip between takes without losing the beat.

A/B keeps the playhead: switching to another take starts it where the previous one was, so two
variations can be compared bar against bar. Looping clips are rotated to that position; the Player
(bridge.audio.playback) does the device work, this class only remembers what plays since when.
"""

import time
from collections.abc import Callable

import numpy as np
from PyQt6.QtCore import QObject, QTimer, pyqtSignal

from bridge.audio.io import read_audio
from bridge.audio.playback import Player
from gui.clip_store import ClipEntry

POLL_MILLISECONDS = 100


class Auditioner(QObject):
    started = pyqtSignal(object)  # ClipEntry
    stopped = pyqtSignal()

    def __init__(self, player_factory: Callable[[], Player] = Player, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.loop = True
        self._player_factory = player_factory
        self._player: Player | None = None
        self._entry: ClipEntry | None = None
        self._seconds = 0.0
        self._started_at = 0.0
        self._offset_seconds = 0.0
        self._earlier_underruns = 0
        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MILLISECONDS)
        self._poll.timeout.connect(self._check_finished)

    @property
    def playing(self) -> ClipEntry | None:
        return self._entry

    @property
    def player(self) -> Player | None:
        return self._player

    def play(self, entry: ClipEntry, from_seconds: float = 0.0) -> None:
        """Play `entry` from `from_seconds`; raises DeviceError / AudioFileError (shown by the window)."""
        audio, rate = read_audio(entry.path)
        seconds = audio.shape[0] / rate
        start = min(max(0, round((from_seconds % seconds if seconds else 0.0) * rate)), audio.shape[0] - 1)
        audio = np.roll(audio, -start, axis=0) if self.loop else audio[start:]
        player = self._open_player()
        self._count_underruns()
        player.play(audio, rate, loop=self.loop)
        self._entry, self._seconds = entry, seconds
        self._offset_seconds, self._started_at = start / rate, time.monotonic()
        self._poll.start()
        self.started.emit(entry)

    def toggle(self, entry: ClipEntry) -> None:
        if self._entry is entry:
            self.stop()
        else:
            self.play(entry)

    def switch_to(self, entry: ClipEntry) -> None:
        """A/B: play `entry` from where the current clip is now (from the top if nothing plays)."""
        self.play(entry, self.position_seconds() if self._entry is not None else 0.0)

    def position_seconds(self) -> float:
        elapsed = self._offset_seconds + time.monotonic() - self._started_at
        return elapsed % self._seconds if self.loop and self._seconds else min(elapsed, self._seconds)

    def stop(self) -> None:
        if self._player is not None:
            self._player.stop()
        self._finished()

    def health(self) -> tuple[int, int] | None:
        """(underruns, device underflows) since the output opened, or None while no output is open."""
        if self._player is None:
            return None
        return self._earlier_underruns + self._player.underruns, self._player.device_underflows

    def device_label(self) -> str | None:
        return self._player.device.label if self._player is not None else None

    def close(self) -> None:
        """Let go of the output device (a new choice in Settings opens the new one on the next play)."""
        self.stop()
        if self._player is not None:
            self._player.close()
            self._player = None
            self._earlier_underruns = 0

    def _open_player(self) -> Player:
        if self._player is None:
            self._player = self._player_factory().start()
        return self._player

    def _count_underruns(self) -> None:
        if self._player is not None:
            self._earlier_underruns += self._player.underruns  # the Player resets its count per clip

    def _check_finished(self) -> None:
        player = self._player
        silent = player is None or not (player.is_playing or player.buffered_frames)
        if silent and time.monotonic() - self._started_at > 0.5:  # the device takes a block or two to start
            self._finished()

    def _finished(self) -> None:
        self._poll.stop()
        if self._entry is not None:
            self._entry = None
            self.stopped.emit()
