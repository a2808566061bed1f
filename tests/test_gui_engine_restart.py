"""The panel's engine process dies mid-job (a crash, the OOM killer): the panel says so and goes on."""

import subprocess
import sys
from pathlib import Path

import pytest

from bridge.engine.request import GenerationRequest
from bridge.library import ClipLibrary
from gui.clip_store import ClipStore
from gui.engine_controller import EngineController
from tests.process_tree import kill

ROOT = Path(__file__).resolve().parents[1]
JOB_TIMEOUT_MS = 300_000  # a guard against a hang: loading under heavy load takes a minute


@pytest.mark.slow
def test_a_killed_engine_fails_the_job_with_the_reason_and_the_next_generate_starts_a_new_one(qtbot):
    with ClipLibrary() as library:
        engine = EngineController(store=ClipStore(library), device="cpu")
        try:
            request = GenerationRequest(prompt="strings", model="tiny", seconds=60.0, variations=2, seed=3)
            with qtbot.waitSignal(engine.progress, timeout=JOB_TIMEOUT_MS):
                job = engine.submit(request)
            states = []
            engine.state_changed.connect(states.append)
            with qtbot.waitSignal(engine.job_failed, timeout=5_000) as failed:
                kill(engine._client._process.pid)
            assert failed.args[0] == job and "engine process stopped unexpectedly (killed by" in failed.args[1]
            qtbot.waitUntil(lambda: engine.state == "idle", timeout=5_000)
            assert not engine.busy and engine.loaded_model is None and states[-1] == "idle"

            with qtbot.waitSignal(engine.clips_ready, timeout=JOB_TIMEOUT_MS) as ready:
                engine.submit(GenerationRequest(prompt="strings", model="tiny", seconds=1.0, seed=3))
            assert Path(ready.args[1][0].path).exists()
            assert engine.loaded_model == "tiny" and engine.state == "ready"
        finally:
            engine.close()


def test_the_panels_main_module_loads_neither_qt_nor_torch():
    # Spawn imports the parent's main module again in the engine process (`segue-gui`, `python -m gui.app`)
    # before the engine's code runs: Qt and the panel would cost it seconds and memory, and a torch
    # imported there would start OpenMP before the engine could choose its settings.
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, gui.app; print(sorted(m for m in ('PyQt6', 'torch', 'transformers')"
         " if m in sys.modules))"], capture_output=True, text=True, timeout=60, cwd=ROOT, check=True).stdout
    assert loaded.strip() == "[]"
