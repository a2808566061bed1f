"""The engine in its own process, behind a small job API shared by the CLI, the panel and `segue serve`.

Generation holds the GIL for long stretches; in its own process it can never starve audio callbacks
or the GUI. The parent talks to the worker through two queues: commands in (submit, cancel, stop)
and events out (bridge.engine.events). Cancellation is read by a listener thread in the worker and
takes effect after the current decoder step.
"""

import itertools
import logging
import multiprocessing
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from bridge import paths
from bridge.engine.events import (
    AudioChunk,
    EngineEvent,
    EngineReady,
    GenerationResult,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoading,
    Progress,
)
from bridge.engine.load_times import expected_load_seconds, record_load_seconds
from bridge.engine.request import GenerationRequest
from bridge.errors import CancelledError, SegueError

PROGRESS_INTERVAL_SECONDS = 0.1
WORKER_NICENESS = 10
_STOP = ("stop",)


# ---------------------------------------------------------------- worker side


def _worker_main(commands: multiprocessing.Queue, events: multiprocessing.Queue, device: str) -> None:
    # Before torch loads OpenMP: idle threads sleep instead of spinning. On a busy machine (a DAW,
    # other apps) spinning threads fight for the cores and a decoder step can take 5x longer.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(os, "nice"):
        # Audio callbacks and the panel must win the CPU when both want it; generation can wait.
        os.nice(WORKER_NICENESS)
    jobs: queue.Queue = queue.Queue()
    cancelled: set[int] = set()
    parent = os.getppid()

    def listen() -> None:
        while True:
            try:
                command = commands.get(timeout=1.0)
            except queue.Empty:
                if os.getppid() != parent:  # orphaned: the app died without stopping us
                    jobs.put(None)
                    return
                continue
            if command[0] == "submit":
                jobs.put(command[1:])
            elif command[0] == "cancel":
                cancelled.add(command[1])
            else:
                jobs.put(None)
                return

    threading.Thread(target=listen, name="segue-engine-commands", daemon=True).start()
    engine = _WorkerEngine(device, events)
    while (job := jobs.get()) is not None:
        job_id, request = job
        if job_id in cancelled:
            events.put(JobCancelled(job_id))
            continue
        engine.run(job_id, request, should_cancel=lambda job_id=job_id: job_id in cancelled)


class _WorkerEngine:
    """Keeps one model loaded; runs jobs and turns their callbacks into events."""

    def __init__(self, device: str, events: multiprocessing.Queue) -> None:
        self.device = device
        self.events = events
        self.generator = None

    def run(self, job_id: int, request: GenerationRequest, should_cancel: Callable[[], bool]) -> None:
        events = self.events
        events.put(JobStarted(job_id))
        try:
            generator = self._generator_for(job_id, request.model, request.quality)
            last_progress = 0.0

            def on_progress(done: int, total: int, eta: float | None) -> None:
                nonlocal last_progress
                now = time.monotonic()
                if now - last_progress >= PROGRESS_INTERVAL_SECONDS or done == total:
                    last_progress = now
                    events.put(Progress(job_id, done, total, eta))

            def on_chunk(start_frame, audio) -> None:
                events.put(AudioChunk(job_id, start_frame, audio, generator.loaded.sample_rate))

            result = generator.generate(request, on_progress, on_chunk, should_cancel)
            events.put(JobFinished(job_id, result))
        except CancelledError:
            events.put(JobCancelled(job_id))
        except SegueError as error:
            events.put(JobFailed(job_id, str(error)))
        except Exception as error:  # an engine bug must not kill the worker; the log keeps the details
            log_path = paths.cache_dir() / "engine.log"
            with open(log_path, "a", encoding="utf-8") as log:
                log.write(f"--- job {job_id} {time.ctime()}\n{traceback.format_exc()}\n")
            events.put(JobFailed(job_id, f"internal engine error ({type(error).__name__}: {error}); see {log_path}"))

    def _generator_for(self, job_id: int, model_id: str, quality: str):
        from bridge.engine.families import load_generator

        if self.generator is None or self.generator.loaded.model_id != model_id:
            self.generator = None  # free the old model before loading the next
            expected = expected_load_seconds(model_id, self.device)
            self.events.put(ModelLoading(job_id, model_id, f"loading {model_id}", expected))
            started = time.monotonic()
            self.generator = load_generator(model_id, self.device)
            record_load_seconds(model_id, self.device, time.monotonic() - started)
            loaded = self.generator.loaded
            self.generator.prepare(quality)  # quantising belongs to loading, not to the first job's wait
            self.events.put(
                EngineReady(model_id, str(loaded.device), {"random_weights": loaded.is_random, "dtype": str(loaded.dtype),
                                                            "kernel": getattr(self.generator, "kernel", "")})
            )
        return self.generator


# ---------------------------------------------------------------- parent side


@dataclass
class _JobState:
    process: object = None  # the worker that runs it
    done: threading.Event = field(default_factory=threading.Event)
    result: GenerationResult | None = None
    error: SegueError | None = None


class EngineClient:
    """Start the engine process and run jobs in it.

    `on_event(event)` is called for every event on a background thread of this process. Jobs run
    one at a time, in submission order. If the worker dies, its jobs fail with a clear message and
    the next submit starts a new worker.
    """

    def __init__(self, device: str = "auto", on_event: Callable[[EngineEvent], None] | None = None) -> None:
        self.device = device
        self.on_event = on_event
        self._context = multiprocessing.get_context("spawn")
        self._ids = itertools.count(1)
        self._jobs: dict[int, _JobState] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._start_worker()

    def _start_worker(self) -> None:
        self._commands = self._context.Queue()
        self._events = self._context.Queue()
        self._process = self._context.Process(
            target=_worker_main, args=(self._commands, self._events, self.device), name="segue-engine", daemon=True
        )
        self._process.start()
        self._reader = threading.Thread(
            target=self._read_events, args=(self._process, self._events), name="segue-engine-events", daemon=True
        )
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def submit(self, request: GenerationRequest) -> int:
        """Queue a job and return its id at once. Impossible parameters raise here, before queueing."""
        if self._closed:
            raise SegueError("the engine has been shut down")
        request.validate()
        with self._lock:
            if not self._process.is_alive():
                self._start_worker()
            job_id = next(self._ids)
            self._jobs[job_id] = _JobState(process=self._process)
        self._commands.put(("submit", job_id, request))
        return job_id

    def cancel(self, job_id: int) -> None:
        """Stop a queued or running job (within one decoder step); unknown or finished ids are ignored."""
        self._commands.put(("cancel", job_id))

    def wait(self, job_id: int, timeout: float | None = None) -> GenerationResult:
        """Block until the job ends; return its result or raise its SegueError (CancelledError if cancelled)."""
        state = self._jobs[job_id]
        if not state.done.wait(timeout):
            raise SegueError(f"job {job_id} did not finish within {timeout:g} s")
        if state.error is not None:
            raise state.error
        return state.result

    def close(self, timeout: float = 5.0) -> None:
        """Stop the worker (cancelling what runs) and wait for it."""
        if self._closed:
            return
        self._closed = True
        for job_id, state in list(self._jobs.items()):
            if not state.done.is_set():
                self.cancel(job_id)
        self._commands.put(_STOP)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout)

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_events(self, process, events: multiprocessing.Queue) -> None:
        while True:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                if process.is_alive():
                    continue
                self._fail_unfinished(
                    f"the engine process stopped unexpectedly (exit code {process.exitcode})", process
                )
                return
            except (EOFError, OSError):
                return
            self._record(event)
            if self.on_event is not None:
                try:
                    self.on_event(event)
                except Exception:  # a listener's bug must not stop event delivery
                    logging.getLogger(__name__).exception("engine event listener failed")

    def _record(self, event: EngineEvent) -> None:
        state = self._jobs.get(getattr(event, "job_id", -1))
        if state is None:
            return
        if isinstance(event, JobFinished):
            state.result = event.result
        elif isinstance(event, JobFailed):
            state.error = SegueError(event.message)
        elif isinstance(event, JobCancelled):
            state.error = CancelledError(f"job {event.job_id} was cancelled")
        else:
            return
        state.done.set()

    def _fail_unfinished(self, message: str, process) -> None:
        if self._closed:
            message = "the engine was shut down"
        for job_id, state in list(self._jobs.items()):
            if state.process is process and not state.done.is_set():
                failed = JobFailed(job_id, message)
                self._record(failed)
                if self.on_event is not None and not self._closed:
                    self.on_event(failed)
