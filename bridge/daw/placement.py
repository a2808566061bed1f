"""Put a finished clip into the producer's project: the DAW's native route first, then fallbacks.

Routes, in order:
1. native: AbletonOSC's create_audio_clip (Live 12.0.5+, patched AbletonOSC) or REAPER's insert script;
2. watched export folder: a copy in a folder the producer added to Live's browser (Places) or to
   REAPER's Media Explorer, so the clip is one drag away;
3. drag-and-drop: the clip file itself, which the GUI offers as a drag source.
A clip is never lost: when every DAW route fails the file still exists and the result says where.
"""

import logging
import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from bridge.atomic_files import replacing
from bridge.errors import DawError

log = logging.getLogger(__name__)

ROUTE_ABLETON_ARRANGEMENT = "ableton-arrangement"
ROUTE_ABLETON_SESSION = "ableton-session"
ROUTE_REAPER = "reaper-script"
ROUTE_EXPORT_FOLDER = "export-folder"
ROUTE_DRAG_AND_DROP = "drag-and-drop"

DEFAULT_TRACK_NAME = "Segue"


class PlacementUnavailable(DawError):
    """The DAW cannot place clips this way at all (not installed or not supported), as opposed to one failure."""


@dataclass(frozen=True)
class ClipTarget:
    """Where a clip should go. Tracks count from 0 (the leftmost / topmost track).

    `track_index` None means a new audio track named `track_name` at the end. `position_beats`
    (quarter notes from the song start) places the clip on the timeline; None means Live's first
    empty Session slot of the track (or `slot_index`), and REAPER's edit cursor.
    """

    path: Path
    track_index: int | None = None
    track_name: str = DEFAULT_TRACK_NAME
    position_beats: float | None = None
    slot_index: int | None = None


@dataclass(frozen=True)
class PlacedClip:
    """Where a clip ended up; `message` is one line for the producer."""

    route: str
    path: Path
    message: str
    track_index: int | None = None
    position_beats: float | None = None
    slot_index: int | None = None

    @property
    def in_project(self) -> bool:
        return self.route not in (ROUTE_EXPORT_FOLDER, ROUTE_DRAG_AND_DROP)


class NativePlacer(Protocol):
    """What a DAW link offers: place the clip or raise DawError (PlacementUnavailable if it never can)."""

    name: str

    def place_clip(self, target: ClipTarget) -> PlacedClip: ...


class ClipPlacer:
    """Tries the DAW link, then the export folder, then hands the file over for drag-and-drop."""

    def __init__(self, link: NativePlacer | None, export_dir: Path | None = None) -> None:
        self._link = link
        self._export_dir = export_dir

    def place(self, target: ClipTarget) -> PlacedClip:
        path = Path(target.path)
        if not path.is_file():
            raise DawError(f"cannot place {path}: the file does not exist")
        target = replace(target, path=path.resolve())
        reason = "no DAW link"
        if self._link is not None:
            try:
                return self._link.place_clip(target)
            except DawError as error:
                reason = str(error)
                log.info("placing %s through %s failed: %s", path.name, self._link.name, reason)
        if self._export_dir is not None:
            try:
                copy = export_copy(path, self._export_dir)
            except OSError as error:
                log.warning("cannot copy %s to the export folder %s: %s", path.name, self._export_dir, error)
            else:
                return PlacedClip(
                    ROUTE_EXPORT_FOLDER,
                    copy,
                    f"{reason}; {copy.name} is in the export folder {self._export_dir}: drag it into the project",
                )
        return PlacedClip(ROUTE_DRAG_AND_DROP, path, f"{reason}; drag {path.name} into the project")


def export_copy(path: Path, export_dir: Path) -> Path:
    """Copy `path` into `export_dir` atomically (a watcher never sees half a file); never overwrites."""
    export_dir.mkdir(parents=True, exist_ok=True)
    destination = _free_name(export_dir / path.name)
    with replacing(destination, suffix=".part") as temporary:
        shutil.copyfile(path, temporary)
    return destination


def _free_name(path: Path) -> Path:
    candidate, number = path, 2
    while candidate.exists():
        candidate = path.with_name(f"{path.stem} ({number}){path.suffix}")
        number += 1
    return candidate
