"""The engine on another machine, through a real local Ray Serve instance (CPU, `tiny` model).

A producer's view: the same job API as the local engine, the same audio for the same seed, take 1
streaming before the job ends, clear failures when the server, the network or the token is wrong.
"""

import json
import os
import signal
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import soundfile

from bridge.engine.events import AudioChunk, JobCancelled, JobFailed, JobFinished, JobStarted, Progress
from bridge.engine.remote import wire
from bridge.engine.remote.client import RemoteEngineClient, RemoteEngineError
from bridge.engine.request import GenerationRequest
from bridge.errors import CancelledError, SegueError
from tests.ray_serve import MAX_REQUEST_BYTES
from tests.waiting import wait_until

# Deadlines (a lost replica fails its job within 5 s) and Ray's own processes: run alone.
pytestmark = [pytest.mark.slow, pytest.mark.serial]


class Recorder:
    """Every event with the time it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[float, object]] = []

    def __call__(self, event) -> None:
        self.events.append((time.monotonic(), event))

    def of(self, kind: type) -> list:
        return [event for _, event in self.events if isinstance(event, kind)]

    def first(self, kind: type) -> float:
        return next(at for at, event in self.events if isinstance(event, kind))


def long_job(seed: int = 1) -> GenerationRequest:
    return GenerationRequest(prompt="long", model="tiny", seconds=120.0, seed=seed)


def test_a_remote_take_equals_the_local_take_and_streams_before_it_ends(remote_engine, shared_engine, write_tone):
    request = GenerationRequest(prompt="warm strings", model="tiny", seconds=3.0, variations=2, seed=7)
    local = shared_engine.client.wait(shared_engine.client.submit(request), timeout=120)
    # A continuation: locally the worker reads the file; remotely this computer reads it and sends the audio.
    source = write_tone("source.wav", 2.5, 44100, channels=2)
    continued = GenerationRequest(prompt="go on", model="tiny", seconds=1.0, seed=8, audio_path=str(source), prompt_seconds=2.0)
    local_continued = shared_engine.client.wait(shared_engine.client.submit(continued), timeout=120)

    recorder = Recorder()
    with RemoteEngineClient(remote_engine.url, remote_engine.token, on_event=recorder) as engine:
        job = engine.submit(request)
        remote = engine.wait(job, timeout=60)
        remote_continued = engine.wait(engine.submit(continued), timeout=60)

    assert remote.request is request  # the producer's own request, for the sidecar
    assert [take.seed for take in remote.takes] == [take.seed for take in local.takes]
    for here, there in zip(local.takes, remote.takes, strict=True):
        np.testing.assert_array_equal(there.codes, here.codes)
        np.testing.assert_array_equal(there.audio, here.audio)
    np.testing.assert_array_equal(remote_continued.takes[0].audio, local_continued.takes[0].audio)
    np.testing.assert_array_equal(remote_continued.takes[0].prompt_audio, local_continued.takes[0].prompt_audio)
    chunks = [chunk for chunk in recorder.of(AudioChunk) if chunk.job_id == job]
    assert len(chunks) > 2 and all(chunk.job_id == job for chunk in chunks)
    assert recorder.first(AudioChunk) < recorder.first(JobFinished)
    streamed = np.concatenate([chunk.audio for chunk in chunks], axis=1)
    np.testing.assert_array_equal(streamed[0], remote.takes[0].audio)
    assert recorder.of(Progress)[-1].steps_done == recorder.of(Progress)[-1].steps_total


def test_cancel_stops_a_remote_job_and_the_next_one_runs(remote_engine):
    recorder = Recorder()
    with RemoteEngineClient(remote_engine.url, remote_engine.token, on_event=recorder) as engine:
        job = engine.submit(long_job())
        wait_until(lambda: recorder.of(Progress), 30, "the long job to start")
        engine.cancel(job)
        with pytest.raises(CancelledError):
            engine.wait(job, timeout=5)
        assert recorder.of(JobCancelled)[0].job_id == job
        short = GenerationRequest(prompt="after", model="tiny", seconds=1.0, seed=2)
        assert engine.wait(engine.submit(short), timeout=30).takes[0].audio.shape[0] == 32000


def test_a_wrong_or_missing_token_is_refused_and_nothing_runs(remote_engine):
    with RemoteEngineClient(remote_engine.url, remote_engine.token) as engine:
        started_before = engine.info()["replica"]["jobs_started"]
    for token, status, reason in ((None, 401, "needs a token"), ("guess", 403, "token is wrong")):
        recorder = Recorder()
        with RemoteEngineClient(remote_engine.url, token, on_event=recorder) as engine:
            with pytest.raises(RemoteEngineError, match=reason):
                engine.info()
            job = engine.submit(GenerationRequest(prompt="x", model="tiny", seconds=1.0))
            with pytest.raises(SegueError, match=f"HTTP {status}: .*{reason}"):
                engine.wait(job, timeout=10)
        assert [type(event) for _, event in recorder.events] == [JobFailed]
    with RemoteEngineClient(remote_engine.url, remote_engine.token) as engine:
        assert engine.info()["replica"]["jobs_started"] == started_before


def test_oversize_and_malformed_requests_get_a_4xx_with_the_reason(remote_engine):
    headers = {"Authorization": f"Bearer {remote_engine.token}"}
    post = lambda body: httpx.post(f"{remote_engine.url}/v1/jobs", content=body, headers=headers, timeout=10)  # noqa: E731
    big = GenerationRequest(model="tiny", audio=np.zeros((MAX_REQUEST_BYTES // 4, 1), np.float32), audio_sample_rate=32000)
    cases = [
        (wire.encode(big), 413, "over this engine's limit"),
        (b"\x00\x00\x00\x05{nope", 400, "malformed message header"),
        (b"\x00\x00", 400, "truncated"),
        (wire.encode({"__type__": "os.system", "x": 1}), 400, "unknown message type"),
        (wire.encode(GenerationRequest(model="tiny", seconds="ten")), 400, "'seconds' has the wrong kind"),
        (wire.encode(GenerationRequest(model="tiny", audio_path="/etc/passwd")), 400, "cannot read files"),
        (wire.encode(GenerationRequest(model="tiny", seconds=-1.0)), 400, "the length must be"),
        (wire.encode(GenerationRequest(model="facebook/musicgen-large")), 404, "serves tiny"),
    ]
    for body, status, reason in cases:
        response = post(body)
        assert response.status_code == status, (reason, response.text)
        assert reason in response.json()["error"]


def test_a_slow_reader_does_not_hold_up_another_producers_job(remote_engine):
    # Producer A asks for a lot of audio and never reads its stream; producer B's job still ends.
    headers = {"Authorization": f"Bearer {remote_engine.token}", "X-Segue-Client": "slow-reader"}
    flood = GenerationRequest(prompt="flood", model="tiny", seconds=20.0, variations=4, seed=3)
    with httpx.Client(timeout=30) as slow, slow.stream(
        "POST", f"{remote_engine.url}/v1/jobs", content=wire.encode(flood), headers=headers
    ) as unread:
        assert unread.status_code == 200
        with RemoteEngineClient(remote_engine.url, remote_engine.token) as engine:
            result = engine.wait(engine.submit(GenerationRequest(prompt="b", model="tiny", seconds=1.0, seed=4)), 60)
        assert result.takes[0].audio.shape == (32000, 1)


def test_producers_take_turns_on_a_replica(remote_engine):
    # Alice queues three takes behind a long one; Bob's one take runs after her next, not after all.
    alice, bob = Recorder(), Recorder()
    with RemoteEngineClient(remote_engine.url, remote_engine.token, on_event=alice) as alice_engine, \
            RemoteEngineClient(remote_engine.url, remote_engine.token, on_event=bob) as bob_engine:
        # The first job is far longer than the test needs and is cancelled once everyone's jobs wait on the
        # replica: however fast the machine, nothing starts before the whole queue is known.
        first = alice_engine.submit(GenerationRequest(prompt="a0", model="tiny", seconds=300.0, seed=20))
        wait_until(lambda: alice.of(Progress), 30, "alice's first job to start")
        # Each later job lasts long enough (20 s of audio: over a second even on a fast CPU) that its run, not
        # the delivery of its events over two HTTP streams (up to a heartbeat, 0.5 s, late; their arrival
        # times are what the test compares), decides the order seen.
        later = [alice_engine.submit(GenerationRequest(prompt=f"a{n}", model="tiny", seconds=20.0, seed=20 + n))
                 for n in (1, 2, 3)]
        # Waiting on the replica's own count, not a sleep: on a loaded machine requests take their time.
        wait_until(lambda: alice_engine.info()["replica"]["queued"] >= 3, 30, "alice's three jobs to queue")
        bobs = bob_engine.submit(GenerationRequest(prompt="b", model="tiny", seconds=20.0, seed=30))
        wait_until(lambda: alice_engine.info()["replica"]["queued"] >= 4, 30, "bob's job to queue")
        alice_engine.cancel(first)
        with pytest.raises(CancelledError):
            alice_engine.wait(first, timeout=60)
        for job in later:
            alice_engine.wait(job, timeout=60)
        bob_engine.wait(bobs, timeout=60)
    started = {event.job_id: at for at, event in alice.events if isinstance(event, JobStarted)}
    bob_started = bob.first(JobStarted)
    assert started[later[0]] < bob_started < started[later[1]] < started[later[2]]


def test_a_lost_network_fails_the_job_within_5_seconds(remote_engine):
    with FreezableProxy(remote_engine.port) as proxy:
        recorder = Recorder()
        with RemoteEngineClient(f"http://127.0.0.1:{proxy.port}", remote_engine.token, on_event=recorder) as engine:
            job = engine.submit(long_job(seed=5))
            wait_until(lambda: recorder.of(Progress), 30, "the long job to start")
            proxy.freeze()  # packets stop, no FIN, no RST: a pulled cable
            frozen_at = time.monotonic()
            with pytest.raises(SegueError, match="no word from the remote engine"):
                engine.wait(job, timeout=10)
            assert recorder.first(JobFailed) - frozen_at < 5.0


def test_a_killed_replica_fails_its_job_within_5_seconds_and_is_replaced(remote_engine):
    with RemoteEngineClient(remote_engine.url, remote_engine.token) as probe:
        replica = probe.info()["replica"]["pid"]
    workers = _children(replica)
    assert workers, "the replica runs the engine in a worker process of its own"
    recorder = Recorder()
    with RemoteEngineClient(remote_engine.url, remote_engine.token, on_event=recorder) as engine:
        job = engine.submit(long_job(seed=6))
        wait_until(lambda: recorder.of(Progress), 30, "the long job to start")
        os.kill(replica, signal.SIGKILL)
        killed_at = time.monotonic()
        with pytest.raises(SegueError, match="closed the connection mid-job"):
            engine.wait(job, timeout=10)
        assert recorder.first(JobFailed) - killed_at < 5.0
        wait_until(lambda: not any(os.path.exists(f"/proc/{pid}") for pid in workers), 10, "the orphaned worker to exit")

        def replaced() -> bool:
            try:
                return engine.info()["replica"]["pid"] != replica
            except RemoteEngineError:
                return False

        wait_until(replaced, 60, "Serve to replace the replica")
        retry = engine.submit(GenerationRequest(prompt="again", model="tiny", seconds=1.0, seed=6))
        assert engine.wait(retry, timeout=60).takes[0].audio.shape == (32000, 1)


def test_the_serve_proxy_listens_on_127_0_0_1_only(remote_engine):
    listening = _listening_tcp()
    assert listening.get(remote_engine.port) == {"127.0.0.1"}
    # Ray's own processes (GCS, raylet, object manager...) listen on the machine's address or on
    # every interface whatever Serve's host is: the README tells producers to firewall them.
    print("Ray's listening sockets besides Serve:", {p: a for p, a in listening.items() if p != remote_engine.port})


# ---------------------------------------------------------------- helpers


class FreezableProxy:
    """A real TCP relay to the engine that can stop relaying without closing: a network that went away."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._frozen = threading.Event()
        self._stopped = threading.Event()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze(self) -> None:
        self._frozen.set()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            self._sockets += [client, server]
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(source, sink), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.2)
        while not self._stopped.is_set():
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            while self._frozen.is_set() and not self._stopped.is_set():
                time.sleep(0.05)  # hold the bytes: neither delivered nor refused
            try:
                sink.sendall(data)
            except OSError:
                return

    def __enter__(self) -> "FreezableProxy":
        return self

    def __exit__(self, *exc) -> None:
        self._stopped.set()
        for sock in self._sockets:
            sock.close()


def _children(pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
    return children


def _listening_tcp() -> dict[int, set[str]]:
    """Port -> local addresses of every listening TCP socket on this machine (IPv4, /proc/net/tcp)."""
    listening: dict[int, set[str]] = {}
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            if state == "0A":  # LISTEN
                address, port = local.split(":")
                dotted = socket.inet_ntoa(bytes.fromhex(address)[::-1])
                listening.setdefault(int(port, 16), set()).add(dotted)
    return listening


def test_segue_generate_with_engine_writes_the_remote_take_and_its_sidecar(remote_engine, tmp_path, capsys):
    from bridge.cli import main

    out = tmp_path / "remote.wav"
    argv = ["generate", "pads", "--model", "tiny", "--seconds", "1", "--seed", "11", "-o", str(out),
            "--engine", remote_engine.url, "--engine-token", remote_engine.token]
    assert main(argv) == 0
    assert f"engine: {remote_engine.url}" in capsys.readouterr().err
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["seed"] == 11 and sidecar["model"] == "tiny"
    assert soundfile.info(out).frames == 32000
