"""Where Segue keeps its files: platform folders, each overridable by an environment variable.

Tests and portable installs point these elsewhere with SEGUE_CONFIG_DIR, SEGUE_DATA_DIR,
SEGUE_CACHE_DIR, SEGUE_OUTPUT_DIR, SEGUE_MODELS_DIR and SEGUE_EXPORT_DIR. The output, model and export folders can also be
chosen in the settings (the panel's Settings dialog); an environment variable still wins, so tests
and scripts stay in control. Every process (CLI, panel, engine worker, `segue serve`) reads the
same settings file, so they all agree.
"""

import os
from collections.abc import Callable
from pathlib import Path

import platformdirs

APP_NAME = "Segue"


def _dir(env_var: str, default: Callable[[], str]) -> Path:
    path = Path(os.environ.get(env_var) or default()).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Settings and user presets."""
    return _dir("SEGUE_CONFIG_DIR", lambda: platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """The clip library database."""
    return _dir("SEGUE_DATA_DIR", lambda: platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Logs and other rebuildable files."""
    return _dir("SEGUE_CACHE_DIR", lambda: platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def output_dir() -> Path:
    """Generated clips. The OSC control API never writes anywhere else."""
    return _dir(
        "SEGUE_OUTPUT_DIR",
        lambda: _chosen_folder("output_dir") or str(Path(platformdirs.user_music_dir()) / APP_NAME),
    )


def export_dir() -> Path:
    """Where a clip the DAW could not take is copied for the producer to drag in (added to Live's
    Places or REAPER's Media Explorer once). Not created until a clip goes there."""
    chosen = os.environ.get("SEGUE_EXPORT_DIR") or _chosen_folder("export_dir")
    return Path(chosen).expanduser() if chosen else output_dir() / "DAW export"


def models_dir() -> Path:
    """Models Segue downloaded (`hub/`) or built locally (the `tiny` test models)."""
    return _dir("SEGUE_MODELS_DIR", lambda: _chosen_folder("models_dir") or str(cache_dir() / "models"))


def _chosen_folder(name: str) -> str | None:
    # Imported here: the settings module itself needs config_dir().
    from bridge.errors import SegueError
    from bridge.settings import load_settings

    try:
        return getattr(load_settings().folders, name)
    except SegueError:
        return None  # a broken settings file is reported where settings are read and edited
