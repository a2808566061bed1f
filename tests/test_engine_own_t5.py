"""Segue's own T5 text encoder and tokenizer give what transformers gives, without importing it.

transformers is the reference here: random-weight `T5EncoderModel`s built from the tiny models' text
configs (and a T5 v1.1-style gated-GELU one), and `AutoTokenizer` over the tiny models' tokenizer.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoTokenizer, MusicgenForConditionalGeneration, T5Config, T5EncoderModel

from bridge.engine.musicgen.loading import resolve_checkpoint
from bridge.engine.musicgen.modules.t5 import T5_DEFAULTS, T5Encoder, load_t5_encoder, t5_config, t5_state
from bridge.engine.musicgen.modules.tokenizer import TextTokenizer
from bridge.engine.musicgen.random_models import ARCHITECTURES, tiny_tokenizer
from bridge.errors import ModelError

ROOT = Path(__file__).resolve().parents[1]
TINY_VOCAB = len(tiny_tokenizer())
TINY_TEXT = {**ARCHITECTURES["tiny"]["text_encoder"], "vocab_size": TINY_VOCAB}
GATED_TEXT = {**TINY_TEXT, "feed_forward_proj": "gated-gelu", "num_layers": 3}
PROMPTS = [
    "lofi hip hop beat",
    "",
    "  drums   and  bass ",
    "Deep House groove with a warm pad, 124 bpm",
    "x",
    "Ümlaut café ♥ 日本語 🎹",
    "dark techno\tloop\nwith\r\nbreaks",
    "a " * 300,
    "</s> inside <pad> text <unk>",
    "trap-beat_808!!! ???",
    "ambient",
    "jazz funk rock",
    "slow, bright & chill",
    "   ",
    "piano",
    "UPPER CASE PROMPT",
    "lo-fi (vinyl) [crackle] {tape}",
    "bass\u00a0guitar\u2003synth",
    "e\u0301 versus é",
    "drum and bass 174",
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("t5-tokenizer")
    tiny_tokenizer().save_pretrained(folder)
    return folder


def reference_and_ours(values: dict, seed: int = 0, attention: str = "sdpa") -> tuple[T5EncoderModel, T5Encoder]:
    torch.manual_seed(seed)
    reference = T5EncoderModel(T5Config(**values, attn_implementation=attention)).eval()
    config = t5_config(json.loads(reference.config.to_json_string()))
    ours = T5Encoder(config).eval()
    ours.load_state_dict(t5_state(reference.state_dict(), config), strict=True)
    return reference, ours


def padded_batch(tokenizer_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    ids, mask = TextTokenizer.from_folder(tokenizer_dir)(["deep house groove with a warm pad", "", "lofi hip hop", "x" * 40])
    assert mask.sum(1).unique().numel() == 4  # four different lengths, so three prompts are padded
    return ids, mask


# --- configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [
    {},
    TINY_TEXT,
    GATED_TEXT,
    {**ARCHITECTURES["small-random"]["text_encoder"]},
    {**ARCHITECTURES["audiogen-medium-random"]["text_encoder"]},
    {"feed_forward_proj": "gated-relu", "layer_norm_epsilon": 1e-5, "relative_attention_num_buckets": 16},
], ids=["defaults", "tiny", "gated-gelu", "t5-base", "t5-large", "gated-relu"])
def test_config_reads_every_field_as_transformers_t5config(values):
    reference = T5Config(**values)
    ours = t5_config(reference.to_dict() if values else {})
    for name in [*T5_DEFAULTS, "is_gated_act", "dense_act_fn"]:
        assert getattr(ours, name) == getattr(reference, name), name


def test_config_stated_activation_wins_over_the_derived_one_as_in_t5config():
    values = {"feed_forward_proj": "relu", "dense_act_fn": "gelu", "is_gated_act": True}
    reference, ours = T5Config.from_dict(values), t5_config(values)
    assert (ours.dense_act_fn, ours.is_gated_act) == (reference.dense_act_fn, reference.is_gated_act) == ("gelu", True)


def test_config_takes_generic_field_names_and_refuses_unknown_projections():
    assert t5_config({"hidden_size": 48, "num_attention_heads": 3}).d_model == 48
    for projection in ("gated-gelu-fast", "swish-gated", "relu2"):
        with pytest.raises(ModelError, match="text encoder"):
            t5_config({"feed_forward_proj": projection})


# --- encoder ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("values", [TINY_TEXT, GATED_TEXT, {**TINY_TEXT, "feed_forward_proj": "gelu"}],
                         ids=["relu", "gated-gelu", "gelu"])
@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_encoder_equals_transformers_on_a_padded_batch(tokenizer_dir, values, attention):
    reference, ours = reference_and_ours(values, attention=attention)
    ids, mask = padded_batch(tokenizer_dir)
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        actual = ours(ids, mask)
    assert actual.dtype == torch.float32 and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, atol=1e-5, rtol=1e-5)


def test_relative_position_buckets_reach_past_max_distance(tokenizer_dir):
    """200 tokens: distances beyond 128 share the last bucket, as in transformers."""
    values = {**TINY_TEXT, "relative_attention_num_buckets": 8, "relative_attention_max_distance": 20}
    reference, ours = reference_and_ours(values, seed=3)
    ids, mask = TextTokenizer.from_folder(tokenizer_dir)(["drums " * 199, "bass"])
    with torch.inference_mode():
        torch.testing.assert_close(ours(ids, mask), reference(input_ids=ids, attention_mask=mask).last_hidden_state,
                                   atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("wo_in_fp32", [False, True], ids=["all-fp16", "wo-kept-fp32"])
def test_fp16_encoder_equals_transformers_fp16(tokenizer_dir, wo_in_fp32):
    """The GPU path: all in fp16 (Segue's loader) or with `wo` in fp32 (transformers' from_pretrained in fp16)."""
    reference, ours = reference_and_ours(GATED_TEXT, seed=1)
    reference.half(), ours.half()
    if wo_in_fp32:
        for model in (reference, ours):
            for block in model.encoder.block:
                block.layer[1].DenseReluDense.wo.float()
    ids, mask = padded_batch(tokenizer_dir)
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        actual = ours(ids, mask)
    assert actual.dtype == expected.dtype == torch.float16
    torch.testing.assert_close(actual, expected, atol=2e-3, rtol=2e-3)


def test_fp16_overflow_is_clamped_as_transformers_clamps_it(tokenizer_dir):
    reference, ours = reference_and_ours(TINY_TEXT, seed=2)
    with torch.no_grad():
        for model in (reference, ours):  # the first feed-forward's output overflows fp16
            model.encoder.block[0].layer[1].DenseReluDense.wo.weight.mul_(1e5)
    reference.half(), ours.half()
    overflowed = []
    ours.encoder.block[0].layer[1].register_forward_hook(lambda _m, _i, out: overflowed.append(torch.isinf(out).any()))
    ids, mask = padded_batch(tokenizer_dir)
    with torch.inference_mode():
        expected = reference(input_ids=ids, attention_mask=mask).last_hidden_state
        actual = ours(ids, mask)
    assert overflowed == [True] and torch.isfinite(actual).all()
    torch.testing.assert_close(actual, expected, atol=2e-3, rtol=2e-3)


def test_tiny_checkpoint_prompt_to_states_equals_the_transformers_model(segue_cache_dir):
    """From the tiny model's folder: Segue's tokenizer and encoder over its `text_encoder.` tensors."""
    folder = Path(resolve_checkpoint("tiny"))
    prefix = "text_encoder."
    state = {name[len(prefix):]: tensor for name, tensor in load_file(folder / "model.safetensors").items()
             if name.startswith(prefix)}
    ours = load_t5_encoder(t5_config(json.loads((folder / "config.json").read_text())["text_encoder"]), state)
    assert not ours.training and all(not parameter.is_meta for parameter in ours.parameters())
    reference = MusicgenForConditionalGeneration.from_pretrained(folder).text_encoder.eval()
    prompts = ["deep house groove", "", "lofi hip hop beat with warm pads"]
    ids, mask = TextTokenizer.from_folder(folder)(prompts)
    expected_inputs = AutoTokenizer.from_pretrained(folder)(prompts, return_tensors="pt", padding=True)
    assert torch.equal(ids, expected_inputs.input_ids) and torch.equal(mask, expected_inputs.attention_mask)
    with torch.inference_mode():
        torch.testing.assert_close(ours(ids, mask), reference(input_ids=ids, attention_mask=mask).last_hidden_state,
                                   atol=1e-5, rtol=1e-5)


def test_state_drops_the_tied_embedding_and_names_what_does_not_fit():
    reference, _ = reference_and_ours(TINY_TEXT)
    config = t5_config(reference.config.to_dict())
    state = reference.state_dict()
    assert "encoder.embed_tokens.weight" in state and "encoder.embed_tokens.weight" not in t5_state(state, config)
    missing = {name: tensor for name, tensor in state.items() if name != "encoder.final_layer_norm.weight"}
    with pytest.raises(ModelError, match=r"missing text_encoder\.encoder\.final_layer_norm\.weight"):
        t5_state(missing, config)
    with pytest.raises(ModelError, match=r"unknown text_encoder\.encoder\.block\.9\.layer\.0\.layer_norm\.weight"):
        t5_state({**state, "encoder.block.9.layer.0.layer_norm.weight": torch.ones(32)}, config)
    with pytest.raises(ModelError, match=r"shared\.weight has shape \(7, 32\)"):
        t5_state({**state, "shared.weight": torch.zeros(7, 32)}, config)
    with pytest.raises(ModelError, match="missing .*wi_0"):  # a ReLU checkpoint under a gated config
        t5_state(state, t5_config({**reference.config.to_dict(), "feed_forward_proj": "gated-gelu", "is_gated_act": True}))


def test_text_side_runs_without_transformers_or_sympy_in_the_process(tokenizer_dir):
    """The point of these modules: no transformers import (seconds), and loading on the meta device does
    not pull torch's Python decompositions and sympy (1 s) either."""
    code = f"""
import sys, torch
from bridge.engine.musicgen.modules.t5 import T5Encoder, load_t5_encoder, t5_config
from bridge.engine.musicgen.modules.tokenizer import TextTokenizer
config = t5_config({TINY_TEXT!r})
encoder = load_t5_encoder(config, T5Encoder(config).state_dict())
encoder(*TextTokenizer.from_folder({str(tokenizer_dir)!r})(["deep house", ""]))
print(sorted(name for name in ("transformers", "sympy") if name in sys.modules))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.stdout.strip() == "[]", result.stderr


# --- tokenizer ----------------------------------------------------------------------------------------

def test_tokenizer_equals_transformers_one_prompt_at_a_time_and_in_batches(tokenizer_dir):
    ours, reference = TextTokenizer.from_folder(tokenizer_dir), AutoTokenizer.from_pretrained(tokenizer_dir)
    batches = [[prompt] for prompt in PROMPTS] + [PROMPTS, PROMPTS[:5], PROMPTS[10:], ["a", "a b c d e f", ""]]
    for batch in batches:
        ids, mask = ours(batch)
        expected = reference(batch, return_tensors="pt", padding=True)
        assert ids.dtype == mask.dtype == torch.int64
        assert torch.equal(ids, expected.input_ids), batch
        assert torch.equal(mask, expected.attention_mask), batch
    ids, _ = ours(["", "lofi"])
    assert ids[0].tolist()[:1] == [reference.eos_token_id] and ids[1, -1] == reference.eos_token_id  # T5 ends with </s>
    assert ours(["a " * 300])[0].shape[1] > 300  # nothing truncated


def test_tokenizer_rebuilds_an_old_tokenizer_json_as_transformers_does(tokenizer_dir, tmp_path):
    """A tokenizer.json from an older converter: its pipeline is replaced by T5's, its padding side kept."""
    spec = json.loads((tokenizer_dir / "tokenizer.json").read_text())
    spec |= {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "Lowercase"}, {"type": "Strip", "strip_left": True,
                                                                                    "strip_right": True}]},
        "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True},
        "post_processor": None,
        "truncation": {"direction": "Right", "max_length": 4, "strategy": "LongestFirst", "stride": 0},
        "padding": {"strategy": "BatchLongest", "direction": "Right", "pad_to_multiple_of": 8, "pad_id": 0,
                    "pad_type_id": 0, "pad_token": "<pad>"},
    }
    (tmp_path / "tokenizer.json").write_text(json.dumps(spec))
    config = json.loads((tokenizer_dir / "tokenizer_config.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left", "model_max_length": 6}))
    ours, reference = TextTokenizer.from_folder(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    for batch in (PROMPTS, ["UPPER  case", "x"], ["  drums   and  bass "]):
        ids, mask = ours(batch)
        expected = reference(batch, return_tensors="pt", padding=True)
        assert torch.equal(ids, expected.input_ids) and torch.equal(mask, expected.attention_mask), batch
    assert ours(["a", "a b c"])[1][0].tolist()[0] == 0  # padded on the left


@pytest.mark.parametrize("token_files", [
    {"special_tokens_map.json": {"pad_token": {"content": "<unk>", "lstrip": False}}},
    {"special_tokens_map.json": {"pad_token": "<unk>", "eos_token": "<pad>"}, "tokenizer_config.json": {"pad_token": "</s>"}},
    {"tokenizer_config.json": {"pad_token": "</s>", "eos_token": "<unk>"}},
], ids=["map-only", "map-wins", "config-only"])
def test_pad_and_end_tokens_come_from_the_token_files_as_in_transformers(tokenizer_dir, tmp_path, token_files):
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_text((tokenizer_dir / name).read_text())
    for name, values in token_files.items():
        existing = json.loads((tmp_path / name).read_text()) if (tmp_path / name).is_file() else {}
        (tmp_path / name).write_text(json.dumps({**existing, **values}))
    ours, reference = TextTokenizer.from_folder(tmp_path), AutoTokenizer.from_pretrained(tmp_path)
    batch = ["deep house groove", "x", ""]
    ids, mask = ours(batch)
    expected = reference(batch, return_tensors="pt", padding=True)
    assert torch.equal(ids, expected.input_ids) and torch.equal(mask, expected.attention_mask)


def test_a_folder_without_tokenizer_json_is_one_model_error_line(tokenizer_dir, tmp_path):
    with pytest.raises(ModelError, match="has no tokenizer.json") as error:
        TextTokenizer.from_folder(tmp_path)
    assert "\n" not in str(error.value)
    (tmp_path / "tokenizer.json").write_text((tokenizer_dir / "tokenizer.json").read_text())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "GPT2Tokenizer"}))
    with pytest.raises(ModelError, match="T5 tokenizers only"):
        TextTokenizer.from_folder(tmp_path)
    (tmp_path / "tokenizer_config.json").unlink()
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ModelError, match="cannot read"):
        TextTokenizer.from_folder(tmp_path)
