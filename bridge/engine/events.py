"""What a running job reports. Plain picklable dataclasses: they cross the worker-process boundary.

A job emits, in order: `JobStarted`, `ModelLoading` (when a model is loaded first), any number of
`Progress` and `AudioChunk`, then exactly one of `JobFinished`, `JobFailed` or `JobCancelled`.
"""

from dataclasses import dataclass, field

import numpy as np

from bridge.engine.request import GenerationRequest


@dataclass
class Take:
    """One generated take. `audio` holds only the new material, shape (frames, channels), float32."""

    index: int
    seed: int
    audio: np.ndarray
    # The (trimmed, resampled) audio prompt it continues, or None for text-only generation.
    prompt_audio: np.ndarray | None = None
    # MusicGen codes of the new material, shape (codebooks, steps): lets a chain continue without re-encoding.
    codes: np.ndarray | None = None


@dataclass
class GenerationResult:
    request: GenerationRequest
    sample_rate: int
    takes: list[Take]
    model_id: str
    device: str
    seconds_taken: float = 0.0
    quality: str = "exact"  # "exact" (the model's own weights) or "fast" (int8 weights on a CPU)
    precision: str = ""  # the decoder's weights: "fp32", "fp16", "int8"
    kernel: str = ""  # what multiplied them: "dense", or the int8 kernel chosen on this CPU (e.g. "dynamic-int8-7bit")


@dataclass
class JobStarted:
    job_id: int


@dataclass
class ModelLoading:
    job_id: int
    model_id: str
    message: str
    # How long the previous load of this model on this device took (an ETA), or None the first time.
    expected_seconds: float | None = None


@dataclass
class Progress:
    job_id: int
    steps_done: int
    steps_total: int
    eta_seconds: float | None

    @property
    def fraction(self) -> float:
        return self.steps_done / self.steps_total if self.steps_total else 0.0


@dataclass
class AudioChunk:
    """Decoded audio of every take, in order: concatenating a take's chunks gives its final audio."""

    job_id: int
    start_frame: int
    # shape (takes, frames, channels), float32, at `sample_rate`
    audio: np.ndarray
    sample_rate: int


@dataclass
class JobFinished:
    job_id: int
    result: GenerationResult


@dataclass
class JobFailed:
    job_id: int
    message: str


@dataclass
class JobCancelled:
    job_id: int


@dataclass
class PromptPrepared:
    """A preparation (EngineClient.prepare) ended. `outcome`: "prepared", "no audio prompt", "cancelled",
    or why it failed; a failed one costs only time, since the job then does that work itself."""

    job_id: int
    model_id: str
    seconds: float
    outcome: str


@dataclass
class EngineReady:
    """The worker has loaded `model_id` on `device` (sent after a load, not tied to one job)."""

    model_id: str
    device: str
    details: dict = field(default_factory=dict)


@dataclass
class EngineStopped:
    """The worker process ended without being asked to (a crash, kill -9, out of memory): any job it ran
    has failed with `message`, no model is loaded any more, and the next job starts a new worker."""

    message: str


EngineEvent = (
    JobStarted | ModelLoading | Progress | AudioChunk | JobFinished | JobFailed | JobCancelled | EngineReady
    | EngineStopped | PromptPrepared
)
