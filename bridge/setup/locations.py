"""Where the DAWs keep the folders Segue installs into, on macOS, Windows and Linux.

Ableton Live: third-party Remote Scripts go into `Remote Scripts/` inside the User Library
(AbletonOSC's README, "Installation", after Ableton's "Installing third-party remote scripts"). The
User Library's default place is Ableton's article "The User Library"
(https://help.ableton.com/hc/en-us/articles/209774085):
    Windows  \\Users\\<you>\\Documents\\Ableton\\User Library
    macOS    /Users/<you>/Music/Ableton/User Library
Live has no Linux version; under Wine it uses the Windows layout inside the Wine prefix
(`~/.wine/drive_c/users/<you>/Documents/...`). A producer who moved the User Library (Preferences >
Library) passes `--remote-scripts-dir`.

REAPER: the resource path (Options > Show REAPER resource path; REAPER User Guide, "The REAPER
resource path"): `%APPDATA%\\REAPER` on Windows, `~/Library/Application Support/REAPER` on macOS,
`~/.config/REAPER` on Linux. A portable install keeps `reaper.ini` and everything else beside the
program itself; `--resource-dir` names that folder. It is recognised by its `reaper.ini`.
"""

import os
import sys
from pathlib import Path

from bridge.setup.changes import SetupError

REMOTE_SCRIPTS = "Remote Scripts"


def current_system() -> str:
    """'macos', 'windows' or 'linux' (any other Unix is treated as Linux)."""
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith("win"):
        return "windows"
    return "linux"


def user_library_candidates(system: str, home: Path, environ: dict[str, str] | None = None) -> list[Path]:
    """Live's default User Library folders on `system`, most likely first."""
    environ = os.environ if environ is None else environ
    if system == "macos":
        return [home / "Music" / "Ableton" / "User Library"]
    if system == "windows":
        profile = Path(environ.get("USERPROFILE") or home)
        return [profile / "Documents" / "Ableton" / "User Library"]
    wine_prefix = Path(environ.get("WINEPREFIX") or home / ".wine")
    user = environ.get("USER") or home.name
    return [wine_prefix / "drive_c" / "users" / user / "Documents" / "Ableton" / "User Library"]


def reaper_resource_candidates(system: str, home: Path, environ: dict[str, str] | None = None) -> list[Path]:
    """REAPER's default resource folders on `system`, most likely first."""
    environ = os.environ if environ is None else environ
    if system == "macos":
        return [home / "Library" / "Application Support" / "REAPER"]
    if system == "windows":
        return [Path(environ.get("APPDATA") or home / "AppData" / "Roaming") / "REAPER"]
    config_home = Path(environ.get("XDG_CONFIG_HOME") or home / ".config")
    return [config_home / "REAPER"]


def find_remote_scripts_dir(
    override: str | Path | None = None, system: str | None = None, home: Path | None = None
) -> Path:
    """Live's Remote Scripts folder (created inside an existing User Library when missing)."""
    if override is not None:
        path = Path(override).expanduser()
        if not path.is_dir() and not path.parent.is_dir():
            raise SetupError(f"--remote-scripts-dir {path}: neither it nor its parent folder exists")
        return path
    system = system or current_system()
    candidates = user_library_candidates(system, home or Path.home())
    for library in candidates:
        if library.is_dir():
            return library / REMOTE_SCRIPTS
    raise SetupError(
        f"Live's User Library was not found (looked in {', '.join(str(c) for c in candidates)}); "
        "start Live once, or pass --remote-scripts-dir '<your User Library>/Remote Scripts' "
        "(Live: Preferences > Library shows where it is)"
    )


def find_reaper_resource_dir(
    override: str | Path | None = None, system: str | None = None, home: Path | None = None
) -> Path:
    """REAPER's resource folder: the one holding `reaper.ini`."""
    if override is not None:
        path = Path(override).expanduser()
        if not (path / "reaper.ini").is_file():
            raise SetupError(
                f"--resource-dir {path}: no reaper.ini there; in REAPER, Options > Show REAPER resource path "
                "opens the right folder (for a portable install, the folder REAPER runs from)"
            )
        return path
    system = system or current_system()
    candidates = reaper_resource_candidates(system, home or Path.home())
    for folder in candidates:
        if (folder / "reaper.ini").is_file():
            return folder
    raise SetupError(
        f"REAPER's resource folder was not found (no reaper.ini in {', '.join(str(c) for c in candidates)}); "
        "start REAPER once and quit it, or pass --resource-dir (Options > Show REAPER resource path; "
        "for a portable install, the folder REAPER runs from)"
    )
