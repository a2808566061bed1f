"""The engine process seen from the Qt thread: submit and cancel jobs, receive Qt signals.

EngineClient calls back on a background thread. Everything it reports crosses to the Qt thread
through one queued signal, so widgets are only ever touched by the Qt thread and the window never
waits for the engine. Finished takes are written to disk on the background thread, before crossing.
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass

from PyQt6.QtCore import QObject, Qt, pyqtSignal

from bridge.engine.connect import configured_remote, open_engine
from bridge.engine.events import (
    AudioChunk,
    EngineEvent,
    EngineReady,
    EngineStopped,
    JobCancelled,
    JobFailed,
    JobFinished,
    JobStarted,
    ModelLoading,
    Progress,
    PromptPrepared,
)
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import SegueError
from bridge.settings import load_settings
from gui.clip_store import ClipEntry, ClipStore


@dataclass
class _ClipsSaved:
    job_id: int
    entries: list[ClipEntry]
    seconds_taken: float


@dataclass
class _ClaimedDone:
    job_id: int


class EngineController(QObject):
    """Owns the EngineClient (started on first use, or by `start()`); one instance per application."""

    job_started = pyqtSignal(int)
    model_loading = pyqtSignal(int, str, object)  # job id, what is being loaded, expected seconds or None
    progress = pyqtSignal(int, int, int, object)  # job id, steps done, steps total, ETA in seconds or None
    clips_ready = pyqtSignal(int, list)  # job id, list[ClipEntry] (already on disk)
    job_failed = pyqtSignal(int, str)  # job id, one-line message
    job_cancelled = pyqtSignal(int)
    busy_changed = pyqtSignal(bool)
    state_changed = pyqtSignal(str)  # idle, starting, loading, generating or ready

    _delivered = pyqtSignal(object)

    def __init__(self, store: ClipStore, device: str = "auto", parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self.store = store
        self.state = "idle"
        self.loaded_model: str | None = None
        self.loaded_device: str | None = None
        self._client: EngineClient | None = None
        self._active: set[int] = set()
        # Jobs whose events go to another part of the panel (Continue my track), which saves their takes.
        self._claimed: dict[int, Callable[[EngineEvent], None]] = {}
        self._claim_lock = threading.Lock()  # a claimed job's first event must not slip past its claim
        self._delivered.connect(self._dispatch, Qt.ConnectionType.QueuedConnection)

    @property
    def busy(self) -> bool:
        return bool(self._active)

    @property
    def active_jobs(self) -> frozenset[int]:
        return frozenset(self._active)

    def start(self) -> None:
        """Start the worker process now (it imports torch), so the first Generate is quicker."""
        if self._client is None:
            url, token = configured_remote(load_settings())  # this computer, or the remote engine chosen in Settings
            self._client = open_engine(self.device, self._on_engine_event, url, token)
            # A remote engine is loaded already; it names its model and device with the first job.
            self._set_state("starting" if url is None else "idle")

    def submit(self, request: GenerationRequest) -> int:
        """Queue a job; impossible parameters raise InvalidParameterError here, nothing is queued."""
        self.start()
        job_id = self._client.submit(request)
        self._active.add(job_id)
        if len(self._active) == 1:
            self.busy_changed.emit(True)
        return job_id

    def prepare(
        self, request: GenerationRequest, listener: Callable[[EngineEvent], None] | None = None
    ) -> int | None:
        """Have the engine prepare a request's audio prompt before its job is submitted (EngineClient.prepare);
        None where the engine cannot (a remote one). Its PromptPrepared goes to `listener` too."""
        self.start()
        prepare = getattr(self._client, "prepare", None)
        if prepare is None:
            return None
        with self._claim_lock:
            job_id = prepare(request)
            if listener is not None:
                self._claimed[job_id] = listener
        return job_id

    def submit_for(self, request: GenerationRequest, listener: Callable[[EngineEvent], None]) -> int:
        """Queue a job whose events all go to `listener` (on the engine's thread) and whose takes are
        not saved here: the caller fits and saves them. Progress and busy state show as for any job.
        May be called from a worker thread."""
        self.start()
        with self._claim_lock:
            job_id = self._client.submit(request)
            self._claimed[job_id] = listener
        self._active.add(job_id)
        if len(self._active) == 1:
            self.busy_changed.emit(True)
        return job_id

    def cancel(self, job_id: int) -> None:
        if self._client is not None:
            self._client.cancel(job_id)

    def cancel_all(self) -> None:
        """Cancel every queued or running job; each reports `job_cancelled` when it has stopped."""
        if self._client is not None:
            for job_id in sorted(self._active):
                self._client.cancel(job_id)

    def switch_engine(self) -> None:
        """Settings chose another engine: the next job starts it (jobs running now finish where they are)."""
        if self._client is not None and not self._active:
            self.close()
            self._set_state("idle")

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- engine thread ---------------------------------------------------------------------------

    def _on_engine_event(self, event: EngineEvent) -> None:
        with self._claim_lock:
            listener = self._claimed.get(getattr(event, "job_id", -1))
        if listener is not None:
            listener(event)
            if isinstance(event, JobFinished | JobFailed | JobCancelled):
                self._claimed.pop(event.job_id, None)
                event = _ClaimedDone(event.job_id)
            elif isinstance(event, PromptPrepared):  # a preparation's last event; the state follows it below
                self._claimed.pop(event.job_id, None)
            elif isinstance(event, AudioChunk):
                return
        if isinstance(event, AudioChunk):
            return  # the panel auditions finished clips; streamed audio stays in the engine's lane
        if isinstance(event, JobFinished):
            try:
                entries = self.store.save_result(event.result, event.job_id)
            except (SegueError, OSError) as error:
                event = JobFailed(event.job_id, f"the clips could not be saved: {error}")
            else:
                event = _ClipsSaved(event.job_id, entries, event.result.seconds_taken)
        self._delivered.emit(event)

    # -- Qt thread -------------------------------------------------------------------------------

    def _dispatch(self, event: object) -> None:
        if isinstance(event, JobStarted):
            self.job_started.emit(event.job_id)
            self._set_state("generating")
        elif isinstance(event, ModelLoading):
            self._set_state("loading")
            self.model_loading.emit(event.job_id, event.message, event.expected_seconds)
        elif isinstance(event, EngineReady):
            self.loaded_model, self.loaded_device = event.model_id, event.device
            self._set_state("generating")
        elif isinstance(event, EngineStopped):
            # Its jobs failed (job_failed says why); the next submit starts a new worker.
            self.loaded_model = self.loaded_device = None
            self._set_state("starting" if self._active else "idle")
        elif isinstance(event, Progress):
            self.progress.emit(event.job_id, event.steps_done, event.steps_total, event.eta_seconds)
        elif isinstance(event, _ClaimedDone):
            self._finish(event.job_id)
        elif isinstance(event, _ClipsSaved):
            self._finish(event.job_id)
            self.clips_ready.emit(event.job_id, event.entries)
        elif isinstance(event, JobFailed):
            self._finish(event.job_id)
            self.job_failed.emit(event.job_id, event.message)
        elif isinstance(event, JobCancelled):
            self._finish(event.job_id)
            self.job_cancelled.emit(event.job_id)
        elif isinstance(event, PromptPrepared) and not self._active:  # loading for it said "generating"
            self._set_state("ready" if self.loaded_model else "idle")

    def _finish(self, job_id: int) -> None:
        self._active.discard(job_id)
        if not self._active:
            self._set_state("ready" if self.loaded_model else "idle")
            self.busy_changed.emit(False)

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)


class ClaimedEngine:
    """The engine port bridge.workflow's ContinueMyTrack needs, over the panel's one engine process:
    the jobs it submits skip the clip store (the session fits and saves their takes) and their events
    go to `listener` (the session's on_engine_event, set once the session exists)."""

    def __init__(self, controller: EngineController) -> None:
        self.controller = controller
        self.listener: Callable[[EngineEvent], None] | None = None

    def submit(self, request: GenerationRequest) -> int:
        return self.controller.submit_for(request, self._deliver)

    def cancel(self, job_id: int) -> None:
        self.controller.cancel(job_id)

    def prepare(self, request: GenerationRequest) -> int | None:
        return self.controller.prepare(request, self._deliver)

    def _deliver(self, event: EngineEvent) -> None:
        if self.listener is not None:
            self.listener(event)
