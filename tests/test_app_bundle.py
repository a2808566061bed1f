"""The desktop app bundle (packaging/build-app): the bundled `segue generate` and the panel start.

Opt-in: building the bundle with PyInstaller (torch included) takes minutes (see README, "Desktop
app"), more than the suite's time budget. Run it with SEGUE_TEST_APP_BUNDLE=1.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT_SECONDS = 3600
RUN_TIMEOUT_SECONDS = 600


def bundle_env(tmp_path: Path, cache: Path) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(SEGUE_CONFIG_DIR=str(tmp_path / "config"), SEGUE_DATA_DIR=str(tmp_path / "data"),
               SEGUE_CACHE_DIR=str(cache), SEGUE_OUTPUT_DIR=str(tmp_path / "clips"), HF_HUB_OFFLINE="1",
               QT_QPA_PLATFORM="offscreen")
    return env


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("SEGUE_TEST_APP_BUNDLE"),
                    reason="builds the PyInstaller app (minutes); set SEGUE_TEST_APP_BUNDLE=1 to run")
def test_the_bundled_app_generates_a_clip_and_opens_the_panel(tmp_path, segue_cache_dir):
    dist = tmp_path / "dist"
    build = subprocess.run(
        [str(ROOT / "packaging" / "build-app"), str(dist)], capture_output=True, text=True,
        timeout=BUILD_TIMEOUT_SECONDS,
        env={**os.environ, "PYTHON": sys.executable, "SEGUE_BUILD_WORK": str(tmp_path / "work")},
    )
    assert build.returncode == 0, build.stderr[-4000:]
    app = dist / "Segue" / "Segue"
    desktop = (dist / "Segue" / "segue.desktop").read_text()
    assert f'Exec="{app}"' in desktop and "Categories=AudioVideo;Audio;Music;" in desktop

    env = bundle_env(tmp_path, segue_cache_dir)
    done = subprocess.run([str(app), "generate", "dusty drums", "--model", "tiny", "--seconds", "1", "--seed", "3"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=RUN_TIMEOUT_SECONDS)
    assert done.returncode == 0, done.stderr[-4000:]
    assert Path(done.stdout.split()[-1]).is_file()

    screenshot = tmp_path / "panel.png"
    panel = subprocess.run([str(app), "--panel-screenshot", str(screenshot)], capture_output=True, text=True,
                           env=env, cwd=tmp_path, timeout=RUN_TIMEOUT_SECONDS)
    assert panel.returncode == 0, panel.stderr[-4000:]
    assert screenshot.stat().st_size > 10_000
