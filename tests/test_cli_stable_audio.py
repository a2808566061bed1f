"""`segue generate --loop`, `segue vary` and `segue serve` with a Stable Audio 3 model, as a producer
runs them (subprocesses, files on disk, real UDP), and the refusals: one line, exit 2, nothing written."""

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.cli import engine_choice
from bridge.cli import main as cli_main
from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
from bridge.engine.families import missing_checkpoint
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow.loop import loop_seam_jump
from tests.fake_ableton import FakeLive, FakeSong
from tests.osc_client import OscTestClient
from tests.test_cli import segue
from tests.test_cli_serve import REPO, free_udp_port
from tests.waiting import wait_until

MODEL = "tiny-stable-audio"


@pytest.mark.slow
def test_generate_loop_is_exactly_its_bars_at_44k_stereo_and_loops(tmp_path):
    target = tmp_path / "loop.wav"
    done = segue("generate", "deep house chords", "--model", MODEL, "--bars", "2", "--bpm", "97", "--loop",
                 "--seed", "3", "-o", str(target))
    assert done.returncode == 0, done.stderr
    loop, rate = soundfile.read(target, dtype="float32")
    assert rate == 44100 and loop.shape == (bars_to_samples(2, 97.0, TimeSignature(4, 4), rate), 2)
    # The random model makes clipped noise: the wrap must be no bigger than a step inside the loop
    # (the seam itself is checked on music-like audio in test_workflow_stable_audio).
    assert loop_seam_jump(loop) <= np.max(np.abs(np.diff(loop, axis=0)))
    assert json.loads(target.with_suffix(".json").read_text())["model"] == MODEL


@pytest.mark.slow
def test_vary_restyles_a_clip_into_takes_with_their_seeds_and_sidecars(tmp_path, write_tone):
    """One run (an engine start is most of its time): that a take reproduces from its seed alone is the
    engine's test (tests/test_engine_stable_audio.py)."""
    clip = write_tone("clip.wav", 1.5, 48000, 2)
    both = segue("vary", str(clip), "played on a rhodes", "--model", MODEL, "--strength", "0.4", "--seed", "2",
                 "--variations", "2", "--out-dir", str(tmp_path / "both"))
    assert both.returncode == 0, both.stderr
    paths = [Path(line) for line in both.stdout.split()]
    first, second = (soundfile.read(path, dtype="float32")[0] for path in paths)
    assert first.shape == (round(1.5 * 44100), 2) and not np.allclose(first, second)
    sidecars = [json.loads(path.with_suffix(".json").read_text()) for path in paths]
    assert [sidecar["seed"] for sidecar in sidecars] == [2, 3]
    assert all(sidecar["parameters"]["init_audio_path"] == str(clip) for sidecar in sidecars)
    assert all(sidecar["parameters"]["strength"] == 0.4 for sidecar in sidecars)


def bad_inputs(tmp_path: Path, write_tone) -> list[tuple[list[str], str]]:
    clip = str(write_tone("clip.wav", 3.0, 44100, 2))
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"\x00\x01garbage" * 100)
    open_folder = tmp_path / "stable-audio-open"
    open_folder.mkdir()
    (open_folder / "model_index.json").write_text(json.dumps({"_class_name": "StableAudioPipeline"}))
    return [
        (["generate", "x", "--model", MODEL, "--seconds", "60"], "at most 47 s in one pass"),
        (["continue", clip, "--model", MODEL, "--seconds", "46"], "at most 47 s in one pass (audio prompt included)"),
        (["vary", clip, "x", "--model", "tiny"], "cannot make variations"),
        (["vary", str(garbage), "x", "--model", MODEL], "cannot read garbage.wav"),
        (["vary", clip, "x", "--model", MODEL, "--strength", "0"], "strength must be above 0"),
        (["generate", "x", "--model", "stabilityai/stable-audio-3-small-music"], "is not downloaded"),
        (["generate", "x", "--model", str(open_folder)], "Stable Audio Open"),
    ]


# Cases 1 and 6 are refused by the engine process (it reads the audio, loads the folder); 5 before it starts.
@pytest.mark.parametrize("case", [0, pytest.param(1, marks=pytest.mark.slow), 2, 3, 4, 5,
                                  pytest.param(6, marks=pytest.mark.slow)])
def test_bad_input_ends_with_exit_2_one_line_and_nothing_written(tmp_path, write_tone, case):
    args, message = bad_inputs(tmp_path, write_tone)[case]
    out = tmp_path / "out"
    done = segue(*args, "--out-dir", str(out))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert lines[-1].startswith("segue: error: ") and message in lines[-1], done.stderr
    assert "Traceback" not in done.stderr
    assert not out.exists() or not any(out.iterdir())


def test_a_model_to_download_first_is_refused_before_an_engine_starts(monkeypatch, capsys, write_tone):
    """Stability's models load only once downloaded (SA3 is converted then): generate, vary and serve say
    so in one line at once, instead of after seconds of starting an engine; a remote engine is not asked."""

    def no_engine(*args, **kwargs):
        raise AssertionError("an engine was started for a model that is not downloaded")

    monkeypatch.setattr(engine_choice, "open_engine", no_engine)
    clip = str(write_tone("clip.wav", 1.0, 44100, 2))
    for model in ("stabilityai/stable-audio-3-small-music", "stabilityai/stable-audio-open-1.0"):
        for command in (["generate", "x", "--model", model, "--engine", "local"],
                        ["vary", clip, "x", "--model", model, "--engine", "local"],
                        ["serve", "--model", model, "--engine", "local", "--osc-port", "0"]):
            assert cli_main(command) == 2, command
            error = capsys.readouterr().err.strip()
            assert error.startswith("segue: error: ") and "\n" not in error
            assert f"{model} is not downloaded: " in error and f"segue models download {model}" in error
    assert missing_checkpoint(MODEL) is None and missing_checkpoint("facebook/musicgen-small") is None


@pytest.mark.slow
def test_serve_generates_with_stable_audio_and_refuses_too_long_over_osc():
    reply_client = OscTestClient(0)
    live_reply_port = free_udp_port()
    with FakeLive(reply_port=live_reply_port, song=FakeSong(tempo=240.0)) as live:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--daw", "ableton", "--model", MODEL, "--device", "cpu",
             "--osc-port", "0", "--reply-port", str(reply_client.port), "--ableton-port", str(live.port)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # AbletonOSC always replies to 11001; parallel test runs each need a port of their own.
            env={**os.environ, TEST_REPLY_PORT_VARIABLE: str(live_reply_port)},
        )
        try:
            match = re.search(r"OSC control on 127\.0\.0\.1:(\d+)", process.stdout.readline())
            assert match, process.stderr.read()
            reply_client.server = ("127.0.0.1", int(match.group(1)))

            def tempo_known():
                reply_client.send("/segue/status")
                args, _ = reply_client.receive_until("/segue/status", 5)
                # Tempo and time signature: no length in bars is computed before both are known.
                return args if args[1] == 1 and args[2] == 240.0 and args[3] and args[4] else None

            wait_until(tempo_known, 20, "Live connected")
            reply_client.send("/segue/generate_bars", "four on the floor", 100)  # 100 s at 240 BPM
            (message,), _ = reply_client.receive_until("/segue/error", 30)
            assert "at most 47 s in one pass" in message

            reply_client.send("/segue/generate_bars", "four on the floor", 1)
            (_, path), _ = reply_client.receive_until("/segue/clip", 120)
            info = soundfile.info(path)
            assert (info.samplerate, info.channels, info.frames) == (44100, 2, 44100)  # one bar: 1 s
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
            reply_client.close()
    assert process.returncode == 0
