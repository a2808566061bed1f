"""Continue my track from a controller (OSC, as `segue serve` runs it) and from the command line.

Real parts: the control server on UDP, a fake REAPER rendering and inserting, the engine process
with the tiny model, the clip library.
"""

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bridge.cli import main
from bridge.daw.ableton import TEST_REPLY_PORT_VARIABLE
from bridge.daw.control_server import ControlServer
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.settings import update_settings
from bridge.workflow import ContinueMyTrack
from bridge.workflow.describe import suggest
from tests.fake_ableton import FakeLive
from tests.fake_reaper import FakeProject, FakeReaper
from tests.osc_client import OscTestClient
from tests.test_cli_serve import free_udp_port
from tests.test_daw_reaper import make_link

BPM, SIGNATURE = 150.0, TimeSignature(3, 4)  # a bar: 1.2 s


@pytest.fixture
def reaper():
    project = FakeProject(tempo=BPM, signature=(3, 4))
    project.cursor_seconds = 4.5 * 1.2  # the playhead in bar 5: the source ends on bar line 4 (beat 12)
    with FakeReaper(project=project) as fake:
        yield fake


@pytest.fixture
def controller(reaper, workflow_engine):
    with make_link(reaper) as link, ClipLibrary() as library:
        link.transport.wait_for(lambda s: s.tempo_bpm and s.signature == SIGNATURE and s.position_beats, 10)
        session = ContinueMyTrack(workflow_engine, link=link, library=library)
        server = ControlServer(workflow_engine, link, model="tiny", port=0, reply_port=0, library=library,
                               workflow=session).start()
        workflow_engine.listeners.append(server.on_engine_event)
        client = OscTestClient(server.port)
        server.reply_port = client.port
        yield client
        client.close()
        server.close()
        session.close()


def test_a_controller_continues_places_and_continues_again(reaper, controller):
    client = controller
    assert client.ask("/segue/continue_again", "", 1, 1)[1][0].endswith("place a take first (/segue/place): continue again goes on from it")

    client.send("/segue/continue_bars", "marimba", 2, 1, 2)
    (job, end_beats, bars, description), before = client.receive_until("/segue/source", 60)
    assert (end_beats, bars) == (12.0, 2) and "rendered by REAPER" in description
    assert before == [("/segue/progress", (job, 0.0))]
    busy = client.ask("/segue/continue_bars", "again", 2, 1, 1)
    assert busy[0] == "/segue/error" and f"busy with job {job}" in busy[1][0]
    takes = [client.receive_until("/segue/take", 120)[0] for _ in range(2)]

    bar_frames = bars_to_samples(1, BPM, SIGNATURE, 48000)
    assert [take[:2] for take in takes] == [(job, 1), (job, 2)]
    for _, _, path, _flags in takes:
        assert soundfile.info(path).frames == bar_frames

    client.send("/segue/place", job, 2)
    (placed_job, take, route, position, message), _ = client.receive_until("/segue/placed", 20)
    assert (placed_job, take, route, position) == (job, 2, "reaper-script", 12.0)
    segue_track = reaper.project.tracks[-1]
    assert segue_track.items[-1].file == takes[1][2]
    assert segue_track.items[-1].position_seconds == pytest.approx(12 * 60 / BPM)

    client.send("/segue/continue_again", "", 1, 1)
    (again, end_beats, bars, description), _ = client.receive_until("/segue/source", 60)
    assert again != job and (end_beats, bars) == (15.0, 1) and "placed take" in description
    (_, take, path, _), _ = client.receive_until("/segue/take", 120)
    client.send("/segue/place", again, 1)
    (_, _, route, position, _), _ = client.receive_until("/segue/placed", 20)
    assert (route, position) == ("reaper-script", 15.0)
    assert segue_track.items[-1].file == path, "the chain stays on its track"

    assert client.ask("/segue/place", 999, 1) == ("/segue/error", ("/segue/place: no finished continuation with job 999",))
    assert client.ask("/segue/place", job, 3)[1][0] == "/segue/place: there is no take 3; this continuation has 2"


def test_continue_track_from_the_command_line_with_a_file(tmp_path, capsys, monkeypatch):
    rate = 44100
    t = np.arange(bars_to_samples(3, BPM, SIGNATURE, rate)) / rate
    loop = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    soundfile.write(tmp_path / "loop.wav", loop, rate)
    # Live with upstream AbletonOSC (no clip addresses): the take goes to the export folder the settings name.
    export_dir = tmp_path / "Live export"
    monkeypatch.setenv(TEST_REPLY_PORT_VARIABLE, str(free_udp_port()))
    live = FakeLive(reply_port=int(os.environ[TEST_REPLY_PORT_VARIABLE]), patched=False).start()

    def choose(settings) -> None:
        settings.daw.daw, settings.daw.ableton_port, settings.folders.export_dir = "ableton", live.port, str(export_dir)

    update_settings(choose)
    try:
        code = main([
            "continue-track", "warm pads", "--source", str(tmp_path / "loop.wav"), "--bpm", str(BPM),
            "--signature", "3/4", "--source-bars", "2", "--bars", "1", "--takes", "1",
            "--model", "tiny", "--device", "cpu", "--seed", "5", "--place", "1", "--accept-key",
        ])
    finally:
        live.stop()

    out = capsys.readouterr().out
    assert code == 0, out
    assert "source: 2 bars of loop.wav (150 BPM, 3/4)" in out
    key = suggest(loop[-bars_to_samples(2, BPM, SIGNATURE, rate) :], rate).key_text
    assert f"text: warm pads, 150 bpm, {key}" in out  # the key estimate, accepted
    take_path = next(line.split(": ", 1)[1] for line in out.splitlines() if line.startswith("take 1: /"))
    assert soundfile.info(take_path).frames == bars_to_samples(1, BPM, SIGNATURE, rate)
    assert "AbletonOSC does not know /live/clip_slot/create_audio_clip" in out
    copy = export_dir / Path(take_path).name
    assert f"{copy.name} is in the export folder {export_dir}" in out
    assert copy.read_bytes() == Path(take_path).read_bytes()
    assert [track.name for track in live.song.tracks] == ["1-Audio", "2-MIDI"]


def test_continue_track_refuses_what_it_cannot_do(tmp_path, capsys):
    assert main(["continue-track", "--source", str(tmp_path / "missing.wav"), "--daw", "none"]) == 2
    assert "no file at" in capsys.readouterr().err
    assert main(["continue-track", "--takes", "2", "--place", "3", "--daw", "none"]) == 2
    assert "--place takes a take number from 1 to 2" in capsys.readouterr().err
    assert main(["continue-track", "--key", "H minor", "--daw", "none"]) == 2
    assert "a key looks like" in capsys.readouterr().err


class LiveWithoutSignature(FakeLive):
    """Live whose signature listeners have not pushed yet (the tempo always comes first)."""

    def _start_listen(self, prop: str) -> None:
        if not prop.startswith("signature_"):
            super()._start_listen(prop)


def test_continue_track_measures_no_bars_before_the_daw_said_its_signature(tmp_path, capsys, monkeypatch):
    soundfile.write(tmp_path / "loop.wav", np.zeros(44100 * 4, dtype=np.float32), 44100)
    monkeypatch.setenv(TEST_REPLY_PORT_VARIABLE, str(free_udp_port()))
    with LiveWithoutSignature(reply_port=int(os.environ[TEST_REPLY_PORT_VARIABLE])) as live:
        update_settings(lambda settings: setattr(settings.daw, "ableton_port", live.port))
        code = main(["continue-track", "--source", str(tmp_path / "loop.wav"), "--daw", "ableton", "--model", "tiny"])

    assert code == 2
    assert "Ableton Live has not reported its time signature (its tempo is 120 BPM)" in capsys.readouterr().err
