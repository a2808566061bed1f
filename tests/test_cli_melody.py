"""`segue generate --melody FILE`, as a producer runs it: a clip that follows the file, or one clear line."""

import json
from pathlib import Path

import numpy as np
import soundfile

from tests.test_cli import segue


def write_melody(path: Path, frequency_hz: float = 293.66, seconds: float = 3.0, rate: int = 44100) -> Path:
    t = np.arange(round(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency_hz * t), rate)
    return path


def test_generate_follows_a_melody_file_on_a_melody_model(tmp_path):
    melody = write_melody(tmp_path / "chords.wav")
    out = tmp_path / "clips"
    done = segue(
        "generate", "warm strings", "--model", "tiny-melody", "--melody", str(melody), "--bars", "1", "--bpm", "240",
        "--seed", "3", "--out-dir", str(out),
    )
    assert done.returncode == 0, done.stderr
    path = Path(done.stdout.split()[0])
    audio, rate = soundfile.read(path)
    assert audio.shape == (32000,)  # one bar at 240 BPM
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["parameters"]["melody_path"] == str(melody.resolve())


def test_a_corrupt_melody_file_ends_with_exit_2_and_one_line(tmp_path):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    done = segue("generate", "x", "--model", "tiny-melody", "--melody", str(broken), "--seconds", "1")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("segue: error: melody: cannot read broken.wav as audio")
    assert "Traceback" not in done.stderr


def test_a_melody_with_a_model_that_takes_none_ends_with_exit_2_and_one_line(tmp_path):
    melody = write_melody(tmp_path / "lead.wav")
    done = segue("generate", "x", "--model", "tiny", "--melody", str(melody), "--seconds", "1")
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last == "segue: error: tiny does not follow a melody: choose a melody model (e.g. facebook/musicgen-melody)"
    assert "Traceback" not in done.stderr
