"""`segue library check`: find, and repair, anything that makes rows and files disagree.

Repairs never delete a finished clip: a row whose file vanished is kept as 'missing' (its
parameters can regenerate it) and comes back when the file does; a Segue clip file without a row
is adopted from its sidecar; only leftovers of interrupted writes are removed.
"""

import datetime
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from bridge.library.clip import Clip, ClipInfo
from bridge.library.files import (
    audio_info,
    move_clip_files,
    read_sidecar,
    trash_dir,
    trash_path,
    write_sidecar,
)
from bridge.library.store import STALE_WRITE_SECONDS, ClipLibrary
from bridge.paths import output_dir

# Temporary files of our atomic writes: '.<clip stem>.<random>' where a clip stem ends in 8 hex digits.
_CLIP_TEMP_FILE = re.compile(r"^\.\d{8}-\d{6}-.*-[0-9a-f]{8}\.")


@dataclass
class CheckReport:
    repaired: bool
    # One line per finding, saying what was done (or, without repair, what would be done).
    actions: list[str] = field(default_factory=list)
    # Files that exist but cannot be read as audio: reported, never touched.
    unreadable: list[Path] = field(default_factory=list)
    clips_checked: int = 0

    @property
    def clean(self) -> bool:
        return not self.actions and not self.unreadable


def check_library(library: ClipLibrary, repair: bool = True, extra_dirs: Iterable[Path] = ()) -> CheckReport:
    """Compare every row with the disk and every Segue clip file with the rows (see module doc)."""
    report = CheckReport(repaired=repair)
    if repair:
        report.actions += library.recover()
    else:
        report.actions += [f"(not repaired) clip {clip.id}: interrupted while {clip.status}" for clip in library.abandoned()]
    rows = library._all_rows()
    report.clips_checked = len(rows)
    for clip in rows:
        _check_row(library, clip, repair, report)
    known_paths = {clip.path for clip in library._all_rows()}
    folders = {output_dir().resolve(), *(clip.path.parent for clip in rows), *(Path(d).resolve() for d in extra_dirs)}
    orphans = []
    for folder in sorted(folders):
        orphans += _scan_folder(folder, known_paths, repair, report)
    for wav, metadata in sorted(orphans, key=lambda item: str(item[1].get("created_at", ""))):
        _adopt(library, wav, metadata, repair, report)
    _scan_trash(library, report)
    return report


def _check_row(library: ClipLibrary, clip: Clip, repair: bool, report: CheckReport) -> None:
    act = _Actor(repair, report)
    if clip.status in ("pending", "trashing", "restoring"):
        return  # being written or moved right now, or handled by recover()
    here, in_trash = clip.path.is_file(), trash_path(clip.uid, clip.path).is_file()
    if clip.status == "ready" and not here:
        if in_trash:
            act(f"clip {clip.id} was in the trash: marked as trashed", lambda: _move(library, clip, "trashed"))
        else:
            act(f"clip {clip.id}: file missing ({clip.path}), kept as 'missing' with its parameters",
                lambda: library._set_status(clip.id, "missing"))
    elif clip.status == "missing" and here:
        act(f"clip {clip.id}: file is back at {clip.path}", lambda: library._set_status(clip.id, "ready"))
    elif clip.status == "trashed" and not in_trash:
        if here:
            act(f"clip {clip.id} was restored from the trash: marked ready", lambda: _move(library, clip, "ready"))
        else:
            act(f"clip {clip.id} in the trash has no file left: removed",
                lambda: library._delete_row(clip.id))
    if clip.status in ("ready", "missing") and here:
        if audio_info(clip.path) is None:
            report.unreadable.append(clip.path)
        elif read_sidecar(clip.path) is None:
            act(f"clip {clip.id}: sidecar rewritten",
                lambda: write_sidecar(clip.path, clip.metadata(library.parent_uid(clip))))


def _move(library: ClipLibrary, clip: Clip, status: str) -> None:
    """Bring the rest of a clip's files (its sidecar) to where its WAV is, and set the status."""
    home, trash = clip.path, trash_path(clip.uid, clip.path)
    move_clip_files(*((trash, home) if status == "ready" else (home, trash)))
    library._set_status(clip.id, status)


def _scan_folder(
    folder: Path, known_paths: set[Path], repair: bool, report: CheckReport
) -> list[tuple[Path, dict]]:
    """Segue clip files in `folder` that have no row; stale temporary files are removed."""
    if not folder.is_dir():
        return []
    orphans = []
    for path in folder.iterdir():
        if _CLIP_TEMP_FILE.match(path.name) and time.time() - path.stat().st_mtime > STALE_WRITE_SECONDS:
            _Actor(repair, report)(f"removed {path.name}, left over from an interrupted write",
                                   lambda path=path: path.unlink(missing_ok=True))
        elif path.suffix.lower() == ".wav" and not path.name.startswith(".") and path not in known_paths:
            metadata = read_sidecar(path)
            if metadata is not None:
                orphans.append((path, metadata))
    return orphans


def _adopt(library: ClipLibrary, wav: Path, metadata: dict, repair: bool, report: CheckReport) -> None:
    """Give a Segue clip file found on disk its row back (or relink a row whose file moved)."""
    act = _Actor(repair, report)
    info = audio_info(wav)
    if info is None:
        report.unreadable.append(wav)
        return
    known = library.find_by_uid(str(metadata.get("uid", "")))
    if known is not None:
        if known.status == "missing" or (known.status == "ready" and not known.path.is_file()):
            act(f"clip {known.id} found at {wav}: relinked", lambda: _relink(library, known.id, wav))
        return  # otherwise a copy of a clip that is still in place: not ours to manage
    act(f"adopted {wav.name} from its sidecar", lambda: _insert_from_sidecar(library, wav, metadata, info))


def _relink(library: ClipLibrary, clip_id: int, wav: Path) -> None:
    library._set_path(clip_id, wav)
    library._set_status(clip_id, "ready")


def _insert_from_sidecar(library: ClipLibrary, wav: Path, metadata: dict, info) -> None:
    parent = library.find_by_uid(str(metadata.get("parent_uid") or ""))
    clip_info = ClipInfo(
        prompt=str(metadata.get("prompt") or ""),
        model=str(metadata.get("model") or ""),
        seed=_optional(metadata.get("seed"), int),
        params=metadata.get("parameters") if isinstance(metadata.get("parameters"), dict) else {},
        parent_id=parent.id if parent else None,
        bpm=_optional(metadata.get("bpm"), float),
        signature=_optional(metadata.get("signature"), str),
        bars=_optional(metadata.get("bars"), float),
        name=str(metadata.get("name") or ""),
        tags=[str(tag) for tag in metadata.get("tags") or [] if isinstance(tag, str)],
        rating=min(max(_optional(metadata.get("rating"), int) or 0, 0), 5),
        kept=bool(metadata.get("kept")),
    )
    uid = str(metadata.get("uid") or "") or uuid.uuid4().hex
    clip_id = library._insert(clip_info, uid, wav, "ready", info.frames / info.samplerate, info.samplerate,
                              info.channels, _timestamp(metadata.get("created_at") or metadata.get("created"), wav),
                              _optional(metadata.get("key"), str))
    clip = library.get(clip_id)
    write_sidecar(wav, clip.metadata(library.parent_uid(clip)))


def _scan_trash(library: ClipLibrary, report: CheckReport) -> None:
    for folder in trash_dir().iterdir():
        if not folder.is_dir():
            continue
        if not any(folder.iterdir()):
            folder.rmdir()  # left by a move interrupted after its last file
            continue
        clip = library.find_by_uid(folder.name)
        if clip is None or clip.status not in ("trashed", "trashing", "restoring"):
            report.actions.append(f"the trash holds {folder.name}, which is not a trashed clip (left alone)")


class _Actor:
    """Records a finding and, when repairing, runs its fix."""

    def __init__(self, repair: bool, report: CheckReport) -> None:
        self.repair = repair
        self.report = report

    def __call__(self, message: str, fix=None) -> None:
        if self.repair and fix is not None:
            fix()
            self.report.actions.append(message)
        else:
            self.report.actions.append(f"(not repaired) {message}")


def _optional(value, kind):
    try:
        return None if value is None else kind(value)
    except (TypeError, ValueError):
        return None


def _timestamp(text, wav: Path) -> float:
    try:
        return datetime.datetime.fromisoformat(str(text)).timestamp()
    except ValueError:
        return wav.stat().st_mtime

