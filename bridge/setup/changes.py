"""File changes in a DAW's folders, applied all-or-nothing and undone exactly by an uninstall.

A `Plan` says what the files under one root (Live's Remote Scripts folder, REAPER's resource folder)
should hold. `apply` writes only what differs (a second run changes nothing), after checking that
every folder it will write into is writable (a read-only folder fails before anything is touched)
and after backing up every file it replaces or removes. If a write still fails half-way, the files
already written are put back, so the DAW never sees half an install.

What was installed is remembered in a state file in Segue's data folder (one per DAW folder), with
the backups beside it. The backup of a file is taken the first time Segue changes it and kept
through upgrades, so `uninstall` restores what the producer had before Segue, even when a newer
Segue has since installed different files. A file Segue only appended lines to (`reaper-kb.ini`,
which REAPER itself rewrites) is uninstalled by taking out exactly those lines: entries the
producer added in the meantime stay, byte for byte.
"""

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bridge.atomic_files import replacing
from bridge.errors import SegueError
from bridge.paths import data_dir

STATE_VERSION = 1


class SetupError(SegueError):
    """A DAW folder cannot be found, read or written, or a download failed its check."""


@dataclass(frozen=True)
class FileChange:
    """`relative_path` (POSIX, under the plan's root) should hold `content`; None removes it.

    `added_lines` marks an edit of a file the producer (or the DAW) owns: uninstall removes just
    these lines from whatever the file holds then, instead of restoring the backup.
    """

    relative_path: str
    content: bytes | None
    added_lines: tuple[bytes, ...] = ()


@dataclass
class Plan:
    daw: str
    root: Path
    changes: list[FileChange]


@dataclass(frozen=True)
class Step:
    """One file operation, as `--dry-run` prints it: 'create', 'replace', 'remove' or 'restore'."""

    action: str
    relative_path: str

    def __str__(self) -> str:
        return f"{self.action:8} {self.relative_path}"


@dataclass
class _Installed:
    """The state file's entry for one file: its backup (None: it did not exist) and added lines."""

    backup: str | None
    added_lines: list[str] = field(default_factory=list)


def state_folder(daw: str, root: Path) -> Path:
    """Where the state and backups for `root` live: Segue's data folder, never the DAW's."""
    digest = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:12]
    return data_dir() / "setup" / f"{daw}-{digest}"


def pending_steps(plan: Plan) -> list[Step]:
    """What `apply` would do, in order; empty when everything is already in place."""
    return [step for step, _ in _install_writes(plan, _load_state(plan.daw, plan.root)[0])]


def apply(plan: Plan) -> list[Step]:
    """Bring the files under `plan.root` to the plan; return the steps taken (none if current)."""
    state, created_folders = _load_state(plan.daw, plan.root)
    writes = _install_writes(plan, state)
    if not writes:
        return []
    _check_writable(plan.root, [step.relative_path for step, _ in writes])
    folder = state_folder(plan.daw, plan.root)
    created_folders |= _missing_folders(plan.root, [step.relative_path for step, _ in writes])
    try:
        _record(plan, state, created_folders, writes)
    except OSError as error:
        raise SetupError(f"cannot keep backups in {folder} ({error.strerror}); nothing was changed") from None
    _write_all(plan.root, [(step.relative_path, content) for step, content in writes])
    if not state:
        shutil.rmtree(folder, ignore_errors=True)
    return [step for step, _ in writes]


def _record(plan: Plan, state: dict[str, "_Installed"], created_folders: set[str], writes: list) -> None:
    """Back up what is about to change (first time only) and save the state, before any write."""
    folder = state_folder(plan.daw, plan.root)
    for step, _ in writes:
        path = plan.root / step.relative_path
        if step.relative_path not in state:
            backup = None
            if path.exists():
                backup = f"backups/{step.relative_path}"
                _write_bytes(folder / backup, path.read_bytes())
            change = next((c for c in plan.changes if c.relative_path == step.relative_path), None)
            lines = [line.decode("utf-8") for line in change.added_lines] if change else []
            state[step.relative_path] = _Installed(backup=backup, added_lines=lines)
    for change in plan.changes:  # an upgrade may add lines: uninstall takes out every line Segue ever added
        if change.added_lines and change.relative_path in state:
            installed = state[change.relative_path]
            new = [line.decode("utf-8") for line in change.added_lines]
            installed.added_lines = list(dict.fromkeys(installed.added_lines + new))
    wanted = {change.relative_path for change in plan.changes}
    for step, _ in writes:
        if step.relative_path not in wanted:  # an older Segue's file, put back as it was
            del state[step.relative_path]
    # Saved before the writes: a crash then leaves it describing more than was done, never less.
    _save_state(plan.daw, plan.root, state, created_folders)


def uninstall_steps(daw: str, root: Path) -> list[Step]:
    return [step for step, _ in _uninstall_writes(root, _load_state(daw, root)[0], state_folder(daw, root))]


def uninstall(daw: str, root: Path) -> list[Step]:
    """Put every file Segue changed under `root` back as it was; return the steps taken."""
    folder = state_folder(daw, root)
    state, created_folders = _load_state(daw, root)
    writes = _uninstall_writes(root, state, folder)
    _check_writable(root, [step.relative_path for step, _ in writes])
    _write_all(root, [(step.relative_path, content) for step, content in writes])
    _remove_empty_folders(root, created_folders)
    shutil.rmtree(folder, ignore_errors=True)
    return [step for step, _ in writes]


def is_installed(daw: str, root: Path) -> bool:
    return bool(_load_state(daw, root)[0])


def _install_writes(plan: Plan, state: dict[str, _Installed]) -> list[tuple[Step, bytes | None]]:
    writes: list[tuple[Step, bytes | None]] = []
    wanted = {change.relative_path for change in plan.changes}
    for change in plan.changes:
        current = _read(plan.root / change.relative_path)
        if current == change.content:
            continue
        action = "remove" if change.content is None else "create" if current is None else "replace"
        writes.append((Step(action, change.relative_path), change.content))
    folder = state_folder(plan.daw, plan.root)
    for relative_path, installed in state.items():  # installed by an older Segue, no longer part of it
        if relative_path not in wanted:
            content = _read(folder / installed.backup) if installed.backup else None
            writes.append((Step("restore" if content is not None else "remove", relative_path), content))
    return writes


def _uninstall_writes(root: Path, state: dict[str, _Installed], folder: Path) -> list[tuple[Step, bytes | None]]:
    writes: list[tuple[Step, bytes | None]] = []
    for relative_path, installed in sorted(state.items()):
        current = _read(root / relative_path)
        if installed.added_lines and current is not None:
            content = _without_lines(current, [line.encode("utf-8") for line in installed.added_lines])
            backup = _read(folder / installed.backup) if installed.backup else None
            if backup is None and not content.strip():
                content = None
            elif backup is not None and content in (backup + b"\n", backup + b"\r\n"):
                content = backup  # the line ending Segue added after the producer's last line goes too
        elif installed.backup is not None:
            content = _read(folder / installed.backup)
        else:
            content = None
        if content != current:
            action = "remove" if content is None else "restore"
            writes.append((Step(action, relative_path), content))
    return writes


def _without_lines(content: bytes, lines: list[bytes]) -> bytes:
    kept = [line for line in content.splitlines(keepends=True) if line.rstrip(b"\r\n") not in lines]
    return b"".join(kept)


def _check_writable(root: Path, relative_paths: list[str]) -> None:
    """Fail before any change when a folder (or file) that will be written is not writable."""
    folders = sorted({_existing_ancestor((root / path).parent) for path in relative_paths})
    for folder in folders:
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as error:
            raise SetupError(
                f"cannot write into {folder} ({error.strerror or error}); nothing was changed. "
                "Give your user write access to it, or quit the program that locks it, and run again"
            ) from None
    for path in relative_paths:
        target = root / path
        if target.exists() and not os.access(target, os.W_OK):
            raise SetupError(f"{target} is read-only; nothing was changed. Make it writable and run again")


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    if not path.is_dir():
        raise SetupError(f"{path} is a file where a folder is needed; nothing was changed")
    return path


def _write_all(root: Path, writes: list[tuple[str, bytes | None]]) -> None:
    """Write or remove each file; if one fails, put back the ones already done, then raise."""
    done: list[tuple[Path, bytes | None]] = []
    try:
        for relative_path, content in writes:
            path = root / relative_path
            previous = _read(path)
            if content is None:
                path.unlink(missing_ok=True)
            else:
                _write_bytes(path, content)
            done.append((path, previous))
    except OSError as error:
        for path, previous in reversed(done):
            if previous is None:
                path.unlink(missing_ok=True)
            else:
                _write_bytes(path, previous)
        raise SetupError(f"cannot write {error.filename} ({error.strerror}); the files were put back") from None


def _missing_folders(root: Path, relative_paths: list[str]) -> set[str]:
    """The folders (relative to `root`) that writing these files will create."""
    missing = set()
    for relative_path in relative_paths:
        folder = (root / relative_path).parent
        while not folder.exists() and (folder == root or root in folder.parents):
            missing.add(folder.relative_to(root).as_posix())  # "." when the root itself is new
            folder = folder.parent
    return missing


def _remove_empty_folders(root: Path, relative_folders: set[str]) -> None:
    """Remove the folders Segue created, deepest first, if nothing else was put in them."""
    for relative in sorted(relative_folders, key=lambda name: len(Path(name).parts), reverse=True):
        folder = root / relative
        # Python caches the DAW wrote beside Segue's scripts (Live compiles Remote Scripts) go with them.
        shutil.rmtree(folder / "__pycache__", ignore_errors=True)
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SetupError(f"cannot read {path} ({error.strerror})") from None


def _write_bytes(path: Path, content: bytes) -> None:
    # A replaced file keeps its permissions; a new one gets the usual ones (the temporary file is 0600).
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask()
    with replacing(path, suffix=".segue-part") as temporary:
        temporary.write_bytes(content)
        os.chmod(temporary, mode)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _load_state(daw: str, root: Path) -> tuple[dict[str, _Installed], set[str]]:
    """The files Segue installed under `root`, and the folders it created there."""
    path = state_folder(daw, root) / "state.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, set()
    except (OSError, ValueError) as error:
        raise SetupError(f"Segue's record of what it installed ({path}) is unreadable: {error}") from None
    files = {
        name: _Installed(backup=entry.get("backup"), added_lines=list(entry.get("added_lines", [])))
        for name, entry in data.get("files", {}).items()
    }
    return files, set(data.get("created_folders", []))


def _save_state(daw: str, root: Path, state: dict[str, _Installed], created_folders: set[str]) -> None:
    path = state_folder(daw, root) / "state.json"
    files = {name: {"backup": e.backup, "added_lines": e.added_lines} for name, e in sorted(state.items())}
    record = {"version": STATE_VERSION, "daw": daw, "root": str(root), "files": files}
    record["created_folders"] = sorted(created_folders)
    text = json.dumps(record, indent=1)
    _write_bytes(path, text.encode("utf-8"))
