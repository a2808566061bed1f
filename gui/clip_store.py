"""Where finished takes go, and what the panel shows about each: the seam between results and the library.

`ClipStore.save_result` runs on the engine's event thread (never the Qt thread): it records each take
in the clip library (which writes the WAV and its sidecar) and computes its waveform thumbnail, so
the window only ever receives ready-to-draw entries. `recent` reads the library back at start-up.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bridge import paths
from bridge.audio.io import read_audio
from bridge.engine.events import GenerationResult
from bridge.errors import InvalidParameterError, SegueError
from bridge.library import Clip, ClipLibrary, ClipQuery
from bridge.musical_time import TimeSignature, seconds_per_bar
from gui.waveform import envelope


@dataclass
class ClipEntry:
    """One clip in the results list."""

    path: Path
    name: str
    prompt: str
    seed: int | None
    seconds: float
    peaks: np.ndarray = field(repr=False)
    bpm: float | None = None
    signature: str | None = "4/4"
    variation: int = 0
    job_id: int | None = None
    continues: Path | None = None  # the audio this clip continues, if it is a continuation
    kept: bool = False
    clip_id: int | None = None  # its row in the clip library
    used_in_daw: bool = False  # dragged out or sent: the DAW may reference the file

    @property
    def bars(self) -> float | None:
        """Length in bars at the tempo it was made for, or None when no tempo is known."""
        if self.bpm is None:
            return None
        try:
            return self.seconds / seconds_per_bar(self.bpm, TimeSignature.parse(self.signature or "4/4"))
        except InvalidParameterError:
            return None


class ClipStore:
    """Records takes in the clip library and applies the producer's keep / rename / discard to it."""

    def __init__(self, library: ClipLibrary, out_dir: Callable[[], Path] = paths.output_dir) -> None:
        self.library = library
        self._out_dir = out_dir

    def save_result(self, result: GenerationResult, job_id: int | None = None) -> list[ClipEntry]:
        out_dir = self._out_dir()
        entries = []
        for take in result.takes:
            clip = self.library.add_take(result, take, out_dir=out_dir)
            entry = _entry(clip, envelope(take.audio))
            entry.job_id = job_id
            entries.append(entry)
        return entries

    def entry(self, clip_id: int, audio: np.ndarray) -> ClipEntry:
        """The entry of a clip recorded elsewhere (Continue my track saves its fitted takes itself)."""
        return _entry(self.library.get(clip_id), envelope(audio))

    def recent(self, limit: int = 40) -> list[ClipEntry]:
        """The newest clips in the library whose files can be read (newest first). Slow: not on the Qt thread."""
        entries = []
        for clip in self.library.search(ClipQuery(limit=limit)):
            try:
                audio, _rate = read_audio(clip.path)
            except SegueError:
                continue  # a missing file is `segue library check`'s business, not the panel's
            entries.append(_entry(clip, envelope(audio)))
        return entries

    def set_kept(self, entry: ClipEntry, kept: bool) -> None:
        if entry.clip_id is not None:
            self.library.update(entry.clip_id, kept=kept)
        entry.kept = kept

    def rename(self, entry: ClipEntry, name: str) -> None:
        if entry.clip_id is not None:
            self.library.update(entry.clip_id, name=name)
        entry.name = name

    def discard(self, entry: ClipEntry) -> bool:
        """Move the clip to Segue's trash, unless the DAW may use its file; True if it was trashed."""
        if entry.clip_id is None or entry.used_in_daw:
            return False
        self.library.trash(entry.clip_id)
        return True


def default_name(clip: Clip) -> str:
    """'Clip 42 B': the library number, and the variation letter when the job made several takes."""
    variations = int(clip.params.get("variations", 1) or 1)
    letter = f" {chr(ord('A') + int(clip.params.get('take_index', 0)))}" if variations > 1 else ""
    return f"Clip {clip.id}{letter}"


def _entry(clip: Clip, peaks: np.ndarray) -> ClipEntry:
    source = clip.params.get("audio_path")
    return ClipEntry(
        path=clip.path,
        name=clip.name or default_name(clip),
        prompt=clip.prompt,
        seed=clip.seed,
        seconds=clip.duration_seconds,
        peaks=peaks,
        bpm=clip.bpm,
        signature=clip.signature,
        variation=int(clip.params.get("take_index", 0)),
        continues=Path(source) if source else None,
        kept=clip.kept,
        clip_id=clip.id,
    )
