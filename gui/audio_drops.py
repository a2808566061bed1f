"""Which drops the main window takes: audio files from outside Segue (a drag from the results list is not one)."""

from pathlib import Path

import soundfile
from PyQt6.QtGui import QDropEvent

AUDIO_SUFFIXES = frozenset(f".{kind.lower()}" for kind in soundfile.available_formats()) | {".aif", ".oga"}


def is_audio_file(path: Path) -> bool:
    return path.suffix.lower() in AUDIO_SUFFIXES and path.is_file()


def dropped_audio(event: QDropEvent) -> list[Path]:
    """The local audio files an outside drag carries (none for Segue's own drags)."""
    if event.source() is not None:
        return []
    mime = event.mimeData()
    if not mime.hasUrls():
        return []
    paths = [Path(url.toLocalFile()) for url in mime.urls() if url.isLocalFile()]
    return [path for path in paths if is_audio_file(path)]
