"""Segue's settings: one versioned JSON file in config_dir(), shared by the CLI, the panel and the server.

Each part of Segue owns one section, a dataclass registered in SECTIONS. The file records the
version it was written with; an older file is brought up to date by the UPGRADES steps, in order, so
an old config never breaks a new release. Keys this build does not know (a newer release's, or a
section another part adds) are kept and written back untouched.
"""

import json
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from bridge.audio.io import write_text_atomic
from bridge.errors import SettingsError
from bridge.paths import config_dir

SETTINGS_VERSION = 1
SETTINGS_FILE_NAME = "settings.json"

# UPGRADES[n] turns a version-n file (as a dict) into version n+1.
UPGRADES: dict[int, Callable[[dict], dict]] = {}


@dataclass
class AudioSettings:
    # Device labels ("<name>, <host API>", as `segue devices` lists them); None means the system default.
    input_device: str | None = None
    output_device: str | None = None
    # Measured round trips in frames of the input device, keyed by calibration.round_trip_key().
    round_trip_frames: dict[str, int] = field(default_factory=dict)


@dataclass
class DawSettings:
    """The DAW to follow and its OSC ports (defaults: AbletonOSC's port, REAPER's usual ones).

    AbletonOSC always replies to 11001, so there is no reply port to choose (an older file's
    `ableton_reply_port` is kept unread).
    """

    daw: str = "none"  # "ableton", "reaper" or "none"
    ableton_port: int = 11000
    reaper_port: int = 8000
    reaper_listen_port: int = 9000


@dataclass
class FolderSettings:
    """Folders the producer chose; None: the platform default. Environment variables still win (paths.py)."""

    output_dir: str | None = None
    models_dir: str | None = None
    export_dir: str | None = None  # clips the DAW could not take (None: "DAW export" in the output folder)


@dataclass
class PanelSettings:
    """What the control panel remembers between runs."""

    prompt_history: list[str] = field(default_factory=list)
    model: str | None = None
    quality: str = "auto"
    length_unit: str = "bars"
    variations: int = 2


@dataclass
class EngineSettings:
    """Where generation runs: "local" (this computer) or "remote" (`segue engine serve` at `remote_url`).

    The remote's token is not kept here: bridge.engine.remote.token_store keeps it in the OS keyring,
    or in a file only the user can read.
    """

    kind: str = "local"
    remote_url: str | None = None


SECTIONS: dict[str, type] = {
    "audio": AudioSettings,
    "daw": DawSettings,
    "folders": FolderSettings,
    "panel": PanelSettings,
    "engine": EngineSettings,
}


@dataclass
class Settings:
    audio: AudioSettings = field(default_factory=AudioSettings)
    daw: DawSettings = field(default_factory=DawSettings)
    folders: FolderSettings = field(default_factory=FolderSettings)
    panel: PanelSettings = field(default_factory=PanelSettings)
    engine: EngineSettings = field(default_factory=EngineSettings)
    # The file as read, so that unknown keys survive a save.
    raw: dict = field(default_factory=dict, repr=False)


def settings_path() -> Path:
    return config_dir() / SETTINGS_FILE_NAME


def load_settings(path: Path | None = None) -> Settings:
    """Read the settings file; a missing file gives the defaults. Raises SettingsError naming the file."""
    path = path or settings_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings()
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SettingsError(f"cannot read settings file {path}: {error}; fix or delete it") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("version", 0), int):
        raise SettingsError(f"settings file {path} is not a Segue settings object; fix or delete it")
    raw = _upgrade(raw)
    sections = {name: _load_section(path, name, cls, raw.get(name, {})) for name, cls in SECTIONS.items()}
    return Settings(**sections, raw=raw)


def save_settings(settings: Settings, path: Path | None = None) -> Path:
    """Write atomically: a crash mid-save leaves the previous file intact."""
    raw = dict(settings.raw)
    # A file from a newer release keeps its version: its own upgrades must not run twice.
    raw["version"] = max(SETTINGS_VERSION, int(raw.get("version", 0)))
    for name in SECTIONS:
        raw[name] = {**raw.get(name, {}), **asdict(getattr(settings, name))}
    return write_text_atomic(path or settings_path(), json.dumps(raw, indent=2, sort_keys=True) + "\n")


def update_settings(change: Callable[[Settings], None], path: Path | None = None) -> Settings:
    """Load, apply `change` to the settings in place, save, and return them."""
    settings = load_settings(path)
    change(settings)
    save_settings(settings, path)
    return settings


def _upgrade(raw: dict) -> dict:
    version = raw.get("version", 0)
    while version < SETTINGS_VERSION:
        raw = UPGRADES[version](raw) if version in UPGRADES else raw
        version += 1
        raw["version"] = version
    return raw


def _load_section(path: Path, name: str, cls: type, values: object):
    if not isinstance(values, dict):
        raise SettingsError(f"settings file {path}: '{name}' must be an object; fix or delete it")
    known = {}
    hints = typing.get_type_hints(cls)
    for item in fields(cls):
        if item.name not in values:
            continue
        value = values[item.name]
        if not _is_instance(value, hints[item.name]):
            raise SettingsError(
                f"settings file {path}: '{name}.{item.name}' has the wrong kind of value {value!r}; "
                "fix or delete it"
            )
        known[item.name] = value
    return cls(**known)


def _is_instance(value: object, hint: object) -> bool:
    """isinstance for the simple hints settings use: str | None, dict[str, int], list[str], float, ..."""
    if isinstance(hint, types.UnionType):
        return any(_is_instance(value, option) for option in typing.get_args(hint))
    if hint is type(None):
        return value is None
    origin = typing.get_origin(hint)
    if origin is list:
        (item_hint,) = typing.get_args(hint)
        return isinstance(value, list) and all(_is_instance(item, item_hint) for item in value)
    if origin is dict:
        key_hint, value_hint = typing.get_args(hint)
        return isinstance(value, dict) and all(
            _is_instance(k, key_hint) and _is_instance(v, value_hint) for k, v in value.items()
        )
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)
