"""The clip library: every generated clip with what is needed to find it, reproduce it and trust it.

Rows live in SQLite (WAL) in `data_dir()`, files wherever they were recorded (`output_dir()` by
default). Write protocol, so that a crash or kill at any instant leaves nothing unexplained:

1. insert the row as 'pending', naming its final path and this process as writer (committed);
2. write the WAV atomically (temporary file + rename), then the JSON sidecar the same way;
3. mark the row 'ready' (committed).

A finished WAV therefore always has a row, and a 'ready' row always has its WAV. A 'pending' row
whose writer died is completed (WAV there) or removed (WAV absent) by `recover()`, which runs every
time a library is opened. Trashing moves the files with the same care: 'trashing' -> 'trashed'.
"""

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.audio.analysis import estimate_key
from bridge.audio.io import as_frames, write_audio_atomic
from bridge.clips import write_take
from bridge.engine.events import GenerationResult, Take
from bridge.errors import LibraryError
from bridge.library import schema
from bridge.library.clip import MAX_RATING, Clip, ClipInfo, clip_file_name, normalize_tags
from bridge.library.files import (
    audio_info,
    move_clip_files,
    remove_clip_files,
    remove_temp_files,
    trash_path,
    write_sidecar,
    writer_is_alive,
    writer_token,
)
from bridge.paths import data_dir, output_dir

DATABASE_NAME = "library.sqlite3"
# A pending write takes seconds; one older than this is abandoned even if its pid looks alive (reused).
STALE_WRITE_SECONDS = 15 * 60
# Below this profile correlation the key estimate is a guess (noise, drums, one note): store none.
KEY_CONFIDENCE = 0.7
VISIBLE = "ready"


@dataclass
class ClipQuery:
    """A search: every given criterion must match. Results come newest first."""

    text: str = ""  # words found in the name, prompt or tags (prefixes match: "dru" finds "drums")
    model: str | None = None
    bpm_min: float | None = None
    bpm_max: float | None = None
    kept_only: bool = False
    tag: str | None = None
    in_trash: bool = False  # search the trash instead of the library
    limit: int = 200
    offset: int = 0


class ClipLibrary:
    """One open library. Thread-safe: the GUI, the OSC server and engine callbacks may share it."""

    def __init__(self, database_path: str | Path | None = None, recover: bool = True) -> None:
        self.database_path = Path(database_path) if database_path else data_dir() / DATABASE_NAME
        self._lock = threading.RLock()
        try:
            self._connection = sqlite3.connect(
                self.database_path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._connection.row_factory = sqlite3.Row
            for pragma in ("journal_mode = WAL", "synchronous = FULL", "foreign_keys = ON"):
                self._connection.execute(f"PRAGMA {pragma}")
            schema.upgrade(self._connection)
            self.full_text = schema.ensure_fts(self._connection)
        except sqlite3.DatabaseError as error:
            raise LibraryError(
                f"cannot open the clip library {self.database_path}: {error}; move the file aside and run "
                "`segue library check` to rebuild it from the clips' sidecars"
            ) from None
        if recover:
            self.recover()

    def close(self) -> None:
        with self._lock:
            self._connection.close()

    def __enter__(self) -> "ClipLibrary":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # Recording

    def record(
        self,
        audio: np.ndarray,
        sample_rate: int,
        info: ClipInfo,
        out_dir: str | Path | None = None,
        subtype: str = "FLOAT",
    ) -> Clip:
        """Write `audio` as a new clip in `out_dir` (default `output_dir()`) and record it; return it."""
        audio = as_frames(audio)
        if audio.shape[0] == 0:
            raise LibraryError("cannot record an empty clip")
        key = info.key if info.key is not None else key_of(audio, sample_rate)
        return self._record(
            info, None, out_dir, audio.shape[0] / sample_rate, sample_rate, audio.shape[1], key,
            write=lambda path: write_audio_atomic(path, audio, sample_rate, subtype=subtype),
        )

    def add_take(
        self,
        result: GenerationResult,
        take: Take,
        out_dir: str | Path | None = None,
        path: str | Path | None = None,
        sample_rate: int | None = None,
        bit_depth: str = "float",
        include_prompt: bool = False,
        parent_id: int | None = None,
        name: str = "",
        tags: Sequence[str] = (),
    ) -> Clip:
        """Write one take of a finished job with `bridge.clips.write_take` and record it.

        File options are write_take's: `path` (else a unique name in `out_dir`, default
        `output_dir()`), `sample_rate`, `bit_depth`, `include_prompt`. A library clip already at
        `path` is moved to the trash first. The parent (for chains) is `parent_id`, or else the
        library clip whose file the job continued.
        """
        request = result.request
        prompt_frames = take.prompt_audio.shape[0] if include_prompt and take.prompt_audio is not None else 0
        params = request.describe() | {
            "take_index": take.index,
            "device": result.device,
            "seconds_taken": result.seconds_taken,
            "model_sample_rate": result.sample_rate,
            "includes_prompt_seconds": prompt_frames / result.sample_rate,
        }
        source_path = request.audio_path or request.init_audio_path  # the clip continued or varied
        if parent_id is None and source_path:
            parent = self.find_by_path(source_path)
            parent_id = parent.id if parent else None
        info = ClipInfo(
            prompt=request.prompt,
            model=result.model_id,
            seed=take.seed,
            params=params,
            parent_id=parent_id,
            bpm=request.bpm,
            signature=request.signature,
            bars=request.bars,
            name=name,
            tags=tags,
        )
        if path is not None:
            previous = self.find_by_path(path)
            if previous is not None and previous.status in ("ready", "missing"):
                self.trash(previous.id)
        return self._record(
            info,
            path,
            out_dir,
            (take.audio.shape[0] + prompt_frames) / result.sample_rate,
            sample_rate or result.sample_rate,
            take.audio.shape[1],
            key_of(take.audio, result.sample_rate),
            write=lambda target: write_take(
                result, take, path=target, sample_rate=sample_rate, bit_depth=bit_depth, include_prompt=include_prompt
            ),
        )

    def _record(
        self,
        info: ClipInfo,
        path: str | Path | None,
        out_dir: str | Path | None,
        duration_seconds: float,
        sample_rate: int,
        channels: int,
        key: str | None,
        write: Callable[[Path], object],
    ) -> Clip:
        """The write protocol (module doc): pending row, `write(path)` the files, sidecar, ready."""
        created_at = info.created_at if info.created_at is not None else time.time()
        uid = uuid.uuid4().hex
        if path is None:
            folder = Path(out_dir) if out_dir is not None else output_dir()
            path = folder / clip_file_name(created_at, info.name or info.prompt, uid)
        path = Path(path).resolve()
        clip_id = self._insert(info, uid, path, "pending", duration_seconds, sample_rate, channels, created_at, key)
        try:
            write(path)
            clip = self.get(clip_id)
            write_sidecar(path, clip.metadata(self.parent_uid(clip)))
        except BaseException as error:
            remove_clip_files(path)
            self._delete_row(clip_id)
            if isinstance(error, OSError):
                raise LibraryError(f"cannot write the clip to {path.parent}: {error.strerror or error}") from None
            raise
        self._set_status(clip_id, "ready")
        return self.get(clip_id)

    def add_result(self, result: GenerationResult, out_dir: str | Path | None = None, **kwargs) -> list[Clip]:
        """Record every take of a finished job (see `add_take`)."""
        return [self.add_take(result, take, out_dir, **kwargs) for take in result.takes]

    # Reading

    def get(self, clip_id: int) -> Clip:
        row = self._query_one("SELECT * FROM clips WHERE id = ?", (clip_id,))
        if row is None:
            raise LibraryError(f"no clip with id {clip_id} in the library")
        return _clip_from_row(row)

    def find_by_path(self, path: str | Path) -> Clip | None:
        row = self._query_one(
            "SELECT * FROM clips WHERE path = ? ORDER BY status IN ('trashing', 'trashed')", (str(Path(path).resolve()),)
        )
        return _clip_from_row(row) if row else None

    def find_by_uid(self, uid: str) -> Clip | None:
        row = self._query_one("SELECT * FROM clips WHERE uid = ?", (uid,))
        return _clip_from_row(row) if row else None

    def search(self, query: ClipQuery | None = None) -> list[Clip]:
        """Clips matching `query` (default: the newest 200 in the library), newest first."""
        query = query or ClipQuery()
        where, args = self._where(query)
        sql = f"SELECT * FROM clips WHERE {where} ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        return [_clip_from_row(row) for row in self._query(sql, (*args, query.limit, query.offset))]

    def count(self, query: ClipQuery | None = None) -> int:
        where, args = self._where(query or ClipQuery())
        return self._query_one(f"SELECT count(*) FROM clips WHERE {where}", args)[0]

    def models(self) -> list[str]:
        """Models that made the clips in the library (for a filter menu)."""
        rows = self._query("SELECT DISTINCT model FROM clips WHERE status = ? ORDER BY model", (VISIBLE,))
        return [row[0] for row in rows]

    def chain(self, clip_id: int) -> list[Clip]:
        """The clip and the clips it continues, oldest ancestor first."""
        rows = self._query(
            """WITH RECURSIVE up(id, depth) AS (
                   SELECT ?, 0
                   UNION ALL SELECT clips.parent_id, up.depth + 1 FROM clips JOIN up ON clips.id = up.id
                   WHERE clips.parent_id IS NOT NULL AND up.depth < 10000)
               SELECT clips.* FROM up JOIN clips ON clips.id = up.id ORDER BY up.depth DESC""",
            (clip_id,),
        )
        if not rows:
            raise LibraryError(f"no clip with id {clip_id} in the library")
        return [_clip_from_row(row) for row in rows]

    def children(self, clip_id: int) -> list[Clip]:
        rows = self._query("SELECT * FROM clips WHERE parent_id = ? ORDER BY created_at", (clip_id,))
        return [_clip_from_row(row) for row in rows]

    # Editing

    def update(
        self,
        clip_id: int,
        name: str | None = None,
        rating: int | None = None,
        kept: bool | None = None,
        tags: Sequence[str] | str | None = None,
    ) -> Clip:
        """Change what the producer controls: name, rating (0-5), keep flag, tags."""
        changes: dict[str, object] = {}
        if name is not None:
            changes["name"] = name.strip()
        if rating is not None:
            if not 0 <= rating <= MAX_RATING:
                raise LibraryError(f"a rating must be 0-{MAX_RATING} stars, got {rating}")
            changes["rating"] = int(rating)
        if kept is not None:
            changes["kept"] = int(bool(kept))
        if tags is not None:
            changes["tags"] = " ".join(normalize_tags(tags))
        self.get(clip_id)
        if changes:
            assignments = ", ".join(f"{column} = ?" for column in changes)
            self._execute(f"UPDATE clips SET {assignments} WHERE id = ?", (*changes.values(), clip_id))
        clip = self.get(clip_id)
        if clip.status in ("ready", "trashed"):  # so a library rebuilt from sidecars keeps them too
            write_sidecar(clip.file_path, clip.metadata(self.parent_uid(clip)))
        return clip

    # Deleting

    def trash(self, clip_id: int) -> Clip:
        """Move a clip's files to the Segue trash (`data_dir()/trash`); `restore` brings it back."""
        clip = self.get(clip_id)
        if clip.status not in ("ready", "missing"):
            raise LibraryError(f"clip {clip_id} is {clip.status}, it cannot be moved to the trash")
        self._set_status(clip_id, "trashing", writer=writer_token())
        move_clip_files(clip.path, trash_path(clip.uid, clip.path))
        self._set_status(clip_id, "trashed")
        return self.get(clip_id)

    def restore(self, clip_id: int) -> Clip:
        clip = self.get(clip_id)
        if clip.status != "trashed":
            raise LibraryError(f"clip {clip_id} is not in the trash")
        if clip.path.exists():
            raise LibraryError(f"cannot restore clip {clip_id}: another file now sits at {clip.path}")
        self._set_status(clip_id, "restoring", writer=writer_token())
        move_clip_files(trash_path(clip.uid, clip.path), clip.path)
        self._set_status(clip_id, "ready")
        return self.get(clip_id)

    def empty_trash(self) -> int:
        """Delete every trashed clip for good; return how many."""
        trashed = self.search(ClipQuery(in_trash=True, limit=-1))
        for clip in trashed:
            remove_clip_files(clip.file_path)  # files first: a crash leaves a row `check` removes
            self._delete_row(clip.id)
        return len(trashed)

    # Integrity

    def recover(self) -> list[str]:
        """Finish or undo writes and moves whose process died; return what was done, one line each."""
        done = []
        for clip in self.abandoned():
            remove_temp_files(clip.path)  # the dead writer's half-written files
            remove_temp_files(trash_path(clip.uid, clip.path))
            if clip.status == "trashing":
                move_clip_files(clip.path, trash_path(clip.uid, clip.path))
                self._set_status(clip.id, "trashed")
                done.append(f"clip {clip.id}: finished its interrupted move to the trash")
            elif clip.status == "restoring":
                move_clip_files(trash_path(clip.uid, clip.path), clip.path)
                self._set_status(clip.id, "ready")
                done.append(f"clip {clip.id}: finished its interrupted restore from the trash")
            elif audio_info(clip.path) is not None:
                write_sidecar(clip.path, clip.metadata(self.parent_uid(clip)))
                self._set_status(clip.id, "ready")
                done.append(f"clip {clip.id}: kept, its file was complete when its writer stopped")
            else:
                remove_clip_files(clip.path)
                self._delete_row(clip.id)
                done.append(f"clip {clip.id}: removed, its writer stopped before the file was complete")
        return done

    def abandoned(self) -> list[Clip]:
        """Clips left mid-write or mid-move by a process that is gone: what `recover` repairs."""
        rows = self._query("SELECT * FROM clips WHERE status IN ('pending', 'trashing', 'restoring')", ())
        return [_clip_from_row(row) for row in rows if not self._writer_may_still_run(row)]

    def _writer_may_still_run(self, row: sqlite3.Row) -> bool:
        # A live pid may be a reused one: a write or move older than STALE_WRITE_SECONDS is abandoned.
        if writer_is_alive(row["writer"]) is False:
            return False
        return time.time() - row["status_changed_at"] < STALE_WRITE_SECONDS

    # Rows (used by integrity checks too)

    def _insert(
        self,
        info: ClipInfo,
        uid: str,
        path: Path,
        status: str,
        duration_seconds: float,
        sample_rate: int,
        channels: int,
        created_at: float,
        key: str | None,
    ) -> int:
        if info.parent_id is not None:
            self.get(info.parent_id)
        if not 0 <= info.rating <= MAX_RATING:
            raise LibraryError(f"a rating must be 0-{MAX_RATING} stars, got {info.rating}")
        values = {
            "uid": uid,
            "status": status,
            "writer": writer_token() if status == "pending" else None,
            "status_changed_at": time.time(),
            "path": str(path),
            "name": info.name.strip(),
            "prompt": info.prompt,
            "model": info.model,
            "seed": info.seed,
            "params": json.dumps(info.params, default=_json_default),
            "parent_id": info.parent_id,
            "bpm": info.bpm,
            "signature": info.signature,
            "bars": info.bars,
            "musical_key": key,
            "duration_seconds": duration_seconds,
            "sample_rate": sample_rate,
            "channels": channels,
            "created_at": created_at,
            "rating": info.rating,
            "kept": int(info.kept),
            "tags": " ".join(normalize_tags(info.tags)),
        }
        columns = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        try:
            return self._execute(f"INSERT INTO clips ({columns}) VALUES ({marks})", tuple(values.values())).lastrowid
        except sqlite3.IntegrityError as error:
            raise LibraryError(f"cannot record {path.name}: {error}") from None

    def _set_status(self, clip_id: int, status: str, writer: str | None = None) -> None:
        self._execute(
            "UPDATE clips SET status = ?, writer = ?, status_changed_at = ? WHERE id = ?",
            (status, writer, time.time(), clip_id),
        )

    def _set_path(self, clip_id: int, path: Path) -> None:
        self._execute("UPDATE clips SET path = ? WHERE id = ?", (str(path), clip_id))

    def _delete_row(self, clip_id: int) -> None:
        self._execute("DELETE FROM clips WHERE id = ?", (clip_id,))

    def parent_uid(self, clip: Clip) -> str | None:
        """The uid of the clip `clip` continues (uids, unlike ids, stay valid across libraries)."""
        if clip.parent_id is None:
            return None
        row = self._query_one("SELECT uid FROM clips WHERE id = ?", (clip.parent_id,))
        return row[0] if row else None

    def _all_rows(self) -> list[Clip]:
        return [_clip_from_row(row) for row in self._query("SELECT * FROM clips ORDER BY id", ())]

    def _where(self, query: ClipQuery) -> tuple[str, tuple]:
        clauses = ["status = ?"]
        args: list[object] = ["trashed" if query.in_trash else VISIBLE]
        words = query.text.split()
        if words and self.full_text:
            clauses.append("id IN (SELECT rowid FROM clips_fts WHERE clips_fts MATCH ?)")
            args.append(" ".join('"' + word.replace('"', '""') + '"*' for word in words))
        for word in words if not self.full_text else ():
            clauses.append("(name || ' ' || prompt || ' ' || tags) LIKE ? ESCAPE '\\'")
            args.append(f"%{_like_escape(word)}%")
        if query.model:
            clauses.append("model = ?")
            args.append(query.model)
        if query.bpm_min is not None:
            clauses.append("bpm >= ?")
            args.append(query.bpm_min)
        if query.bpm_max is not None:
            clauses.append("bpm <= ?")
            args.append(query.bpm_max)
        if query.kept_only:
            clauses.append("kept = 1")
        if query.tag:
            clauses.append("(' ' || tags || ' ') LIKE ? ESCAPE '\\'")
            args.append(f"% {_like_escape('-'.join(normalize_tags([query.tag])))} %")
        return " AND ".join(clauses), tuple(args)

    def _query(self, sql: str, args: Iterable) -> list[sqlite3.Row]:
        with self._lock:
            return self._connection.execute(sql, tuple(args)).fetchall()

    def _query_one(self, sql: str, args: Iterable) -> sqlite3.Row | None:
        with self._lock:
            return self._connection.execute(sql, tuple(args)).fetchone()

    def _execute(self, sql: str, args: Iterable) -> sqlite3.Cursor:
        with self._lock, schema.transaction(self._connection) as connection:
            return connection.execute(sql, tuple(args))


def key_of(audio: np.ndarray, sample_rate: int) -> str | None:
    """The clip's key ("A minor") when the estimate is confident, else None."""
    estimate = estimate_key(audio, sample_rate)
    return str(estimate) if estimate is not None and estimate.confidence >= KEY_CONFIDENCE else None


def _clip_from_row(row: sqlite3.Row) -> Clip:
    return Clip(
        id=row["id"],
        uid=row["uid"],
        status=row["status"],
        path=Path(row["path"]),
        name=row["name"],
        prompt=row["prompt"],
        model=row["model"],
        seed=row["seed"],
        params=json.loads(row["params"]),
        parent_id=row["parent_id"],
        bpm=row["bpm"],
        signature=row["signature"],
        bars=row["bars"],
        key=row["musical_key"],
        duration_seconds=row["duration_seconds"],
        sample_rate=row["sample_rate"],
        channels=row["channels"],
        created_at=row["created_at"],
        rating=row["rating"],
        kept=bool(row["kept"]),
        tags=tuple(row["tags"].split()),
    )


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _json_default(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__} in clip parameters")
