"""/segue/generate_bars_melody over real UDP: a clip in the DAW's bars that follows a melody file, or /segue/error."""

import numpy as np
import pytest
import soundfile

from bridge.daw.ableton import AbletonLink
from bridge.musical_time import TimeSignature, bars_to_seconds
from tests.test_control_server import engine, live, run_job, start_server  # noqa: F401  (fixtures)

MELODY_ADDRESS = "/segue/generate_bars_melody"


@pytest.fixture
def link(live):  # noqa: F811  (the imported fixture)
    link = AbletonLink(live_port=live.port, listen_port=0, timeout_seconds=0.8, probe_seconds=0.2)
    live.reply_port = link.listen_port
    with link:
        link.transport.wait_for(lambda s: s.signature == TimeSignature(7, 8) and s.tempo_bpm, 10)
        yield link


@pytest.fixture
def melody_file(tmp_path):
    t = np.arange(44100 * 2) / 44100
    path = tmp_path / "chord track.wav"
    soundfile.write(path, 0.3 * np.sin(2 * np.pi * 392.0 * t), 44100)
    return path


def test_a_melody_model_makes_a_clip_in_the_daws_bars(engine, link, melody_file):  # noqa: F811
    server, client = start_server(engine, link, model="tiny-melody")
    try:
        _, _, path = run_job(client, MELODY_ADDRESS, "warm strings", 1, str(melody_file))
    finally:
        client.close()
        server.close()
    seconds = bars_to_seconds(1, 210.0, TimeSignature(7, 8))
    assert soundfile.info(path).frames == round(seconds * 32000)


@pytest.mark.parametrize(
    ("model", "args", "message"),
    [
        ("tiny", ("strings", 1, "MELODY"), "tiny does not follow a melody: choose a melody model"),
        ("tiny-melody", ("strings", 1, "relative/chords.wav"), "give the audio file as an absolute path"),
        ("tiny-melody", ("strings", 1, "/no/such/chords.wav"), "no audio file at /no/such/chords.wav"),
        ("tiny-melody", ("strings", 1.5, "MELODY"), "argument 2 must be a whole number"),
        ("tiny-melody", ("strings", 1), "expected 3 argument(s), got 2"),
        ("tiny-melody", ("strings", 0, "MELODY"), "length must be more than 0"),
    ],
)
def test_bad_melody_requests_are_answered_with_one_error(engine, link, melody_file, model, args, message):  # noqa: F811
    server, client = start_server(engine, link, model=model)
    try:
        args = tuple(str(melody_file) if arg == "MELODY" else arg for arg in args)
        reply = client.ask(MELODY_ADDRESS, *args)
        assert reply[0] == "/segue/error" and message in reply[1][0], reply
        assert reply[1][0].startswith(MELODY_ADDRESS + ": ")
        assert server.busy_job is None, "nothing was started"
    finally:
        client.close()
        server.close()
