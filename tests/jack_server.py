"""A real, hardware-free audio path for tests: a JACK server with the dummy driver.

The server gets its own name (JACK_DEFAULT_SERVER) so it never meets a producer's JACK, and two
loopback ports (`-L 2`): whatever is played into the "loopback" device comes back out of it one
period later, exactly as BlackHole or VB-CABLE behave. PortAudio reads the device list when it
starts, so it is re-initialised once the server runs (and again after it stops).
"""

import os
import shutil
import subprocess
import time
from dataclasses import dataclass

import pytest

SAMPLE_RATE = 48000
# 21 ms, a common DAW buffer size. Segue's callbacks are Python and need the GIL; with a CPU-heavy
# generation and other work on a small machine, 256-frame (5 ms) periods saw an occasional xrun.
PERIOD_FRAMES = 1024
LOOPBACK_DEVICE = "loopback"


@dataclass(frozen=True)
class JackServer:
    name: str
    sample_rate: int
    period_frames: int
    loopback_device: str

    def ports(self) -> list[str]:
        return subprocess.run(["jack_lsp"], capture_output=True, text=True, check=True).stdout.split()


@pytest.fixture(scope="session")
def jack_server(tmp_path_factory):
    """Start `jackd -d dummy` under a private name for the whole session; skip if JACK is absent."""
    if shutil.which("jackd") is None:
        pytest.skip("jackd is not installed (Debian package jackd2)")
    from bridge.audio.devices import portaudio, rescan_devices

    name = f"segue-test-{os.getpid()}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("JACK_DEFAULT_SERVER", name)
        env.setenv("JACK_NO_START_SERVER", "1")  # never let a client start a server of its own
        # A file, not a pipe: a full pipe would block jackd's logging thread and, with it, the audio.
        log_path = tmp_path_factory.mktemp("jack") / "jackd.log"
        log = log_path.open("w")
        process = subprocess.Popen(
            ["jackd", "-n", name, "-L", "2", "-d", "dummy", "-r", str(SAMPLE_RATE), "-p", str(PERIOD_FRAMES)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_ready(process, log_path)
            rescan_devices()
            yield JackServer(name, SAMPLE_RATE, PERIOD_FRAMES, LOOPBACK_DEVICE)
        finally:
            # PortAudio must let go of the server before it stops: its JACK layer aborts otherwise.
            portaudio()._terminate()
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log.close()
            portaudio()._initialize()


def _wait_until_ready(process: subprocess.Popen, log_path, timeout_seconds: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jackd exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        if subprocess.run(["jack_lsp"], capture_output=True).returncode == 0:
            return
        time.sleep(0.05)
    raise RuntimeError("jackd did not become ready")
