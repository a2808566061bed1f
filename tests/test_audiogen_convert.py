"""AudioGen's audiocraft checkpoint -> a transformers MusicGen folder, checked against audiocraft's own math."""

import math
import pickle
import shutil

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers import T5Config, T5EncoderModel

from bridge.engine.musicgen.audiogen import AUDIOGEN_MARKER
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.musicgen.loading import load_model
from bridge.engine.musicgen.random_models import _TINY_TEXT_ENCODER, tiny_tokenizer
from bridge.engine.request import GenerationRequest
from bridge.errors import ModelError
from bridge.models.audiocraft_convert import convert_audiogen
from bridge.models.audiocraft_pickles import InertObject, load_checkpoint_pickle
from tests.audiocraft_checkpoint import LM_DIMS, codec_state, lm_state, write_checkpoint


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("t5-tiny")
    tokenizer = tiny_tokenizer()
    torch.manual_seed(3)
    T5EncoderModel(T5Config(vocab_size=len(tokenizer), **_TINY_TEXT_ENCODER)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def converted(tmp_path_factory, t5_dir):
    checkpoint = write_checkpoint(tmp_path_factory.mktemp("audiogen-ckpt"), _TINY_TEXT_ENCODER["d_model"])
    out = tmp_path_factory.mktemp("converted") / "audiogen-tiny"
    convert_audiogen(checkpoint, t5_dir, out)
    return out


def test_conversion_writes_a_loadable_16khz_folder_with_safetensors_only(converted):
    names = {path.name for path in converted.iterdir()}
    assert "model.safetensors" in names and AUDIOGEN_MARKER in names
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in names)
    loaded = load_model(str(converted), "cpu")
    assert loaded.sample_rate == 16000 and loaded.frame_rate == 50 and loaded.num_codebooks == 4
    assert (loaded.windows.seconds, loaded.windows.context_seconds) == (10.0, 8.0)



def test_the_text_encoder_is_t5_unchanged(converted, t5_dir):
    loaded = load_model(str(converted), "cpu")
    original = T5EncoderModel.from_pretrained(t5_dir).eval()
    input_ids, attention_mask = loaded.tokenizer(["rain on a tin roof"])
    with torch.no_grad():
        ours = loaded.model.text_encoder(input_ids=input_ids, attention_mask=attention_mask)
        theirs = original(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)  # Segue's own T5 (modules/t5.py) on T5's weights


def test_every_weight_round_trips_exactly(converted):
    saved = load_file(converted / "model.safetensors")
    lm, codec, dim = lm_state(_TINY_TEXT_ENCODER["d_model"]), codec_state(), LM_DIMS["dim"]
    decoder = "decoder.model.decoder"
    assert torch.equal(saved["enc_to_dec_proj.weight"], lm["condition_provider.conditioners.description.output_proj.weight"])
    for k in range(LM_DIMS["n_q"]):
        assert torch.equal(saved[f"{decoder}.embed_tokens.{k}.weight"], lm[f"emb.{k}.weight"])
        assert torch.equal(saved[f"decoder.lm_heads.{k}.weight"], lm[f"linears.{k}.weight"])
    for i in range(LM_DIMS["num_layers"]):
        for ours, theirs in (("self_attn", "self_attn"), ("encoder_attn", "cross_attention")):
            packed = lm[f"transformer.layers.{i}.{theirs}.in_proj_weight"]
            stacked = torch.cat([saved[f"{decoder}.layers.{i}.{ours}.{p}_proj.weight"] for p in "qkv"])
            assert torch.equal(stacked, packed) and packed.shape == (3 * dim, dim)
        assert torch.equal(saved[f"{decoder}.layers.{i}.fc2.weight"], lm[f"transformer.layers.{i}.linear2.weight"])
        assert torch.equal(saved[f"{decoder}.layers.{i}.encoder_attn_layer_norm.bias"],
                          lm[f"transformer.layers.{i}.norm_cross.bias"])
    assert torch.equal(saved[f"{decoder}.layer_norm.weight"], lm["out_norm.weight"])
    codec_pairs = {
        "encoder.model.0.conv.conv.weight_v": "audio_encoder.encoder.layers.0.conv.parametrizations.weight.original1",
        "encoder.model.12.conv.conv.weight_g": "audio_encoder.encoder.layers.12.conv.parametrizations.weight.original0",
        "encoder.model.13.lstm.weight_hh_l1": "audio_encoder.encoder.layers.13.lstm.weight_hh_l1",
        "decoder.model.3.convtr.convtr.weight_v": "audio_encoder.decoder.layers.3.conv.parametrizations.weight.original1",
        "decoder.model.13.block.1.conv.conv.bias": "audio_encoder.decoder.layers.13.block.1.conv.bias",
        "quantizer.vq.layers.3._codebook.embed": "audio_encoder.quantizer.layers.3.codebook.embed",
    }
    for theirs, ours in codec_pairs.items():
        assert torch.equal(saved[ours], codec[theirs]), theirs
    # Nothing dropped on the way: every audiocraft tensor is somewhere in the file (q/k/v as thirds).
    lm_count = sum(3 if name.endswith("in_proj_weight") else 1 for name in lm)
    text_count = sum(1 for name in saved if name.startswith("text_encoder."))
    assert len(saved) == lm_count + len(codec) + text_count


def audiocraft_logits(state: dict, codes: torch.Tensor, text_states: torch.Tensor) -> torch.Tensor:
    """audiocraft LMModel.forward for an unpadded text (models/lm.py, modules/transformer.py), written out:
    summed codebook embeddings + sinusoidal positions, pre-norm layers (causal self-attention over packed
    q/k/v, cross-attention to the projected text, GELU feed-forward), out_norm, one head per codebook."""
    dim, heads = LM_DIMS["dim"], LM_DIMS["num_heads"]
    batch, codebooks, steps = codes.shape
    x = sum(state[f"emb.{k}.weight"][codes[:, k]] for k in range(codebooks))
    half = dim // 2
    phase = torch.arange(steps, dtype=torch.float32)[:, None] / (10000 ** (torch.arange(half) / (half - 1)))[None]
    x = x + torch.cat([torch.cos(phase), torch.sin(phase)], dim=-1)  # create_sin_embedding
    prefix = "condition_provider.conditioners.description.output_proj"
    memory = text_states @ state[f"{prefix}.weight"].T + state[f"{prefix}.bias"]

    def norm(h, name):
        return F.layer_norm(h, (dim,), state[f"{name}.weight"], state[f"{name}.bias"], 1e-5)

    def attend(query, source, name, causal):
        q, k, v = (t.view(batch, -1, heads, dim // heads).transpose(1, 2) for t in (
            query @ state[f"{name}.in_proj_weight"][:dim].T,
            source @ state[f"{name}.in_proj_weight"][dim:2 * dim].T,
            source @ state[f"{name}.in_proj_weight"][2 * dim:].T))
        scores = q @ k.transpose(-1, -2) / math.sqrt(dim // heads)
        if causal:
            scores = scores.masked_fill(torch.ones(steps, steps, dtype=torch.bool).triu(1), float("-inf"))
        out = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, -1, dim)
        return out @ state[f"{name}.out_proj.weight"].T

    for i in range(LM_DIMS["num_layers"]):
        layer = f"transformer.layers.{i}"
        h = norm(x, f"{layer}.norm1")
        x = x + attend(h, h, f"{layer}.self_attn", causal=True)
        x = x + attend(norm(x, f"{layer}.norm_cross"), memory, f"{layer}.cross_attention", causal=False)
        h = norm(x, f"{layer}.norm2")
        x = x + F.gelu(h @ state[f"{layer}.linear1.weight"].T) @ state[f"{layer}.linear2.weight"].T
    x = norm(x, "out_norm")
    return torch.stack([x @ state[f"linears.{k}.weight"].T for k in range(codebooks)], dim=1)  # (B, K, S, card)


def test_converted_decoder_computes_audiocraft_logits(converted):
    from bridge.engine.musicgen.reference import load_reference_model

    loaded = load_reference_model(str(converted))  # transformers' decoder; Segue's own is held to it elsewhere
    torch.manual_seed(0)
    codes = torch.randint(0, LM_DIMS["card"] + 1, (2, LM_DIMS["n_q"], 7))
    text_states = torch.randn(2, 5, _TINY_TEXT_ENCODER["d_model"])
    expected = audiocraft_logits(lm_state(_TINY_TEXT_ENCODER["d_model"]), codes, text_states)
    model = loaded.model
    with torch.no_grad():
        memory = model.enc_to_dec_proj(text_states)
        logits = model.decoder(
            input_ids=codes.reshape(-1, 7), encoder_hidden_states=memory,
            encoder_attention_mask=torch.ones(2, 5, dtype=torch.long),
        ).logits
    assert logits.reshape(expected.shape).sub(expected).abs().max() < 1e-4


def test_converted_model_generates_through_the_engine(converted):
    generator = MusicGenerator(load_model(str(converted), "cpu"))
    request = GenerationRequest(prompt="glass shatter", model=str(converted), bars=1, bpm=240, seed=4)
    result = generator.generate(request)
    assert result.sample_rate == 16000
    assert result.takes[0].audio.shape == (16000, 1)  # 1 bar of 4/4 at 240 BPM = 1 s at 16 kHz
    assert float(abs(result.takes[0].audio).max()) > 0


class Pretend:
    """Stands for an OmegaConf DictConfig kept as an object (pickled as NEWOBJ + BUILD)."""

    def __init__(self) -> None:
        self.content = {"transformer_lm": {"dim": 32}}


class Trap:
    """A pickle that, if unpickled for real, would delete a folder."""

    def __init__(self, folder) -> None:
        self.folder = str(folder)

    def __reduce__(self):
        return shutil.rmtree, (self.folder,)


def test_config_objects_become_inert_and_the_weights_still_convert(tmp_path, t5_dir):
    sentinel = tmp_path / "keep-me"
    sentinel.mkdir()
    checkpoint = write_checkpoint(tmp_path / "ckpt", _TINY_TEXT_ENCODER["d_model"],
                                  lm_cfg={"cfg": Pretend(), "hook": Trap(sentinel)}, codec_cfg=Pretend())
    package = load_checkpoint_pickle(checkpoint / "state_dict.bin")
    assert sentinel.is_dir()  # shutil.rmtree was named by the pickle but never called
    assert isinstance(package["xp.cfg"]["hook"], InertObject) and isinstance(package["xp.cfg"]["cfg"], InertObject)
    out = convert_audiogen(checkpoint, t5_dir, tmp_path / "out")  # config from the weights' shapes instead
    assert load_model(str(out), "cpu").sample_rate == 16000 and sentinel.is_dir()


def test_blocked_modules_and_bad_files_fail_with_one_line(tmp_path, t5_dir):
    class System:
        def __reduce__(self):
            import os

            return os.system, ("true",)

    folder = tmp_path / "evil"
    folder.mkdir()
    torch.save({"best_state": {}, "xp.cfg": System()}, folder / "state_dict.bin")
    with pytest.raises(ModelError, match="refers to code Segue will not load"):
        load_checkpoint_pickle(folder / "state_dict.bin")
    (folder / "junk.bin").write_bytes(pickle.dumps([1, 2]) + b"garbage")
    with pytest.raises(ModelError) as error:
        load_checkpoint_pickle(folder / "junk.bin")
    assert "\n" not in str(error.value)


def test_a_config_that_disagrees_with_the_weights_is_refused(tmp_path, t5_dir):
    bad = write_checkpoint(tmp_path / "ckpt", _TINY_TEXT_ENCODER["d_model"],
                           lm_cfg="transformer_lm:\n  dim: 64\n  positional_embedding: sin\n")
    with pytest.raises(ModelError, match="transformer_lm.dim"):
        convert_audiogen(bad, t5_dir, tmp_path / "out")
    rope = write_checkpoint(tmp_path / "rope", _TINY_TEXT_ENCODER["d_model"],
                            lm_cfg="transformer_lm:\n  positional_embedding: rope\n")
    with pytest.raises(ModelError, match="positional_embedding"):
        convert_audiogen(rope, t5_dir, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.fixture
def audiogen_hub(tmp_path, monkeypatch, t5_dir):
    """A stand-in Hub with an audiocraft-format AudioGen repository and the T5 repository it names."""
    from huggingface_hub import constants

    from tests.fake_hub import FakeHub

    checkpoint = write_checkpoint(tmp_path / "repo-audiogen", _TINY_TEXT_ENCODER["d_model"])
    (checkpoint / "README.md").write_text("---\nlicense: cc-by-nc-4.0\n---\n")
    monkeypatch.setenv("SEGUE_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    with FakeHub({"facebook/audiogen-medium": checkpoint, "google-t5/t5-large": t5_dir}) as running:
        monkeypatch.setenv("HF_ENDPOINT", running.endpoint)
        yield running


@pytest.mark.slow  # two child processes (convert, verify) that each import torch and transformers
def test_download_converts_once_into_the_store_and_generates_offline(audiogen_hub):
    from bridge.models import download_model, model_status, store

    stages = []
    installed = download_model("facebook/audiogen-medium", on_progress=lambda p: stages.append(p.stage))
    assert stages[-2:] == ["converting", "verifying"] and stages[0] == "downloading"
    names = {path.name for path in installed.iterdir()}
    assert "model.safetensors" in names and not any(name.endswith(".bin") for name in names)
    assert not (store.model_dir("facebook/audiogen-medium") / "downloads").exists()  # pickles deleted
    manifest = store.read_manifest("facebook/audiogen-medium")
    assert manifest["state"] == "ready" and manifest["text_encoder"]["repo"] == "google-t5/t5-large"
    assert model_status("facebook/audiogen-medium").state == "ready"
    requests_before = len(audiogen_hub.requests)
    assert download_model("facebook/audiogen-medium") == installed  # ready: nothing fetched again
    assert len(audiogen_hub.requests) == requests_before
    loaded = load_model("facebook/audiogen-medium", "cpu")
    assert loaded.sample_rate == 16000 and loaded.windows.seconds == 10.0


def test_greedy_codes_of_the_converted_model_equal_transformers_generate(converted):
    """Unlike `tiny-audiogen`, the converted model projects T5's states (enc_to_dec_proj), as the real one does."""
    import numpy as np

    from bridge.engine.musicgen.reference import load_reference_model
    from tests.test_engine_reference import reference_codes

    loaded = load_model(str(converted), "cpu")
    frames = 30
    reference = load_reference_model(str(converted))
    inputs = reference.processor(text=["dog barking in a hall"], return_tensors="pt")
    expected = reference_codes(reference, **inputs, guidance_scale=3.0, max_new_tokens=frames + 3)
    ours = MusicGenerator(loaded).generate(GenerationRequest(
        prompt="dog barking in a hall", model=str(converted), seconds=frames / 50, greedy=True, quality="exact"))
    assert expected.shape == (1, 4, frames)
    np.testing.assert_array_equal(ours.takes[0].codes, expected[0])
