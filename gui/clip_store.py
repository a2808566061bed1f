"""Where finished takes go, and what the panel shows about each: the seam between results and disk.

`ClipStore.save_result` runs on the engine's event thread (never the Qt thread): it writes each take
through bridge.clips and computes its waveform thumbnail, so the window only ever receives
ready-to-draw entries.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge import paths
from bridge.clips import write_take
from bridge.engine.events import GenerationResult
from bridge.engine.request import GenerationRequest
from bridge.errors import InvalidParameterError
from bridge.musical_time import TimeSignature, seconds_per_bar
from gui.waveform import envelope


@dataclass
class ClipEntry:
    """One clip in the results list."""

    path: Path
    name: str
    prompt: str
    seed: int
    seconds: float
    sample_rate: int
    peaks: np.ndarray = field(repr=False)
    bpm: float | None = None
    signature: str = "4/4"
    variation: int = 0
    job_id: int | None = None
    request: GenerationRequest | None = field(default=None, repr=False)
    kept: bool = False

    @property
    def bars(self) -> float | None:
        """Length in bars at the tempo it was made for, or None when no tempo is known."""
        if self.bpm is None:
            return None
        try:
            return self.seconds / seconds_per_bar(self.bpm, TimeSignature.parse(self.signature))
        except InvalidParameterError:
            return None


class ClipStore:
    """Writes takes to the output folder and describes them for the results list."""

    def __init__(self, out_dir: Callable[[], Path] = paths.output_dir) -> None:
        self._out_dir = out_dir

    def save_result(self, result: GenerationResult, job_id: int | None = None) -> list[ClipEntry]:
        out_dir = self._out_dir()
        request = result.request
        entries = []
        for take in result.takes:
            path = write_take(result, take, out_dir=out_dir)
            entries.append(
                ClipEntry(
                    path=path,
                    name=default_name(job_id, take.index),
                    prompt=request.prompt,
                    seed=take.seed,
                    seconds=take.audio.shape[0] / result.sample_rate,
                    sample_rate=result.sample_rate,
                    peaks=envelope(take.audio),
                    bpm=request.bpm,
                    signature=request.signature,
                    variation=take.index,
                    job_id=job_id,
                    request=request,
                )
            )
        return entries


def default_name(job_id: int | None, variation: int) -> str:
    """'Take 3B': the job number and the variation letter, so A/B pairs read at a glance."""
    return f"Take {job_id if job_id is not None else ''}{chr(ord('A') + variation)}"
