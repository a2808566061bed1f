"""Preparing the engine before Continue is pressed: the source, and the words as they stand.

The engine (bridge.engine.worker.EngineClient.prepare) encodes a prompt and prefills its rows ahead
of the job: what the source alone decides (its encoding, the unguided row) and, given a text, that
text's guided row. A job with the same prompt audio (or codes), model, quality and guidance reuses
the first; with the same text too, the second, and then only its steps stand before the first sound.

One preparation is current at a time. A newer one replaces it; the engine keeps what the old one
finished (a stale text's row stops within a layer, the source's part is finished for the next). A
job that the current preparation does not serve exactly cancels it, so no stale text's row runs in
front of the job. One that it serves waits behind it and uses what it made.
"""

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bridge.engine.request import GenerationRequest

log = logging.getLogger(__name__)


def _same_array(first, second) -> bool:
    if first is None or second is None:
        return first is second
    return first is second or np.array_equal(np.asarray(first), np.asarray(second))


def same_prompt(first: GenerationRequest, second: GenerationRequest) -> bool:
    """Whether two requests start from the same prepared prompt rows (their texts aside)."""
    settings = ("model", "quality", "cfg", "audio_path", "audio_sample_rate", "prompt_seconds", "prompt_bars", "bpm",
                "signature")
    return (
        all(getattr(first, name) == getattr(second, name) for name in settings)
        and _same_array(first.prompt_codes, second.prompt_codes)
        and _same_array(first.audio, second.audio)
    )


@dataclass
class Preparation:
    job_id: int
    request: GenerationRequest
    ready: bool = False  # the engine reported it done (PromptPrepared "prepared")

    def serves(self, request: GenerationRequest) -> bool:
        """Whether a job of `request` finds all of this preparation's work useful: the same prompt and text."""
        return self.request.prompt == request.prompt and same_prompt(self.request, request)


class Preparer:
    """The current preparation on an engine that can prepare (`prepare(request) -> id`, `cancel(id)`)."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.current: Preparation | None = None
        self._lock = threading.Lock()

    def prepare(self, request: GenerationRequest) -> int | None:
        """Have the engine prepare `request` (unless the current preparation already does); return its
        id, or None when this engine cannot prepare."""
        prepare: Callable[[GenerationRequest], int | None] | None = getattr(self.engine, "prepare", None)
        if prepare is None:
            return None
        with self._lock:
            if self.current is not None and self.current.serves(request):
                return self.current.job_id
            previous, job_id = self.current, prepare(request)
            self.current = None if job_id is None else Preparation(job_id, request)
        if previous is not None:
            self.engine.cancel(previous.job_id)  # a preparation already done ignores this
        return job_id

    def finished(self, job_id: int, outcome: str) -> bool:
        """Note the engine's PromptPrepared; returns whether it made the current preparation ready."""
        with self._lock:
            current = self.current
            if current is None or current.job_id != job_id or outcome != "prepared":
                return False
            current.ready = True
            return True

    def ready_for(self, request: GenerationRequest) -> bool:
        """Whether a job of `request` would find everything before its steps done already."""
        with self._lock:
            current = self.current
        return current is not None and current.ready and current.serves(request)

    def before_submit(self, request: GenerationRequest) -> None:
        """Cancel the current preparation if a job of `request` would not use all of it."""
        with self._lock:
            stale = self.current if self.current is not None and not self.current.serves(request) else None
            if stale is not None:
                self.current = None
        if stale is not None:
            log.debug("preparation %d is not this job's: cancelled", stale.job_id)
            self.engine.cancel(stale.job_id)
