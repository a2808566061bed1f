"""`segue setup reaper`: the companion scripts, their command ids and the OSC pattern config.

What goes where in REAPER's resource folder (packaging/reaper/INSTALL.md is the manual version):
    Scripts/Segue/*.lua    the four scripts
    OSC/Segue.ReaperOSC    the OSC pattern config
    reaper-kb.ini          three `SCR ...` lines registering the scripts under Segue's command ids;
                           the producer's own lines are kept byte for byte (and their line endings)

The OSC control surface itself is NOT written into reaper.ini. REAPER does not document that line;
the only description is a comment in the SWS extension's source (`LoadOscCSurfs`:
`csurf_0=OSC "name" 3 8000 "192.168.1.76" 9109 1024 10 "osc layout"` with `csurf_cnt`), and its
third field is a bit mask of dialog options whose meaning nobody documents (3 and 5 both appear in
the wild). A wrong guess there is a surface that silently does not send. So Segue prints the four
fields to enter in Preferences instead, and `segue doctor` reads reaper.ini to see if it was done.

REAPER rewrites reaper.ini and reaper-kb.ini when it quits, dropping edits made while it ran, so
setup refuses to run while REAPER does.
"""

import shlex
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bridge.daw.reaper import FEEDBACK_PORT, REAPER_PORT
from bridge.setup.changes import FileChange, Plan, SetupError
from bridge.setup.processes import is_running

DAW = "reaper"
PATTERN_CONFIG = "Segue"
KEYMAP = "reaper-kb.ini"
REAPER_PROGRAM_NAMES = {"reaper", "reaper.exe", "REAPER"}


def companion_files() -> dict[str, bytes]:
    """The files shipped in bridge/daw/companions/reaper, by name (read from the installed package)."""
    folder = resources.files("bridge.daw") / "companions" / "reaper"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


def build_plan(resource_dir: Path) -> Plan:
    files = companion_files()
    changes = [
        FileChange(f"Scripts/Segue/{name}", content)
        for name, content in sorted(files.items())
        if name.endswith(".lua")
    ]
    changes.append(FileChange(f"OSC/{PATTERN_CONFIG}.ReaperOSC", files[f"{PATTERN_CONFIG}.ReaperOSC"]))
    segue_lines = tuple(line for line in files[KEYMAP].splitlines() if line.strip())
    current = _read_or_none(resource_dir / KEYMAP)
    changes.append(FileChange(KEYMAP, merge_keymap(current, segue_lines), added_lines=segue_lines))
    return Plan(daw=DAW, root=resource_dir, changes=changes)


def merge_keymap(current: bytes | None, segue_lines: tuple[bytes, ...]) -> bytes:
    """`current` with Segue's `SCR` lines: an existing line for the same command id is replaced in
    place, a missing one appended; every other byte stays as it was (CRLF files stay CRLF)."""
    if current is None:
        return b"".join(line + b"\n" for line in segue_lines)
    newline = b"\r\n" if b"\r\n" in current else b"\n"
    by_id = {_command_id(line): line for line in segue_lines}
    lines = current.splitlines(keepends=True)
    placed = set()
    for index, line in enumerate(lines):
        command_id = _command_id(line.rstrip(b"\r\n"))
        if command_id in by_id:
            ending = line[len(line.rstrip(b"\r\n")):]
            lines[index] = by_id[command_id] + ending
            placed.add(command_id)
    merged = b"".join(lines)
    missing = [line for line in segue_lines if _command_id(line) not in placed]
    if missing and merged and not merged.endswith(b"\n"):
        merged += newline
    return merged + b"".join(line + newline for line in missing)


def _command_id(line: bytes) -> bytes | None:
    # reaper-kb.ini script lines: SCR <flags> <section> <command id> "<description>" "<path>"
    fields = line.split(maxsplit=4)
    if len(fields) >= 4 and fields[0] == b"SCR":
        return fields[3]
    return None


def refuse_while_running() -> None:
    if is_running(REAPER_PROGRAM_NAMES):
        raise SetupError(
            "REAPER is running: quit it first (it rewrites reaper-kb.ini when it quits, which would undo "
            "the script registration), then run this again"
        )


@dataclass(frozen=True)
class OscSurface:
    """One OSC control surface line of reaper.ini, in the SWS extension's reading of its fields."""

    name: str
    listen_port: int
    device_ip: str
    device_port: int
    pattern_config: str


def osc_surfaces(resource_dir: Path) -> list[OscSurface]:
    """The OSC control surfaces in `reaper.ini` (read only; unreadable lines are skipped)."""
    try:
        text = (resource_dir / "reaper.ini").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    surfaces = []
    for line in text.splitlines():
        key, _, value = line.partition("=")
        if not key.strip().lower().startswith("csurf_") or key.strip().lower() == "csurf_cnt":
            continue
        try:
            fields = shlex.split(value)
            if len(fields) >= 9 and fields[0].upper() == "OSC":
                surfaces.append(OscSurface(fields[1], int(fields[3]), fields[4], int(fields[5]), fields[8]))
        except ValueError:
            continue
    return surfaces


def segue_surface_configured(resource_dir: Path) -> bool:
    return any(
        surface.pattern_config.lower().removesuffix(".reaperosc") == PATTERN_CONFIG.lower()
        and surface.listen_port == REAPER_PORT
        and surface.device_port == FEEDBACK_PORT
        for surface in osc_surfaces(resource_dir)
    )


def step_left(resource_dir: Path) -> str:
    """The one thing the producer does in REAPER itself, with the exact values."""
    if segue_surface_configured(resource_dir):
        return "Start REAPER: the Segue OSC control surface is already set up. Then run: segue doctor"
    return (
        "One step left, in REAPER: Options > Preferences > Control/OSC/web > Add > OSC (Open Sound Control); "
        f"Mode: Configure device IP + local port; Device IP: 127.0.0.1; Device port: {FEEDBACK_PORT}; "
        f"Local listen port: {REAPER_PORT}; Pattern config: {PATTERN_CONFIG}. "
        "(Segue does not write this into reaper.ini: REAPER does not document that line.)"
    )


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
