"""Shared fixtures: Segue's folders in temporary places, and the tiny random model loaded once."""

import os

import numpy as np
import pytest
import soundfile

from bridge.engine.worker import WORKER_ENVIRONMENT
from tests.jack_server import jack_server  # noqa: F401  (the fixture, for the audio tests)
from tests.ray_serve import remote_engine  # noqa: F401  (the fixture, for the remote engine tests)
from tests.workflow_engine import shared_engine, workflow_engine  # noqa: F401  (fixtures, for the workflow tests)

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the network
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# Set before the first test module loads torch (OpenMP reads it once; nothing above loads torch). The
# tests that run a model in this process share two cores with the engine workers, jackd and Ray they
# start, and with other jobs: OpenMP's default spinning threads then fight for the cores, and a
# 1-second tiny-model generation took 0.61 s instead of 0.08 s at load 4. The engine worker runs so too.
for name, value in WORKER_ENVIRONMENT.items():
    os.environ.setdefault(name, value)


@pytest.fixture(scope="session")
def segue_cache_dir(tmp_path_factory):
    """One model cache for the whole run: the tiny models are built once."""
    path = tmp_path_factory.mktemp("segue-cache")
    os.environ["SEGUE_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(autouse=True)
def segue_dirs(tmp_path, monkeypatch, segue_cache_dir):
    """Every test gets its own config, data and output folders."""
    for name in ("CONFIG", "DATA", "OUTPUT"):
        folder = tmp_path / f"segue-{name.lower()}"
        monkeypatch.setenv(f"SEGUE_{name}_DIR", str(folder))
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(segue_cache_dir))
    return tmp_path


@pytest.fixture(scope="session")
def tiny_model(segue_cache_dir):
    from bridge.engine.musicgen.loading import load_model

    return load_model("tiny", "cpu")


@pytest.fixture(scope="session")
def tiny_stereo_model(segue_cache_dir):
    from bridge.engine.musicgen.loading import load_model

    return load_model("tiny-stereo", "cpu")


@pytest.fixture(scope="session")
def tiny_reference_model(tiny_model):
    """`tiny` through transformers' own MusicGen: what Segue's modules and loop are held equal to."""
    from bridge.engine.musicgen.reference import load_reference_model

    return load_reference_model("tiny")


@pytest.fixture(scope="session")
def tiny_stereo_reference_model(tiny_stereo_model):
    from bridge.engine.musicgen.reference import load_reference_model

    return load_reference_model("tiny-stereo")


@pytest.fixture
def write_tone(tmp_path):
    """Write a test tone file: write_tone(name, seconds, rate, channels) -> path."""

    def write(name: str, seconds: float, rate: int, channels: int = 1, subtype: str = "PCM_16"):
        t = np.arange(round(seconds * rate)) / rate
        tone = 0.3 * np.sin(2 * np.pi * 220.0 * t)
        audio = np.stack([tone * (0.5 + 0.5 * c) for c in range(channels)], axis=1)
        path = tmp_path / name
        soundfile.write(path, audio, rate, subtype=subtype)
        return path

    return write
