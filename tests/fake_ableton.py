"""A pretend Ableton Live running AbletonOSC, over real UDP on 127.0.0.1.

It behaves as ideoforms/AbletonOSC is written (master 0ca6821, 2025-11-19; abletonosc/osc_server.py,
handler.py, song.py, track.py, clip_slot.py, application.py, manager.py):
- reads its socket once per Live tick (~100 ms) and handles every queued datagram in order
  (manager.py:110 `tick`, osc_server.py:148 `process`);
- replies to a query on the query's own address, indices first, at (sender IP, reply port)
  (osc_server.py:87-98); the real reply port is always 11001 (constants.py OSC_RESPONSE_PORT,
  osc_server.py:165): `reply_port` is a constructor argument only so that test runs on one machine
  do not collide on 11001;
- remembers the latest sender as the target of listener pushes and of `/live/test`'s "ok"
  (osc_server.py:165, manager.py:71-73);
- answers an unknown address with `/live/error "Unknown OSC address: <address>"` (osc_server.py:125,
  relayed by manager.py:53-64 `LiveOSCErrorLogHandler`, which cuts the text up to the first ": ")
  and goes on with the next datagram;
- when a handler raises, pushes `/live/error "Error handling OSC message: <error>"` and leaves the
  rest of the queue for the next tick (osc_server.py:186-188): the failing query gets no reply;
- a track or slot index Live's song does not have raises in the track lookup before the handler
  does anything (track.py:21, clip_slot.py:13-14); Live's vectors say "Index out of range";
- `start_listen/<prop>` pushes the current value at once and again on every change, one message
  per property (handler.py:61-85), so numerator and denominator arrive one by one;
- floats go out as 32-bit OSC floats (python-osc's builder): 93.7 BPM arrives as 93.69999694824219;
- sends `/live/startup` when it loads (application.py:14).
`patched=False` is upstream AbletonOSC, without Segue's create_audio_clip patch.
"""

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import soundfile
from pythonosc.osc_message import OscMessage, ParseError
from pythonosc.osc_message_builder import OscMessageBuilder

LISTENABLE = (
    "tempo",
    "signature_numerator",
    "signature_denominator",
    "is_playing",
    "loop",
    "loop_start",
    "loop_length",
    "current_song_time",
)


@dataclass
class FakeTrack:
    name: str
    is_audio: bool = True
    clip_slots: list[str | None] = field(default_factory=lambda: [None] * 4)
    arrangement_clips: list[tuple[float, str]] = field(default_factory=list)


@dataclass
class FakeSong:
    tempo: float = 120.0
    signature_numerator: int = 4
    signature_denominator: int = 4
    is_playing: bool = False
    loop: bool = False
    loop_start: float = 0.0
    loop_length: float = 16.0
    # Song time at the moment play started (or the stopped position) and when that was (FakeLive.clock).
    song_time_anchor: float = 0.0
    anchor_time: float = 0.0
    tracks: list[FakeTrack] = field(
        default_factory=lambda: [FakeTrack("1-Audio"), FakeTrack("2-MIDI", is_audio=False)]
    )


class FakeLive:
    def __init__(
        self,
        reply_port: int = 11001,
        port: int = 0,
        tick_seconds: float = 0.1,
        patched: bool = True,
        version: tuple[int, int] = (12, 1),
        song: FakeSong | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reply_port = reply_port
        # Live's transport advances with its audio engine, not with the system clock: a test whose
        # "DAW" plays through an audio stream passes that stream's clock, so the playhead slips with
        # the audio when the device stalls (JACK's dummy driver re-anchors after an overrun instead of
        # dropping frames: jack2 common/JackTimedDriver.cpp, ProcessWait).
        self.clock = clock
        self.port = port
        self.tick_seconds = tick_seconds
        self.patched = patched
        self.version = version
        self.song = song or FakeSong()
        self.received: list[tuple[str, tuple]] = []
        self._listeners: set[str] = set()
        self._remote_addr = ("127.0.0.1", reply_port)
        self._lock = threading.RLock()
        self._socket: socket.socket | None = None
        self._running = threading.Event()
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------------

    def start(self) -> "FakeLive":
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.setblocking(False)
        self.port = self._socket.getsockname()[1]
        self._remote_addr = ("127.0.0.1", self.reply_port)
        self._running.set()
        self._send("/live/startup", ())
        self._thread = threading.Thread(target=self._tick_loop, name="fake-live", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Live quits: the socket closes and every listener is forgotten."""
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=2)
        if self._socket is not None:
            self._socket.close()
        self._listeners.clear()

    def __enter__(self) -> "FakeLive":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the producer's hands on Live -------------------------------------------------------------

    def set_song(self, **values) -> None:
        """Change song properties as the producer would; listeners push the new values."""
        with self._lock:
            for name, value in values.items():
                if name == "is_playing":
                    self._set_playing(bool(value))
                else:
                    setattr(self.song, name, value)
                self._changed(name)

    def start_playing_at(self, clock_time: float, beat: float = 0.0) -> None:
        """Start the transport so that song time `beat` fell at `clock_time` (on `self.clock`): a
        test lines Live's playhead up with the audio it pretends Live plays."""
        with self._lock:
            self.song.song_time_anchor = beat
            self.song.anchor_time = clock_time
            self.song.is_playing = True
            self._changed("is_playing")

    def song_time(self) -> float:
        song = self.song
        if not song.is_playing:
            return song.song_time_anchor
        beats = song.song_time_anchor + (self.clock() - song.anchor_time) * song.tempo / 60.0
        if song.loop and song.loop_length > 0 and beats >= song.loop_start + song.loop_length:
            beats = song.loop_start + (beats - song.loop_start) % song.loop_length
        return beats

    def _set_playing(self, playing: bool) -> None:
        self.song.song_time_anchor = self.song_time()
        self.song.anchor_time = self.clock()
        self.song.is_playing = playing

    def _changed(self, prop: str) -> None:
        if prop in self._listeners:
            self._send(f"/live/song/get/{prop}", (self._get(prop),))

    # -- AbletonOSC -------------------------------------------------------------------------------

    def _tick_loop(self) -> None:
        while self._running.is_set():
            self._process()
            time.sleep(self.tick_seconds)

    def _process(self) -> None:
        """One Live tick: like OSCServer.process(), an exception ends this tick's processing."""
        try:
            while True:
                try:
                    data, remote_addr = self._socket.recvfrom(65536)
                except (BlockingIOError, OSError):
                    return
                with self._lock:
                    self._remote_addr = (remote_addr[0], self.reply_port)
                    try:
                        message = OscMessage(data)
                    except ParseError:
                        continue
                    self.received.append((message.address, tuple(message.params)))
                    self._dispatch(message.address, tuple(message.params), remote_addr)
        except Exception as error:  # noqa: BLE001 - mirrors AbletonOSC's catch-all in process()
            self._send("/live/error", (f"Error handling OSC message: {error}",))

    def _dispatch(self, address: str, params: tuple, remote_addr) -> None:
        handler = self._handler(address)
        if handler is None:
            self._send("/live/error", (f"Unknown OSC address: {address}",))
            return
        result = handler(params)
        if result is not None:
            self._send(address, result, (remote_addr[0], self.reply_port))

    def _handler(self, address: str):
        song_prefixes = {
            "/live/song/get/": lambda prop: lambda params: (self._get(prop),),
            "/live/song/set/": lambda prop: lambda params: self.set_song(**{prop: params[0]}),
            "/live/song/start_listen/": lambda prop: lambda params: self._start_listen(prop),
            "/live/song/stop_listen/": lambda prop: lambda params: self._listeners.discard(prop),
        }
        for prefix, make in song_prefixes.items():
            prop = address.removeprefix(prefix)
            if address.startswith(prefix) and prop in LISTENABLE:
                return make(prop)
        handlers = {
            "/live/test": self._test,
            "/live/application/get/version": lambda params: self.version,
            "/live/song/start_playing": lambda params: self.set_song(is_playing=True),
            "/live/song/stop_playing": lambda params: self.set_song(is_playing=False),
            "/live/song/get/num_tracks": lambda params: (len(self.song.tracks),),
            "/live/song/get/track_names": lambda params: tuple(t.name for t in self.song.tracks),
            "/live/song/get/num_scenes": lambda params: (self._num_scenes(),),
            "/live/song/create_audio_track": self._create_audio_track,
            "/live/song/delete_track": lambda p: self.song.tracks.pop(self._track_index(p[0])),
            "/live/song/create_scene": self._create_scene,
            "/live/track/get/name": lambda p: (p[0], self._track(p[0]).name),
            "/live/track/set/name": lambda p: setattr(self._track(p[0]), "name", p[1]),
            "/live/track/get/has_audio_input": lambda p: (p[0], self._track(p[0]).is_audio),
            "/live/track/get/clips/name": lambda p: (
                p[0],
                *(_clip_name(c) for c in self._track(p[0]).clip_slots),
            ),
            "/live/track/get/arrangement_clips/start_time": lambda p: (
                p[0],
                *(start for start, _ in self._track(p[0]).arrangement_clips),
            ),
            "/live/clip_slot/get/has_clip": lambda p: (p[0], p[1], self._slot(p[0], p[1]) is not None),
        }
        if self.patched:
            handlers["/live/track/create_audio_clip"] = self._track_create_audio_clip
            handlers["/live/clip_slot/create_audio_clip"] = self._clip_slot_create_audio_clip
        return handlers.get(address)

    def _test(self, params) -> None:
        self._send("/live/test", ("ok",))

    def _get(self, prop: str):
        if prop == "current_song_time":
            return self.song_time()
        return getattr(self.song, prop)

    def _start_listen(self, prop: str) -> None:
        self._listeners.add(prop)
        self._changed(prop)

    def _num_scenes(self) -> int:
        return max(len(track.clip_slots) for track in self.song.tracks)

    def _track_index(self, index) -> int:
        # Live's song.tracks is a Live vector: out-of-range indices raise "Index out of range".
        if not isinstance(index, int) or not 0 <= index < len(self.song.tracks):
            raise IndexError("Index out of range")
        return index

    def _track(self, index) -> FakeTrack:
        return self.song.tracks[self._track_index(index)]

    def _slot(self, track_index, slot_index):
        slots = self._track(track_index).clip_slots
        if not isinstance(slot_index, int) or not 0 <= slot_index < len(slots):
            raise IndexError("Index out of range")
        return slots[slot_index]

    def _create_audio_track(self, params) -> None:
        index = params[0] if params else -1
        track = FakeTrack(f"{len(self.song.tracks) + 1}-Audio", clip_slots=[None] * self._num_scenes())
        if index == -1:
            self.song.tracks.append(track)
        else:
            self.song.tracks.insert(index, track)

    def _create_scene(self, params) -> None:
        for track in self.song.tracks:
            track.clip_slots.append(None)

    # Live 12.0.5+: Track.create_audio_clip(file_path, position) and ClipSlot.create_audio_clip(path).
    def _track_create_audio_clip(self, params) -> None:
        track = self._track(params[0])  # track.py:21, before the method is called
        _, path, position = params
        _check_audio_clip_source(track, path)
        track.arrangement_clips.append((float(position), path))

    def _clip_slot_create_audio_clip(self, params) -> None:
        track_index, slot_index, path = params
        track = self._track(track_index)  # clip_slot.py:13-14, before the method is called
        if self._slot(track_index, slot_index) is not None:
            raise RuntimeError("Clip slot already has a clip")
        _check_audio_clip_source(track, path)
        track.clip_slots[slot_index] = path

    def _send(self, address: str, params: tuple, to=None) -> None:
        builder = OscMessageBuilder(address)
        for param in params:
            builder.add_arg(param)
        with self._lock:
            if self._socket is None or self._socket.fileno() < 0:
                return
            with contextlib.suppress(OSError):
                self._socket.sendto(builder.build().dgram, to or self._remote_addr)


def _clip_name(path: str | None) -> str | None:
    return None if path is None else Path(path).stem


def _check_audio_clip_source(track: FakeTrack, path: str) -> None:
    """Live's preconditions: an audio track and an absolute path to a readable audio file."""
    if not track.is_audio:
        raise RuntimeError("Audio clips can only be created on audio tracks")
    if not Path(path).is_absolute():
        raise RuntimeError("Invalid file path: must be absolute")
    try:
        soundfile.info(path)
    except Exception as error:  # noqa: BLE001 - any unreadable file is Live's "cannot read" error
        raise RuntimeError(f"Cannot read audio file {path}") from error
