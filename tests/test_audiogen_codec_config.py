"""AudioGen's 16 kHz EnCodec: what its checkpoint's `xp.cfg` says, mapped onto transformers' EncodecConfig.

The checkpoint is built as audiocraft exports it (tests/audiocraft_checkpoint.py cites the files):
the whole training config as YAML, and here the real codec's shapes (on the meta device: no memory).
"""

import pytest
import torch
import torch.nn.functional as F
from transformers import EncodecModel

from bridge.errors import ModelError
from bridge.models.audiocraft_convert import convert_codec_weights, encodec_config_from
from bridge.models.audiocraft_pickles import checkpoint_config
from tests.audiocraft_checkpoint import REAL_CODEC_DIMS, codec_config_yaml, codec_state


def config_of(text: str) -> dict:
    return checkpoint_config({"xp.cfg": text, "best_state": {}})


def test_the_real_audiogen_codec_maps_onto_transformers_encodec_exactly():
    weights = codec_state(dims=REAL_CODEC_DIMS, meta=True)
    codec = encodec_config_from(weights, config_of(codec_config_yaml(REAL_CODEC_DIMS)))

    assert (codec.sampling_rate, codec.audio_channels, codec.frame_rate) == (16000, 1, 50)
    assert (codec.num_filters, codec.hidden_size, codec.codebook_dim) == (64, 128, 128)
    assert (codec.codebook_size, codec.num_quantizers, codec.upsampling_ratios) == (2048, 4, [8, 5, 4, 2])
    assert (codec.pad_mode, codec.use_causal_conv, codec.norm_type) == ("constant", False, "weight_norm")
    assert (codec.use_conv_shortcut, codec.num_lstm_layers, codec.num_residual_layers) == (False, 2, 1)
    assert (codec.kernel_size, codec.last_kernel_size, codec.residual_kernel_size) == (7, 7, 3)
    assert (codec.compress, codec.dilation_growth_rate, codec.trim_right_ratio, codec.normalize) == (2, 2, 1.0, False)
    # Every real tensor has its place in transformers' model, with its shape, and nothing is left over.
    with torch.device("meta"):
        expected = {name: tuple(t.shape) for name, t in EncodecModel(codec).state_dict().items()}
    converted = {name.removeprefix("audio_encoder."): tuple(t.shape) for name, t in convert_codec_weights(weights).items()}
    assert converted == expected


def test_pad_mode_is_what_audiocraft_would_build():
    weights = codec_state(meta=True)
    assert encodec_config_from(weights, config_of(codec_config_yaml(pad_mode="reflect"))).pad_mode == "reflect"
    # A config without the key: audiocraft's builder leaves SEANet's own default (seanet.py:95, 191).
    assert encodec_config_from(weights, config_of(codec_config_yaml(pad_mode=None))).pad_mode == "reflect"
    # No readable config at all: the value every audiocraft EnCodec trained with (encodec/default.yaml:28).
    assert encodec_config_from(weights, {}).pad_mode == "constant"


@pytest.mark.parametrize("pad_mode", ["constant", "reflect"])
def test_the_converted_codec_pads_its_first_convolution_as_the_config_says(pad_mode):
    weights = codec_state()
    codec = encodec_config_from(weights, config_of(codec_config_yaml(pad_mode=pad_mode)))
    model = EncodecModel(codec).eval()
    state = {name.removeprefix("audio_encoder."): t for name, t in convert_codec_weights(weights).items()}
    model.load_state_dict(state)
    audio = torch.randn(1, 1, 1000, generator=torch.Generator().manual_seed(0))

    with torch.no_grad():
        ours = model.encoder.layers[0](audio)

    # audiocraft's StreamableConv1d, non-causal, kernel 7, stride 1: 3 samples each side, in the pad mode;
    # torch weight_norm: w = g * v / |v| per output channel.
    g, v = weights["encoder.model.0.conv.conv.weight_g"], weights["encoder.model.0.conv.conv.weight_v"]
    w = g * v / v.norm(dim=(1, 2), keepdim=True)
    theirs = F.conv1d(F.pad(audio, (3, 3), mode=pad_mode), w, weights["encoder.model.0.conv.conv.bias"])
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)
    other = "reflect" if pad_mode == "constant" else "constant"
    assert not torch.allclose(ours, F.conv1d(F.pad(audio, (3, 3), mode=other), w, weights["encoder.model.0.conv.conv.bias"]))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"norm": "time_group_norm"}, "seanet.norm is 'time_group_norm'"),
        ({"norm": None}, "seanet.norm is 'none'"),  # absent: SEANet's default, no weight norm
        ({"activation": "LeakyReLU"}, "seanet.activation is 'LeakyReLU'"),
        ({"activation_params": {"alpha": 0.5}}, "ELU alpha"),
        ({"disable_norm_outer_blocks": 1}, "seanet.disable_norm_outer_blocks is 1"),
        ({"encoder": {"n_filters": 32}}, "seanet.n_filters differs between encoder and decoder"),
        ({"decoder": {"final_activation": "Tanh"}}, "seanet.decoder.final_activation differs"),
        ({"n_residual_layers": 3}, "seanet.n_residual_layers = 3 but its weights have 1"),
        ({"true_skip": False}, "seanet.true_skip = False but its weights have True"),
        ({"dimension": 32}, "seanet.dimension = 32 but its weights have 16"),
    ],
)
def test_a_codec_transformers_cannot_express_is_refused_in_one_line(changes, message):
    config = config_of(codec_config_yaml(**changes))
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")) as error:
        encodec_config_from(codec_state(meta=True), config)
    assert "\n" not in str(error.value)

