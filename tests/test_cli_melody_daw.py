"""`segue continue-track --melody capture|render|FILE`: the melody from the DAW, taken as `--source` takes
its bars, through the real CLI against a fake REAPER (OSC surface and render script over UDP) with the
`tiny-melody` model; and one clear line (exit 2) when it cannot be done.
"""

import shutil

import numpy as np
import pytest
import soundfile

from bridge.cli import main
from bridge.daw.reaper_jobs import default_exchange_dir
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.settings import update_settings
from bridge.workflow import ContinueMyTrack, ContinueOptions
from bridge.workflow.melody_source import following
from tests.fake_reaper import FakeProject, FakeReaper
from tests.test_cli_melody import write_melody
from tests.test_cli_serve import free_udp_port

BPM, SIGNATURE = 150.0, TimeSignature(3, 4)  # a bar: 1.2 s
RATE = 44100


@pytest.fixture
def reaper():
    project = FakeProject(tempo=BPM, signature=(3, 4))
    project.cursor_seconds = 4.5 * 1.2  # the playhead in bar 5: REAPER renders bar 4
    with FakeReaper(project=project) as fake:
        fake.device_port = free_udp_port()

        def choose(settings) -> None:
            settings.daw.daw, settings.daw.reaper_port, settings.daw.reaper_listen_port = "reaper", fake.port, fake.device_port

        update_settings(choose)
        yield fake


def continue_track(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["continue-track", "strings", "--bars", "1", "--takes", "1", "--source-bars", "1",
                 "--model", "tiny-melody", "--device", "cpu", "--seed", "5", *args])
    out, err = capsys.readouterr()
    return code, out, err


def take_of(out: str) -> np.ndarray:
    path = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("take 1: /"))
    return soundfile.read(path, dtype="float32")[0]


@pytest.mark.slow
def test_a_file_continues_following_the_bar_reaper_renders(reaper, workflow_engine, tmp_path, capsys):
    loop = write_melody(tmp_path / "loop.wav", frequency_hz=293.66, seconds=2.4, rate=RATE)  # 2 bars of D
    file_source = ("--source", str(loop), "--bpm", str(BPM), "--signature", "3/4", "--daw", "reaper")

    code, out, err = continue_track(capsys, *file_source, "--melody", "render")

    assert code == 0, err
    assert "source: 1 bar of loop.wav (150 BPM, 3/4)" in out
    assert "melody: 1 bar rendered by REAPER, ending at bar 5 (150 BPM, 3/4)" in out
    followed_render = take_of(out)
    assert followed_render.shape[0] == bars_to_samples(1, BPM, SIGNATURE, RATE)

    # The same take as the rendered bar given as a melody file (through the shared engine): the render was the melody.
    [rendered] = (default_exchange_dir() / "renders").glob("*.wav")
    with ClipLibrary() as library:
        session = ContinueMyTrack(workflow_engine, library=library)
        workflow_engine.listeners.append(session.on_engine_event)
        options = ContinueOptions(prompt="strings", bars=1, takes=1, model="tiny-melody", seed=5)
        source = session.source_from_file(loop, 1, BPM, SIGNATURE)
        expected = session.continue_source(source, following(options, shutil.copy(rendered, tmp_path)))
        without_melody = session.continue_source(source, options)
    np.testing.assert_array_equal(followed_render, soundfile.read(expected.takes[0].path, dtype="float32")[0])
    assert np.abs(followed_render - soundfile.read(without_melody.takes[0].path, dtype="float32")[0]).max() > 0.05


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--model", "tiny", "--melody", "capture"), "tiny does not follow a melody: choose a melody model"),
        (("--melody", "/no/such/chords.wav"), "melody: no audio file at /no/such/chords.wav"),
        (("--melody", "BROKEN"), "melody: cannot read broken.wav as audio"),
        (("--melody", "render"), "only REAPER renders audio for Segue; no DAW is linked"),
    ],
)
def test_a_melody_that_cannot_be_had_ends_with_exit_2_and_one_line(tmp_path, capsys, args, message):
    loop = write_melody(tmp_path / "loop.wav", seconds=2.4, rate=RATE)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    args = [str(broken) if arg == "BROKEN" else arg for arg in args]
    code, out, err = continue_track(capsys, "--source", str(loop), "--bpm", str(BPM), "--daw", "none", *args)
    assert code == 2
    assert err.strip().splitlines()[-1].startswith(f"segue: error: {message}"), err
    assert "take 1" not in out
