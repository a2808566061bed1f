"""What the library knows about one clip, and what a caller gives it to record one."""

import datetime
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bridge.library.files import trash_path

MAX_RATING = 5


@dataclass
class ClipInfo:
    """Everything about a new clip except its audio. `key=None` means: estimate it from the audio."""

    prompt: str = ""
    model: str = ""
    seed: int | None = None
    # Every generation parameter, JSON-ready (GenerationRequest.describe() plus take details).
    params: dict = field(default_factory=dict)
    # The library clip this one continues (its chain), if any.
    parent_id: int | None = None
    bpm: float | None = None
    signature: str | None = None
    bars: float | None = None
    key: str | None = None
    name: str = ""
    tags: Sequence[str] = ()
    rating: int = 0
    kept: bool = False
    created_at: float | None = None


@dataclass(frozen=True)
class Clip:
    id: int
    uid: str
    status: str
    # Where the WAV lives while the clip is not in the trash (see `file_path`).
    path: Path
    name: str
    prompt: str
    model: str
    seed: int | None
    params: dict
    parent_id: int | None
    bpm: float | None
    signature: str | None
    bars: float | None
    key: str | None
    duration_seconds: float
    sample_rate: int
    channels: int
    # Seconds since the epoch (UTC).
    created_at: float
    rating: int
    kept: bool
    tags: tuple[str, ...]

    @property
    def file_path(self) -> Path:
        """Where the WAV is now: its own folder, or the Segue trash."""
        return trash_path(self.uid, self.path) if self.status in ("trashing", "trashed") else self.path

    @property
    def title(self) -> str:
        return self.name or self.prompt or self.path.stem

    @property
    def created(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(self.created_at, tz=datetime.UTC)

    def metadata(self, parent_uid: str | None = None) -> dict:
        """JSON-ready description for sidecars and exports (ids are per-library, so uids link clips)."""
        return {
            "uid": self.uid,
            "name": self.name,
            "prompt": self.prompt,
            "model": self.model,
            "seed": self.seed,
            "parameters": self.params,
            "parent_uid": parent_uid,
            "bpm": self.bpm,
            "signature": self.signature,
            "bars": self.bars,
            "key": self.key,
            "duration_seconds": self.duration_seconds,
            "sample_rate": self.sample_rate,
            "channels": self.channels,
            "created_at": self.created.isoformat(),
            "rating": self.rating,
            "kept": self.kept,
            "tags": list(self.tags),
        }


def normalize_tags(tags: Sequence[str] | str) -> tuple[str, ...]:
    """Lower-case words joined by hyphens ("Late Night" -> "late-night"), no duplicates, order kept."""
    if isinstance(tags, str):
        tags = tags.split(",")
    cleaned = (re.sub(r"[\s,]+", "-", tag.strip().lower()).strip("-") for tag in tags)
    return tuple(dict.fromkeys(tag for tag in cleaned if tag))


def clip_file_name(created_at: float, title: str, uid: str) -> str:
    """'20260122-141502-lo-fi-hip-hop-drums-3f2a9c1d.wav': sortable, readable, unique."""
    stamp = datetime.datetime.fromtimestamp(created_at).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-") or "clip"
    return f"{stamp}-{slug}-{uid[:8]}.wav"
