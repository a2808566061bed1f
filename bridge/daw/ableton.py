"""Ableton Live through AbletonOSC (ideoforms/AbletonOSC, a MIDI Remote Script).

AbletonOSC listens on UDP 11000 and always replies to port 11001 at the sender's IP, processing
messages once per ~100 ms Live tick. Segue subscribes (`start_listen`) to tempo, signature, play
state and loop, and polls the song time for a smooth playhead; the poll doubles as a keep-alive.

Clips are placed with `/live/track/create_audio_clip` (Arrangement) or
`/live/clip_slot/create_audio_clip` (Session): Live 12.0.5+ has the API, AbletonOSC needs the patch
in packaging/ableton/. Support is detected by trying: AbletonOSC answers an address it does not
know with `/live/error "Unknown OSC address: ..."`.
"""

import contextlib
import logging
import math
import threading
import time
from pathlib import Path

from bridge.daw.link import DawLink
from bridge.daw.osc_link import LOCALHOST, OscMessage
from bridge.daw.placement import (
    ROUTE_ABLETON_ARRANGEMENT,
    ROUTE_ABLETON_SESSION,
    ClipTarget,
    PlacedClip,
    PlacementUnavailable,
)
from bridge.errors import DawError, InvalidParameterError
from bridge.musical_time import TimeSignature

log = logging.getLogger(__name__)

LIVE_PORT = 11000
REPLY_PORT = 11001
# Song properties Segue follows through AbletonOSC listeners (pushed now and on every change).
LISTENED_PROPERTIES = (
    "tempo",
    "signature_numerator",
    "signature_denominator",
    "is_playing",
    "loop",
    "loop_start",
    "loop_length",
)
UNKNOWN_ADDRESS = "Unknown OSC address"
PATCH_HINT = "needs Live 12.0.5+ and AbletonOSC with Segue's patch (packaging/ableton/README.md)"
# Positions closer than this (in beats) are the same position.
_BEAT_TOLERANCE = 1e-3


class AbletonLink(DawLink):
    """Follows Live's transport and places clips through AbletonOSC."""

    name = "ableton"
    display_name = "Ableton Live"

    def __init__(
        self,
        host: str = LOCALHOST,
        live_port: int = LIVE_PORT,
        listen_port: int = REPLY_PORT,
        poll_seconds: float = 0.15,
        timeout_seconds: float = 2.0,
        probe_seconds: float = 1.0,
        reply_timeout_seconds: float = 1.0,
        track_names_seconds: float = 2.0,
    ) -> None:
        super().__init__((host, live_port), listen_port, host, poll_seconds, timeout_seconds, probe_seconds)
        self.reply_timeout_seconds = reply_timeout_seconds
        self.track_names_seconds = track_names_seconds
        self._next_track_names_time = 0.0
        self._signature = [4, 4]
        self._loop_start_beats: float | None = None
        self._placement_lock = threading.Lock()

    def _not_connected_hint(self) -> str:
        host, port = self.daw_address
        return (
            f"no answer from AbletonOSC at {host}:{port}; pick AbletonOSC as a Control Surface in "
            f"Live's Preferences > Link, Tempo & MIDI, and make sure nothing else uses port {self.listen_port}"
        )

    # -- connection -------------------------------------------------------------------------------

    def _probe(self) -> None:
        self.send("/live/test")

    def _on_connected(self) -> None:
        for prop in LISTENED_PROPERTIES:
            self.send(f"/live/song/start_listen/{prop}")
        self.send("/live/song/get/current_song_time")
        self.send("/live/song/get/track_names")
        self.send("/live/application/get/version")
        self._next_track_names_time = time.monotonic() + self.track_names_seconds

    def _tick(self) -> None:
        self.send("/live/song/get/current_song_time")
        # Live has no listener for the track list: poll it now and then.
        if time.monotonic() >= self._next_track_names_time:
            self._next_track_names_time = time.monotonic() + self.track_names_seconds
            self.send("/live/song/get/track_names")

    # -- incoming ---------------------------------------------------------------------------------

    def _handle(self, message: OscMessage) -> None:
        address, args = message.address, message.args
        if address == "/live/startup":
            # AbletonOSC was (re)loaded: its listeners are gone.
            self._reconnect_needed.set()
        elif address == "/live/error":
            log.info("AbletonOSC error: %s", " ".join(str(arg) for arg in args))
        elif address == "/live/song/get/track_names":
            self.transport.update(track_names=tuple(str(name) for name in args))
        elif address == "/live/application/get/version" and len(args) >= 2:
            self.transport.update(daw_version=f"{args[0]}.{args[1]}")
        elif address.startswith("/live/song/get/") and len(args) == 1:
            self._handle_song_value(address.removeprefix("/live/song/get/"), args[0])

    def _handle_song_value(self, prop: str, value: object) -> None:
        if prop in ("is_playing", "loop"):
            if isinstance(value, bool | int):
                self.transport.update(**{"playing" if prop == "is_playing" else "loop_enabled": bool(value)})
            return
        if not _is_number(value):
            return
        number = float(value)  # type: ignore[arg-type]
        if prop == "tempo" and number > 0:
            self.transport.update(tempo_bpm=number)
        elif prop == "current_song_time":
            self.transport.update(position_beats=number)
        elif prop in ("signature_numerator", "signature_denominator"):
            self._signature[0 if prop == "signature_numerator" else 1] = int(number)
            # Numerator and denominator arrive one by one; a value Live would never send is ignored.
            with contextlib.suppress(InvalidParameterError):
                self.transport.update(signature=TimeSignature(*self._signature))
        elif prop == "loop_start":
            self._loop_start_beats = number
            self.transport.update(loop_start_beats=number)
            self.send("/live/song/get/loop_length")
        elif prop == "loop_length" and self._loop_start_beats is not None:
            self.transport.update(loop_end_beats=self._loop_start_beats + number)

    # -- placement --------------------------------------------------------------------------------

    def place_clip(self, target: ClipTarget) -> PlacedClip:
        """Create an audio clip from `target.path` in Live; raises DawError or PlacementUnavailable."""
        self._require_connection()
        path = str(target.path)
        with self._placement_lock:
            track = target.track_index
            if track is None:
                track = self._create_audio_track(target.track_name)
            else:
                self._check_audio_track(track)
            if target.position_beats is not None:
                return self._place_in_arrangement(path, track, target.position_beats)
            return self._place_in_session(path, track, target.slot_index)

    def _place_in_arrangement(self, path: str, track: int, beats: float) -> PlacedClip:
        self._call_checked("/live/track/create_audio_clip", track, path, float(beats))
        reply = self._query("/live/track/get/arrangement_clips/start_time", track)
        if not any(_is_number(start) and abs(float(start) - beats) < _BEAT_TOLERANCE for start in reply[1:]):
            raise DawError(f"Live reported no clip at beat {beats:g} on track {track + 1} after creating it")
        return PlacedClip(
            ROUTE_ABLETON_ARRANGEMENT,
            Path(path),
            f"placed on track {track + 1} at beat {beats:g} in Live's Arrangement",
            track_index=track,
            position_beats=beats,
        )

    def _place_in_session(self, path: str, track: int, slot: int | None) -> PlacedClip:
        if slot is None:
            slot = self._first_empty_slot(track)
        self._call_checked("/live/clip_slot/create_audio_clip", track, slot, path)
        reply = self._query("/live/clip_slot/get/has_clip", track, slot)
        if reply[-1] is not True:
            raise DawError(f"Live reported no clip in track {track + 1}, slot {slot + 1} after creating it")
        return PlacedClip(
            ROUTE_ABLETON_SESSION,
            Path(path),
            f"placed in Live's Session view: track {track + 1}, slot {slot + 1}",
            track_index=track,
            slot_index=slot,
        )

    def _create_audio_track(self, name: str) -> int:
        tracks_before = self._query_number("/live/song/get/num_tracks")
        self._call_checked("/live/song/create_audio_track", -1)
        tracks_after = self._query_number("/live/song/get/num_tracks")
        if tracks_after != tracks_before + 1:
            raise DawError("Live did not create the audio track Segue asked for")
        index = int(tracks_after) - 1
        self._call_checked("/live/track/set/name", index, name)
        self.send("/live/song/get/track_names")
        return index

    def _check_audio_track(self, track: int) -> None:
        if track < 0:
            raise DawError(f"track numbers start at 1, got {track + 1}")
        reply = self._query("/live/track/get/has_audio_input", track)
        if reply[-1] is not True:
            raise DawError(
                f"track {track + 1} in Live is not an audio track: pick an audio track or a new one"
            )

    def _first_empty_slot(self, track: int) -> int:
        """First Session slot of `track` without a clip; adds a scene when every slot is full."""
        names = self._query("/live/track/get/clips/name", track)[1:]
        for slot, name in enumerate(names):
            if name is None:
                return slot
        self._call_checked("/live/song/create_scene", -1)
        return len(names)

    # -- request helpers --------------------------------------------------------------------------

    def _query(self, address: str, *args: object) -> tuple:
        """Ask Live and return the reply's arguments; for indexed objects the reply starts with the indices."""
        reply = self._endpoint.request(
            self.daw_address,
            address,
            args,
            self.reply_timeout_seconds,
            match=lambda message: message.address == address and tuple(message.args[: len(args)]) == args,
        )
        if reply is None:
            raise DawError(f"Ableton Live did not answer {address} within {self.reply_timeout_seconds:g} s")
        return reply.args

    def _query_number(self, address: str) -> int:
        reply = self._query(address)
        if not reply or not _is_number(reply[0]):
            raise DawError(f"Ableton Live answered {address} with {reply!r}, not a number")
        return int(reply[0])

    def _call_checked(self, address: str, *args: object) -> None:
        """Send a command, then `/live/test` as a fence: an error Live raises arrives before the fence's "ok".

        AbletonOSC handles a tick's messages in order, and a failing handler pushes `/live/error`
        at once (the rest of the queue waits for the next tick), so no error before "ok" means success.
        """
        error = self._endpoint.expect(lambda message: message.address == "/live/error")
        fence = self._endpoint.expect(lambda message: message.address == "/live/test")
        self.send(address, *args)
        self.send("/live/test")
        if fence.wait(self.reply_timeout_seconds + 1.0) is None:
            error.wait(0)
            raise DawError(f"Ableton Live did not answer after {address}")
        failure = error.wait(0)
        if failure is not None:
            text = " ".join(str(arg) for arg in failure.args)
            if UNKNOWN_ADDRESS in text:
                raise PlacementUnavailable(f"AbletonOSC does not know {address}: {PATCH_HINT}")
            raise DawError(f"Live refused {address}: {text}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
