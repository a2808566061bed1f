"""`segue generate --melody FILE`, as a producer runs it: a clip that follows the file, or one clear line."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.cli import main
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


@pytest.mark.slow
def test_continue_track_continues_a_file_and_follows_a_melody_together(tmp_path, capsys):
    rate, bpm = 44100, 240.0
    source = write_melody(tmp_path / "loop.wav", frequency_hz=220.0, seconds=2.0, rate=rate)  # 2 bars at 240 BPM
    melody = write_melody(tmp_path / "chords.wav", frequency_hz=392.0, seconds=1.0, rate=rate)
    code = main([
        "continue-track", "strings", "--source", str(source), "--bpm", str(bpm), "--source-bars", "2",
        "--bars", "1", "--takes", "1", "--daw", "none", "--model", "tiny-melody", "--device", "cpu",
        "--seed", "2", "--melody", str(melody),
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    take_path = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("take 1: /"))
    assert soundfile.info(take_path).frames == rate  # one bar at 240 BPM, at the source's rate


def test_continue_track_refuses_a_melody_for_a_model_that_takes_none(tmp_path, capsys):
    melody = write_melody(tmp_path / "chords.wav")
    assert main(["continue-track", "--model", "tiny", "--melody", str(melody), "--daw", "none"]) == 2
    assert "tiny does not follow a melody" in capsys.readouterr().err
