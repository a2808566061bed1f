"""AudioGen from the command line and on its way into a session: 16 kHz takes, exact bars, any export rate."""

import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.cli import main
from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
from bridge.engine.musicgen.generator import MusicGenerator, plan_windows
from bridge.engine.musicgen.loading import load_model
from bridge.engine.request import GenerationRequest
from bridge.library import ClipLibrary
from bridge.library.export import export_clip
from bridge.musical_time import TimeSignature
from bridge.workflow.fit import fit_take
from tests.test_cli import segue


def test_cli_generates_sound_in_bars_at_16khz(tmp_path):
    out = tmp_path / "clips"
    done = segue("generate", "glass shatter", "--model", "tiny-audiogen", "--bars", "2", "--bpm", "120",
                 "--seed", "7", "--out-dir", str(out))
    assert done.returncode == 0, done.stderr
    (path,) = [Path(line) for line in done.stdout.split()]
    audio, rate = soundfile.read(path)
    assert rate == 16000 and audio.shape == (64000,)  # 2 bars of 4/4 at 120 BPM = 4 s
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar["model"] == "tiny-audiogen" and sidecar["parameters"]["bars"] == 2


def test_models_lists_audiogen_as_supported_with_licence_and_uses(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    line = next(row for row in listing.splitlines() if row.startswith("facebook/audiogen-medium"))
    assert "CC-BY-NC 4.0" in line and "risers" in line and "foley" in line and "not supported" not in line
    assert "tiny-audiogen" in listing


def test_audiogen_not_yet_downloaded_says_how_to_get_it():
    from bridge.engine.musicgen.loading import resolve_checkpoint
    from bridge.errors import ModelError

    with pytest.raises(ModelError, match="segue models download facebook/audiogen-medium"):
        resolve_checkpoint("facebook/audiogen-medium")


@pytest.fixture(scope="module")
def sound_take(segue_cache_dir):
    generator = MusicGenerator(load_model("tiny-audiogen", "cpu"))
    request = GenerationRequest(prompt="whoosh", model="tiny-audiogen", bars=1, bpm=150, signature="3/4", seed=2)
    return generator.generate(request)


def test_a_16khz_take_exports_and_fits_at_the_sessions_rate(sound_take, tmp_path):
    assert sound_take.sample_rate == 16000
    take = sound_take.takes[0]
    assert take.audio.shape == (19200, 1)  # 1 bar of 3/4 at 150 BPM = 1.2 s
    with ClipLibrary() as library:
        clip = library.add_take(sound_take, take, out_dir=tmp_path)
        assert soundfile.info(clip.path).samplerate == 16000  # kept at the model's rate
        exported = export_clip(library, clip.id, sample_rate=48000, destination=tmp_path / "at-48k.wav")
    audio, rate = soundfile.read(exported, always_2d=True)
    assert rate == 48000 and audio.shape[0] == 57600  # the same 1.2 s, to the sample
    spectrum = np.abs(np.fft.rfft(audio[:, 0]))
    frequencies = np.fft.rfftfreq(audio.shape[0], 1 / 48000)
    assert spectrum[frequencies > 8500].max() < 1e-2 * spectrum.max()  # nothing above 16 kHz's Nyquist
    # Continue my track: a take is fitted to the source's (the DAW's) rate and channels, exact to the bar.
    source = np.random.default_rng(0).normal(0, 0.1, (44100 * 2, 2)).astype(np.float32)
    fitted, _ = fit_take(take.audio, 16000, source, 44100, bars=1, bpm=150, signature=TimeSignature(3, 4))
    assert fitted.shape == (52920, 2)


def test_audiogen_windows_are_10_s_with_8_s_of_context():
    loaded = load_model("tiny-audiogen", "cpu")
    assert (loaded.windows.seconds, loaded.windows.context_seconds) == (10.0, 8.0)
    # 14 s of new sound: 10 s, then 2 s at a time, each seeing the 8 s before it (audiocraft's AudioGen
    # extends by extend_stride = 2 s the same way).
    assert plan_windows(0, 700, 50, 10.0, 8.0) == [(0, 500), (400, 100), (400, 100)]


@pytest.mark.slow  # a `segue serve` process with its engine
def test_osc_generate_bars_with_audiogen_follows_lives_tempo():
    import re
    import signal
    import subprocess
    import sys

    from bridge import paths
    from tests.fake_ableton import FakeLive, FakeSong
    from tests.osc_client import OscTestClient
    from tests.test_cli_serve import REPO, free_udp_port
    from tests.waiting import wait_until

    client, live_reply_port = OscTestClient(0), free_udp_port()
    with FakeLive(reply_port=live_reply_port, song=FakeSong(tempo=180.0)) as live:
        process = subprocess.Popen(
            [sys.executable, "-m", "bridge.cli", "serve", "--daw", "ableton", "--model", "tiny-audiogen",
             "--device", "cpu", "--osc-port", "0", "--reply-port", str(client.port), "--ableton-port",
             str(live.port)],
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            # AbletonOSC always replies to 11001; parallel test runs each need a port of their own.
            env={**os.environ, TEST_REPLY_PORT_VARIABLE: str(live_reply_port)},
        )
        try:
            match = re.search(r"OSC control on 127\.0\.0\.1:(\d+)", process.stdout.readline())
            assert match, process.stderr.read()
            client.server = ("127.0.0.1", int(match.group(1)))

            def tempo_known():
                client.send("/segue/status")
                args, _ = client.receive_until("/segue/status", 5)
                return args[1] == 1 and args[2] == 180.0 and args[3] and args[4]  # tempo and signature

            wait_until(tempo_known, 30, "Live's tempo and time signature")
            client.send("/segue/generate_bars", "door slam", 2)  # 2 bars of 4/4 at 180 BPM: 8/3 s
            (job, path), _ = client.receive_until("/segue/clip", 120)
            assert Path(path).parent == paths.output_dir().resolve()
            info = soundfile.info(path)
            assert info.samplerate == 16000 and info.frames == round(8 / 3 * 16000)
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=30)
            client.close()
    assert process.returncode == 0
