"""Shared fixtures: every test gets its own Segue folders, so nothing touches the user's files."""

import pytest


@pytest.fixture(autouse=True)
def segue_dirs(tmp_path, monkeypatch):
    """Point SEGUE_CONFIG_DIR / DATA / CACHE / OUTPUT at fresh folders under tmp_path."""
    dirs = {}
    for name in ("config", "data", "cache", "output"):
        path = tmp_path / f"segue-{name}"
        monkeypatch.setenv(f"SEGUE_{name.upper()}_DIR", str(path))
        dirs[name] = path
    return dirs
