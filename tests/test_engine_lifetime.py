"""The engine process lives exactly as long as its owner: neither outlives nor hangs the other.

A producer kills a stuck `segue generate` (kill -9) or the panel crashes: the worker, which holds the
model's memory, must go too. The worker dies (out of memory, a crash) while it writes a large audio
chunk: the panel must learn it at once, not wait forever for the rest of the message.
"""

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bridge.engine.events import AudioChunk, EngineStopped, JobFailed
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import SegueError
from tests.process_tree import engine_workers, initial_environment, is_running, kill, require_process_table
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parent.parent
PIPE_CAPACITY_BYTES = 65536  # Linux's default pipe buffer (pipe(7)); other systems have this or less


def tiny(**overrides) -> GenerationRequest:
    return GenerationRequest(**{"prompt": "techno loop", "model": "tiny", "seconds": 1.0, "seed": 1, **overrides})


def pending_bytes(connection) -> int | None:
    """Bytes written into the pipe and not read yet (Linux and macOS), or None where unknown."""
    try:
        import array
        import fcntl
        import termios
    except ImportError:
        return None
    count = array.array("i", [0])
    fcntl.ioctl(connection.fileno(), termios.FIONREAD, count)
    return count[0]


@pytest.mark.slow
def test_a_worker_killed_halfway_through_a_large_chunk_fails_its_job_and_a_new_one_runs():
    events, first_chunk, release = [], threading.Event(), threading.Event()

    def on_event(event) -> None:
        events.append(event)
        if isinstance(event, AudioChunk) and not first_chunk.is_set():
            first_chunk.set()
            release.wait(60)  # hold the reader: the worker fills the pipe and blocks inside a message

    with EngineClient(device="cpu", on_event=on_event) as client:
        # 2 takes of 30 s: chunks of up to 2 x 16000 frames x 4 bytes, twice what a pipe holds.
        job = client.submit(tiny(seconds=30.0, variations=2))
        assert first_chunk.wait(300), "the job never streamed audio"
        worker = client._process
        if pending_bytes(client._events) is not None:
            wait_until(lambda: pending_bytes(client._events) >= PIPE_CAPACITY_BYTES // 2, 60,
                       "the worker to be blocked writing its next chunk")
        else:
            time.sleep(2.0)
        kill(worker.pid)
        worker.join(10)
        release.set()

        with pytest.raises(SegueError, match=r"stopped unexpectedly \(killed by SIGKILL\)"):
            client.wait(job, timeout=2.0)
        wait_until(lambda: any(isinstance(event, EngineStopped) for event in events), 2.0, "EngineStopped")
        failures = [event for event in events if isinstance(event, JobFailed)]
        assert [failure.job_id for failure in failures] == [job]

        again = client.submit(tiny())
        assert client.wait(again, timeout=300).takes
        assert client._process.pid != worker.pid


@contextlib.contextmanager
def owner_process(command: list[str], **popen):
    """Start an owner of engine workers; yields (process, list to add its workers' pids to); kills all at the end."""
    owner = subprocess.Popen(command, **popen)
    workers: list[int] = []
    try:
        yield owner, workers
    finally:
        owner.kill()
        owner.wait(10)
        for pid in workers:
            kill(pid)


def kill_9_and_see_the_workers_exit(owner: subprocess.Popen, workers: list[int]) -> None:
    owner.kill()
    owner.wait(10)
    # The worker sees its command pipe end, cancels the job within a decoder step and exits.
    wait_until(lambda: not any(is_running(pid) for pid in workers), 15, "the orphaned worker to exit")


@pytest.mark.slow
def test_kill_9_of_segue_generate_ends_its_engine_worker(tmp_path, segue_cache_dir):
    require_process_table()
    # A cache of its own, so the model's load time recorded there says: loaded, the job runs now.
    cache = tmp_path / "cache"
    env = {**os.environ, "PYTHONPATH": str(REPO), "SEGUE_CACHE_DIR": str(cache),
           "SEGUE_MODELS_DIR": str(segue_cache_dir / "models")}
    command = [sys.executable, "-m", "bridge.cli", "generate", "a long one", "--model", "tiny",
               "--seconds", "300", "--variations", "4", "--out-dir", str(tmp_path / "out")]
    with owner_process(command, env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as (
        owner, workers
    ):
        workers += wait_until(lambda: engine_workers(owner.pid), 30, "the engine worker to start")
        wait_until(lambda: (cache / "load_times.json").exists() or owner.poll() is not None, 300,
                   "the model to load")
        assert owner.poll() is None, owner.stderr.read().decode()
        time.sleep(0.5)  # into the job's decoder steps
        kill_9_and_see_the_workers_exit(owner, workers)


def started_environment(pid: int) -> dict[str, str]:
    """The worker's environment once its exec is through: /proc/<pid>/environ read during the exec
    was empty in a full-suite run at load 8 (the process had no environment yet)."""
    return wait_until(lambda: initial_environment(pid), 10, "the worker's environment")


def test_the_worker_starts_with_passive_openmp_threads(monkeypatch):
    # OpenMP reads OMP_WAIT_POLICY once, when torch loads. Spawn imports the parent's main module in the
    # worker first (a script or app that imports torch at the top), before any worker code runs,
    # so the setting must be in the environment the process starts with.
    require_process_table()
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    with EngineClient(device="cpu") as client:
        assert started_environment(client._process.pid).get("OMP_WAIT_POLICY") == "PASSIVE"


def test_the_worker_starts_asking_for_huge_pages_for_big_buffers(monkeypatch):
    require_process_table()
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE", raising=False)
    with EngineClient(device="cpu") as client:
        assert started_environment(client._process.pid).get("THP_MEM_ALLOC_ENABLE") == "1"


def test_a_setting_of_the_users_own_is_kept(monkeypatch):
    require_process_table()
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    with EngineClient(device="cpu") as client:
        environment = started_environment(client._process.pid)
        assert environment.get("OMP_WAIT_POLICY") == "ACTIVE"
        assert environment.get("THP_MEM_ALLOC_ENABLE") == "0"


BIG_BUFFER_ADVICE = """
import torch
buffer = torch.empty(8 << 20, dtype=torch.uint8)
address = buffer.data_ptr()
with open("/proc/self/smaps") as smaps:
    inside = False
    for line in smaps:
        if "-" in line.split()[0] and ":" not in line.split()[0]:
            low, high = (int(part, 16) for part in line.split()[0].split("-"))
            inside = low <= address < high
        elif inside and line.startswith("VmFlags:"):
            print("hg" in line.split()[1:])
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="transparent huge pages are Linux's")
@pytest.mark.parametrize("setting, advised", [("1", True), ("0", False)])
def test_this_torch_asks_for_huge_pages_as_the_worker_tells_it(setting, advised):
    # The variable is PyTorch's (c10/core/impl/alloc_cpu.cpp): a buffer of 2 MB or more is madvised
    # MADV_HUGEPAGE, which /proc/self/smaps shows as the mapping's "hg" flag whatever the system's own
    # THP setting. A PyTorch that renamed or dropped it would fail here.
    environment = {**os.environ, "THP_MEM_ALLOC_ENABLE": setting}
    done = subprocess.run([sys.executable, "-c", BIG_BUFFER_ADVICE], env=environment, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [str(advised)]


@pytest.mark.slow
def test_kill_9_of_an_owner_whose_client_runs_on_another_thread_ends_its_worker(tmp_path):
    # Without PR_SET_PDEATHSIG (the kernel ties it to the starting thread, so it is only asked for from
    # the main thread; macOS and Windows have none), the end of the command pipe alone must do it.
    require_process_table()
    owner_code = (
        "import sys, threading\n"
        "from bridge.engine.events import Progress\n"
        "from bridge.engine.request import GenerationRequest\n"
        "from bridge.engine.worker import EngineClient\n"
        "def run():\n"
        "    def on_event(event):\n"
        "        if isinstance(event, Progress):\n"
        "            print('generating', flush=True)\n"
        "    client = EngineClient(device='cpu', on_event=on_event)\n"
        "    client.wait(client.submit(GenerationRequest(prompt='x', model='tiny', seconds=300.0, variations=4)))\n"
        "if __name__ == '__main__':\n"
        "    threading.Thread(target=run).start()\n"
    )
    with owner_process([sys.executable, "-c", owner_code], env={**os.environ, "PYTHONPATH": str(REPO)},
                       cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as (owner, workers):
        first_line: list[bytes] = []
        reader = threading.Thread(target=lambda: first_line.append(owner.stdout.readline()), daemon=True)
        reader.start()
        reader.join(300)
        assert first_line == [b"generating\n"], "the owner never reached its job's decoder steps"
        workers += engine_workers(owner.pid)
        assert workers
        kill_9_and_see_the_workers_exit(owner, workers)
