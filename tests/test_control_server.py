"""Segue's OSC control API over real UDP, driving the real engine process with the tiny model."""

import json
import math
import random
import struct
from pathlib import Path

import pytest
import soundfile

from bridge import paths
from bridge.daw.ableton import AbletonLink
from bridge.daw.control_server import ControlServer
from bridge.daw.link import NoDawLink
from bridge.engine.worker import EngineClient
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_seconds
from tests.fake_ableton import FakeLive, FakeSong
from tests.osc_client import OscTestClient, encode
from tests.waiting import wait_until

MODEL_RATE = 32000


class EventRelay:
    """Lets one engine process serve each test's control server."""

    def __init__(self) -> None:
        self.target = None

    def __call__(self, event) -> None:
        if self.target is not None:
            self.target(event)


@pytest.fixture(scope="module")
def engine(segue_cache_dir):
    relay = EventRelay()
    client = EngineClient(device="cpu", on_event=relay)
    client.relay = relay
    yield client
    client.close()


def start_server(engine, link=None, library=None, model: str = "tiny") -> tuple[ControlServer, OscTestClient]:
    server = ControlServer(engine, link=link, model=model, port=0, reply_port=0, library=library).start()
    engine.relay.target = server.on_engine_event
    client = OscTestClient(server.port)
    server.reply_port = client.port
    return server, client


@pytest.fixture
def control(engine):
    server, client = start_server(engine)
    yield server, client
    client.close()
    server.close()


@pytest.fixture
def live():
    with FakeLive(song=FakeSong(tempo=210.0, signature_numerator=7, signature_denominator=8)) as fake:
        yield fake


@pytest.fixture
def control_with_live(engine, live):
    link = AbletonLink(live_port=live.port, listen_port=0, timeout_seconds=0.8, probe_seconds=0.2)
    live.reply_port = link.listen_port
    with link:
        link.transport.wait_for(lambda s: s.signature == TimeSignature(7, 8) and s.tempo_bpm, 10)
        server, client = start_server(engine, link)
        yield server, client
        client.close()
        server.close()


def clips_written() -> list:
    return sorted(paths.output_dir().rglob("*.wav"))


def status(client) -> tuple:
    client.send("/segue/status")
    args, _ = client.receive_until("/segue/status", 5)
    return args


def run_job(client, address, *args) -> tuple[int, list[float], str]:
    """Send a job request; return its id, the progress fractions seen, and the clip path."""
    client.send(address, *args)
    (job, fraction), before = client.receive_until("/segue/progress", 10)
    assert before == []
    assert fraction == 0.0
    (clip_job, path), messages = client.receive_until("/segue/clip", 120)
    assert clip_job == job
    fractions = [0.0] + [m[1][1] for m in messages if m[0] == "/segue/progress" and m[1][0] == job]
    assert not [m for m in messages if m[0] == "/segue/error"], messages
    return job, fractions, path


# -- status -----------------------------------------------------------------------------------------


def test_status_without_a_daw(control):
    _, client = control
    assert status(client) == ("none", 0, 0.0, 0, 0, 0, 0, 0)


def test_status_reports_the_daw_transport(live, control_with_live):
    _, client = control_with_live
    live.set_song(is_playing=True)
    wait_until(lambda: status(client)[5] == 1, 5, "playing in the status")
    assert status(client) == ("ableton", 1, pytest.approx(210.0), 7, 8, 1, 0, 0)


# -- jobs -------------------------------------------------------------------------------------------


def test_generate_writes_a_clip_under_the_output_folder_and_reports_progress(engine):
    with ClipLibrary() as library:
        server, client = start_server(engine, library=library)
        try:
            job, fractions, path = run_job(client, "/segue/generate", "dusty lo-fi drums", 1.0)
            assert status(client)[6:] == (0, 0)
            recorded = library.find_by_path(path)
        finally:
            client.close()
            server.close()
    assert recorded is not None and recorded.prompt == "dusty lo-fi drums", "the take is in the clip library"

    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    clip = Path(path)
    assert clip.parent == paths.output_dir().resolve()
    assert soundfile.info(clip).frames == MODEL_RATE
    sidecar = json.loads(clip.with_suffix(".json").read_text())
    assert sidecar["prompt"] == "dusty lo-fi drums"


def test_generate_bars_takes_the_length_from_the_daws_tempo_and_signature(control_with_live):
    _, client = control_with_live

    _, _, path = run_job(client, "/segue/generate_bars", "odd-meter groove", 1)

    # One bar of 7/8 at 210 quarter notes per minute lasts 1 s.
    expected_seconds = bars_to_seconds(1, 210.0, TimeSignature(7, 8))
    assert soundfile.info(path).frames == round(expected_seconds * MODEL_RATE)
    sidecar = json.loads(Path(path).with_suffix(".json").read_text())
    assert (sidecar["bpm"], sidecar["signature"], sidecar["bars"]) == (210.0, "7/8", 1.0)


def test_generate_bars_without_a_daw_is_refused(control):
    _, client = control
    assert client.ask("/segue/generate_bars", "groove", 4)[0] == "/segue/error"
    assert clips_written() == []
    assert status(client)[6] == 0


def test_generate_bars_before_the_daw_said_its_signature_is_refused(engine):
    link = NoDawLink()  # stands for Live right after its tempo arrived and before its signature did
    link.transport.set_connected(True)
    link.transport.update(tempo_bpm=120.0)
    server, client = start_server(engine, link)
    try:
        address, args = client.ask("/segue/generate_bars", "groove", 4)
        assert address == "/segue/error" and "its time signature is unknown" in args[0]
        assert clips_written() == []
    finally:
        client.close()
        server.close()


def test_continue_an_audio_file(control, write_tone):
    _, client = control
    source = write_tone("loop.wav", 2.0, 44100, channels=2)

    _, _, path = run_job(client, "/segue/continue", str(source), "keep the groove", 1.0)

    assert soundfile.info(path).frames == MODEL_RATE
    assert json.loads(Path(path).with_suffix(".json").read_text())["source_file"] == str(source)


def test_one_job_at_a_time_and_cancel(control):
    _, client = control
    client.send("/segue/generate", "a very long jam", 120.0)
    (job, _), _ = client.receive_until("/segue/progress", 10)

    address, (message,) = client.ask("/segue/generate", "another", 1.0)
    assert address == "/segue/error" and f"busy with job {job}" in message
    assert status(client)[6:] == (1, job)

    client.send("/segue/cancel")
    (message,), _ = client.receive_until("/segue/error", 60)
    assert message == f"job {job} cancelled"
    assert status(client)[6:] == (0, 0)
    assert clips_written() == []


def test_cancel_with_nothing_running(control):
    _, client = control
    assert client.ask("/segue/cancel") == (
        "/segue/error",
        ("/segue/cancel: nothing to cancel: no job is running",),
    )


# -- refusals ---------------------------------------------------------------------------------------

REFUSED = [
    (("/segue/generate", 1.0, "drums"), "argument 1 must be text"),
    (("/segue/generate", "drums"), "expected 2 argument(s), got 1"),
    (("/segue/generate", "drums", 1.0, 2.0), "expected 2 argument(s), got 3"),
    (("/segue/generate", "drums", True), "argument 2 must be a number"),
    (("/segue/generate", "drums", math.nan), "argument 2 must be a number"),
    (("/segue/generate", "drums", -1.0), "the length must be more than 0"),
    (("/segue/generate", "drums", 1e9), "at most 300 seconds"),
    (("/segue/generate", "x" * 2001, 1.0), "at most 2000 characters"),
    (("/segue/generate_bars", "drums", 2.5), "argument 2 must be a whole number"),
    (("/segue/continue", "/no/such/file.wav", "more", 1.0), "no audio file at /no/such/file.wav"),
    (("/segue/continue", "relative.wav", "more", 1.0), "absolute path"),
    (("/segue/continue", "", "more", 1.0), "1-4096 characters"),
    (("/segue/status", 1), "expected 0 argument(s), got 1"),
    (("/segue/continue_bars", "strings", 4, 4), "expected 4 argument(s), got 3"),
    (("/segue/continue_bars", "strings", 4.5, 4, 2), "argument 2 must be a whole number"),
    (("/segue/continue_bars", "strings", 4, 4, 2), "Continue my track is not available"),
    (("/segue/continue_file_bars", "relative.wav", "more", 4, 4, 2), "absolute path"),
    (("/segue/continue_again", "more", 4), "expected 3 argument(s), got 2"),
    (("/segue/place", 1, "2"), "argument 2 must be a whole number"),
    (("/segue/play", 1, 1), "Continue my track is not available"),
    (("/segue/launch_missiles",), "unknown address /segue/launch_missiles"),
    (("/live/test",), "unknown address /live/test"),
]


@pytest.mark.parametrize(
    ("message", "reason"), REFUSED, ids=[m[0] + f"-{i}" for i, (m, _) in enumerate(REFUSED)]
)
def test_impossible_messages_get_an_error_and_change_nothing(control, message, reason):
    _, client = control
    address, (text,) = client.ask(*message)
    assert address == "/segue/error"
    assert reason in text
    assert status(client)[6:] == (0, 0)
    assert clips_written() == []


def test_a_file_that_is_not_audio_is_refused(control, tmp_path):
    _, client = control
    fake = tmp_path / "song.wav"
    fake.write_text("this is not a wave file")
    address, (text,) = client.ask("/segue/continue", str(fake), "more", 1.0)
    assert address == "/segue/error" and "not an audio file Segue can read" in text


MALFORMED = {
    "empty datagram": b"",
    "not OSC": b"GET / HTTP/1.1\r\n\r\n",
    "truncated float": encode("/segue/generate", "drums", 1.0)[:-2],
    "float missing": encode("/segue/generate", "drums", 1.0)[:-4],
    "unknown type tag": b"/segue/status\x00\x00\x00,x\x00\x00",
    "address without slash": b"segue\x00\x00\x00",
    "not UTF-8": b"/segue/generate\x00,sf\x00\xff\xfe\x00\x00" + struct.pack(">f", 1.0),
    "empty bundle": b"#bundle\x00" + b"\x00" * 8,
    "oversized": encode("/segue/generate", "x" * 9000, 1.0),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_datagrams_get_an_error(control, name):
    _, client = control
    client.send_raw(MALFORMED[name])
    address, (text,) = client.receive(5)
    assert address == "/segue/error"
    assert status(client)[6:] == (0, 0)


def fuzz_datagrams(rng: random.Random, count: int):
    """Random bytes, truncated job messages, mangled addresses and type tags; none a valid request."""
    valid = [
        encode("/segue/generate", "warm pads", 4.0),
        encode("/segue/generate_bars", "breakbeat", 2),
        encode("/segue/continue", "/tmp/loop.wav", "more", 8.0),
        encode("/segue/continue_bars", "strings", 4, 4, 2),
        encode("/segue/continue_file_bars", "/tmp/loop.wav", "more", 4, 4, 2),
        encode("/segue/place", 3, 1),
    ]
    for _ in range(count):
        kind = rng.randrange(4)
        if kind == 0:
            yield rng.randbytes(rng.randrange(0, 96))
        elif kind == 1:
            message = rng.choice(valid)
            yield message[: rng.randrange(1, len(message))]
        elif kind == 2:
            message = bytearray(encode("/segue/status"))
            message[rng.randrange(1, 13)] = rng.randrange(256)
            if bytes(message) != encode("/segue/status"):
                yield bytes(message)
        else:
            tags = "".join(rng.choice("ifsbTFNhdc") for _ in range(rng.randrange(0, 4)))
            if tags != "sf":
                yield (
                    b"/segue/generate\x00,"
                    + tags.encode()
                    + b"\x00" * (4 - (len(tags) + 1) % 4)
                    + rng.randbytes(8)
                )


def test_fuzz_thousands_of_bad_datagrams_then_status_still_answers(control):
    _, client = control
    rng = random.Random(20240611)
    sent = 0
    for dgram in fuzz_datagrams(rng, 3000):
        client.send_raw(dgram)
        sent += 1
        reply = client.receive(5)
        assert reply is not None and reply[0] == "/segue/error", (dgram, reply)
    assert sent > 2500
    assert status(client) == ("none", 0, 0.0, 0, 0, 0, 0, 0)
    assert clips_written() == []
