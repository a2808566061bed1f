"""REAPER through its native OSC control surface, plus Segue's Lua companion scripts.

REAPER sends feedback to the "device port" (Segue listens there, 9000 by default) and receives
on its "local listen port" (8000). Native OSC reports tempo, playhead, play/record state, repeat
and loop points, but has no time signature, no media insert and no render: those go through the
scripts in bridge/daw/companions/reaper/ (installed as packaging/reaper/INSTALL.md says), triggered as actions (`/action/<command id>`), with work passed
through job and result files (bridge/daw/reaper_jobs.py).

REAPER only talks when something changes, and native OSC has no query that touches only one
surface: action 41743 ("Control surface: refresh all surfaces") makes REAPER resend everything to
EVERY control surface the producer has (CSI rescans its .zon files), so Segue sends it once per
connection, to learn the state, and never as a keep-alive. While REAPER is quiet, Segue's
liveness check is its own project info script (`/action/_SEGUE_PROJECT_INFO`): it reads the
project, changes nothing, leaves no undo point, and answers through Segue's result file; it also
keeps the time signature, which native OSC never reports, up to date. Without the scripts a
stopped, quiet REAPER looks disconnected until it sends something (play, a change).
"""

import logging
import math
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bridge.daw.link import DawLink
from bridge.daw.osc_link import LOCALHOST, OscMessage
from bridge.daw.placement import ROUTE_REAPER, ClipTarget, PlacedClip
from bridge.daw.reaper_jobs import (
    ReaperJob,
    default_exchange_dir,
    format_number,
    wait_for_result,
    withdraw_job,
    write_job,
)
from bridge.errors import DawError, InvalidParameterError
from bridge.musical_time import TimeSignature

log = logging.getLogger(__name__)

REAPER_PORT = 8000
FEEDBACK_PORT = 9000
REFRESH_ALL_SURFACES = "41743"
# Command ids registered by bridge/daw/companions/reaper/reaper-kb.ini (REAPER shows them with a leading '_').
INSERT_ACTION = "_SEGUE_INSERT_CLIP"
RENDER_ACTION = "_SEGUE_RENDER_SELECTION"
INFO_ACTION = "_SEGUE_PROJECT_INFO"
# A script's command id is a named command: REAPER finds it only with its leading underscore
# ("_RS2f4e..." as the action list's "Copy selected action command ID" gives it; reaper-kb.ini lists
# it without). Without the underscore REAPER silently runs nothing, so such an id is refused.
_COMMAND_ID = re.compile(r"_[A-Za-z0-9_]+")
# REAPER sends the tempo as a 32-bit OSC float (93.7 -> 93.69999694824219); four decimals undo that
# for any tempo below 1000 BPM without changing a tempo typed with up to four decimals.
REAPER_TEMPO_DECIMALS = 4
# Without the info script a ping waits for nothing; unanswered pings come at most 16 heartbeats apart.
MAX_PING_BACKOFF = 16
_BEAT_STR = re.compile(r"(-?\d+)\.(\d+)\.(\d+)")
_TRACK_NAME = re.compile(r"/track/(\d+)/name")


@dataclass(frozen=True)
class RenderedAudio:
    """Project audio REAPER rendered for a continuation: the file and the span of the song it covers."""

    path: Path
    start_seconds: float
    end_seconds: float


class ReaperLink(DawLink):
    """Follows REAPER's transport and places or renders audio through the companion scripts."""

    name = "reaper"
    display_name = "REAPER"

    def __init__(
        self,
        host: str = LOCALHOST,
        reaper_port: int = REAPER_PORT,
        listen_port: int = FEEDBACK_PORT,
        exchange_dir: Path | None = None,
        insert_action: str = INSERT_ACTION,
        render_action: str = RENDER_ACTION,
        info_action: str = INFO_ACTION,
        poll_seconds: float = 0.25,
        heartbeat_seconds: float = 2.0,
        timeout_seconds: float = 6.0,
        probe_seconds: float = 2.0,
        insert_timeout_seconds: float = 10.0,
        render_timeout_seconds: float = 120.0,
        info_timeout_seconds: float = 3.0,
    ) -> None:
        for command_id in (insert_action, render_action, info_action):
            check_command_id(command_id)
        super().__init__((host, reaper_port), listen_port, host, poll_seconds, timeout_seconds, probe_seconds)
        self.exchange_dir = exchange_dir or default_exchange_dir()
        self.insert_action = insert_action
        self.render_action = render_action
        self.info_action = info_action
        self.heartbeat_seconds = heartbeat_seconds
        self.insert_timeout_seconds = insert_timeout_seconds
        self.render_timeout_seconds = render_timeout_seconds
        self.info_timeout_seconds = info_timeout_seconds
        self._next_ping_time = 0.0
        self._last_refresh_time: float | None = None
        self._unanswered_pings = 0
        self._script_answers = 0
        self._ping_thread: threading.Thread | None = None
        self._track_names: dict[int, str] = {}
        self._jobs_lock = threading.Lock()

    def _not_connected_hint(self) -> str:
        host, port = self.daw_address
        return (
            f"no feedback from REAPER; add an OSC control surface in Preferences > Control/OSC/web with "
            f"device IP {host}, device port {self.listen_port}, local listen port {port} and the "
            "Segue.ReaperOSC pattern (packaging/reaper/INSTALL.md)"
        )

    # -- connection -------------------------------------------------------------------------------

    def _refresh_all_surfaces(self) -> None:
        """Ask REAPER to resend its whole state (to every surface: once per connection, no more)."""
        self._last_refresh_time = time.monotonic()
        self.send(f"/action/{REFRESH_ALL_SURFACES}")

    def _ping(self) -> None:
        """Run Segue's project info script in the background: its answer is REAPER's sign of life.

        While the script does not answer (not installed), pings slow down, so they do not keep
        the job lock from the producer's inserts and renders.
        """
        now = time.monotonic()
        if now < self._next_ping_time or (self._ping_thread is not None and self._ping_thread.is_alive()):
            return
        self._next_ping_time = now + self.heartbeat_seconds * min(2**self._unanswered_pings, MAX_PING_BACKOFF)
        self._ping_thread = threading.Thread(target=self._learn_project_info, name="segue-reaper-info", daemon=True)
        self._ping_thread.start()

    def _probe(self) -> None:
        # REAPER may have been running before Segue: one refresh, the first time, to hear its state.
        if self._last_refresh_time is None:
            self._refresh_all_surfaces()
        self._ping()

    def _on_connected(self) -> None:
        # Unless this connection is REAPER answering the refresh just sent, ask for the whole state.
        last = self._last_refresh_time
        if last is None or time.monotonic() - last > self.timeout_seconds:
            self._refresh_all_surfaces()
        # Native OSC has no time signature: ask the info script (if installed) without holding up the link.
        self._next_ping_time = 0.0
        self._ping()

    def _tick(self) -> None:
        silence = self.transport.seconds_since_last_message() or 0.0
        if silence > self.heartbeat_seconds:
            self._ping()

    def close(self) -> None:
        super().close()
        if self._ping_thread is not None:
            self._ping_thread.join(timeout=self.info_timeout_seconds + 1.0)

    def _learn_project_info(self) -> None:
        answers_before = self._script_answers
        try:
            self.project_info()
        except DawError as error:
            log.info("REAPER's time signature is unknown (%s)", error)
        self._unanswered_pings = 0 if self._script_answers > answers_before else self._unanswered_pings + 1

    # -- incoming ---------------------------------------------------------------------------------

    def _handle(self, message: OscMessage) -> None:
        address, args = message.address, message.args
        value = args[0] if len(args) == 1 else None
        number = float(value) if _is_number(value) else None
        if isinstance(value, str):
            self._handle_text(address, value)
        elif number is None:
            return
        elif address == "/tempo/raw" and number > 0:
            self.transport.update(tempo_bpm=round(number, REAPER_TEMPO_DECIMALS))
        elif address == "/time":
            self.transport.update(position_seconds=number)
        elif address == "/play":
            self.transport.update(playing=number >= 0.5)
        elif address in ("/stop", "/pause") and number >= 0.5:
            self.transport.update(playing=False)
        elif address == "/record":
            self.transport.update(recording=number >= 0.5)
        elif address == "/repeat":
            self.transport.update(loop_enabled=number >= 0.5)
        elif address == "/loop/start/time":
            self.transport.update(loop_start_seconds=number)
        elif address == "/loop/end/time":
            self.transport.update(loop_end_seconds=number)

    def _handle_text(self, address: str, text: str) -> None:
        if address == "/beat/str":
            match = _BEAT_STR.fullmatch(text.strip())
            if match:
                bar, beat, hundredths = (int(part) for part in match.groups())
                self.transport.update(daw_bar_beat=(bar, beat + hundredths / 100.0))
            return
        track = _TRACK_NAME.fullmatch(address)
        if track:
            self._track_names[int(track.group(1))] = text
            highest = max(self._track_names)
            names = [self._track_names.get(number, "") for number in range(1, highest + 1)]
            while names and not names[-1]:
                names.pop()
            self.transport.update(track_names=tuple(names))

    # -- companion scripts ------------------------------------------------------------------------

    def place_clip(self, target: ClipTarget) -> PlacedClip:
        """Insert `target.path` with Segue_insert_clip.lua in one undo step; raises DawError."""
        self._require_connection()
        fields = {
            "file": str(target.path),
            "track_index": str(-1 if target.track_index is None else target.track_index),
            "track_name": target.track_name,
        }
        if target.position_beats is not None:
            fields["position_beats"] = format_number(target.position_beats)
        result = self._run_script("insert", self.insert_action, fields, self.insert_timeout_seconds)
        track_index = _int_value(result, "track_index")
        position_seconds = _float_value(result, "position_seconds")
        return PlacedClip(
            ROUTE_REAPER,
            Path(target.path),
            f"placed on track {track_index + 1} at {position_seconds:.3f} s in REAPER",
            track_index=track_index,
            position_beats=target.position_beats,
        )

    def render(
        self,
        output_file: Path | None = None,
        start_seconds: float | None = None,
        end_seconds: float | None = None,
        *,
        start_beats: float | None = None,
        end_beats: float | None = None,
    ) -> RenderedAudio:
        """Render the master mix of the time selection, of start..end seconds, or of start..end beats
        (quarter notes, turned into seconds through REAPER's tempo map as insertion does) to a WAV file.

        Used to continue the producer's own music. Raises DawError when REAPER cannot.
        """
        self._require_connection()
        spans = [(start_seconds, end_seconds, "s"), (start_beats, end_beats, "beats")]
        for start, end, unit in spans:
            if (start is None) != (end is None):
                raise InvalidParameterError("give both the start and the end of the range to render, or neither")
            if start is not None and not 0 <= start < end:
                raise InvalidParameterError(f"cannot render from {start:g} {unit} to {end:g} {unit}")
        if start_seconds is not None and start_beats is not None:
            raise InvalidParameterError("give the range to render in seconds or in beats, not both")
        output_file = Path(
            output_file or self.exchange_dir / "renders" / f"render-{time.strftime('%Y%m%d-%H%M%S')}.wav"
        )
        if output_file.suffix.lower() != ".wav" or not output_file.is_absolute():
            raise InvalidParameterError(f"REAPER renders to an absolute .wav path, not {output_file}")
        output_file.parent.mkdir(parents=True, exist_ok=True)
        fields = {"output_file": str(output_file), "bounds": "time_selection"}
        if start_seconds is not None:
            fields.update(
                bounds="custom",
                start_seconds=format_number(start_seconds),
                end_seconds=format_number(end_seconds),
            )
        elif start_beats is not None:
            fields.update(bounds="beats", start_beats=format_number(start_beats), end_beats=format_number(end_beats))
        result = self._run_script("render", self.render_action, fields, self.render_timeout_seconds)
        rendered = Path(result.get("output_file", ""))
        if not rendered.is_file():
            raise DawError(f"REAPER's render script reported success but {rendered} does not exist")
        return RenderedAudio(
            rendered, _float_value(result, "start_seconds"), _float_value(result, "end_seconds")
        )

    def project_info(self) -> dict[str, str]:
        """Ask the info script for the tempo and time signature at the edit cursor (and remember them)."""
        return self._run_script("info", self.info_action, {}, self.info_timeout_seconds)

    def _run_script(
        self, action: str, command_id: str, fields: dict[str, str], timeout_seconds: float
    ) -> dict:
        job = ReaperJob(action, fields, lifetime_seconds=timeout_seconds + 5.0)
        with self._jobs_lock:
            write_job(self.exchange_dir, job)
            self.send(f"/action/{command_id}")
            result = wait_for_result(self.exchange_dir, job.id, timeout_seconds)
            if result is None:
                withdraw_job(self.exchange_dir, job)
        if result is None:
            raise DawError(
                f"REAPER did not run the Segue {action} script (action {command_id}) within {timeout_seconds:g} s: "
                "install it as described in packaging/reaper/INSTALL.md and check the command id"
            )
        self._script_answers += 1
        self._heard()  # the script ran: REAPER is there, however quiet its OSC side
        self._remember_signature(result)
        if result.get("status") != "ok":
            raise DawError(
                f"REAPER's Segue {action} script failed: {result.get('message') or 'no reason given'}"
            )
        return result

    def _remember_signature(self, result: dict[str, str]) -> None:
        try:
            signature = TimeSignature(
                int(float(result["signature_numerator"])), int(float(result["signature_denominator"]))
            )
        except (KeyError, ValueError):
            return
        self.transport.update(signature=signature)


def check_command_id(command_id: str) -> str:
    """`command_id` if REAPER can run it as a script's action; InvalidParameterError saying why not."""
    if _COMMAND_ID.fullmatch(command_id):
        return command_id
    hint = f" (did you mean _{command_id}?)" if re.fullmatch(r"[A-Za-z0-9_]+", command_id) else ""
    raise InvalidParameterError(
        f"{command_id!r} is not a script's REAPER command id: those start with '_', like _SEGUE_INSERT_CLIP or "
        f"_RS2f4e...; REAPER runs nothing for an id without it{hint}"
    )


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _float_value(result: dict[str, str], key: str) -> float:
    try:
        value = float(result[key])
    except (KeyError, ValueError):
        raise DawError(f"REAPER's Segue script left out {key} in its result") from None
    if not math.isfinite(value):
        raise DawError(f"REAPER's Segue script reported {key}={value}")
    return value


def _int_value(result: dict[str, str], key: str) -> int:
    return int(_float_value(result, key))
