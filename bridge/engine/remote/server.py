"""The engine as a Ray Serve application: one deployment per model family, streamed over HTTP.

Each replica runs the local engine (bridge.engine.worker.EngineClient: its own worker process, any
family behind bridge.engine.families) and keeps its jobs in a FairQueue, one job at a time on the
replica's device. Serve's proxy carries the HTTP: `POST /v1/jobs` takes one wire frame (a
GenerationRequest) and streams the job's events back as frames; `GET /v1/info` names the model and
devices. A producer who disconnects cancels their job; a slow reader only delays their own stream,
because events wait in that job's own queue, never in the engine's.
"""

import asyncio
import dataclasses
import hashlib
import hmac
import os
import socket
import threading

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve

from bridge import __version__
from bridge.engine.events import EngineEvent, EngineReady, JobCancelled, JobFailed, JobFinished
from bridge.engine.families import family_for
from bridge.engine.remote import wire
from bridge.engine.remote.fair_queue import FairQueue
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import SegueError

HEARTBEAT_SECONDS = 0.5
WARM_UP_SECONDS = 0.5  # a short job at start-up: the model is loaded before the replica takes requests
WARM_UP_TIMEOUT_SECONDS = 1800.0  # a first download of musicgen-large on a slow line
DEFAULT_MAX_REQUEST_BYTES = 64 << 20  # 3 minutes of 48 kHz stereo float32 audio to continue
MAX_ONGOING_REQUESTS = 32  # per replica: jobs beyond the one running wait in its FairQueue
_HEARTBEAT = wire.encode(wire.Heartbeat())
_TERMINAL = (JobFinished, JobFailed, JobCancelled)

app = FastAPI(title="Segue engine", docs_url=None, redoc_url=None, openapi_url=None)


def token_digest(token: str) -> str:
    """What the deployment keeps of the token: its SHA-256, so Ray's stored arguments never hold it."""
    return hashlib.sha256(token.encode()).hexdigest()


# Defined before the deployment: Serve ships the class by value, with the globals defined so far.
def _error(status: int, reason: str) -> Response:
    return JSONResponse({"error": reason}, status_code=status)


@dataclasses.dataclass(eq=False)
class _Slot:
    """One job on this replica: its request, its client and the frames waiting for that client."""

    client: str
    request: GenerationRequest
    frames: asyncio.Queue
    finished: asyncio.Event = dataclasses.field(default_factory=asyncio.Event)
    engine_job: int | None = None
    cancelled: bool = False


@serve.deployment
@serve.ingress(app)
class EngineDeployment:
    def __init__(self, model_id: str, token_sha256: str | None, max_request_bytes: int) -> None:
        self.model_id = model_id
        self.token_sha256 = token_sha256
        self.max_request_bytes = max_request_bytes
        self._queue: FairQueue[_Slot] = FairQueue()
        self._by_engine_job: dict[int, _Slot] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wakeup: asyncio.Event | None = None
        self._ready: EngineReady | None = None
        self._jobs_started = 0
        # Ray sets OMP_NUM_THREADS=1 for an actor that reserves no CPU; the engine's worker would then
        # run on one core and sum in another order than a local engine: same seed, other audio.
        os.environ.pop("OMP_NUM_THREADS", None)
        self._engine = EngineClient("auto", on_event=self._on_engine_event)
        warm_up = GenerationRequest(prompt="", model=model_id, seconds=WARM_UP_SECONDS, seed=0)
        self._engine.wait(self._engine.submit(warm_up), timeout=WARM_UP_TIMEOUT_SECONDS)

    def __del__(self) -> None:
        # Serve calls this on shutdown and kills the replica after graceful_shutdown_timeout_s; a
        # worker that has loaded torch can take seconds to exit on its own, so it is killed sooner.
        self._engine.close(timeout=1.0)

    # ------------------------------------------------------------ HTTP

    @app.get("/v1/info")
    async def info(self, request: Request) -> Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        import ray

        ready = self._ready
        return JSONResponse({
            "engine": "segue",
            "version": __version__,
            "family": family_for(self.model_id).name,
            "models": [self.model_id],
            "device": ready.device if ready else None,
            "details": ready.details if ready else {},
            "cluster_resources": {k: v for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")},
            "replica": {"host": socket.gethostname(), "pid": os.getpid(), "queued": len(self._queue),
                        "jobs_started": self._jobs_started},
        })

    @app.post("/v1/jobs")
    async def submit(self, request: Request) -> Response:
        if (refusal := self._refusal(request)) is not None:
            return refusal
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        try:
            job = wire.decode_request(body)
        except (SegueError, ValueError, TypeError) as error:  # WireError, or a value no check foresaw
            return _error(400, str(error))
        if job.model != self.model_id:
            return _error(404, f"this engine serves {self.model_id}, not {job.model}")
        self._start_dispatcher()
        slot = _Slot(request.headers.get("x-segue-client", "anonymous")[:64], job, asyncio.Queue())
        position = self._queue.put(slot.client, slot)
        self._wakeup.set()
        return StreamingResponse(self._stream(slot, position), media_type=wire.CONTENT_TYPE)

    def _refusal(self, request: Request) -> Response | None:
        if self.token_sha256 is None:
            return None
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "this engine needs a token (--engine-token or SEGUE_ENGINE_TOKEN)")
        if not hmac.compare_digest(token_digest(token.strip()), self.token_sha256):
            return _error(403, "the engine token is wrong")
        return None

    async def _read_body(self, request: Request) -> bytes | Response:
        limit = self.max_request_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return _error(413, f"the request is {declared} bytes, over this engine's limit of {limit}")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                return _error(413, f"the request is over this engine's limit of {limit} bytes")
        return bytes(body)

    async def _stream(self, slot: _Slot, position: int):
        try:
            yield wire.encode(wire.JobQueued(position))
            if self._ready is not None:  # the panel shows which model and device serve it
                yield wire.encode(self._ready)
            while True:
                try:
                    frame, terminal = await asyncio.wait_for(slot.frames.get(), HEARTBEAT_SECONDS)
                except TimeoutError:
                    yield _HEARTBEAT
                    continue
                # Whatever else is waiting goes in the same yield: each one is a message through Ray.
                frames = [frame]
                while not terminal and not slot.frames.empty():
                    frame, terminal = slot.frames.get_nowait()
                    frames.append(frame)
                yield b"".join(frames)
                if terminal:
                    return
        finally:  # the producer went away (Serve raises CancelledError here) or the job ended
            if not slot.finished.is_set():
                self._cancel(slot)

    # ------------------------------------------------------------ jobs

    def _start_dispatcher(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()
            self._loop.create_task(self._dispatch())

    async def _dispatch(self) -> None:
        """Run queued jobs one at a time, in the FairQueue's order."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while (slot := self._queue.pop()) is not None:
                if slot.cancelled:
                    continue
                self._jobs_started += 1
                try:
                    with self._lock:
                        slot.engine_job = self._engine.submit(slot.request)
                        self._by_engine_job[slot.engine_job] = slot
                except SegueError as error:
                    self._deliver(slot, wire.encode(JobFailed(0, str(error))), True)
                await slot.finished.wait()

    def _cancel(self, slot: _Slot) -> None:
        slot.cancelled = True
        if not self._queue.remove(slot.client, slot) and slot.engine_job is not None:
            self._engine.cancel(slot.engine_job)

    def _on_engine_event(self, event: EngineEvent) -> None:
        """On the engine's event thread: encode here, so the replica's event loop only moves bytes."""
        if isinstance(event, EngineReady):
            self._ready = event
            return
        with self._lock:
            slot = self._by_engine_job.get(getattr(event, "job_id", -1))
            if slot is not None and isinstance(event, _TERMINAL):
                del self._by_engine_job[event.job_id]
        if slot is None or self._loop is None:
            return  # the warm-up job
        if isinstance(event, JobFinished):
            # The client keeps its own request; sending its audio back would double the traffic.
            request = dataclasses.replace(event.result.request, audio=None, prompt_codes=None)
            event = JobFinished(event.job_id, dataclasses.replace(event.result, request=request))
        self._loop.call_soon_threadsafe(self._deliver, slot, wire.encode(event), isinstance(event, _TERMINAL))

    @staticmethod
    def _deliver(slot: _Slot, frame: bytes, terminal: bool) -> None:
        slot.frames.put_nowait((frame, terminal))
        if terminal:
            slot.finished.set()


def build_app(
    model_id: str,
    token: str | None,
    min_replicas: int = 1,
    max_replicas: int = 1,
    gpus_per_replica: float = 0.0,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
):
    """The bound Serve application for `model_id`: a deployment named after the model's family."""
    actor_options = {"num_cpus": 0}  # the engine's own threads use the cores; Ray must not reserve them
    if gpus_per_replica:
        actor_options["num_gpus"] = gpus_per_replica
    autoscaling = {
        "min_replicas": min_replicas,
        "max_replicas": max_replicas,
        # A second job on a replica waits for the first: scale out as soon as one waits.
        "target_ongoing_requests": 1,
        "upscale_delay_s": 5.0,  # Serve's default, 30 s, is longer than most jobs
    }
    return EngineDeployment.options(
        name=f"segue-{family_for(model_id).name}",
        ray_actor_options=actor_options,
        autoscaling_config=autoscaling,
        max_ongoing_requests=MAX_ONGOING_REQUESTS,
        health_check_period_s=2,
        graceful_shutdown_timeout_s=5,
    ).bind(model_id, token_digest(token) if token else None, max_request_bytes)
