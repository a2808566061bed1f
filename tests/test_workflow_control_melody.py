"""Continue my track with a melody, from a controller: /segue/continue_bars_melody and
/segue/continue_file_bars_melody over real UDP.

Real parts: the control server on UDP, a fake REAPER rendering the bars before the playhead, a fake
Live (AbletonOSC) giving the tempo, the engine process with the `tiny-melody` model, the clip library.
The melodies are tones of two pitch classes other than C (a one-hot C chroma is the model's "no melody").
"""

import shutil

import numpy as np
import pytest
import soundfile

from bridge.daw.ableton import AbletonLink
from bridge.daw.control_server import ControlServer
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow import ContinueMyTrack
from tests.fake_ableton import FakeLive, FakeSong
from tests.fake_reaper import FakeProject, FakeReaper
from tests.osc_client import OscTestClient
from tests.test_daw_reaper import make_link
from tests.waiting import wait_until

BPM, SIGNATURE = 150.0, TimeSignature(3, 4)  # a bar: 1.2 s
E4_HZ, G4_HZ = 329.63, 392.0
NEW_SEED = -1


def write_melody(path, frequency_hz: float, seconds: float = 2.4, rate: int = 44100):
    t = np.arange(round(seconds * rate)) / rate
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * frequency_hz * t), rate)
    return path


@pytest.fixture
def melodies(tmp_path):
    return {"E": write_melody(tmp_path / "lead in E.wav", E4_HZ), "G": write_melody(tmp_path / "chords in G.wav", G4_HZ)}


def controller_for(link, engine, model: str = "tiny-melody"):
    """A control server running Continue my track on `link`, and a controller talking to it."""
    library = ClipLibrary()
    session = ContinueMyTrack(engine, link=link, library=library)
    server = ControlServer(engine, link, model=model, port=0, reply_port=0, library=library, workflow=session).start()
    engine.listeners.append(server.on_engine_event)
    client = OscTestClient(server.port)
    server.reply_port = client.port
    return client, (client.close, server.close, session.close, library.close)


@pytest.fixture
def reaper_controller(workflow_engine):
    project = FakeProject(tempo=BPM, signature=(3, 4))
    project.cursor_seconds = 4.5 * 1.2  # the playhead in bar 5: the source ends on bar line 4 (beat 12)
    with FakeReaper(project=project) as reaper, make_link(reaper) as link:
        link.transport.wait_for(lambda s: s.tempo_bpm and s.signature == SIGNATURE and s.position_beats, 10)
        client, closers = controller_for(link, workflow_engine)
        yield client
        for close in closers:
            close()


@pytest.fixture
def live_link():
    with FakeLive(song=FakeSong(tempo=BPM, signature_numerator=3, signature_denominator=4)) as live:
        link = AbletonLink(live_port=live.port, listen_port=0, timeout_seconds=0.8, probe_seconds=0.2)
        live.reply_port = link.listen_port
        with link:
            link.transport.wait_for(lambda s: s.signature == SIGNATURE and s.tempo_bpm, 10)
            yield link


def idle(client) -> bool:
    client.send("/segue/status")
    return client.receive_until("/segue/status", 5)[0][6] == 0


def take_audio(client, address: str, *args) -> tuple[np.ndarray, str, str]:
    """Run one continuation; the take's audio, its path and the source's description."""
    client.send(address, *args)
    (job, _, _, description), _ = client.receive_until("/segue/source", 60)
    (take_job, take, path, _), before = client.receive_until("/segue/take", 120)
    assert (take_job, take) == (job, 1)
    assert not [message for message in before if message[0] == "/segue/error"], before
    audio, _ = soundfile.read(path, dtype="float32")
    wait_until(lambda: idle(client), 10, "the job slot to be free")  # freed right after the last take is sent
    return audio, path, description


@pytest.mark.slow
def test_the_takes_follow_the_melody_given_and_the_daws_own_bars(reaper_controller, melodies, tmp_path):
    client = reaper_controller
    address = "/segue/continue_bars_melody"

    in_e, path, description = take_audio(client, address, "strings", 1, 1, 1, str(melodies["E"]), 7)
    in_g, _, _ = take_audio(client, address, "strings", 1, 1, 1, str(melodies["G"]), 7)
    in_e_again, _, _ = take_audio(client, address, "strings", 1, 1, 1, str(melodies["E"]), 7)

    assert "rendered by REAPER" in description
    assert in_e.shape == (bars_to_samples(1, BPM, SIGNATURE, 48000), 2)
    np.testing.assert_array_equal(in_e, in_e_again)  # the same melody and seed: the same take
    assert np.abs(in_e - in_g).max() > 0.05, "another melody, the same seed: another take"

    # "daw": the melody is the bar REAPER rendered as the source (220 Hz, A), not a third file.
    own_bars, path, _ = take_audio(client, address, "strings", 1, 1, 1, "daw", 7)
    with ClipLibrary() as library:
        rendered = library.find_by_path(path).params["source_file"]
    as_file = shutil.copy(rendered, tmp_path / "the rendered bar.wav")
    own_bars_as_file, _, _ = take_audio(client, address, "strings", 1, 1, 1, str(as_file), 7)
    np.testing.assert_array_equal(own_bars, own_bars_as_file)
    assert np.abs(own_bars - in_e).max() > 0.05 and np.abs(own_bars - in_g).max() > 0.05


@pytest.mark.slow
def test_a_file_continued_at_lives_tempo_follows_a_melody(workflow_engine, live_link, melodies, tmp_path):
    source = write_melody(tmp_path / "two bars.wav", 220.0, seconds=2.4, rate=44100)
    client, closers = controller_for(live_link, workflow_engine)
    try:
        audio, _, description = take_audio(
            client, "/segue/continue_file_bars_melody", str(source), "pads", 2, 1, 1, str(melodies["G"]), NEW_SEED
        )
        assert description == "2 bars of two bars.wav (150 BPM, 3/4)"
        assert audio.shape[0] == bars_to_samples(1, BPM, SIGNATURE, 44100)
        # Live renders nothing and no loopback records it: the DAW's bars cannot be the melody.
        client.send("/segue/continue_file_bars_melody", str(source), "pads", 2, 1, 1, "daw", 3)
        (message,), _ = client.receive_until("/segue/error", 30)
        assert message.startswith("/segue/continue_file_bars_melody: cannot take audio from Ableton Live")
        wait_until(lambda: idle(client), 10, "the job slot to be free again")
    finally:
        for close in closers:
            close()


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("tiny", ("s", 1, 1, 1, "MELODY", 1), "tiny does not follow a melody: choose a melody model"),
        ("tiny", ("s", 1, 1, 1, "daw", 1), "tiny does not follow a melody"),
        ("tiny-melody", ("s", 1, 1, 1, "/no/such/chords.wav", 1), "melody: no audio file at /no/such/chords.wav"),
        ("tiny-melody", ("s", 1, 1, 1, "chords.wav", 1), "melody: give the audio file as an absolute path"),
        ("tiny-melody", ("s", 1, 1, 1, "CORRUPT", 1), "melody: broken.wav is not an audio file Segue can read"),
        ("tiny-melody", ("s", 1, 1, 1, "MELODY", -2), "the seed is -1 (a new one each time) or a whole number"),
        ("tiny-melody", ("s", 1, 1, 1, "MELODY"), "expected 6 argument(s), got 5"),
        ("tiny-melody", ("s", 1, 1, 1, 4, 1), "argument 5 must be text"),
        ("tiny-melody", ("s", 1, 1, 0, "MELODY", 1), "takes must be 1-"),
    ],
)
def test_bad_melody_continuations_are_answered_with_one_error(
    workflow_engine, live_link, melodies, tmp_path, model, args, message
):
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt junk")
    args = [{"MELODY": str(melodies["E"]), "CORRUPT": str(broken)}.get(arg, arg) for arg in args]
    client, closers = controller_for(live_link, workflow_engine, model=model)
    try:
        reply = client.ask("/segue/continue_bars_melody", *args)
        assert reply[0] == "/segue/error" and message in reply[1][0], reply
        assert reply[1][0].startswith("/segue/continue_bars_melody: ")
        assert idle(client), "nothing was started"
    finally:
        for close in closers:
            close()
