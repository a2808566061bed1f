"""Downloading Stable Audio Open from a stand-in hub: the diffusers folders only, never the repository's
second copy of the weights in another library's format, and the model then generates offline."""

import shutil

import numpy as np
import pytest
from huggingface_hub import constants

from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.loading import resolve_checkpoint
from bridge.engine.stable_audio.open_generator import StableAudioOpenGenerator
from bridge.engine.stable_audio.open_pipeline import load_stable_audio_open
from bridge.models import download as download_module
from bridge.models import download_model
from tests.fake_hub import FakeHub

REPO = "stabilityai/stable-audio-open-1.0"


@pytest.mark.slow  # the download's load check runs in a spawned process
def test_download_takes_the_diffusers_folders_and_the_model_generates(tmp_path, monkeypatch, segue_cache_dir):
    repo = shutil.copytree(resolve_checkpoint("tiny-stable-audio-open"), tmp_path / "repo")
    (repo / "segue_random_model.json").unlink()
    # stable-audio-open-1.0 also holds stable-audio-tools' checkpoint beside model_index.json.
    (repo / "model.safetensors").write_bytes(b"\0" * 4096)
    (repo / "model_config.json").write_text("{}")
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(download_module, "RETRY_WAIT_SECONDS", 0.0)
    with FakeHub({REPO: repo}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        folder = download_model(REPO)
        assert len(hub.downloads_of("model.safetensors")) == 1  # text_encoder/model.safetensors only
    assert not (folder / "model.safetensors").exists() and (folder / "transformer" / "config.json").is_file()

    loaded = load_stable_audio_open(REPO, resolve_checkpoint(REPO), *_cpu_fp32())
    take = StableAudioOpenGenerator(loaded, steps=2).generate(
        GenerationRequest(prompt="tech house drum loop", model=REPO, bars=1, bpm=128.0, seed=1)
    ).takes[0]
    assert take.audio.shape == (round(1.875 * 44100), 2) and np.isfinite(take.audio).all()


def _cpu_fp32():
    import torch

    return torch.device("cpu"), torch.float32
