"""Where Segue keeps its files: platform folders, each overridable by an environment variable.

Tests and portable installs point these elsewhere with SEGUE_CONFIG_DIR, SEGUE_DATA_DIR,
SEGUE_CACHE_DIR and SEGUE_OUTPUT_DIR.
"""

import os
from pathlib import Path

import platformdirs

APP_NAME = "Segue"


def _dir(env_var: str, default: str) -> Path:
    path = Path(os.environ.get(env_var) or default).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def config_dir() -> Path:
    """Settings and user presets."""
    return _dir("SEGUE_CONFIG_DIR", platformdirs.user_config_dir(APP_NAME, appauthor=False))


def data_dir() -> Path:
    """The clip library database."""
    return _dir("SEGUE_DATA_DIR", platformdirs.user_data_dir(APP_NAME, appauthor=False))


def cache_dir() -> Path:
    """Locally built models (the `tiny` model) and other rebuildable files."""
    return _dir("SEGUE_CACHE_DIR", platformdirs.user_cache_dir(APP_NAME, appauthor=False))


def output_dir() -> Path:
    """Generated clips. The OSC control API never writes anywhere else."""
    return _dir("SEGUE_OUTPUT_DIR", str(Path(platformdirs.user_music_dir()) / APP_NAME))
