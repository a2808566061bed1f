"""`segue generate --loop` with Stable Audio Open as a producer runs it, and its refusal to continue audio:
one line, exit 2, nothing written."""

import pytest
import soundfile

from bridge.musical_time import TimeSignature, bars_to_samples
from tests.test_cli import segue

MODEL = "tiny-stable-audio-open"


@pytest.mark.slow
def test_generate_loop_is_exactly_its_bars_and_says_which_precision_ran(tmp_path):
    """`segue vary` is the same command for every Stable Audio model (tests/test_cli_stable_audio.py); that an
    Open variation keeps its clip's length is the engine's test (tests/test_engine_stable_audio_open.py)."""
    loop_path = tmp_path / "loop.wav"
    done = segue("generate", "tech house drum loop", "--model", MODEL, "--bars", "1", "--bpm", "128", "--loop",
                 "--seed", "3", "-o", str(loop_path))
    assert done.returncode == 0, done.stderr
    loop, rate = soundfile.read(loop_path, dtype="float32")
    assert rate == 44100 and loop.shape == (bars_to_samples(1, 128.0, TimeSignature(4, 4), rate), 2)
    assert "quality fast (fp32, kernel: bf16 not faithful for this model)" in done.stderr, done.stderr


def test_continue_with_stable_audio_open_is_one_line_exit_2_nothing_written(tmp_path, write_tone):
    clip = write_tone("clip.wav", 2.0, 44100, 2)
    before = clip.read_bytes()
    out = tmp_path / "out"
    done = segue("continue", str(clip), "more", "--model", MODEL, "--seconds", "1", "--out-dir", str(out))
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("segue: error: ") and "cannot continue audio" in last and "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())
    assert clip.read_bytes() == before
