"""RemoteEngineClient: the local EngineClient's job API, served by `segue engine serve` elsewhere.

Each job is one streaming HTTP request (httpx) read by a thread of its own: the request goes up as
one wire frame, its events come back as frames and are passed to `on_event` with this client's job
ids, exactly as the local engine reports them. The server sends a heartbeat every 0.5 s, so a
silence of READ_TIMEOUT_SECONDS means the server or the network is gone: the job fails with that
reason. Cancelling closes the job's stream; the server stops the job when its reader goes away.
"""

import itertools
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import httpx
import numpy as np

from bridge.audio.io import read_audio
from bridge.engine.events import (
    EngineEvent,
    GenerationResult,
    JobCancelled,
    JobFailed,
    JobFinished,
)
from bridge.engine.remote import wire
from bridge.engine.request import GenerationRequest
from bridge.errors import CancelledError, SegueError

CONNECT_TIMEOUT_SECONDS = 3.0
READ_TIMEOUT_SECONDS = 4.0  # eight missed heartbeats: a busy server is not a lost one
WRITE_TIMEOUT_SECONDS = 60.0  # a long audio prompt on a slow uplink


class RemoteEngineError(SegueError):
    """The remote engine refused a job or cannot be reached; the message says which and why."""


@dataclass
class _RemoteJob:
    request: GenerationRequest
    done: threading.Event = field(default_factory=threading.Event)
    cancel_requested: threading.Event = field(default_factory=threading.Event)
    # Set once the server has queued the job (or it ended): the next job of this client is sent only then,
    # so one producer's jobs reach the server's queue, and run, in the order they were submitted.
    queued: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    error: SegueError | None = None
    thread: threading.Thread | None = None


class RemoteEngineClient:
    """Run jobs on the engine at `url` (e.g. http://gpu-box:8000); `token` if the server wants one.

    The same contract as bridge.engine.worker.EngineClient: `on_event(event)` on a background
    thread for every event, `submit` returns at once, `wait` returns the result or raises.
    """

    def __init__(
        self, url: str, token: str | None = None, on_event: Callable[[EngineEvent], None] | None = None
    ) -> None:
        self.url = url.rstrip("/")
        self.on_event = on_event
        self._headers = {"X-Segue-Client": uuid.uuid4().hex, "Content-Type": wire.CONTENT_TYPE}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        timeout = httpx.Timeout(connect=CONNECT_TIMEOUT_SECONDS, read=READ_TIMEOUT_SECONDS,
                                write=WRITE_TIMEOUT_SECONDS, pool=CONNECT_TIMEOUT_SECONDS)
        self._http = httpx.Client(timeout=timeout, headers=self._headers, trust_env=False)
        self._ids = itertools.count(1)
        self._jobs: dict[int, _RemoteJob] = {}
        self._last_queued: threading.Event | None = None
        self._closed = False

    @property
    def alive(self) -> bool:
        return not self._closed

    def info(self) -> dict:
        """The server's model, family and devices (`GET /v1/info`); RemoteEngineError if unreachable or refused."""
        try:
            response = self._http.get(f"{self.url}/v1/info")
        except httpx.HTTPError as error:
            raise RemoteEngineError(self._unreachable(error)) from None
        if response.status_code != 200:
            raise RemoteEngineError(self._refused(response.status_code, response.content))
        return response.json()

    def submit(self, request: GenerationRequest) -> int:
        """Queue a job on the server and return its id at once. Impossible parameters raise here."""
        if self._closed:
            raise SegueError("the engine has been shut down")
        request.validate()
        body = wire.encode(_portable(request))
        job_id = next(self._ids)
        job = _RemoteJob(request)
        self._jobs[job_id] = job
        previous, self._last_queued = self._last_queued, job.queued
        job.thread = threading.Thread(
            target=self._run, args=(job_id, job, body, previous), name=f"segue-remote-job-{job_id}", daemon=True
        )
        job.thread.start()
        return job_id

    def cancel(self, job_id: int) -> None:
        """Stop a job (within one heartbeat); unknown or finished ids are ignored."""
        job = self._jobs.get(job_id)
        if job is not None:
            job.cancel_requested.set()

    def wait(self, job_id: int, timeout: float | None = None) -> GenerationResult:
        job = self._jobs[job_id]
        if not job.done.wait(timeout):
            raise SegueError(f"job {job_id} did not finish within {timeout:g} s")
        if job.error is not None:
            raise job.error
        return job.result

    def close(self, timeout: float = 5.0) -> None:
        if self._closed:
            return
        self._closed = True
        for job in self._jobs.values():
            job.cancel_requested.set()
        for job in self._jobs.values():
            if job.thread is not None:
                job.thread.join(timeout)
        self._http.close()

    def __enter__(self) -> "RemoteEngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ one job's thread

    def _run(self, job_id: int, job: _RemoteJob, body: bytes, previous: threading.Event | None) -> None:
        try:
            self._send_and_follow(job_id, job, body, previous)
        finally:
            job.queued.set()

    def _send_and_follow(self, job_id: int, job: _RemoteJob, body: bytes, previous: threading.Event | None) -> None:
        if previous is not None:  # the job submitted before this one first (bounded: a dead link has its own error)
            previous.wait(CONNECT_TIMEOUT_SECONDS)
        try:
            with self._http.stream("POST", f"{self.url}/v1/jobs", content=body) as response:
                if response.status_code != 200:
                    raise RemoteEngineError(self._refused(response.status_code, response.read()))
                reader = wire.FrameReader()
                for data in response.iter_raw():
                    for value in reader.feed(data):
                        if job.cancel_requested.is_set():
                            self._end(job_id, JobCancelled(job_id))
                            return
                        self._deliver(job_id, job, value)
                        if job.done.is_set():
                            return
                    if job.cancel_requested.is_set():
                        self._end(job_id, JobCancelled(job_id))
                        return
            raise RemoteEngineError(f"the remote engine at {self.url} ended the job's stream without a result")
        except httpx.ReadTimeout:
            message = (f"no word from the remote engine at {self.url} for {READ_TIMEOUT_SECONDS:g} s: "
                       "the server or the network is gone")
        except httpx.RemoteProtocolError:
            message = f"the remote engine at {self.url} closed the connection mid-job (server stopped or replica died)"
        except httpx.HTTPError as error:
            message = self._unreachable(error)
        except SegueError as error:  # refused, or a frame that does not decode
            message = str(error)
        if job.cancel_requested.is_set():
            self._end(job_id, JobCancelled(job_id))
        else:
            self._end(job_id, JobFailed(job_id, message))

    def _deliver(self, job_id: int, job: _RemoteJob, value: object) -> None:
        if isinstance(value, wire.JobQueued):
            job.queued.set()
            return
        if isinstance(value, wire.Heartbeat):
            return
        if hasattr(value, "job_id"):
            value = replace(value, job_id=job_id)
        if isinstance(value, JobFinished):
            # The server sent the result without the request's audio: the producer's own request goes back in.
            value = JobFinished(job_id, replace(value.result, request=job.request))
        if isinstance(value, JobFinished | JobFailed | JobCancelled):
            self._end(job_id, value)
        else:
            self._emit(value)

    def _end(self, job_id: int, event: JobFinished | JobFailed | JobCancelled) -> None:
        job = self._jobs[job_id]
        if job.done.is_set():
            return
        if isinstance(event, JobFinished):
            job.result = event.result
        elif isinstance(event, JobFailed):
            job.error = SegueError(event.message)
        else:
            job.error = CancelledError(f"job {job_id} was cancelled")
        job.done.set()
        self._emit(event)

    def _emit(self, event: EngineEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # a listener's bug must not stop event delivery
            logging.getLogger(__name__).exception("engine event listener failed")

    def _unreachable(self, error: httpx.HTTPError) -> str:
        return f"cannot reach the remote engine at {self.url} ({type(error).__name__}: {error or 'no answer'})"

    def _refused(self, status: int, content: bytes) -> str:
        try:
            reason = httpx.Response(status, content=content).json()["error"]
        except (ValueError, KeyError, TypeError):
            reason = content[:200].decode("utf-8", "replace").strip() or httpx.codes.get_reason_phrase(status)
        return f"the remote engine at {self.url} answered HTTP {status}: {reason}"


def _portable(request: GenerationRequest) -> GenerationRequest:
    """The request as the server can run it: an audio file becomes the audio itself, as read here,
    arrays in the dtypes the engine converts them to anyway (float32 audio, int64 codes)."""
    if request.audio_path is not None:
        audio, rate = read_audio(request.audio_path)
        return replace(request, audio_path=None, audio=audio, audio_sample_rate=rate)
    return replace(
        request,
        audio=None if request.audio is None else np.asarray(request.audio, dtype=np.float32),
        prompt_codes=None if request.prompt_codes is None else np.asarray(request.prompt_codes, dtype=np.int64),
    )
