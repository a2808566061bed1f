"""A clip's files on disk: where they go, how they move, and who is writing them.

A clip is a WAV plus a JSON sidecar next to it (same stem). Moves are atomic renames, or, across
file systems, a copy to a temporary name in the destination, fsync, rename, then removal of the
source, so a file is at any moment complete in at least one of the two places.
"""

import contextlib
import errno
import glob
import json
import os
import shutil
import socket
import sys
from pathlib import Path

import soundfile

from bridge.atomic_files import replacing
from bridge.audio.io import write_text_atomic
from bridge.paths import data_dir

SIDECAR_SUFFIX = ".json"
SIDECAR_FORMAT = "segue-clip"


def sidecar_path(wav_path: Path) -> Path:
    return wav_path.with_suffix(SIDECAR_SUFFIX)


def trash_dir() -> Path:
    """Segue's own trash (an OS trash would need another dependency); `empty_trash` clears it."""
    path = data_dir() / "trash"
    path.mkdir(parents=True, exist_ok=True)
    return path


def trash_path(uid: str, original: Path) -> Path:
    """Where a trashed clip's WAV waits: one folder per clip, so names never collide."""
    return trash_dir() / uid / original.name


def write_sidecar(wav_path: Path, metadata: dict) -> Path:
    """Write (atomically) the clip's sidecar, keeping what `bridge.clips.write_take` put there."""
    document = {**(_read_json(sidecar_path(wav_path)) or {}), "format": SIDECAR_FORMAT, "audio_file": wav_path.name}
    document.update(metadata)
    text = json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n"
    return write_text_atomic(sidecar_path(wav_path), text)


def read_sidecar(wav_path: Path) -> dict | None:
    """The sidecar's metadata if it describes a Segue clip (library or `write_take`), else None."""
    document = _read_json(sidecar_path(wav_path))
    if document is None or (document.get("format") != SIDECAR_FORMAT and "segue_version" not in document):
        return None
    return document


def _read_json(path: Path) -> dict | None:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return document if isinstance(document, dict) else None


def audio_info(path: Path) -> soundfile._SoundFileInfo | None:
    """Header of a complete, readable audio file, or None."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        return None
    return info if info.frames > 0 else None


def move_file(source: Path, destination: Path) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, destination)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    with replacing(destination) as temporary:  # another file system: copy, then remove
        shutil.copyfile(source, temporary)
    source.unlink()


def move_clip_files(source_wav: Path, destination_wav: Path) -> None:
    """Move the WAV (if still at `source_wav`), then its sidecar; safe to repeat after a crash."""
    if source_wav.exists():
        move_file(source_wav, destination_wav)
    if sidecar_path(source_wav).exists():
        move_file(sidecar_path(source_wav), sidecar_path(destination_wav))
    _remove_empty_trash_folder(source_wav)


def temp_files_of(wav_path: Path) -> list[Path]:
    """Leftovers of interrupted atomic writes of this clip's WAV or sidecar (`.<stem>.*`)."""
    pattern = os.path.join(glob.escape(str(wav_path.parent)), f".{glob.escape(wav_path.stem)}.*")
    return [Path(name) for name in glob.glob(pattern)]


def is_temp_file(path: Path) -> bool:
    return path.name.startswith(".")


def remove_temp_files(wav_path: Path) -> None:
    for path in temp_files_of(wav_path):
        path.unlink(missing_ok=True)


def remove_clip_files(wav_path: Path) -> None:
    remove_temp_files(wav_path)
    for path in (sidecar_path(wav_path), wav_path):
        path.unlink(missing_ok=True)
    _remove_empty_trash_folder(wav_path)


def _remove_empty_trash_folder(wav_path: Path) -> None:
    if wav_path.parent.parent == trash_dir():
        with contextlib.suppress(OSError):  # not empty: something else is in there, leave it
            wav_path.parent.rmdir()


def writer_token() -> str:
    """Identifies this process as the writer of a pending clip: 'host:pid'."""
    return f"{socket.gethostname()}:{os.getpid()}"


def writer_is_alive(token: str | None) -> bool | None:
    """True/False for a writer on this machine, None when it cannot be told (another host)."""
    host, _, pid_text = (token or "").rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return None
    return _process_alive(int(pid_text))


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if sys.platform == "win32":
        return _windows_process_alive(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _windows_process_alive(pid: int) -> bool:
    # os.kill on Windows would terminate the process; ask the kernel instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32
    process_query_limited_information, still_active = 0x1000, 259
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        return bool(kernel32.GetExitCodeProcess(handle, ctypes.byref(code))) and code.value == still_active
    finally:
        kernel32.CloseHandle(handle)
