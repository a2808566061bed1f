"""The built wheel works outside the repository: presets and DAW companions are package data.

The wheel is built from a copy of the tracked files (`pip wheel --no-deps`), installed into a fresh
venv in a temporary folder, and run from there with no PYTHONPATH. The fresh venv borrows torch,
transformers and the rest from the running environment through a .pth file (a venv made with
--system-site-packages would see the base interpreter's packages, not this venv's); .pth files in
that borrowed folder are not run, so the repository's own editable install stays out of sight.
"""

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.daw_installs import reaper_resource_dir

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_SECONDS = 600


def run(command: list, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, env=env, cwd=cwd,
                            timeout=TIMEOUT_SECONDS)
    assert result.returncode == 0, f"{command}: {result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


@pytest.fixture(scope="module")
def installed_venv(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    tracked = run(["git", "ls-files", "-z"], cwd=ROOT).stdout.split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work / "dist", source])
    wheel = next((work / "dist").glob("segue-*.whl"))
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for needed in ("bridge/daw/companions/ableton/abletonosc-create-audio-clip.patch",
                   "bridge/daw/companions/reaper/reaper-kb.ini", "bridge/presets_builtin/lofi-hip-hop-drums.toml"):
        assert needed in names, f"{needed} is not in the wheel"
    venv = work / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    site = Path(run([venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "borrowed-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: the borrowed folder holds the repository's own editable segue, which pip would
    # otherwise count as "already satisfied" and skip the wheel (it is never uninstalled: outside the venv).
    run([venv / "bin/python", "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", wheel])
    return venv


def segue_env(tmp_path: Path, cache: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(SEGUE_CONFIG_DIR=str(tmp_path / "config"), SEGUE_DATA_DIR=str(tmp_path / "data"),
               SEGUE_CACHE_DIR=str(cache), SEGUE_OUTPUT_DIR=str(tmp_path / "clips"), HF_HUB_OFFLINE="1")
    return env


@pytest.mark.slow
def test_the_installed_wheel_generates_from_a_preset_and_plans_a_reaper_setup(installed_venv, tmp_path,
                                                                           segue_cache_dir):
    env = segue_env(tmp_path, segue_cache_dir)
    segue = installed_venv / "bin/segue"
    where = run([installed_venv / "bin/python", "-c", "import bridge, gui; print(bridge.__file__)"],
                env=env, cwd=tmp_path).stdout
    assert where.startswith(str(installed_venv)), where  # the wheel's copy, not the repository's

    assert "lofi-hip-hop-drums" in run([segue, "presets"], env=env, cwd=tmp_path).stdout
    done = run([segue, "generate", "--preset", "lofi-hip-hop-drums", "--model", "tiny", "--bars", "1",
                "--seed", "1"], env=env, cwd=tmp_path)
    clip = Path(done.stdout.split()[-1])
    assert clip.is_file() and clip.parent == tmp_path / "clips"

    resource = reaper_resource_dir(tmp_path / "home", "linux")
    plan = run([segue, "setup", "reaper", "--dry-run", "--resource-dir", resource], env=env, cwd=tmp_path).stdout
    assert "create   Scripts/Segue/Segue_insert_clip.lua" in plan and "create   OSC/Segue.ReaperOSC" in plan
    assert not (resource / "Scripts/Segue").exists()
