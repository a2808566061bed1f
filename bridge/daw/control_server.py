"""Segue's own OSC control API, so a controller, a Max for Live patch, TouchOSC or a script can drive it.

Inbound (UDP, 127.0.0.1:9030 by default):
    /segue/generate       s:prompt f:seconds
    /segue/generate_bars  s:prompt i:bars              length from the DAW's tempo and time signature
    /segue/generate_bars_melody  s:prompt i:bars s:melody_path   as generate_bars, following the melody
                                                       in an audio file (absolute path; melody models only)
    /segue/continue       s:audio_path s:prompt f:seconds   continue an audio file (absolute path)
    /segue/cancel                                      stop the running job
    /segue/status
    /segue/continue_bars, continue_file_bars, continue_again, place, play: "Continue my track"
    /segue/continue_bars_melody, continue_file_bars_melody: the same, following a melody as well
                                                       (bridge.workflow.control documents them)
Outbound, to the sender's IP at the reply port (9031 by default):
    /segue/progress  i:job f:fraction               0.0 as soon as a job is accepted, then as it runs
    /segue/clip      i:job s:path                   one per take, always under Segue's output folder
    /segue/status    s:daw i:connected f:tempo_bpm i:numerator i:denominator i:playing i:busy i:job
                     (0 for what is unknown; job 0 when idle)
    /segue/error     s:message                      anything refused or failed; "job N cancelled"

One job runs at a time. A message that is malformed, truncated, unknown, of the wrong types or
otherwise impossible is answered with /segue/error and changes nothing.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from bridge import paths
from bridge.clips import write_take
from bridge.daw.control_arguments import Command, check_arguments, check_audio_file, shorten
from bridge.daw.link import DawLink, NoDawLink
from bridge.daw.osc_link import LOCALHOST, Address, OscEndpoint, OscMessage
from bridge.engine.catalog import known_to_take_no_melody, no_melody_message
from bridge.engine.events import EngineEvent, JobCancelled, JobFailed, JobFinished, Progress
from bridge.engine.request import DEFAULT_MODEL, GenerationRequest
from bridge.errors import AudioFileError, InvalidParameterError, SegueError

if TYPE_CHECKING:
    from bridge.library import ClipLibrary
    from bridge.workflow import ContinueMyTrack

log = logging.getLogger(__name__)

CONTROL_PORT = 9030
REPLY_PORT = 9031
# python-osc's own servers stop at 8192 bytes; no valid Segue message comes near it.
MAX_MESSAGE_BYTES = 8192
# How much of the end of the file continues into the new material (as `segue continue` does).
CONTINUE_PROMPT_SECONDS = 10.0


class Engine(Protocol):
    """What the control server needs of bridge.engine.worker.EngineClient."""

    def submit(self, request: GenerationRequest) -> int: ...

    def cancel(self, job_id: int) -> None: ...


@dataclass
class _ActiveJob:
    job_id: int  # 0 while a workflow run is still capturing its source
    reply_to: Address
    workflow: bool = False


class ControlServer:
    """Receives /segue/* messages, runs jobs on the injected engine, writes clips, and answers.

    The engine's events must be passed to `on_engine_event` (EngineClient's `on_event`). With a
    `library`, every take is recorded there too, so the panel and `segue library` find it.
    """

    def __init__(
        self,
        engine: Engine,
        link: DawLink | None = None,
        model: str = DEFAULT_MODEL,
        host: str = LOCALHOST,
        port: int = CONTROL_PORT,
        reply_port: int = REPLY_PORT,
        output_dir: Path | None = None,
        library: "ClipLibrary | None" = None,
        workflow: "ContinueMyTrack | None" = None,
    ) -> None:
        self.engine = engine
        self.library = library
        self.link = link or NoDawLink()
        self.model = model
        self.reply_port = reply_port
        self.output_dir = output_dir or paths.output_dir()
        self._job: _ActiveJob | None = None
        self._lock = threading.Lock()
        self._commands = {
            "/segue/generate": Command("sf", "/segue/generate s:prompt f:seconds", self._generate),
            "/segue/generate_bars": Command(
                "si", "/segue/generate_bars s:prompt i:bars", self._generate_bars
            ),
            "/segue/generate_bars_melody": Command(
                "sis", "/segue/generate_bars_melody s:prompt i:bars s:melody_path", self._generate_bars_melody
            ),
            "/segue/continue": Command(
                "ssf", "/segue/continue s:audio_path s:prompt f:seconds", self._continue
            ),
            "/segue/cancel": Command("", "/segue/cancel", self._cancel),
            "/segue/status": Command("", "/segue/status", self._status),
            "/segue/continue_bars": Command(
                "siii", "/segue/continue_bars s:prompt i:source_bars i:bars i:takes", self._continue_bars
            ),
            "/segue/continue_file_bars": Command(
                "ssiii",
                "/segue/continue_file_bars s:audio_path s:prompt i:source_bars i:bars i:takes",
                self._continue_file_bars,
            ),
            "/segue/continue_again": Command(
                "sii", "/segue/continue_again s:prompt i:bars i:takes", self._continue_again
            ),
            "/segue/continue_bars_melody": Command(
                "siiisi",
                "/segue/continue_bars_melody s:prompt i:source_bars i:bars i:takes s:melody_path|daw i:seed",
                self._continue_bars_melody,
            ),
            "/segue/continue_file_bars_melody": Command(
                "ssiiisi",
                "/segue/continue_file_bars_melody s:audio_path s:prompt i:source_bars i:bars i:takes "
                "s:melody_path|daw i:seed",
                self._continue_file_bars_melody,
            ),
            "/segue/place": Command("ii", "/segue/place i:job i:take", self._place),
            "/segue/play": Command("ii", "/segue/play i:job i:take", self._play),
        }
        self.workflow = None
        if workflow is not None:
            from bridge.workflow.control import WorkflowControl

            self.workflow = WorkflowControl(
                workflow, model, self._send, job_started=self._workflow_job_started, finished=self._release
            )
        self._endpoint = OscEndpoint(
            host, port, self._receive, self._garbage, name="control", max_datagram_bytes=MAX_MESSAGE_BYTES
        )

    @property
    def port(self) -> int:
        return self._endpoint.port

    @property
    def host(self) -> str:
        return self._endpoint.host

    @property
    def busy_job(self) -> int | None:
        with self._lock:
            return None if self._job is None else self._job.job_id

    def start(self) -> "ControlServer":
        self._endpoint.start()
        return self

    def close(self) -> None:
        self._endpoint.close()

    def __enter__(self) -> "ControlServer":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- inbound ----------------------------------------------------------------------------------

    def _garbage(self, dgram: bytes, sender: Address, reason: str) -> None:
        self._error(self._reply_address(sender), f"malformed OSC message: {reason}")

    def _receive(self, message: OscMessage) -> None:
        reply_to = self._reply_address(message.sender)
        command = self._commands.get(message.address)
        if command is None:
            self._error(
                reply_to,
                f"unknown address {shorten(message.address)}; Segue understands "
                + ", ".join(self._commands),
            )
            return
        try:
            args = check_arguments(message.args, command)
            command.handler(reply_to, *args)
        except SegueError as error:
            self._error(reply_to, f"{message.address}: {error}")

    def _reply_address(self, sender: Address) -> Address:
        return (sender[0], self.reply_port)

    def _generate(self, reply_to: Address, prompt: str, seconds: float) -> None:
        self._submit(reply_to, GenerationRequest(prompt=prompt, model=self.model, seconds=seconds))

    def _generate_bars(self, reply_to: Address, prompt: str, bars: int, melody_path: str | None = None) -> None:
        snapshot = self.link.transport.snapshot()
        if not snapshot.tempo_and_signature_known:
            missing = "time signature" if snapshot.connected and snapshot.tempo_bpm else "tempo"
            raise InvalidParameterError(
                f"a length in bars needs the DAW's tempo and time signature, and its {missing} is unknown: "
                f"{self.link.describe()}"
            )
        request = GenerationRequest(
            prompt=prompt, model=self.model, bars=float(bars), bpm=snapshot.tempo_bpm, signature=str(snapshot.signature),
            melody_path=melody_path,
        )
        self._submit(reply_to, request)

    def _generate_bars_melody(self, reply_to: Address, prompt: str, bars: int, melody_path: str) -> None:
        if known_to_take_no_melody(self.model):
            raise InvalidParameterError(no_melody_message(self.model))
        path, _ = check_audio_file(melody_path)
        self._generate_bars(reply_to, prompt, bars, melody_path=str(path))

    def _continue(self, reply_to: Address, audio_path: str, prompt: str, seconds: float) -> None:
        path, duration_seconds = check_audio_file(audio_path)
        request = GenerationRequest(
            prompt=prompt,
            model=self.model,
            seconds=seconds,
            audio_path=str(path),
            prompt_seconds=min(CONTINUE_PROMPT_SECONDS, duration_seconds),
        )
        self._submit(reply_to, request)

    def _submit(self, reply_to: Address, request: GenerationRequest) -> None:
        request.validate()
        with self._lock:
            if self._job is not None:
                raise SegueError(
                    f"busy with job {self._job.job_id}; send /segue/cancel first or wait for its clip"
                )
            job_id = self.engine.submit(request)
            self._job = _ActiveJob(job_id, reply_to)
            self._send(reply_to, "/segue/progress", job_id, 0.0)

    def _cancel(self, reply_to: Address) -> None:
        with self._lock:
            if self._job is None:
                raise SegueError("nothing to cancel: no job is running")
            if self._job.workflow:
                self.workflow.cancel()
            else:
                self.engine.cancel(self._job.job_id)

    # -- Continue my track (bridge.workflow.control runs these) ------------------------------------

    def _continue_bars(
        self, reply_to: Address, prompt: str, source_bars: int, bars: int, takes: int,
        melody: str | None = None, seed: int | None = None, address: str = "/segue/continue_bars",
    ) -> None:
        self._claim_for_workflow(reply_to, address)
        self._start_workflow(lambda: self.workflow.continue_bars(
            reply_to, address, prompt, source_bars, bars, takes, melody, seed
        ))

    def _continue_file_bars(
        self, reply_to: Address, audio_path: str, prompt: str, source_bars: int, bars: int, takes: int,
        melody: str | None = None, seed: int | None = None, address: str = "/segue/continue_file_bars",
    ) -> None:
        path, _ = check_audio_file(audio_path)
        self._claim_for_workflow(reply_to, address)
        self._start_workflow(lambda: self.workflow.continue_file_bars(
            reply_to, address, str(path), prompt, source_bars, bars, takes, melody, seed
        ))

    def _continue_bars_melody(
        self, reply_to: Address, prompt: str, source_bars: int, bars: int, takes: int, melody: str, seed: int
    ) -> None:
        address = "/segue/continue_bars_melody"
        melody, checked_seed = self._melody_and_seed(address, melody, seed)
        self._continue_bars(reply_to, prompt, source_bars, bars, takes, melody, checked_seed, address)

    def _continue_file_bars_melody(
        self, reply_to: Address, audio_path: str, prompt: str, source_bars: int, bars: int, takes: int,
        melody: str, seed: int,
    ) -> None:
        address = "/segue/continue_file_bars_melody"
        melody, checked_seed = self._melody_and_seed(address, melody, seed)
        self._continue_file_bars(reply_to, audio_path, prompt, source_bars, bars, takes, melody, checked_seed, address)

    def _melody_and_seed(self, address: str, melody: str, seed: int) -> tuple[str, int | None]:
        """The melody (a checked, resolved audio path, or a way to take the DAW's bars) and the seed (-1: new)."""
        workflow = self._require_workflow(address)
        if known_to_take_no_melody(self.model):
            raise InvalidParameterError(no_melody_message(self.model))
        if seed < -1:
            raise InvalidParameterError(f"the seed is -1 (a new one each time) or a whole number from 0, got {seed}")
        if melody not in workflow.DAW_MELODIES:
            try:
                melody = str(check_audio_file(melody)[0])
            except AudioFileError as error:
                raise AudioFileError(f"melody: {error}") from None
        return melody, None if seed == -1 else seed

    def _continue_again(self, reply_to: Address, prompt: str, bars: int, takes: int) -> None:
        self._claim_for_workflow(reply_to, "/segue/continue_again")
        self._start_workflow(lambda: self.workflow.continue_again(
            reply_to, "/segue/continue_again", prompt, bars, takes
        ))

    def _place(self, reply_to: Address, job: int, take: int) -> None:
        self._require_workflow("/segue/place").place(reply_to, "/segue/place", job, take)

    def _play(self, reply_to: Address, job: int, take: int) -> None:
        self._require_workflow("/segue/play").play(reply_to, "/segue/play", job, take)

    def _require_workflow(self, address: str):
        if self.workflow is None:
            raise SegueError("Continue my track is not available on this control server")
        return self.workflow

    def _claim_for_workflow(self, reply_to: Address, address: str) -> None:
        self._require_workflow(address)
        with self._lock:
            if self._job is not None:
                raise SegueError(
                    f"busy with job {self._job.job_id}; send /segue/cancel first or wait for its clip"
                )
            self._job = _ActiveJob(0, reply_to, workflow=True)

    def _start_workflow(self, start: Callable[[], None]) -> None:
        try:
            start()
        except BaseException:
            self._release()
            raise

    def _workflow_job_started(self, job_id: int) -> None:
        with self._lock:
            if self._job is not None and self._job.workflow:
                self._job.job_id = job_id

    def _release(self) -> None:
        with self._lock:
            self._job = None

    def _status(self, reply_to: Address) -> None:
        snapshot = self.link.transport.snapshot()
        job_id = self.busy_job
        signature = snapshot.signature
        self._send(
            reply_to,
            "/segue/status",
            self.link.name,
            int(snapshot.connected),
            float(snapshot.tempo_bpm or 0.0),
            signature.numerator if signature else 0,
            signature.denominator if signature else 0,
            int(snapshot.playing),
            int(job_id is not None),
            job_id or 0,
        )

    # -- engine events ----------------------------------------------------------------------------

    def on_engine_event(self, event: EngineEvent) -> None:
        """Forward the running job's progress, write its clips, or report why it ended."""
        if self.workflow is not None:
            self.workflow.session.on_engine_event(event)
        with self._lock:
            job = self._job
            if job is None or job.workflow or getattr(event, "job_id", None) != job.job_id:
                return
            if isinstance(event, Progress):
                self._send(job.reply_to, "/segue/progress", job.job_id, min(1.0, max(0.0, event.fraction)))
                return
            if isinstance(event, JobFinished):
                self._deliver_clips(job, event)
            elif isinstance(event, JobFailed):
                self._error(job.reply_to, f"job {job.job_id} failed: {event.message}")
            elif isinstance(event, JobCancelled):
                self._error(job.reply_to, f"job {job.job_id} cancelled")
            else:
                return
            self._job = None

    def _deliver_clips(self, job: _ActiveJob, event: JobFinished) -> None:
        self._send(job.reply_to, "/segue/progress", job.job_id, 1.0)
        for take in event.result.takes:
            try:
                if self.library is not None:
                    path = self.library.add_take(event.result, take, out_dir=self.output_dir).path
                else:
                    path = write_take(event.result, take, out_dir=self.output_dir)
            except (OSError, SegueError) as error:
                self._error(
                    job.reply_to, f"job {job.job_id}: cannot write the clip to {self.output_dir}: {error}"
                )
                return
            self._send(job.reply_to, "/segue/clip", job.job_id, str(path))

    # -- outbound ---------------------------------------------------------------------------------

    def _send(self, to: Address, address: str, *args: Any) -> None:
        self._endpoint.send(to, address, args)

    def _error(self, to: Address, message: str) -> None:
        log.info("control error to %s: %s", to, message)
        self._send(to, "/segue/error", message)
