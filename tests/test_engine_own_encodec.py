"""Segue's own EnCodec (bridge/engine/musicgen/modules/encodec.py) against transformers' EncodecModel.

transformers is the reference here: codecs with random weights in the configs Segue runs (the tiny
models' own folders, AudioGen's 16 kHz codec, a narrow facebook/encodec_32khz, and causal variants)
are loaded into Segue's module from their state dicts, in the key format transformers 5.x saves and
in the older weight_g/weight_v one, and must give the same codes and the same audio.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from transformers import EncodecConfig
from transformers import EncodecModel as ReferenceEncodec

from bridge.engine.musicgen.codec import StreamingDecoder
from bridge.engine.musicgen.fast_encoder import encode_codes as encode_channels_last
from bridge.engine.musicgen.loading import resolve_checkpoint
from bridge.engine.musicgen.modules.encodec import (
    EncodecConvTranspose1d,
    EncodecModel,
    encodec_config,
    encodec_state,
)
from bridge.errors import ModelError
from tests.test_engine_streaming import random_codes, stream

# facebook/encodec_32khz's config.json (MusicGen's codec), narrowed: 8 filters instead of 64.
NARROW_32KHZ = dict(
    sampling_rate=32000, upsampling_ratios=[8, 5, 4, 4], target_bandwidths=[2.2], codebook_size=2048,
    use_causal_conv=False, pad_mode="reflect", use_conv_shortcut=False, norm_type="weight_norm",
    num_filters=8, hidden_size=32, num_lstm_layers=2,
)
# AudioGen's codec as bridge/models/audiocraft_convert.py maps it (tests/test_audiogen_codec_config.py):
# zero padding, 16 kHz, 320 samples per frame.
NARROW_16KHZ = {**NARROW_32KHZ, "sampling_rate": 16000, "upsampling_ratios": [8, 5, 4, 2], "pad_mode": "constant"}
# EnCodec 24 kHz's causal convolutions with convolution shortcuts, and a causal one trimmed both sides.
NARROW_CAUSAL = dict(num_filters=4, hidden_size=16, num_lstm_layers=1, target_bandwidths=[3.0, 6.0])
NARROW_CAUSAL_TRIMMED = {**NARROW_CAUSAL, "trim_right_ratio": 0.5, "pad_mode": "constant", "use_conv_shortcut": False}
CONFIGS = {"32khz": NARROW_32KHZ, "16khz": NARROW_16KHZ, "causal": NARROW_CAUSAL, "causal-trimmed": NARROW_CAUSAL_TRIMMED}


def reference_codec(values: dict, seed: int = 0) -> ReferenceEncodec:
    """transformers' EncodecModel with random weights, and random codebooks (they start at zero) at
    the scale of its embeddings and their residuals, so audio uses many codes of every codebook."""
    torch.manual_seed(seed)
    model = ReferenceEncodec(EncodecConfig(**values)).eval()
    with torch.no_grad():
        embeddings = model.encoder(waveform(values.get("sampling_rate", 24000) // 10, seed=99)).transpose(1, 2).flatten(0, 1)
        mean, spread = embeddings.mean(0), embeddings.std(0)
        for layer in model.quantizer.layers:
            layer.codebook.embed.normal_().mul_(spread).add_(mean)
            mean, spread = 0 * mean, spread / 2  # the residuals left for the next codebook
    return model


def legacy_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The same weights as older checkpoints hold them: weight_g (the norm over all but dim 0) and
    weight_v (any direction: here twice the weight), instead of transformers 5's parametrisations."""
    legacy = {}
    for name, tensor in state.items():
        if name.endswith(".parametrizations.weight.original1"):
            continue
        if name.endswith(".parametrizations.weight.original0"):
            prefix = name.removesuffix(".parametrizations.weight.original0")
            weight = torch._weight_norm(state[f"{prefix}.parametrizations.weight.original1"], tensor, 0)
            legacy[f"{prefix}.weight_g"] = weight.flatten(1).norm(dim=1).view(-1, 1, 1)
            legacy[f"{prefix}.weight_v"] = 2 * weight
        else:
            legacy[name] = tensor
    return legacy


def own_codec(reference: ReferenceEncodec, state: dict[str, torch.Tensor] | None = None) -> EncodecModel:
    """Built on the meta device and handed the tensors (the loader's way) for transformers' keys;
    built on the CPU with the tensors copied in for `state`."""
    if state is None:
        return EncodecModel.from_checkpoint(reference.config.to_dict(), reference.state_dict())
    model = EncodecModel(encodec_config(reference.config.to_dict())).eval()
    model.load_checkpoint_state(state)
    return model


def waveform(samples: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return 0.3 * torch.randn(2, 1, samples, generator=generator)  # a batch of two


@pytest.fixture(scope="module", params=list(CONFIGS))
def codecs(request):
    """transformers' codec, Segue's from its keys, Segue's from the same weights in the legacy format,
    and transformers' from that legacy format (its conversion renames weight_g/weight_v to the
    parametrisation's original0/original1). The legacy weights fold to the first ones to float
    rounding only: a code near a tie can differ between those two pairs (it did on an AVX2-only Zen 3)."""
    reference = reference_codec(CONFIGS[request.param])
    legacy = legacy_state(reference.state_dict())
    legacy_reference = ReferenceEncodec(reference.config).eval()
    legacy_reference.load_state_dict({
        name.replace(".weight_g", ".parametrizations.weight.original0").replace(".weight_v", ".parametrizations.weight.original1"): tensor
        for name, tensor in legacy.items()
    })
    return reference, own_codec(reference), own_codec(reference, legacy), legacy_reference


def test_importing_segues_encodec_leaves_transformers_unloaded():
    code = ("import sys, bridge.engine.musicgen.modules.encodec, bridge.engine.musicgen.fast_encoder; "
            "print('transformers' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("architecture", ["tiny", "tiny-audiogen"])
def test_config_attributes_equal_transformers_for_the_tiny_models_and_the_defaults(segue_cache_dir, architecture):
    folder = Path(resolve_checkpoint(architecture))
    values = json.loads((folder / "config.json").read_text())["audio_encoder"]
    for ours, theirs in ((encodec_config(values), EncodecConfig(**values)), (encodec_config({}), EncodecConfig())):
        for name in vars(ours):  # every attribute the module reads, the derived ones included
            assert getattr(ours, name) == getattr(theirs, name), name


@pytest.mark.parametrize("architecture", ["tiny", "tiny-audiogen"])
def test_a_tiny_model_folders_codec_loads_and_encodes_as_transformers(segue_cache_dir, architecture):
    folder = Path(resolve_checkpoint(architecture))
    values = json.loads((folder / "config.json").read_text())["audio_encoder"]
    weights = load_file(folder / "model.safetensors")
    state = {name.removeprefix("audio_encoder."): t for name, t in weights.items() if name.startswith("audio_encoder.")}
    assert any(name.endswith("parametrizations.weight.original0") for name in state)  # transformers 5's format
    reference = ReferenceEncodec(EncodecConfig(**values)).eval()
    reference.load_state_dict(state)
    ours = EncodecModel(encodec_config(values)).eval()
    ours.load_checkpoint_state(state)
    audio = waveform(values["sampling_rate"] // 4 + 3, seed=1)
    with torch.inference_mode():
        codes = ours.encode_codes(audio)
        assert torch.equal(codes, reference.encode(input_values=audio).audio_codes[0])
        expected = reference.decode(codes[None], [None]).audio_values
        torch.testing.assert_close(ours.decode_codes(codes), expected, rtol=1e-4, atol=1e-5)


# 1 and 5 samples: shorter than the first convolution's reflect padding (transformers' zero-extend case).
@pytest.mark.parametrize("samples", [1, 5, 321, 2560 + 17])
def test_codes_equal_transformers_encode_in_both_key_formats(codecs, samples):
    reference, ours, legacy, legacy_reference = codecs
    audio = waveform(samples, seed=samples)
    with torch.inference_mode():
        expected = reference.encode(input_values=audio).audio_codes[0]  # its default bandwidth: the lowest
        assert expected.shape[1] == reference.quantizer.get_num_quantizers_for_bandwidth(reference.config.target_bandwidths[0])
        assert torch.equal(ours.encode_codes(audio), expected)
        assert torch.equal(legacy.encode_codes(audio), legacy_reference.encode(input_values=audio).audio_codes[0])
        assert torch.equal(encode_channels_last(ours, audio), expected)


@pytest.mark.parametrize("frames", [1, 7, 40])
def test_decoded_audio_equals_transformers_decode(codecs, frames):
    reference, ours, legacy, _ = codecs
    codebooks = reference.quantizer.get_num_quantizers_for_bandwidth(reference.config.target_bandwidths[0])
    generator = torch.Generator().manual_seed(frames)
    codes = torch.randint(0, reference.config.codebook_size, (2, codebooks, frames), generator=generator)
    with torch.inference_mode():
        expected = reference.decode(codes[None], [None]).audio_values
        embeddings = reference.quantizer.decode(codes.transpose(0, 1))
        for model in (ours, legacy):
            torch.testing.assert_close(model.quantizer.decode(codes.transpose(0, 1)), embeddings, rtol=1e-5, atol=1e-6)
            audio = model.decode_codes(codes)
            assert audio.shape == (2, 1, frames * reference.config.hop_length)
            torch.testing.assert_close(audio, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["32khz", "causal"])
def test_old_weight_g_v_checkpoints_mean_to_segue_what_they_mean_to_transformers(tmp_path, name):
    """transformers loads weight_g/weight_v through its own legacy renaming; the audio must agree."""
    reference = reference_codec(CONFIGS[name])
    state = legacy_state(reference.state_dict())
    reference.config.save_pretrained(tmp_path)
    save_file({key: tensor.contiguous() for key, tensor in state.items()}, tmp_path / "model.safetensors")
    loaded_by_transformers = ReferenceEncodec.from_pretrained(tmp_path).eval()
    codes = torch.randint(0, reference.config.codebook_size, (1, 4, 12), generator=torch.Generator().manual_seed(4))
    with torch.inference_mode():
        expected = loaded_by_transformers.decode(codes[None], [None]).audio_values
        torch.testing.assert_close(expected, reference.decode(codes[None], [None]).audio_values, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(own_codec(reference, state).decode_codes(codes), expected, rtol=1e-4, atol=1e-5)


def test_the_streaming_decoder_runs_on_segues_encodec(tiny_model, tiny_reference_model):
    """codec.StreamingDecoder takes the codebook lookup, first convolution, LSTM and upsampler apart:
    on Segue's codec (the engine's, tiny_model's) its stitched chunks equal transformers' whole decode."""
    codes = random_codes(tiny_model, batch=2, frames=60, seed=3)
    total = 60 * tiny_model.samples_per_frame - 250
    _, audio, _ = stream(tiny_model, codes, prompt_frames=0, total_samples=total)
    with torch.inference_mode():
        expected = tiny_reference_model.model.audio_encoder.decode(codes[None], [None]).audio_values
    np.testing.assert_allclose(audio, expected.transpose(1, 2).numpy()[:, :total], atol=1e-5)
    assert isinstance(tiny_model.model.audio_encoder, EncodecModel)
    assert isinstance(StreamingDecoder(tiny_model, lambda *_: None, 0, total)._lstm.lstm, torch.nn.LSTM)


def test_weights_that_do_not_fit_are_named():
    reference = reference_codec(NARROW_CAUSAL)
    state = reference.state_dict()
    ours = EncodecModel(encodec_config(reference.config.to_dict()))

    missing = {name: t for name, t in state.items() if not name.startswith("decoder.layers.1.lstm")}
    with pytest.raises(ModelError, match=r"missing tensors decoder\.layers\.1\.lstm\.bias_hh_l0"):
        ours.load_checkpoint_state(missing)
    with pytest.raises(ModelError, match=r"unknown tensors decoder\.layers\.99\.conv\.bias"):
        ours.load_checkpoint_state({**state, "decoder.layers.99.conv.bias": torch.zeros(1)})
    half = {name: t for name, t in state.items() if name != "encoder.layers.0.conv.parametrizations.weight.original1"}
    with pytest.raises(ModelError, match=r"encoder\.layers\.0\.conv has no direction"):
        ours.load_checkpoint_state(half)
    narrower = {**state, "quantizer.layers.0.codebook.embed": torch.zeros(1024, 8)}
    with pytest.raises(ModelError, match=r"quantizer\.layers\.0\.codebook\.embed is \(1024, 8\).*\(1024, 16\)"):
        ours.load_checkpoint_state(narrower)
    assert "quantizer.layers.0.codebook.embed_avg" not in encodec_state(state)  # training-only buffers


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"norm_type": "time_group_norm"}, "norm_type 'time_group_norm'"),
        ({"chunk_length_s": 1.0, "overlap": 0.01}, "chunk_length_s 1.0"),
        ({"normalize": True}, "normalize"),
        ({"pad_mode": "replicate"}, "pad_mode 'replicate'"),
    ],
)
def test_codecs_segue_does_not_run_are_refused_in_one_line(changes, reason):
    with pytest.raises(ModelError, match=reason) as error:
        EncodecModel(encodec_config({**NARROW_CAUSAL, **changes}))
    assert "\n" not in str(error.value)


@pytest.mark.parametrize(
    ("channels", "out_channels", "kernel", "stride", "frames", "causal"),
    [
        (1024, 512, 16, 8, 1, False),  # musicgen's first upsampling layer, one frame
        (1024, 512, 16, 8, 29, True),  # a streaming chunk's 25 frames and margins, causal trim
        (64, 32, 8, 4, 64, False),  # as many frames as channels: still the GEMM
        (64, 32, 8, 4, 65, False),  # more: the convolution
        (48, 16, 7, 3, 10, False),  # a kernel that is not a whole number of strides: the convolution
    ],
)
def test_a_transposed_convolution_over_few_frames_as_a_gemm_equals_the_convolution(
    channels, out_channels, kernel, stride, frames, causal
):
    config = encodec_config({"use_causal_conv": causal})
    layer = EncodecConvTranspose1d(config, channels, out_channels, kernel, stride).eval()
    generator = torch.Generator().manual_seed(frames)
    hidden = torch.randn(2, channels, frames, generator=generator)
    convolved = []
    hook = layer.conv.register_forward_hook(lambda module, inputs, output: convolved.append(1))
    try:
        with torch.inference_mode():
            found = layer(hidden)
    finally:
        hook.remove()
    padding = kernel - stride
    right = math.ceil(padding * config.trim_right_ratio) if causal else padding // 2
    expected = F.conv_transpose1d(hidden, layer.conv.weight, layer.conv.bias, stride)
    expected = expected[..., padding - right : expected.shape[-1] - right]
    torch.testing.assert_close(found, expected, rtol=0, atol=2e-5 * expected.abs().max().item())
    assert bool(convolved) == (frames > channels or kernel % stride != 0)
