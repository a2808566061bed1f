"""Segue's own MusicGen modules and loader (bridge/engine/musicgen/modules, loading.py) against transformers'.

The engine never imports transformers; the same checkpoints load into both trees with the same
weights, configuration and computed tables. (Greedy codes equal to transformers' `generate`:
tests/test_engine_reference.py; the text encoder and EnCodec: test_engine_own_t5.py, _own_encodec.py.)
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import MusicgenDecoderConfig, MusicgenMelodyConfig, MusicgenMelodyDecoderConfig

from bridge.engine.musicgen.loading import load_model, resolve_checkpoint
from bridge.engine.musicgen.modules.musicgen import DECODER_DEFAULTS, MELODY_DEFAULTS, musicgen_config
from bridge.errors import ModelError

ROOT = Path(__file__).resolve().parent.parent


def test_a_cli_job_never_imports_transformers(segue_cache_dir):
    """What a `segue generate` worker runs: load a model, generate, decode. transformers' import alone
    was ~2.3 s of a 5 s job on a 2-core machine (bench/cli_startup.py)."""
    resolve_checkpoint("tiny")  # built (through transformers) by the session's fixtures, not in the child
    script = (
        "import sys\n"
        "from bridge.engine.families import load_generator\n"
        "from bridge.engine.request import GenerationRequest\n"
        "generator = load_generator('tiny', 'cpu')\n"
        "result = generator.generate(GenerationRequest(prompt='dub techno', model='tiny', seconds=0.3, seed=1))\n"
        "assert result.takes[0].audio.shape[0] > 0\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('transformers', 'scipy')))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("config_class", [MusicgenDecoderConfig, MusicgenMelodyDecoderConfig])
def test_decoder_defaults_are_transformers_defaults(config_class):
    config = config_class()
    # The melody decoder has no cross-attention, so no cross-attention width either.
    names = [name for name in DECODER_DEFAULTS if hasattr(config, name) or name != "cross_attention_hidden_size"]
    assert {name: getattr(config, name) for name in names} == {name: DECODER_DEFAULTS[name] for name in names}


def test_melody_defaults_are_transformers_defaults():
    config = MusicgenMelodyConfig()
    assert {name: getattr(config, name) for name in MELODY_DEFAULTS} == MELODY_DEFAULTS


def test_a_config_json_without_the_decoders_defaults_reads_as_transformers_reads_it(tiny_model, tiny_reference_model):
    folder = Path(resolve_checkpoint("tiny"))
    values = json.loads((folder / "config.json").read_text())
    for name in ("max_position_embeddings", "activation_function", "audio_channels"):  # left out as old configs do
        values["decoder"].pop(name)
    parsed = musicgen_config(values)
    reference = tiny_reference_model.model.config.decoder
    for name in DECODER_DEFAULTS:
        assert getattr(parsed.decoder, name) == getattr(reference, name), name


@pytest.mark.parametrize("model_id", ["tiny", "tiny-melody"])
def test_weights_and_position_tables_equal_transformers(model_id, segue_cache_dir):
    from bridge.engine.musicgen.reference import load_reference_model

    ours, theirs = load_model(model_id, "cpu").model, load_reference_model(model_id).model
    theirs_decoder = dict(theirs.decoder.named_parameters())
    for name, value in ours.decoder.named_parameters():
        assert torch.equal(value, theirs_decoder[name]), name
    positions, reference = (model.decoder.model.decoder.embed_positions.weights for model in (ours, theirs))
    assert torch.equal(positions, reference)
    assert hasattr(ours, "enc_to_dec_proj") == hasattr(theirs, "enc_to_dec_proj")
    assert hasattr(ours, "audio_enc_to_dec_proj") == hasattr(theirs, "audio_enc_to_dec_proj")


def copy_of_tiny(tmp_path: Path) -> Path:
    return Path(shutil.copytree(resolve_checkpoint("tiny"), tmp_path / "tiny-copy"))


def test_a_sharded_checkpoint_loads_as_the_single_file_does(tiny_model, tmp_path):
    folder = copy_of_tiny(tmp_path)
    weights = load_file(folder / "model.safetensors")
    names = sorted(weights)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for shard, shard_names in shards.items():
        save_file({name: weights[name] for name in shard_names}, folder / shard)
    index = {"weight_map": {name: shard for shard, shard_names in shards.items() for name in shard_names}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model.safetensors").unlink()
    sharded = load_model(str(folder), "cpu").model.state_dict()
    for name, value in tiny_model.model.state_dict().items():
        assert torch.equal(sharded[name], value), name


def test_missing_generation_config_falls_back_to_the_decoders_token_ids(tmp_path):
    folder = copy_of_tiny(tmp_path)
    (folder / "generation_config.json").unlink()
    generation = load_model(str(folder), "cpu").model.generation_config
    assert (generation.pad_token_id, generation.decoder_start_token_id) == (2048, 2048)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("drop-weight", r"its weights lack decoder\.lm_heads\.0\.weight"),
        ("other-model", r"not MusicGen"),
        ("no-weights", r"has no safetensors weights"),
        ("bad-json", r"not a loadable MusicGen checkpoint"),
    ],
)
def test_a_damaged_checkpoint_is_one_clear_line(tmp_path, damage, message):
    folder = copy_of_tiny(tmp_path)
    weights_file, config_file = folder / "model.safetensors", folder / "config.json"
    if damage == "drop-weight":
        weights = load_file(weights_file)
        del weights["decoder.lm_heads.0.weight"]
        save_file(weights, weights_file)
    elif damage == "other-model":
        config_file.write_text(json.dumps({**json.loads(config_file.read_text()), "model_type": "bark"}))
    elif damage == "no-weights":
        weights_file.unlink()
    else:
        config_file.write_text("{ not json")
    with pytest.raises(ModelError, match=message) as raised:
        load_model(str(folder), "cpu")
    assert "\n" not in str(raised.value)


def test_weights_segue_does_not_use_are_left_out_as_transformers_leaves_them(tiny_model, tmp_path, caplog):
    """A stored position table (computed here), the tied T5 embedding and anything unknown load as
    transformers loads them: ignored, with a log line."""
    folder = copy_of_tiny(tmp_path)
    weights = load_file(folder / "model.safetensors")
    positions = tiny_model.model.decoder.model.decoder.embed_positions.weights
    weights["decoder.model.decoder.embed_positions.weights"] = positions.clone()
    weights["text_encoder.encoder.embed_tokens.weight"] = weights["text_encoder.shared.weight"].clone()
    weights["text_encoder.decoder.final_layer_norm.weight"] = torch.ones(32)
    weights["decoder.surprise"] = torch.zeros(1)
    save_file(weights, folder / "model.safetensors")
    with caplog.at_level("INFO", logger="bridge.engine.musicgen.loading"):
        loaded = load_model(str(folder), "cpu")
    assert "left out 3 weights" in caplog.text and "decoder.surprise" in caplog.text
    for name, value in tiny_model.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], value), name


def test_a_checkpoint_saved_in_the_older_hub_format_loads_the_same(tiny_model, tmp_path):
    """facebook/musicgen-* on the Hub keep EnCodec's weight norm as `weight_g`/`weight_v` (transformers
    renames them on load: conversion_mapping.py, "legacy"); the weights come out the same."""
    folder = copy_of_tiny(tmp_path)
    weights = load_file(folder / "model.safetensors")
    renamed = {}
    for name, value in weights.items():
        name = name.replace("parametrizations.weight.original0", "weight_g")
        renamed[name.replace("parametrizations.weight.original1", "weight_v")] = value
    assert any(name.endswith("weight_g") for name in renamed)
    save_file(renamed, folder / "model.safetensors")
    older = load_model(str(folder), "cpu").model.state_dict()
    for name, value in tiny_model.model.state_dict().items():
        assert torch.equal(older[name], value), name
