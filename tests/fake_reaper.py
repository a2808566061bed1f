"""A pretend REAPER with an OSC control surface and Segue's companion scripts, over real UDP.

OSC side, as REAPER's Default.ReaperOSC / Segue.ReaperOSC describe it: REAPER receives on its
local listen port and sends feedback to the device port; feedback only when something changes;
`/action/41743` ("refresh all surfaces") resends the whole state; `/action/<id>` runs an action,
here one of the installed companion scripts; unknown actions do nothing.

Script side: `FakeScripts` runs the companions' contract step by step as bridge/daw/companions/reaper/*.lua
do it (each method names the Lua function it mirrors), reading the same job file and writing the
same result file, on a small in-memory project. The ReaScript calls behave as REAPER's API
documentation says and as tests/reaper_emulation.lua (which runs the real scripts) models them:
InsertMedia adds an item at the edit cursor, and with "trim content behind media items" on splits an
item it lands inside into a head and a NEW tail item; an undo point is added only by a script's own
Undo_BeginBlock/Undo_EndBlock (the scripts call defer(), so REAPER adds no automatic one).
"""

import contextlib
import math
import os
import re
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile
from pythonosc.osc_message import OscMessage, ParseError
from pythonosc.osc_message_builder import OscMessageBuilder

REFRESH_ALL_SURFACES = "41743"
RENDER_WITH_MOST_RECENT_SETTINGS = 42230


@dataclass
class FakeItem:
    file: str
    position_seconds: float
    length_seconds: float


@dataclass
class FakeReaperTrack:
    name: str
    items: list[FakeItem] = field(default_factory=list)


@dataclass
class FakeProject:
    tempo: float = 120.0
    signature: tuple[int, int] = (4, 4)
    cursor_seconds: float = 0.0
    time_selection: tuple[float, float] = (0.0, 0.0)
    loop_points: tuple[float, float] = (0.0, 0.0)
    repeat: bool = False
    tracks: list[FakeReaperTrack] = field(
        default_factory=lambda: [FakeReaperTrack("Drums"), FakeReaperTrack("Bass")]
    )
    render_settings: dict[str, object] = field(
        default_factory=lambda: {
            "RENDER_SETTINGS": 32,
            "RENDER_BOUNDSFLAG": 1,
            "RENDER_STARTPOS": 0.0,
            "RENDER_ENDPOS": 0.0,
            "RENDER_TAILFLAG": 1,
            "RENDER_ADDTOPROJ": 1,
            "RENDER_SRATE": 44100,
            "RENDER_CHANNELS": 1,
            "RENDER_DITHER": 3,
            "RENDER_NORMALIZE": 1,
            "RENDER_FILE": "/home/producer/renders",
            "RENDER_PATTERN": "$project",
            "RENDER_FORMAT": "l3pm",
            "RENDER_FORMAT2": "l3pm",
        }
    )
    undo_points: list[str] = field(default_factory=list)
    sample_rate: int = 48000
    trim_behind: bool = False  # Options > "Trim content behind media items when editing"
    refuse_insert: bool = False  # REAPER declines a file it can read (InsertMedia returns 0)


class FakeScripts:
    """Segue_common.lua, Segue_insert_clip.lua, Segue_render_selection.lua, Segue_project_info.lua."""

    def __init__(self, project: FakeProject) -> None:
        self.project = project
        self.jobs: list[dict] = []  # every job a script took, as read

    # Segue_common.lua: segue_data_dir() (the SEGUE_DATA_DIR branch; tests always set it).
    @property
    def exchange_dir(self) -> Path:
        return Path(os.environ["SEGUE_DATA_DIR"]) / "reaper"

    @property
    def job_file(self) -> Path:
        return self.exchange_dir / "job.txt"

    @property
    def result_file(self) -> Path:
        return self.exchange_dir / "result.txt"

    # Segue_common.lua: M.read_job()
    def read_job(self):
        if not self.job_file.exists():
            return None, f"no Segue job at {self.job_file}"
        job = {}
        for line in self.job_file.read_text(encoding="utf-8").split("\n"):
            line = re.sub(r"\r$", "", line)
            match = re.fullmatch(r"([A-Za-z_]+)=(.*)", line)
            if match:
                job[match.group(1)] = match.group(2)
        if job.get("segue_job") != "1":
            return None, "the job file is not a Segue job of format 1"
        if not re.fullmatch(r"[0-9A-Fa-f]+", job.get("id", "")):
            return None, "the Segue job has no id"
        return job, None

    # Segue_common.lua: format_value() and M.write_result()
    @staticmethod
    def _format_value(value) -> str:
        if isinstance(value, int | float):
            return f"{value:.10g}"
        return re.sub(r"[\r\n]+", " ", str(value))

    def write_result(self, job_id, status, message, values=None) -> None:
        lines = [
            "segue_result=1",
            f"id={job_id or ''}",
            f"status={status}",
            "message=" + re.sub(r"[\r\n]+", " ", str(message or "")),
        ]
        for key, value in (values or {}).items():
            if key != "message":
                lines.append(f"{key}={self._format_value(value)}")
        temporary = Path(str(self.result_file) + ".part")
        temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.result_file.unlink(missing_ok=True)
        os.rename(temporary, self.result_file)

    # Segue_common.lua: M.project_info()
    def project_info(self, time_seconds: float) -> dict:
        numerator, denominator = self.project.signature
        return {
            "tempo_bpm": self.project.tempo,
            "signature_numerator": numerator,
            "signature_denominator": denominator,
        }

    # Segue_common.lua: M.run()
    def run(self, action: str, work) -> None:
        job, problem = self.read_job()
        if job is None:
            self.write_result("", "error", problem)
            return
        self.job_file.unlink(missing_ok=True)
        self.jobs.append(job)
        if job.get("action") != action:
            self.write_result(
                job["id"],
                "error",
                f"this job is for the Segue {job.get('action')} script, "
                f"not the {action} script: check the command ids in Segue's settings",
            )
            return
        expires = _tonumber(job.get("expires_unix", ""))
        if expires is not None and time.time() > expires:
            self.write_result(job["id"], "error", "the job expired before REAPER ran it")
            return
        try:
            values = work(job)
        except ScriptError as error:
            self.write_result(job["id"], "error", str(error), self.project_info(self.project.cursor_seconds))
            return
        values.update(self.project_info(values.pop("info_time_seconds", self.project.cursor_seconds)))
        self.write_result(job["id"], "ok", values.get("message", "done"), values)

    # Segue_insert_clip.lua
    def insert_clip(self) -> None:
        def guarded(job):
            clip = self._plan(job)  # an error here changes nothing and leaves no undo point
            cursor_seconds = self.project.cursor_seconds
            try:
                result = self._insert(clip)
            except ScriptError:
                self.project.undo_points.append("Segue: insert clip failed (nothing changed)")
                raise
            finally:
                self.project.cursor_seconds = cursor_seconds
            self.project.undo_points.append("Segue: insert clip")
            return result

        self.run("insert", guarded)

    # Segue_insert_clip.lua: plan()
    def _plan(self, job) -> dict:
        file = job.get("file", "")
        if file == "":
            raise ScriptError("the job names no file to insert")
        if not Path(file).exists():
            raise ScriptError(f"no file at {file}")
        try:  # PCM_Source_CreateFromFile + GetMediaSourceLength
            length_seconds = soundfile.info(file).duration
        except Exception:  # noqa: BLE001 - a file REAPER cannot decode has no length
            length_seconds = 0.0
        if length_seconds <= 0:
            raise ScriptError(f"REAPER could not insert {file} (not an audio file REAPER reads?)")
        track_index = _tointeger(job.get("track_index", "-1"))
        track_index = -1 if track_index is None else track_index
        if track_index >= len(self.project.tracks):
            raise ScriptError(f"REAPER has no track {track_index + 1}; the project has {len(self.project.tracks)}")
        position_seconds = self.project.cursor_seconds
        if job.get("position_beats"):
            position_seconds = self.qn_to_time(_tonumber(job["position_beats"]))
        return {"file": file, "track_index": track_index, "track_name": job.get("track_name", "Segue"),
                "position_seconds": position_seconds, "length_seconds": length_seconds}

    # Segue_insert_clip.lua: insert()
    def _insert(self, clip: dict) -> dict:
        tracks, track_index, created = self.project.tracks, clip["track_index"], False
        if track_index < 0:
            track_index, created = len(tracks), True
            tracks.append(FakeReaperTrack(clip["track_name"]))
        track = tracks[track_index]
        before = {id(item) for item in track.items}
        self.project.cursor_seconds = clip["position_seconds"]
        inserted = self._insert_media(track, clip["file"], clip["length_seconds"])
        new_here = [item for item in track.items
                    if id(item) not in before and abs(item.position_seconds - clip["position_seconds"]) < 0.0005]
        item = next((item for item in new_here if item.file == clip["file"]), new_here[0] if new_here else None)
        if item is None:
            if created:
                tracks.remove(track)  # DeleteTrack
            why = "" if inserted == 0 else " (it reported success but no new item holds the file)"
            raise ScriptError(f"REAPER could not insert {clip['file']}{why}")
        return {
            "track_index": track_index,
            "position_seconds": clip["position_seconds"],
            "length_seconds": item.length_seconds,
            "info_time_seconds": clip["position_seconds"],
            "message": f"inserted on track {track_index + 1}",
        }

    def _insert_media(self, track: FakeReaperTrack, file: str, length_seconds: float) -> int:
        """InsertMedia(file, 512 | track << 16) at the edit cursor: 1, or 0 when REAPER declines."""
        if self.project.refuse_insert:
            return 0
        start = self.project.cursor_seconds
        stop = start + length_seconds
        if self.project.trim_behind:
            for item in list(track.items):
                item_end = item.position_seconds + item.length_seconds
                if item.position_seconds < start and item_end > stop:
                    item.length_seconds = start - item.position_seconds
                    track.items.append(FakeItem(item.file, stop, item_end - stop))
        track.items.append(FakeItem(file, start, length_seconds))
        track.items.sort(key=lambda item: item.position_seconds)
        self.project.cursor_seconds = stop
        return 1

    def qn_to_time(self, quarter_notes: float) -> float:
        """TimeMap2_QNToTime (one tempo in this fake project)."""
        return quarter_notes * 60.0 / self.project.tempo

    # Segue_render_selection.lua
    def render_selection(self) -> None:
        self.run("render", self._render)

    def _render(self, job) -> dict:
        output_file = job.get("output_file", "")
        match = re.fullmatch(r"(.*)[/\\]([^/\\]+)\.[wW][aA][vV]", output_file)
        if not match or match.group(2) == "":
            raise ScriptError("the render target must be an absolute .wav path")
        if job.get("bounds") == "custom":
            start_seconds, end_seconds = (
                _tonumber(job.get("start_seconds", "")),
                _tonumber(job.get("end_seconds", "")),
            )
        elif job.get("bounds") == "beats":
            start_beats, end_beats = _tonumber(job.get("start_beats", "")), _tonumber(job.get("end_beats", ""))
            start_seconds = None if start_beats is None else self.qn_to_time(start_beats)
            end_seconds = None if end_beats is None else self.qn_to_time(end_beats)
        else:
            start_seconds, end_seconds = self.project.time_selection
        if start_seconds is None or end_seconds is None or end_seconds <= start_seconds:
            raise ScriptError("nothing to render: select a time range in REAPER first")
        settings = self.project.render_settings
        saved = dict(settings)
        settings.update(
            RENDER_SETTINGS=0,
            RENDER_BOUNDSFLAG=0,
            RENDER_STARTPOS=start_seconds,
            RENDER_ENDPOS=end_seconds,
            RENDER_TAILFLAG=0,
            RENDER_ADDTOPROJ=0,
            RENDER_SRATE=0,
            RENDER_CHANNELS=2,
            RENDER_DITHER=0,
            RENDER_NORMALIZE=0,
            RENDER_FILE=match.group(1),
            RENDER_PATTERN=match.group(2),
            RENDER_FORMAT="evaw",
            RENDER_FORMAT2="",
        )
        Path(output_file).unlink(missing_ok=True)
        self._main_on_command_render()
        settings.clear()
        settings.update(saved)
        if not Path(output_file).exists():
            raise ScriptError(f"REAPER did not write {output_file}")
        return {
            "output_file": output_file,
            "start_seconds": start_seconds,
            "end_seconds": end_seconds,
            "info_time_seconds": start_seconds,
            "message": f"rendered {end_seconds - start_seconds:.2f} s",
        }

    def _main_on_command_render(self) -> None:
        """Action 42230 with the settings in force: the master mix (a 220 Hz tone here) of the custom
        bounds, at RENDER_SRATE (0: the project's rate) with RENDER_CHANNELS channels."""
        settings = self.project.render_settings
        if settings["RENDER_FORMAT"] != "evaw" or settings["RENDER_BOUNDSFLAG"] != 0:
            return
        start, end = settings["RENDER_STARTPOS"], settings["RENDER_ENDPOS"]
        rate = int(settings["RENDER_SRATE"]) or self.project.sample_rate
        times = np.arange(round(start * rate), round(end * rate)) / rate
        tone = 0.25 * np.sin(2 * np.pi * 220.0 * times).astype(np.float32)
        if settings["RENDER_NORMALIZE"]:
            tone = tone / np.abs(tone).max()
        target = Path(str(settings["RENDER_FILE"])) / f"{settings['RENDER_PATTERN']}.wav"
        soundfile.write(target, np.stack([tone] * int(settings["RENDER_CHANNELS"]), axis=1), rate)

    # Segue_project_info.lua
    def project_info_action(self) -> None:
        self.run("info", lambda job: {"message": "project info"})


class ScriptError(Exception):
    """error("reason", 0) in the Lua scripts."""


def _tonumber(text: str):
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tointeger(text: str):
    value = _tonumber(text)
    return int(value) if value is not None and value == int(value) else None


class FakeReaper:
    """REAPER's OSC control surface: listens on `port`, sends feedback to `device_port`."""

    def __init__(
        self,
        device_port: int = 9000,
        port: int = 0,
        project: FakeProject | None = None,
        actions: dict[str, str] | None = None,
        time_feedback_seconds: float = 0.03,
    ) -> None:
        self.device_port = device_port
        self.port = port
        self.project = project or FakeProject()
        self.scripts = FakeScripts(self.project)
        # command id -> script, as the producer registered them (bridge/daw/companions/reaper/reaper-kb.ini)
        self.actions = (
            actions
            if actions is not None
            else {
                "_SEGUE_INSERT_CLIP": "insert",
                "_SEGUE_RENDER_SELECTION": "render",
                "_SEGUE_PROJECT_INFO": "info",
            }
        )
        self.time_feedback_seconds = time_feedback_seconds
        self.playing = False
        self.recording = False
        self.received: list[tuple[str, tuple]] = []
        self._play_anchor = (0.0, 0.0)  # (position seconds, monotonic time) when play started
        self._socket: socket.socket | None = None
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.RLock()

    def start(self) -> "FakeReaper":
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", self.port))
        self._socket.settimeout(0.05)
        self.port = self._socket.getsockname()[1]
        self._running.set()
        self._threads = [
            threading.Thread(target=self._receive_loop, daemon=True),
            threading.Thread(target=self._time_feedback_loop, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._running.clear()
        for thread in self._threads:
            thread.join(timeout=2)
        self._socket.close()

    def __enter__(self) -> "FakeReaper":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # -- the producer's hands on REAPER -----------------------------------------------------------

    def set_tempo(self, bpm: float) -> None:
        with self._lock:
            self.project.tempo = bpm
            self._feedback("/tempo/raw", float(bpm))

    def play(self) -> None:
        with self._lock:
            self._play_anchor = (self.project.cursor_seconds, time.monotonic())
            self.playing = True
            self._feedback("/play", 1.0)
            self._feedback("/stop", 0.0)

    def stop_playing(self) -> None:
        with self._lock:
            self.project.cursor_seconds = self.position_seconds()
            self.playing = False
            self._feedback("/play", 0.0)
            self._feedback("/stop", 1.0)
            self._feedback("/time", self.project.cursor_seconds)

    def set_loop(self, start_seconds: float, end_seconds: float, repeat: bool = True) -> None:
        with self._lock:
            self.project.loop_points = (start_seconds, end_seconds)
            self.project.repeat = repeat
            self._feedback("/loop/start/time", start_seconds)
            self._feedback("/loop/end/time", end_seconds)
            self._feedback("/repeat", 1.0 if repeat else 0.0)

    def position_seconds(self) -> float:
        if not self.playing:
            return self.project.cursor_seconds
        start, since = self._play_anchor
        return start + time.monotonic() - since

    def beat_string(self, seconds: float) -> str:
        numerator, denominator = self.project.signature
        beats = seconds * self.project.tempo / 60.0 * denominator / 4.0
        bar, beat_in_bar = divmod(beats, numerator)
        return f"{int(bar) + 1}.{int(beat_in_bar) + 1}.{int((beat_in_bar % 1) * 100):02d}"

    # -- OSC --------------------------------------------------------------------------------------

    def _receive_loop(self) -> None:
        while self._running.is_set():
            try:
                data, _ = self._socket.recvfrom(65536)
            except (TimeoutError, OSError):
                continue
            try:
                message = OscMessage(data)
            except ParseError:
                continue
            with self._lock:
                self.received.append((message.address, tuple(message.params)))
                self._handle(message.address, tuple(message.params))

    def _handle(self, address: str, params: tuple) -> None:
        if address.startswith("/action/"):
            command_id = address.removeprefix("/action/")
            if command_id == REFRESH_ALL_SURFACES:
                self._send_full_state()
            elif command_id in self.actions:
                {
                    "insert": self.scripts.insert_clip,
                    "render": self.scripts.render_selection,
                    "info": self.scripts.project_info_action,
                }[self.actions[command_id]]()
                self._send_track_names()
        elif address == "/tempo/raw" and params:
            self.set_tempo(float(params[0]))
        elif address == "/play":
            self.play()
        elif address == "/stop":
            self.stop_playing()

    def _send_full_state(self) -> None:
        project = self.project
        self._feedback("/tempo/raw", float(project.tempo))
        self._feedback("/time", self.position_seconds())
        self._feedback("/beat/str", self.beat_string(self.position_seconds()))
        self._feedback("/play", 1.0 if self.playing else 0.0)
        self._feedback("/stop", 0.0 if self.playing else 1.0)
        self._feedback("/record", 1.0 if self.recording else 0.0)
        self._feedback("/repeat", 1.0 if project.repeat else 0.0)
        self._feedback("/loop/start/time", project.loop_points[0])
        self._feedback("/loop/end/time", project.loop_points[1])
        self._send_track_names()

    def _send_track_names(self) -> None:
        for number, track in enumerate(self.project.tracks, start=1):
            self._feedback(f"/track/{number}/name", track.name)

    def _time_feedback_loop(self) -> None:
        while self._running.is_set():
            with self._lock:
                if self.playing:
                    seconds = self.position_seconds()
                    self._feedback("/time", seconds)
                    self._feedback("/beat/str", self.beat_string(seconds))
            time.sleep(self.time_feedback_seconds)

    def _feedback(self, address: str, *args) -> None:
        builder = OscMessageBuilder(address)
        for arg in args:
            builder.add_arg(arg)
        with contextlib.suppress(OSError):
            self._socket.sendto(builder.build().dgram, ("127.0.0.1", self.device_port))
