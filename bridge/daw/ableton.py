"""Ableton Live through AbletonOSC (ideoforms/AbletonOSC, a MIDI Remote Script).

AbletonOSC listens on UDP 11000 and always replies to port 11001 at the sender's IP
(abletonosc/constants.py, osc_server.py `process`), processing messages once per ~100 ms Live tick.
That port cannot be configured on Live's side, so Segue always listens on 11001 (tests pass
another). Segue subscribes (`start_listen`) to tempo, signature, play state and loop, and polls the
song time for a smooth playhead; the poll doubles as a keep-alive.

Clips are placed with `/live/track/create_audio_clip` (Arrangement) or
`/live/clip_slot/create_audio_clip` (Session): Live 12.0.5+ has the API, AbletonOSC needs the patch
in packaging/ableton/. Support is detected by trying: AbletonOSC answers an address it does not
know with `/live/error "Unknown OSC address: ..."`, and an address it knows with an index out of
range with `/live/error "Error handling OSC message: Index out of range"` and no reply of its own.
"""

import contextlib
import logging
import math
import os
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
# Test runs on one machine cannot all listen on 11001; a fake Live replies where this says.
TEST_REPLY_PORT_VARIABLE = "SEGUE_ABLETON_REPLY_PORT"
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
INDEX_OUT_OF_RANGE = "Index out of range"
# Live's tempo field shows two decimals; AbletonOSC sends the tempo as a 32-bit OSC float
# (93.7 -> 93.69999694824219), so Segue rounds to what Live shows: one tempo, one length.
LIVE_TEMPO_DECIMALS = 2
# The signature's halves arrive as two messages; a pair is published once no half came for this
# long. AbletonOSC pushes both halves of one change back to back (handler.py `_start_listen`).
SIGNATURE_SETTLE_SECONDS = 0.05
# A track index no set has: asking Live to create a clip there changes nothing, and the answer
# tells whether AbletonOSC knows the address ("Index out of range") or not ("Unknown OSC address").
_PROBE_TRACK = 2**31 - 1
PATCH_HINT = "needs Live 12.0.5+ and AbletonOSC with Segue's patch (packaging/ableton/README.md)"
# Positions closer than this (in beats) are the same position.
_BEAT_TOLERANCE = 1e-3


def reply_port() -> int:
    """The port Segue listens on for Live: 11001, the one AbletonOSC always replies to.

    AbletonOSC has no setting for it (constants.py OSC_RESPONSE_PORT, osc_server.py:165), so
    Segue offers none; only test runs move it, through SEGUE_ABLETON_REPLY_PORT.
    """
    return int(os.environ.get(TEST_REPLY_PORT_VARIABLE) or REPLY_PORT)


def check_reply_port(port: int) -> int:
    """`port` if it is AbletonOSC's reply port; InvalidParameterError saying why any other cannot work."""
    if port != REPLY_PORT:
        raise InvalidParameterError(
            f"AbletonOSC always replies to port {REPLY_PORT} (its abletonosc/constants.py), so Segue "
            f"cannot listen for Live on {port}: close the other program that uses {REPLY_PORT} instead"
        )
    return port


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
        self._signature_halves: dict[str, int | None] = {"signature_numerator": None, "signature_denominator": None}
        self._signature_heard_time: float | None = None
        self._signature_lock = threading.Lock()  # halves are written on the receive thread, read on the supervisor's
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
        self._publish_settled_signature()
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
            self.transport.update(tempo_bpm=round(number, LIVE_TEMPO_DECIMALS))
        elif prop == "current_song_time":
            self.transport.update(position_beats=number)
        elif prop in self._signature_halves:
            # Numerator and denominator arrive one by one: 7/8 -> 3/4 would pass 3/8 or 7/4 on the way.
            # The pair is published by `_publish_settled_signature` once both halves of a change are in.
            with self._signature_lock:
                self._signature_halves[prop] = int(number)
                self._signature_heard_time = time.monotonic()
        elif prop == "loop_start":
            self._loop_start_beats = number
            self.transport.update(loop_start_beats=number)
            self.send("/live/song/get/loop_length")
        elif prop == "loop_length" and self._loop_start_beats is not None:
            self.transport.update(loop_end_beats=self._loop_start_beats + number)

    def _publish_settled_signature(self) -> None:
        """Publish the signature when both halves are known and no half arrived for a moment."""
        with self._signature_lock:
            heard = self._signature_heard_time
            if heard is None or time.monotonic() - heard < SIGNATURE_SETTLE_SECONDS:
                return
            numerator, denominator = self._signature_halves.values()
            if numerator is None or denominator is None:
                return
            self._signature_heard_time = None
        # A value Live would never send is ignored.
        with contextlib.suppress(InvalidParameterError):
            self.transport.update(signature=TimeSignature(numerator, denominator))

    # -- placement --------------------------------------------------------------------------------

    def place_clip(self, target: ClipTarget) -> PlacedClip:
        """Create an audio clip from `target.path` in Live; raises DawError or PlacementUnavailable."""
        self._require_connection()
        path = str(target.path)
        arrangement = target.position_beats is not None
        with self._placement_lock:
            track = target.track_index
            if track is not None:
                self._check_audio_track(track)
                return self._place_on_track(path, track, target)
            # Only change the set when the clip call can work: ask first, create the track after.
            self._check_clip_route(arrangement)
            track = self._create_audio_track(target.track_name)
            try:
                return self._place_on_track(path, track, target)
            except DawError:
                self._delete_track(track)
                raise

    def _place_on_track(self, path: str, track: int, target: ClipTarget) -> PlacedClip:
        if target.position_beats is not None:
            return self._place_in_arrangement(path, track, target.position_beats)
        return self._place_in_session(path, track, target.slot_index)

    def _check_clip_route(self, arrangement: bool) -> None:
        """PlacementUnavailable unless AbletonOSC knows the clip address; changes nothing in the set.

        A track index no set has fails in AbletonOSC's track lookup (track.py `track_callback`,
        clip_slot.py `clip_slot_callback`) before Live is asked to do anything.
        """
        if arrangement:
            address, args = "/live/track/create_audio_clip", (_PROBE_TRACK, "", 0.0)
        else:
            address, args = "/live/clip_slot/create_audio_clip", (_PROBE_TRACK, 0, "")
        try:
            self._call_checked(address, *args)
        except PlacementUnavailable:
            raise
        except DawError as error:
            if INDEX_OUT_OF_RANGE not in str(error):
                raise

    def _delete_track(self, track: int) -> None:
        """Remove a track Segue created for a clip that could not be placed (song.py `delete_track`)."""
        try:
            self._call_checked("/live/song/delete_track", track)
        except DawError as error:
            log.warning("could not remove the empty track %d Segue created: %s", track + 1, error)
        self.send("/live/song/get/track_names")

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
        try:
            self._call_checked("/live/track/set/name", index, name)
        except DawError:
            self._delete_track(index)
            raise
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
        """Ask Live and return the reply's arguments; for indexed objects the reply starts with the indices.

        A failing query gets no reply of its own: AbletonOSC's logging handler pushes `/live/error`
        instead (manager.py `LiveOSCErrorLogHandler`), so that error is the answer. Segue's own polls
        never fail, so an error while a query waits belongs to it.
        """
        reply = self._endpoint.request(
            self.daw_address,
            address,
            args,
            self.reply_timeout_seconds,
            match=lambda message: message.address == "/live/error"
            or (message.address == address and tuple(message.args[: len(args)]) == args),
        )
        if reply is None:
            raise DawError(f"Ableton Live did not answer {address} within {self.reply_timeout_seconds:g} s")
        if reply.address == "/live/error":
            raise self._refusal(address, args, reply)
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
            raise self._refusal(address, args, failure)

    def _refusal(self, address: str, args: tuple, error: OscMessage) -> DawError:
        """The producer's reading of a `/live/error` that answered `address` sent with `args`."""
        text = " ".join(str(arg) for arg in error.args)
        if UNKNOWN_ADDRESS in text:
            return PlacementUnavailable(f"AbletonOSC does not know {address}: {PATCH_HINT}")
        track = int(args[0]) if args and _is_number(args[0]) else None
        if INDEX_OUT_OF_RANGE in text and track is not None and track != _PROBE_TRACK:
            count = len(self.transport.snapshot().track_names)
            with contextlib.suppress(DawError):
                count = self._query_number("/live/song/get/num_tracks")
            if track >= count or "clip_slot" not in address:
                return DawError(f"Live has no track {track + 1}; the set has {count} track{'s' if count != 1 else ''}")
            return DawError(f"Live has no slot {int(args[1]) + 1} on track {track + 1}")
        return DawError(f"Live refused {address}: {text}")


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
