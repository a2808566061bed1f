"""Where the producer is in their song: one transport model shared by Ableton Live and REAPER.

Live reports positions in beats (quarter notes), REAPER in seconds. The model keeps each value in
the unit the DAW sent and derives the other with the current tempo, so both are always available.
The derivation assumes one tempo from the start of the song (no tempo automation).
"""

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from bridge.musical_time import TimeSignature

DAW_NAMES = ("ableton", "reaper", "none")


@dataclass(frozen=True)
class TransportSnapshot:
    """An immutable view of the transport at one moment. Unknown values are None."""

    daw: str = "none"
    connected: bool = False
    # Wall-clock time (time.time()) of the last message from the DAW, for "last heard 3 s ago".
    last_message_time: float | None = None
    tempo_bpm: float | None = None
    signature: TimeSignature | None = None
    playing: bool = False
    recording: bool = False
    position_beats: float | None = None
    position_seconds: float | None = None
    loop_enabled: bool = False
    loop_start_beats: float | None = None
    loop_end_beats: float | None = None
    loop_start_seconds: float | None = None
    loop_end_seconds: float | None = None
    track_names: tuple[str, ...] = ()
    daw_version: str | None = None
    # Bar and beat as the DAW itself displays them (REAPER's /beat/str), when it reports them.
    daw_bar_beat: tuple[int, float] | None = None

    @property
    def tempo_and_signature_known(self) -> bool:
        """True once the DAW reported both its tempo and its time signature: no bar length before that.

        Live sends the tempo before the signature (each listener pushes its own message), so a caller
        that waited for the tempo alone would measure bars in a signature the DAW never said.
        """
        return self.connected and bool(self.tempo_bpm) and self.signature is not None

    def seconds_since_last_message(self, now: float | None = None) -> float | None:
        if self.last_message_time is None:
            return None
        return max(0.0, (time.time() if now is None else now) - self.last_message_time)

    def bar_and_beat(self) -> tuple[int, float] | None:
        """1-based bar and beat (in the signature's beat unit) of the playhead, as the DAW displays it."""
        if self.daw_bar_beat is not None:
            return self.daw_bar_beat
        if self.position_beats is None:
            return None
        signature = self.signature or TimeSignature()
        quarter_notes_per_bar = signature.quarter_notes_per_bar
        bar_index = math.floor(self.position_beats / quarter_notes_per_bar + 1e-9)
        quarter_notes_into_bar = max(0.0, self.position_beats - bar_index * quarter_notes_per_bar)
        return bar_index + 1, 1.0 + quarter_notes_into_bar * signature.denominator / 4.0


# Values a DAW may report, and the unit they arrive in.
_BEAT_FIELDS = {
    "position_beats": "position_seconds",
    "loop_start_beats": "loop_start_seconds",
    "loop_end_beats": "loop_end_seconds",
}
_SECOND_FIELDS = {seconds: beats for beats, seconds in _BEAT_FIELDS.items()}
_PLAIN_FIELDS = {
    "tempo_bpm",
    "signature",
    "playing",
    "recording",
    "loop_enabled",
    "track_names",
    "daw_version",
    "daw_bar_beat",
}

TransportListener = Callable[[TransportSnapshot], None]


class TransportState:
    """Thread-safe, observable transport of one DAW link.

    DAW links call `update()` from their receive threads; the GUI and the control server read
    `snapshot()` or register a listener (called on the updating thread, so it must be quick).
    """

    def __init__(self, daw: str = "none") -> None:
        if daw not in DAW_NAMES:
            raise ValueError(f"unknown DAW {daw!r}")
        self._daw = daw
        self._native: dict[str, object] = {}
        self._connected = False
        self._last_message_time: float | None = None
        self._last_message_monotonic: float | None = None
        self._listeners: list[TransportListener] = []
        self._changed = threading.Condition()
        self._snapshot = TransportSnapshot(daw=daw)

    @property
    def daw(self) -> str:
        return self._daw

    def snapshot(self) -> TransportSnapshot:
        with self._changed:
            return self._snapshot

    def seconds_since_last_message(self) -> float | None:
        """Monotonic age of the last message, for connection timeouts."""
        with self._changed:
            if self._last_message_monotonic is None:
                return None
            return time.monotonic() - self._last_message_monotonic

    def heard(self) -> None:
        """Note that the DAW just sent something."""
        with self._changed:
            self._last_message_monotonic = time.monotonic()
            self._last_message_time = time.time()
            self._snapshot = replace(self._snapshot, last_message_time=self._last_message_time)
            self._changed.notify_all()

    def set_connected(self, connected: bool) -> None:
        self._apply(lambda: setattr(self, "_connected", connected))

    def update(self, **values: object) -> None:
        """Set values as the DAW reported them (beats for Live, seconds for REAPER)."""
        for name in values:
            if name not in _BEAT_FIELDS and name not in _SECOND_FIELDS and name not in _PLAIN_FIELDS:
                raise TypeError(f"unknown transport value {name!r}")

        def store() -> None:
            for name, value in values.items():
                # A position arrives in one unit: forget the stale value in the other unit.
                self._native.pop(_BEAT_FIELDS.get(name) or _SECOND_FIELDS.get(name, ""), None)
                self._native[name] = value

        self._apply(store)

    def forget(self) -> None:
        """Drop everything the DAW reported (it went away); the connection flag is kept."""
        self._apply(self._native.clear)

    def add_listener(self, listener: TransportListener) -> Callable[[], None]:
        """Call `listener(snapshot)` after every change; returns a function that removes it."""
        with self._changed:
            self._listeners.append(listener)

        def remove() -> None:
            with self._changed:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def wait_for(
        self, predicate: Callable[[TransportSnapshot], bool], timeout_seconds: float
    ) -> TransportSnapshot | None:
        """Block until `predicate(snapshot)` holds; the snapshot, or None after the timeout."""
        deadline = time.monotonic() + timeout_seconds
        with self._changed:
            while not predicate(self._snapshot):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._snapshot

    def _apply(self, change: Callable[[], None]) -> None:
        with self._changed:
            before = self._snapshot
            change()
            self._snapshot = self._derive()
            snapshot = self._snapshot
            listeners = list(self._listeners) if snapshot != before else []
            self._changed.notify_all()
        for listener in listeners:
            listener(snapshot)

    def _derive(self) -> TransportSnapshot:
        native = self._native
        tempo = native.get("tempo_bpm")
        values: dict[str, object] = {name: native[name] for name in _PLAIN_FIELDS if name in native}
        for beats_name, seconds_name in _BEAT_FIELDS.items():
            if beats_name in native:
                values[beats_name] = native[beats_name]
                if tempo:
                    values[seconds_name] = float(native[beats_name]) * 60.0 / float(tempo)
            elif seconds_name in native:
                values[seconds_name] = native[seconds_name]
                if tempo:
                    values[beats_name] = float(native[seconds_name]) * float(tempo) / 60.0
        return TransportSnapshot(
            daw=self._daw,
            connected=self._connected,
            last_message_time=self._last_message_time,
            **values,
        )
