"""`segue setup ableton`: AbletonOSC, patched for clip placement, as a Remote Script in Live.

The installed folder is `<Remote Scripts>/AbletonOSC` (Live lists a Remote Script under its folder
name, which is the name the producer picks in Preferences). A folder of that name that was there
before Segue is backed up file by file; files in it that the pinned AbletonOSC does not have are
removed (an older AbletonOSC's leftover module could shadow a new one) and come back on uninstall.
"""

from pathlib import Path

from bridge.setup.abletonosc import load_zip, patched
from bridge.setup.changes import FileChange, Plan, SetupError
from bridge.setup.processes import running_program_names

DAW = "ableton"
SCRIPT_FOLDER = "AbletonOSC"


def build_plan(remote_scripts_dir: Path, zip_path: Path | None, expected_tree_sha256: str) -> Plan:
    files = patched(load_zip(zip_path, expected_tree_sha256))
    changes = [FileChange(f"{SCRIPT_FOLDER}/{name}", content) for name, content in sorted(files.items())]
    installed = remote_scripts_dir / SCRIPT_FOLDER
    if installed.is_file():
        raise SetupError(f"{installed} is a file, not a folder; move it away and run again")
    if installed.is_dir():
        for path in sorted(installed.rglob("*")):
            relative = path.relative_to(installed).as_posix()
            if path.is_file() and relative not in files and "__pycache__" not in path.parts:
                changes.append(FileChange(f"{SCRIPT_FOLDER}/{relative}", None))
    return Plan(daw=DAW, root=remote_scripts_dir, changes=changes)


def live_is_running() -> bool:
    # Live's process is "Live" on macOS and "Ableton Live 12 Suite.exe" (edition varies) on Windows.
    return any(name == "Live" or name.lower().startswith("ableton live") for name in running_program_names())


def step_left(live_running: bool) -> str:
    restart = "Restart Live (it loads Remote Scripts when it starts), then" if live_running else "Start Live, then"
    return (
        f"One step left, in Live: {restart} Preferences > Link, Tempo & MIDI > Control Surface: "
        f"{SCRIPT_FOLDER} (Input: None, Output: None). Live's status bar shows "
        "\"AbletonOSC: Listening for OSC on port 11000\". Then run: segue doctor"
    )
