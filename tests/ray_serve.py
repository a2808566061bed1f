"""A real local Ray Serve engine for the remote-engine tests: one per session, CPU only, `tiny` model.

Ray gets a short temp dir of its own (Unix socket paths), a capped object store, and replicas with
num_cpus 0 (this machine has two cores); everything is shut down and removed even when tests fail.
"""

import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

TOKEN = "test-token-0123456789"
MAX_REQUEST_BYTES = 2 << 20
REPO = Path(__file__).resolve().parent.parent


@dataclass
class RemoteEngine:
    url: str
    port: int
    token: str


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="session")
def remote_engine(segue_cache_dir):
    import ray

    from bridge.engine.remote import cluster

    temp_dir = f"/tmp/segue-ray-test-{os.getpid()}"
    # Ray's workers inherit this environment: this checkout's code and the tests' model cache.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    port = free_port()
    try:
        ray.init(
            num_cpus=2, num_gpus=0, object_store_memory=cluster.LOCAL_OBJECT_STORE_BYTES, _temp_dir=temp_dir,
            include_dashboard=False, log_to_driver=False,
        )
        url = cluster.serve_engine("tiny", "127.0.0.1", port, TOKEN, max_request_bytes=MAX_REQUEST_BYTES)
        yield RemoteEngine(url, port, TOKEN)
    finally:
        cluster.stop(started_here=True)
        shutil.rmtree(temp_dir, ignore_errors=True)
