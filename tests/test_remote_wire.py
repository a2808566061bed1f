"""The remote engine's wire format and fair queue: what crosses the network, and in what order jobs run."""

import contextlib
import subprocess
import sys

import numpy as np
import pytest

from bridge.engine import events
from bridge.engine.remote import wire
from bridge.engine.remote.fair_queue import FairQueue
from bridge.engine.request import GenerationRequest
from bridge.errors import InvalidParameterError


def test_a_request_with_audio_and_codes_crosses_the_wire_unchanged():
    audio = np.random.default_rng(0).standard_normal((4410, 2)).astype(np.float32)
    codes = np.arange(40, dtype=np.int64).reshape(4, 10)
    request = GenerationRequest(prompt="strings", model="tiny", bars=4, bpm=93.7, signature="7/8", seed=2**62,
                                audio=audio, audio_sample_rate=44100, prompt_codes=codes, prompt_bars=2)
    back = wire.decode_request(wire.encode(request))
    assert back.describe() == request.describe()
    np.testing.assert_array_equal(back.audio, audio)
    np.testing.assert_array_equal(back.prompt_codes, codes)
    assert back.audio.dtype == np.float32 and back.prompt_codes.dtype == np.int64


def test_events_arrive_whole_however_the_stream_is_cut():
    take = events.Take(0, 7, np.ones((5, 2), np.float32), codes=np.zeros((4, 3), np.int64))
    result = events.GenerationResult(GenerationRequest(model="tiny"), 32000, [take], "tiny", "cpu", 1.5, "fast", "int8")
    sent = [events.JobStarted(3), events.Progress(3, 5, 10, None),
            events.AudioChunk(3, 0, np.full((1, 4, 2), 0.5, np.float32), 32000), events.JobFinished(3, result),
            wire.Heartbeat(), events.EngineReady("tiny", "cpu", {"dtype": "torch.float32"})]
    stream = b"".join(wire.encode(event) for event in sent)
    reader = wire.FrameReader()
    received = [value for start in range(0, len(stream), 7) for value in reader.feed(stream[start : start + 7])]
    assert [type(value) for value in received] == [type(value) for value in sent]
    assert received[1] == sent[1] and received[5] == sent[5] and reader.pending_bytes == 0
    np.testing.assert_array_equal(received[2].audio, sent[2].audio)
    np.testing.assert_array_equal(received[3].result.takes[0].audio, take.audio)
    assert received[3].result.precision == "int8"


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x00\x00\x00\x02{}", "malformed message header"),
        (b"\xff\xff\xff\xff", "over the"),
        (wire.encode({"__type__": "Popen", "args": "rm"}), "unknown message type"),
        (wire.encode({"__type__": "JobFailed", "job_id": 1, "message": "x", "extra": 1}), "no field"),
        (wire.encode({"__type__": "JobFailed"}), "JobFailed: "),
        (wire.encode({"__array__": 3}), "missing array"),
        (wire.encode(events.JobStarted(1))[:-1], "truncated"),
        (wire.encode(events.JobStarted(1)) + b"x", "unexpected bytes"),
        (b'\x00\x00\x00\x2d{"value":{"__array__":0},"arrays":[{"dtype":"|O","shape":[1]}]}', "malformed"),
    ],
)
def test_a_malformed_frame_is_refused_with_its_reason(frame, reason):
    with pytest.raises(wire.WireError, match=reason):
        wire.decode(frame)


def test_object_arrays_never_travel():
    with pytest.raises(wire.WireError, match="do not travel"):
        wire.encode(events.AudioChunk(1, 0, np.array([object()]), 32000))


def test_request_fields_must_have_their_kind():
    for field, value in (("variations", 2.5), ("greedy", "yes"), ("prompt", ["a"]), ("seed", True)):
        frame = wire.encode(GenerationRequest(model="tiny", **{field: value}))
        with pytest.raises(wire.WireError, match=f"'{field}' has the wrong kind"):
            wire.decode_request(frame)


def test_producers_take_turns_and_each_keeps_their_order():
    queue = FairQueue()
    for job in ("a1", "a2", "a3"):
        queue.put("alice", job)
    assert queue.put("bob", "b1") == 1  # after alice's first take, not after all three
    queue.put("bob", "b2")
    assert queue.put("carol", "c1") == 2
    assert queue.remove("alice", "a2") and not queue.remove("alice", "a2")
    order = []
    while (job := queue.pop()) is not None:
        order.append(job)
    assert order == ["a1", "b1", "c1", "a3", "b2"]
    assert len(queue) == 0


def test_the_cli_and_the_local_engine_never_import_ray():
    code = (
        "import sys, bridge.cli, bridge.engine.worker, bridge.engine.connect, bridge.engine.remote.client;"
        "bridge.cli.build_parser(); sys.exit('ray' in sys.modules or 'fastapi' in sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_damaged_frames_only_ever_raise_wire_errors():
    rng = np.random.default_rng(1)
    good = wire.encode(GenerationRequest(model="tiny", audio=np.zeros((8, 1), np.float32), audio_sample_rate=8000))
    for _ in range(2000):
        frame = bytearray(good)
        for position in rng.integers(0, len(frame), rng.integers(1, 4)):
            frame[position] = rng.integers(0, 256)
        # WireError, or InvalidParameterError when a value changed into another valid one that validate() refuses.
        with contextlib.suppress(InvalidParameterError):
            wire.decode_request(bytes(frame))
