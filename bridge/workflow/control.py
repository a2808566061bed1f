"""Continue my track over Segue's OSC control API (bridge.daw.control_server hands these messages over).

    /segue/continue_bars       s:prompt i:source_bars i:bars i:takes    the last bars from the DAW
    /segue/continue_file_bars  s:audio_path s:prompt i:source_bars i:bars i:takes   a file, at the DAW's tempo
    /segue/continue_again      s:prompt i:bars i:takes                  from the last placed take
    /segue/continue_bars_melody       as continue_bars, then s:melody i:seed    also following a melody:
    /segue/continue_file_bars_melody  as continue_file_bars, then s:melody i:seed   an absolute audio path,
                                      or "daw" (capture, render): the DAW's last bars; seed -1: a new one
    /segue/place               i:job i:take                             at the bar where the source ends
    /segue/play                i:job i:take                             live into the loopback, next bar
Replies (to the sender, at the reply port):
    /segue/progress  i:job f:fraction            0.0 when the engine has the job, 1.0 when done
    /segue/source    i:job f:end_beats i:bars s:description    (end_beats -1: unknown)
    /segue/take      i:job i:take s:path s:flags               one per take; flags comma-separated
    /segue/placed    i:job i:take s:route f:position_beats s:message
    /segue/playing   i:job i:take f:start_beats
Takes count from 1, as the producer sees them. A run captures, generates and fits on a worker
thread; the server stays responsive and answers /segue/status and /segue/cancel meanwhile.
"""

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from bridge.errors import InvalidParameterError, SegueError
from bridge.workflow.melody_source import following, melody_from_daw
from bridge.workflow.session import Continuation, ContinueMyTrack, ContinueOptions
from bridge.workflow.source import Source

log = logging.getLogger(__name__)

KEPT_CONTINUATIONS = 32

Send = Callable[..., None]


class WorkflowControl:
    """Runs workflow requests for the control server. `send(to, address, *args)` replies;
    `finished()` frees the server's one-job-at-a-time slot; `job_started(job_id)` fills it in."""

    # Melody arguments that mean the DAW's last bars ("daw": taken as the source is), and how to take them.
    DAW_MELODIES = {"daw": "auto", "capture": "capture", "render": "render"}

    def __init__(
        self,
        session: ContinueMyTrack,
        model: str,
        send: Send,
        job_started: Callable[[int], None],
        finished: Callable[[], None],
    ) -> None:
        self.session = session
        self.model = model
        self._send = send
        self._job_started = job_started
        self._finished = finished
        self._continuations: OrderedDict[int, Continuation] = OrderedDict()
        self._lock = threading.Lock()

    # -- runs (the server has claimed its job slot before calling these) ----------------------------

    def continue_bars(
        self, reply_to, address: str, prompt: str, source_bars: int, bars: int, takes: int,
        melody: str | None = None, seed: int | None = None,
    ) -> None:
        """`melody`: None, an audio file's path (checked by the caller), or one of DAW_MELODIES."""
        options = self._options(prompt, bars, takes, seed)
        self._start(reply_to, address, lambda: self.session.source_from_daw(source_bars), options, melody)

    def continue_file_bars(
        self, reply_to, address: str, path: str, prompt: str, source_bars: int, bars: int, takes: int,
        melody: str | None = None, seed: int | None = None,
    ) -> None:
        options = self._options(prompt, bars, takes, seed)
        self._start(reply_to, address, lambda: self.session.source_from_file(path, source_bars), options, melody)

    def continue_again(self, reply_to, address: str, prompt: str, bars: int, takes: int) -> None:
        options = self._options(prompt, bars, takes)
        if self.session.last_placed is None:
            raise InvalidParameterError("place a take first (/segue/place): continue again goes on from it")
        continuation, take_index = self.session.last_placed
        self._start(reply_to, address, lambda: self.session.take_as_source(continuation, take_index), options)

    def cancel(self) -> None:
        self.session.cancel()

    # -- delivery (on a thread of its own: the DAW may take seconds to answer) -----------------------

    def place(self, reply_to, address: str, job: int, take: int) -> None:
        continuation = self._continuation(job)

        def place() -> None:
            placed = self.session.place(continuation, take - 1)
            position = -1.0 if placed.position_beats is None else float(placed.position_beats)
            self._send(reply_to, "/segue/placed", job, take, placed.route, position, placed.message)
            self.session.prepare_again(continuation, take - 1)  # /segue/continue_again starts from it

        self._in_thread(reply_to, address, place)

    def play(self, reply_to, address: str, job: int, take: int) -> None:
        continuation = self._continuation(job)

        def play() -> None:
            live = self.session.play(continuation, take - 1)
            self._send(reply_to, "/segue/playing", job, take, float(live.start_beats))

        self._in_thread(reply_to, address, play)

    # -- plumbing -----------------------------------------------------------------------------------

    def _options(self, prompt: str, bars: int, takes: int, seed: int | None = None) -> ContinueOptions:
        return ContinueOptions(prompt=prompt, bars=bars, takes=takes, model=self.model, seed=seed).check()

    def _following(self, options: ContinueOptions, melody: str | None, source: Source) -> ContinueOptions:
        if melody is None:
            return options
        if melody in self.DAW_MELODIES:
            return following(options, melody_from_daw(self.session, source, self.DAW_MELODIES[melody]))
        return following(options, melody)

    def _continuation(self, job: int) -> Continuation:
        with self._lock:
            continuation = self._continuations.get(job)
        if continuation is None:
            raise InvalidParameterError(f"no finished continuation with job {job}")
        return continuation

    def _in_thread(self, reply_to, address: str, work: Callable[[], None], finished=None) -> None:
        def run() -> None:
            try:
                work()
            except SegueError as error:
                self._send(reply_to, "/segue/error", f"{address}: {error}")
            except Exception as error:  # a bug must not leave the server busy forever
                log.exception("%s failed", address)
                self._send(reply_to, "/segue/error", f"{address}: internal error ({type(error).__name__}: {error})")
            finally:
                if finished is not None:
                    finished()

        threading.Thread(target=run, name="segue-continue", daemon=True).start()

    def _start(
        self, reply_to, address: str, get_source: Callable[[], Source], options: ContinueOptions,
        melody: str | None = None,
    ) -> None:
        self._in_thread(
            reply_to, address, lambda: self._run(reply_to, get_source, options, melody), finished=self._finished
        )

    def _run(self, reply_to, get_source: Callable[[], Source], options: ContinueOptions, melody: str | None = None) -> None:
        job: list[Any] = [0]
        source = get_source()
        options = self._following(options, melody, source)

        def submitted(job_id: int) -> None:
            job[0] = job_id
            self._job_started(job_id)
            self._send(reply_to, "/segue/progress", job_id, 0.0)
            end = -1.0 if source.end_beats is None else float(source.end_beats)
            self._send(reply_to, "/segue/source", job_id, end, source.bars, source.describe())

        def progress(fraction: float) -> None:
            self._send(reply_to, "/segue/progress", job[0], min(1.0, max(0.0, fraction)))

        continuation = self.session.continue_source(source, options, progress, submitted)
        with self._lock:
            self._continuations[job[0]] = continuation
            while len(self._continuations) > KEPT_CONTINUATIONS:
                self._continuations.popitem(last=False)
        self._send(reply_to, "/segue/progress", job[0], 1.0)
        for take in continuation.takes:
            self._send(reply_to, "/segue/take", job[0], take.index + 1, str(take.path), ", ".join(take.flags))
