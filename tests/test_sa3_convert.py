"""A producer downloads a Stable Audio 3 model that Stability publishes in its own format: Segue converts
it once into its model store and the engine runs it like any other; a wrong or corrupt checkpoint is
refused with one line and leaves nothing behind."""

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from bridge.engine.catalog import STABILITY_LICENCE, find_known_model
from bridge.engine.families import family_for
from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.generator import StableAudioGenerator
from bridge.engine.stable_audio.loading import load_stable_audio
from bridge.errors import ModelError
from bridge.models.sa3_convert import convert_stable_audio_3
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow.loop import loop_request, loop_takes
from tests.sa3_checkpoint import (
    TEXT_ENCODER_FOLDER,
    build_differential_pipeline,
    stability_state,
    write_stability_repo,
)

MODEL_ID = "stabilityai/stable-audio-3-small-music"
PARTS = ("vae", "transformer", "duration_embedder")


@pytest.fixture(scope="module")
def pipeline():
    return build_differential_pipeline(seed=4)


@pytest.fixture(scope="module")
def repo(tmp_path_factory, pipeline):
    return write_stability_repo(pipeline, tmp_path_factory.mktemp("sa3-repo"), MODEL_ID)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, repo):
    return convert_stable_audio_3(repo, repo / TEXT_ENCODER_FOLDER, tmp_path_factory.mktemp("sa3-out") / "small-music")


def test_every_tensor_comes_back_exactly_and_only_safetensors_are_written(converted, pipeline, repo):
    for part in PARTS:
        saved = load_file(converted / part / "diffusion_pytorch_model.safetensors")
        original = getattr(pipeline, part).state_dict()
        assert saved.keys() == original.keys(), part
        assert all(torch.equal(saved[name], original[name]) for name in original), part
    text_encoder = load_file(converted / "text_encoder" / "model.safetensors")
    assert all(torch.equal(text_encoder[name], t) for name, t in pipeline.text_encoder.state_dict().items())
    # Stability fuses self-attention rows as [q | k | v | q2 | k2]; diffusers wants [q | q2 | k | k2 | v].
    theirs = load_file(repo / "model.safetensors")["model.model.transformer.layers.1.self_attn.to_qkv.weight"]
    q, k, v, q2, k2 = theirs.chunk(5)
    ours = load_file(converted / "transformer" / "diffusion_pytorch_model.safetensors")["transformer_blocks.1.self_attn.to_qkv.weight"]
    assert torch.equal(ours, torch.cat([q, q2, k, k2, v]))
    files = [path.name for path in converted.rglob("*") if path.is_file()]
    assert not any(name.endswith((".bin", ".ckpt", ".pt", ".pth", ".pkl")) for name in files)
    index = json.loads((converted / "model_index.json").read_text())
    assert index["_class_name"] == "StableAudio3Pipeline"
    scheduler = json.loads((converted / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["stochastic_sampling"] is True  # rf_denoiser: the distilled 8-step sampler


def test_the_converted_model_makes_the_same_loop_as_the_original(converted, pipeline, tmp_path):
    pipeline.save_pretrained(tmp_path / "original", safe_serialization=True)
    request = GenerationRequest(prompt="dusty lo-fi drums", model="x", bars=1, bpm=120.0, seed=9)
    ours = StableAudioGenerator(load_stable_audio(str(converted), "cpu")).generate(request).takes[0].audio
    theirs = StableAudioGenerator(load_stable_audio(str(tmp_path / "original"), "cpu")).generate(request).takes[0].audio
    assert ours.shape == (bars_to_samples(1, 120.0, TimeSignature(4, 4), 44100), 2) and np.abs(ours).max() > 0
    np.testing.assert_array_equal(ours, theirs)


def test_a_checkpoint_that_does_not_fit_diffusers_is_refused_in_one_line_and_nothing_written(tmp_path, repo, pipeline):
    from safetensors.torch import save_file

    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model_config.json").write_text((repo / "model_config.json").read_text())
    state = stability_state(pipeline)
    state["model.model.transformer.layers.0.cross_attn.to_q.weight"] = torch.zeros(3, 3)
    save_file(state, str(bad / "model.safetensors"))
    with pytest.raises(ModelError, match="cross_attn.to_q.weight has shape") as error:
        convert_stable_audio_3(bad, repo / TEXT_ENCODER_FOLDER, tmp_path / "out")
    (bad / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(ModelError, match="not a readable safetensors file") as corrupt:
        convert_stable_audio_3(bad, repo / TEXT_ENCODER_FOLDER, tmp_path / "out")
    incomplete = {key: tensor for key, tensor in stability_state(pipeline).items() if "to_local_embed" not in key}
    save_file(incomplete, str(bad / "model.safetensors"))
    with pytest.raises(ModelError, match="lacks 'model.model.transformer.layers.0.to_local_embed.0.weight'"):
        convert_stable_audio_3(bad, repo / TEXT_ENCODER_FOLDER, tmp_path / "out")
    learned = stability_state(pipeline) | {"conditioner.conditioners.seconds_total.embedder.embedding.0.weights": torch.ones(8)}
    save_file(learned, str(bad / "model.safetensors"))  # learned duration features: diffusers has none
    with pytest.raises(ModelError, match="does not know conditioner.conditioners.seconds_total"):
        convert_stable_audio_3(bad, repo / TEXT_ENCODER_FOLDER, tmp_path / "out")
    assert "\n" not in str(error.value) + str(corrupt.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["bad"]  # no output, no temporary folder


@pytest.fixture
def sa3_hub(tmp_path, monkeypatch, repo):
    """A stand-in Hub on 127.0.0.1 serving the tiny repository as Stability's (as the AudioGen test does)."""
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub

    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub({MODEL_ID: repo}) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.endpoint)
        yield running


@pytest.mark.slow  # two child processes (convert, verify) that each import torch, transformers and diffusers
def test_download_converts_once_into_the_store_and_the_engine_makes_a_loop(sa3_hub):
    from bridge.models import download_model, model_status, store

    known = find_known_model(MODEL_ID)
    assert known.supported and known.licence == STABILITY_LICENCE and "loops" in known.description
    stages = []
    installed = download_model(MODEL_ID, on_progress=lambda progress: stages.append(progress.stage))
    assert stages[0] == "downloading" and stages[-2:] == ["converting", "verifying"]
    assert (installed / "model_index.json").is_file()
    assert not (store.model_dir(MODEL_ID) / "downloads").exists()  # Stability's originals deleted
    manifest = store.read_manifest(MODEL_ID)
    assert manifest["state"] == "ready" and manifest["format"] == "stable-audio-3"
    assert manifest["text_encoder"] == {"repo": MODEL_ID, "subfolder": TEXT_ENCODER_FOLDER,
                                        "commit": sa3_hub.commit(MODEL_ID)}
    assert model_status(MODEL_ID).state == "ready"
    requests_before = len(sa3_hub.requests)
    assert download_model(MODEL_ID) == installed and len(sa3_hub.requests) == requests_before

    generator = family_for(MODEL_ID).load(MODEL_ID, "cpu")  # by its id, offline, from the store
    wanted = GenerationRequest(prompt="deep house chords", model=MODEL_ID, bars=2, bpm=124.0, seed=3)
    result = generator.generate(loop_request(wanted))
    loop_takes(result, 2, 124.0, TimeSignature(4, 4))
    assert result.takes[0].audio.shape == (bars_to_samples(2, 124.0, TimeSignature(4, 4), 44100), 2)


@pytest.mark.slow  # the converter runs in its child process
def test_a_corrupt_checkpoint_download_ends_in_one_line_and_leaves_nothing_in_the_store(sa3_hub, repo, tmp_path):
    from bridge.models import download_model, store

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model_config.json").write_text((repo / "model_config.json").read_text())
    (broken / "model.safetensors").write_bytes(b"\x00" * 4096)  # arrives intact (checksum), but is no checkpoint
    for file in (repo / TEXT_ENCODER_FOLDER).iterdir():
        (broken / TEXT_ENCODER_FOLDER).mkdir(exist_ok=True)
        (broken / TEXT_ENCODER_FOLDER / file.name).write_bytes(file.read_bytes())
    sa3_hub.repos["stabilityai/stable-audio-3-small-sfx"] = broken
    with pytest.raises(ModelError, match="converting the Stable Audio 3 checkpoint .* failed") as error:
        download_model("stabilityai/stable-audio-3-small-sfx")
    assert "\n" not in str(error.value)
    assert not store.model_dir("stabilityai/stable-audio-3-small-sfx").exists()

    # Not a Stable Audio 3 config at all (Stable Audio Open's): refused before the weights are fetched.
    (broken / "model_config.json").write_text(json.dumps({"model_type": "diffusion_cond", "model": {
        "pretransform": {"type": "autoencoder", "config": {"encoder": {"type": "oobleck"}}}}}))
    with pytest.raises(ModelError, match="not a Stable Audio 3 model"):
        download_model("stabilityai/stable-audio-3-small-sfx")
    assert not store.model_dir("stabilityai/stable-audio-3-small-sfx").exists()
    checkpoint_fetches = [path for method, path, _ in sa3_hub.requests
                          if "/resolve/" in path and path.endswith("/main/model.safetensors") or
                          "/resolve/" in path and path.endswith(f"{sa3_hub.commit('stabilityai/stable-audio-3-small-sfx')}/model.safetensors")]
    assert len(checkpoint_fetches) == 1  # only the first attempt fetched the weights


def test_a_clip_longer_than_the_converted_model_makes_is_refused_before_it_loads(converted):
    from bridge.engine.families import check_request
    from bridge.errors import InvalidParameterError

    # The tiny checkpoint's seconds_total conditioner clamps at 47 s (Medium's at 384 s): read from the folder.
    with pytest.raises(InvalidParameterError, match="at most 47 s in one pass"):
        check_request(GenerationRequest(prompt="rain", model=str(converted), seconds=60.0))
