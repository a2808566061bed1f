"""Temporary folders laid out like real Live and REAPER installations, and an AbletonOSC-shaped zip.

Layouts, from the DAWs' documentation:
- Live's User Library (Ableton, "The User Library", help.ableton.com/hc/en-us/articles/209774085):
  `~/Music/Ableton/User Library` on macOS, `\\Users\\<you>\\Documents\\Ableton\\User Library` on
  Windows, with its default folders (Presets, Samples, Clips, Templates, Defaults); Remote Scripts
  is created by the producer (AbletonOSC README, "Installation"). Linux: the Windows layout in a Wine
  prefix.
- REAPER's resource path (REAPER User Guide, "The REAPER resource path"): `%APPDATA%\\REAPER`,
  `~/Library/Application Support/REAPER`, `~/.config/REAPER`, holding reaper.ini, reaper-kb.ini,
  Scripts/, OSC/ (with Default.ReaperOSC), Effects/, ...; a portable install keeps the same files
  beside reaper.exe.

The AbletonOSC zip is shaped like GitHub's archive of the pinned commit (one top folder
`AbletonOSC-<commit>/`, the package's `__init__.py`, `abletonosc/*.py`) but holds no AbletonOSC code:
the two files Segue's patch touches are built from the patch's own context lines.
"""

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from bridge.setup.abletonosc import PINNED_COMMIT, tree_sha256

# A producer's own keymap: a shortcut, their own script, a custom action; CRLF as REAPER writes on Windows.
USER_KEYMAP = (
    b'KEY 1 32 40044 0\r\n'
    b'SCR 4 0 RS7d3c0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f "Custom: my glue script" "my_glue.lua"\r\n'
    b'ACT 0 0 "a1b2c3" "Custom: nudge twice" 40084 40084\r\n'
)
REAPER_INI = b"[REAPER]\r\nlastproject=\r\nuse_reascript=1\r\n"


def reaper_resource_dir(home: Path, system: str) -> Path:
    """An installed REAPER's resource folder under `home` for `system` (see the module docstring)."""
    folder = {
        "linux": home / ".config" / "REAPER",
        "macos": home / "Library" / "Application Support" / "REAPER",
        "windows": home / "AppData" / "Roaming" / "REAPER",
    }[system]
    for sub in ("Scripts", "Effects", "OSC", "ColorThemes", "UserPlugins", "KeyMaps"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    (folder / "reaper.ini").write_bytes(REAPER_INI)
    (folder / "reaper-kb.ini").write_bytes(USER_KEYMAP)
    (folder / "OSC" / "Default.ReaperOSC").write_bytes(b"# Default.ReaperOSC\nDEVICE_TRACK_COUNT 8\n")
    return folder


def user_library(home: Path, system: str) -> Path:
    folder = {
        "macos": home / "Music" / "Ableton" / "User Library",
        "windows": home / "Documents" / "Ableton" / "User Library",
        "linux": home / ".wine" / "drive_c" / "users" / home.name / "Documents" / "Ableton" / "User Library",
    }[system]
    for sub in ("Presets", "Samples", "Clips", "Templates", "Defaults"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    return folder


def abletonosc_files() -> dict[str, bytes]:
    """The files of the fake AbletonOSC: the patch's 'before' side, padded to its line numbers."""
    patch = (Path(__file__).resolve().parent.parent / "bridge/daw/companions/ableton"
             / "abletonosc-create-audio-clip.patch").read_text()
    files = {"__init__.py": b"from .manager import Manager\n", "abletonosc/__init__.py": b"\n",
             "README.md": b"# AbletonOSC (test stand-in)\n"}
    path = None
    for line in patch.splitlines():
        if line.startswith("+++ b/"):
            path = line[6:]
            files[path] = b""
        elif line.startswith("@@"):
            start = int(line.split()[1].lstrip("-").split(",")[0])
            files[path] += b"# line\n" * (start - 1 - files[path].count(b"\n"))
        elif path and line[:1] in (" ", "-"):
            files[path] += line[1:].encode() + b"\n"
    return files


def abletonosc_zip(files: dict[str, bytes] | None = None) -> bytes:
    files = abletonosc_files() if files is None else files
    buffer = io.BytesIO()
    top = f"AbletonOSC-{PINNED_COMMIT}/"
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(top, b"")
        for name, content in sorted(files.items()):
            archive.writestr(top + name, content)
    return buffer.getvalue()


def abletonosc_sha256() -> str:
    return tree_sha256(abletonosc_files())


def run_segue_unprivileged(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run `segue argv` so that file permissions apply: as an ordinary user when we are root.

    Root ignores a folder's read-only mode, so a test of "a read-only folder" would prove nothing.
    The child imports everything (a dry run as root: Python's own files may be under a folder only
    root can read), then gives up root for user 'nobody' and runs the command for real.
    """
    # Only the setup command's parser (the full one imports the engine: 20 s on a busy machine);
    # errors end as bridge.cli.main ends them.
    code = (
        "import argparse, contextlib, io, os, sys\n"
        "from bridge.cli import EXIT_USER_ERROR, setup\n"
        "from bridge.errors import SegueError\n"
        "parser = argparse.ArgumentParser(prog='segue')\n"
        "setup.register(parser.add_subparsers(dest='command', required=True))\n"
        "def main(argv):\n"
        "    args = parser.parse_args(argv)\n"
        "    try:\n"
        "        return args.handler(args)\n"
        "    except SegueError as error:\n"
        "        print(f'segue: error: {error}', file=sys.stderr)\n"
        "        return EXIT_USER_ERROR\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "    main(sys.argv[1:] + ['--dry-run'])\n"
        "if os.geteuid() == 0:\n"
        "    os.setgroups([]); os.setgid(65534); os.setuid(65534)\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *argv], env={**os.environ, **env}, capture_output=True, text=True,
        timeout=120, cwd=Path(__file__).resolve().parent.parent,
    )


def folder_snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None) under `root`, to compare before and after."""
    return {
        path.relative_to(root).as_posix(): (path.read_bytes() if path.is_file() else None)
        for path in sorted(root.rglob("*"))
    }
