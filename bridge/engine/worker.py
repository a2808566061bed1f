"""The engine in its own process, behind a small job API shared by the CLI, the panel and `segue serve`.

Generation holds the GIL for long stretches; in its own process it can never starve audio callbacks
or the GUI. The parent talks to the worker through two one-way pipes: commands in (submit, cancel,
stop) and events out (bridge.engine.events). Cancellation is read by a listener thread in the worker
and takes effect after the current decoder step.

Each end of each pipe is held by exactly one process, so a death is an end of file on the other side:
- the owner dies (kill -9, a crashed panel): the worker's command pipe ends; it cancels its job and
  exits (on Linux the kernel also kills it, PR_SET_PDEATHSIG);
- the worker dies, even halfway through writing a large AudioChunk: the owner's event pipe ends, its
  jobs fail at once with the reason, and the next submit starts a new worker.
"""

import contextlib
import itertools
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import sys
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
    EngineStopped,
    GenerationResult,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoading,
    Progress,
    PromptPrepared,
)
from bridge.engine.load_times import expected_load_seconds, record_load_seconds
from bridge.engine.request import GenerationRequest
from bridge.errors import CancelledError, SegueError

PROGRESS_INTERVAL_SECONDS = 0.1
WORKER_NICENESS = 10
# After its owner is gone the worker cancels its job (one decoder step); a model load cannot be
# interrupted, so after this long the process ends regardless.
ORPHAN_EXIT_SECONDS = 2.0
# The environment the worker starts with: the user's own values of these win (setdefault). Both are
# read once, when torch loads or first allocates; spawn re-imports the parent's main module (a script
# or app that imports torch) before the worker's code runs, so they are put in the environment the
# worker starts with.
# - OMP_WAIT_POLICY: idle threads of OpenMP sleep instead of spinning. On a busy machine (a DAW, other
#   apps) spinning threads fight for the cores and a decoder step can take 5x longer. A short spin does
#   not pay either: the 193 linears of a native-int8 step (bench/kernels.py, 2 threads, EPYC capped to
#   AVX2) took 23 ms sleeping, 17 ms with GOMP_SPINCOUNT=10000 and 14 ms spinning on a quiet machine,
#   but with one core taken by another process (the worker niced as below) 19 ms sleeping, 29 ms at
#   1000 spins, 116 ms at 10000 and 1.5 s spinning.
# - THP_MEM_ALLOC_ENABLE (Linux): PyTorch's allocator asks for transparent huge pages
#   (madvise MADV_HUGEPAGE) on every buffer of 2 MB or more (c10/core/impl/alloc_cpu.cpp,
#   `is_thp_alloc`). glibc maps buffers that large afresh each time, and each 4 kB page of a fresh
#   mapping faults on first touch: EnCodec's encoder makes ~20 buffers of 16-65 MB per 8 s prompt
#   (64 channels at 32 kHz). On the 2-core EPYC (AVX2, a firecracker VM, THP "madvise"), filling a
#   fresh 65 MB tensor took 29 ms with 4 kB pages and 8 ms with huge pages; an 8 s prompt's encode
#   1.34, 1.36 and 1.00 s against 1.02, 1.03 and 0.91 s (medians of 5, three pairs of processes), a
#   full decode of it 1.95/1.76/1.52 against 1.49/1.38/1.20 s; peak RSS of a job no higher. Where
#   the kernel's THP setting is "never" (or off Linux) nothing changes.
WORKER_ENVIRONMENT = {"OMP_WAIT_POLICY": "PASSIVE", "THP_MEM_ALLOC_ENABLE": "1"}
_STOP = ("stop",)


# ---------------------------------------------------------------- worker side


def _worker_main(commands, events, device: str, die_with_parent: bool) -> None:
    for name, value in WORKER_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
    if die_with_parent:
        _die_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(os, "nice"):
        # Audio callbacks and the panel must win the CPU when both want it; generation can wait.
        os.nice(WORKER_NICENESS)
    outbox = _Outbox(events)
    jobs: queue.Queue = queue.Queue()
    cancelled: set[int] = set()
    owner_gone = threading.Event()

    def listen() -> None:
        while True:
            try:
                command = commands.recv()
            except (EOFError, OSError):
                # No stop command, yet the pipe ended: only the owner held its other end, so it is gone.
                owner_gone.set()
                jobs.put(None)
                deadline = threading.Timer(ORPHAN_EXIT_SECONDS, os._exit, (0,))
                deadline.daemon = True  # a clean, quicker exit need not wait for it
                deadline.start()
                return
            if command[0] in ("submit", "prepare"):
                jobs.put(command)
            elif command[0] == "cancel":
                cancelled.add(command[1])
            else:
                jobs.put(None)
                return

    threading.Thread(target=listen, name="segue-engine-commands", daemon=True).start()
    engine = _WorkerEngine(device, outbox)
    while (job := jobs.get()) is not None:
        kind, job_id, request = job
        run = engine.run if kind == "submit" else engine.prepare
        if job_id in cancelled or owner_gone.is_set():
            outbox.put(JobCancelled(job_id) if kind == "submit" else PromptPrepared(job_id, request.model, 0.0, "cancelled"))
            continue
        run(job_id, request, should_cancel=lambda job_id=job_id: job_id in cancelled or owner_gone.is_set())


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this process when the thread that started it ends.

    A second line behind the command pipe: it acts even while a long C call holds the GIL. The kernel
    ties it to the parent's *thread*, which is why the parent asks for it only from its main thread.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    PR_SET_PDEATHSIG = 1
    parent = multiprocessing.parent_process()
    if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL) == 0 and (
        parent is not None and os.getppid() != parent.pid
    ):
        os._exit(0)  # the parent died before the request took effect


class _Outbox:
    """The event pipe, for the worker's threads. Once the owner is gone there is nobody to tell."""

    def __init__(self, connection) -> None:
        self.connection = connection
        self.lock = threading.Lock()

    def put(self, event: EngineEvent) -> None:
        # OSError: the owner died; the command listener ends this process.
        with self.lock, contextlib.suppress(OSError):
            self.connection.send(event)


class _WorkerEngine:
    """Keeps one model loaded; runs jobs and turns their callbacks into events."""

    def __init__(self, device: str, events: _Outbox) -> None:
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

    def prepare(self, job_id: int, request: GenerationRequest, should_cancel: Callable[[], bool]) -> None:
        """Load the request's model and do ahead what its first step needs (encode its audio prompt,
        prefill the unguided row, and the guided row of its text if it has one) for a later job with
        the same prompt audio (and text) to reuse."""
        started = time.monotonic()
        outcome = "prepared"
        try:
            generator = self._generator_for(job_id, request.model, request.quality)
            if should_cancel():
                raise CancelledError("preparation cancelled")
            prepare_request = getattr(generator, "prepare_request", None)  # families without prompts have none
            if prepare_request is None or not prepare_request(request, should_cancel):
                outcome = "no audio prompt"
        except CancelledError:
            outcome = "cancelled"
        except Exception as error:  # the job will do the work itself and report any real problem
            outcome = f"not prepared ({type(error).__name__}: {error})"
        self.events.put(PromptPrepared(job_id, request.model, time.monotonic() - started, outcome))

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
    one at a time, in submission order. If the worker dies, its jobs fail with a clear message,
    `EngineStopped` is reported, and the next submit starts a new worker.
    """

    def __init__(self, device: str = "auto", on_event: Callable[[EngineEvent], None] | None = None) -> None:
        self.device = device
        self.on_event = on_event
        self._context = multiprocessing.get_context("spawn")
        self._ids = itertools.count(1)
        self._jobs: dict[int, _JobState] = {}
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._closed = False
        self._start_worker()

    def _start_worker(self) -> None:
        command_reader, self._commands = self._context.Pipe(duplex=False)
        self._events, event_writer = self._context.Pipe(duplex=False)
        for name, value in WORKER_ENVIRONMENT.items():
            os.environ.setdefault(name, value)  # inherited by the worker from its first instruction
        on_main_thread = threading.current_thread() is threading.main_thread()
        self._process = self._context.Process(
            target=_worker_main,
            args=(command_reader, event_writer, self.device, on_main_thread),
            name="segue-engine",
            daemon=True,
        )
        self._process.start()
        # The worker has its own copies now. Ours must go, or neither side would ever see the other's end.
        command_reader.close()
        event_writer.close()
        self._reader = threading.Thread(
            target=self._read_events, args=(self._process, self._events), name="segue-engine-events", daemon=True
        )
        self._reader.start()

    @property
    def alive(self) -> bool:
        return self._process.is_alive()

    def submit(self, request: GenerationRequest) -> int:
        """Queue a job and return its id at once. Impossible parameters raise here, before queueing."""
        return self._queue("submit", request)

    def prepare(self, request: GenerationRequest) -> int:
        """Queue a preparation of `request`'s audio prompt (bridge.engine.musicgen.prepared_prompt) and
        return its id: the model loads, the prompt is encoded and its unguided row prefilled, so a job
        submitted later with the same prompt audio starts sooner; with a text ("" for none yet) that
        text's guided row too, and a job with that text then runs only its steps before the first
        chunk. Its length does not matter. Ends with PromptPrepared; `cancel(id)` stops it (within a
        layer of the guided row); `wait(id)` returns None."""
        return self._queue("prepare", request)

    def _queue(self, kind: str, request: GenerationRequest) -> int:
        if self._closed:
            raise SegueError("the engine has been shut down")
        request.validate()
        with self._lock:
            if not self._process.is_alive():
                self._start_worker()
            job_id = next(self._ids)
            self._jobs[job_id] = _JobState(process=self._process)
        self._send((kind, job_id, request))
        return job_id

    def cancel(self, job_id: int) -> None:
        """Stop a queued or running job (within one decoder step); unknown or finished ids are ignored."""
        self._send(("cancel", job_id))

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
        self._send(_STOP)
        self._process.join(timeout)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(timeout)
        self._commands.close()

    def __enter__(self) -> "EngineClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _send(self, command: tuple) -> None:
        # OSError: the worker is dead; the event reader fails its jobs.
        with self._send_lock, contextlib.suppress(OSError):
            self._commands.send(command)

    def _read_events(self, process, events) -> None:
        # The process sentinel is a second witness: it fires even if the pipe somehow stayed open.
        while True:
            ready = multiprocessing.connection.wait([events, process.sentinel], timeout=1.0)
            if events in ready:
                try:
                    event = events.recv()
                except (EOFError, OSError):  # the worker is gone, perhaps halfway through a message
                    break
                self._deliver(event)
            elif process.sentinel in ready:
                break
        events.close()
        process.join(1.0)
        self._worker_stopped(process)

    def _deliver(self, event: EngineEvent) -> None:
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
        elif isinstance(event, PromptPrepared):
            pass  # a preparation's outcome is no error: the job does the work itself
        elif isinstance(event, JobFailed):
            state.error = SegueError(event.message)
        elif isinstance(event, JobCancelled):
            state.error = CancelledError(f"job {event.job_id} was cancelled")
        else:
            return
        state.done.set()

    def _worker_stopped(self, process) -> None:
        if self._closed:
            message = "the engine was shut down"
        else:
            message = f"the engine process stopped unexpectedly ({_exit_reason(process.exitcode)})"
        unfinished = [
            job_id for job_id, state in list(self._jobs.items()) if state.process is process and not state.done.is_set()
        ]
        for job_id in unfinished:
            failed = JobFailed(job_id, message)
            if self._closed:
                self._record(failed)
            else:
                self._deliver(failed)
        if not self._closed:
            self._deliver(EngineStopped(message))


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "it no longer answers"
    if exitcode < 0:
        try:
            return f"killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"killed by signal {-exitcode}"
    return f"exit code {exitcode}"
