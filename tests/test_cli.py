"""`segue` in a subprocess, as a producer runs it: files on disk, sidecars, and clear errors."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.engine.musicgen.quantize import KERNELS

ROOT = Path(__file__).resolve().parents[1]


def segue(*args: str, env_overrides: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_overrides or {})}
    return subprocess.run(
        [sys.executable, "-m", "bridge.cli", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_generate_writes_takes_with_reproducible_sidecars(tmp_path):
    out = tmp_path / "clips"
    done = segue(
        "generate", "dusty lo-fi drums", "--model", "tiny", "--bars", "2", "--bpm", "90",
        "--variations", "2", "--seed", "5", "--out-dir", str(out),
    )
    assert done.returncode == 0, done.stderr
    paths = [Path(line) for line in done.stdout.split()]
    assert len(paths) == 2 and all(path.parent == out for path in paths)
    for index, path in enumerate(paths):
        audio, rate = soundfile.read(path)
        assert rate == 32000 and audio.shape == (round(2 * 4 * 60 / 90 * 32000),)
        sidecar = json.loads(path.with_suffix(".json").read_text())
        assert sidecar["model"] == "tiny" and sidecar["prompt"] == "dusty lo-fi drums"
        assert sidecar["seed"] == 5 + index and sidecar["parameters"]["bars"] == 2
        assert sidecar["parameters"]["bpm"] == 90 and sidecar["parameters"]["top_k"] == 250
        assert (sidecar["quality"], sidecar["precision"]) == ("fast", "int8")  # the default on a CPU
        assert sidecar["kernel"] in KERNELS  # chosen here
    assert not list(out.glob(".*")), "no temporary files are left behind"
    assert f"quality fast (int8, kernel: {sidecar['kernel']})" in done.stderr


def test_continue_includes_the_prompt_when_asked_and_writes_24_bit_at_48k(tmp_path, write_tone):
    source = write_tone("loop.wav", 3.0, 44100, 2)
    target = tmp_path / "next.wav"
    done = segue(
        "continue", str(source), "keep the groove", "--model", "tiny", "--prompt-seconds", "2",
        "--seconds", "1", "--include-prompt", "--sample-rate", "48000", "--bit-depth", "24", "-o", str(target),
        "--quality", "exact",
    )
    assert done.returncode == 0, done.stderr
    assert "quality exact (fp32)" in done.stderr
    info = soundfile.info(target)
    assert (info.samplerate, info.subtype, info.channels) == (48000, "PCM_24", 1)
    assert info.frames == 3 * 48000  # 2 s prompt + 1 s new material
    sidecar = json.loads(target.with_suffix(".json").read_text())
    assert sidecar["source_file"] == str(source) and sidecar["includes_prompt"] is True
    assert (sidecar["quality"], sidecar["precision"], sidecar["parameters"]["quality"]) == ("exact", "fp32", "exact")


def test_models_lists_sizes_licences_and_cache_state():
    done = segue("models")
    assert done.returncode == 0
    assert "facebook/musicgen-small" in done.stdout and "CC-BY-NC 4.0" in done.stdout
    assert "tiny" in done.stdout
    assert "Fast mode's CPU kernel" in done.stdout


def bad_inputs(tmp_path: Path) -> list[tuple[list[str], str, dict]]:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    empty = tmp_path / "empty.wav"
    soundfile.write(empty, np.zeros((0, 2)), 44100)
    return [
        (["continue", str(tmp_path / "missing.wav"), "--model", "tiny"], "no audio file", {}),
        (["continue", str(garbage), "--model", "tiny"], "cannot read garbage.wav", {}),
        (["continue", str(empty), "--model", "tiny"], "zero length", {}),
        (["generate", "x", "--model", "tiny", "--seconds", "0"], "length must be more than 0", {}),
        (["generate", "x", "--model", "tiny", "--bars", "4"], "needs a tempo", {}),
        (["generate", "x", "--model", "tiny", "--bars", "4", "--bpm", "2"], "tempo must be between", {}),
        (["generate", "x", "--model", "./no/such/folder"], "unknown model", {}),
        (["generate", "x", "--seconds", "1"], "no network", {"HF_HUB_OFFLINE": "1"}),
    ]


@pytest.mark.parametrize("case", range(8))
def test_bad_input_ends_with_exit_2_and_one_clear_line(tmp_path, case):
    args, message, env = bad_inputs(tmp_path)[case]
    done = segue(*args, env_overrides=env)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("segue: error: ") and message in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
