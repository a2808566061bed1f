"""EnCodec's encoder with its convolutions run channels-last: the same maths as transformers', faster.

transformers runs each of the encoder's convolutions as a 1-d convolution on (batch, channels, time).
On a CPU, oneDNN then converts every activation to its blocked layout and back; at 32 kHz with 64
channels that conversion is much of the time (an 8 s prompt: 1.9 s of 3.4 s in convolutions, about
half the GEMM rate, on the 2-core EPYC capped to AVX2 at load ~6). The same convolution as a 2-d one
on (batch, channels, 1, time) in channels-last memory, with the activations kept in that layout
from one convolution to the next (padding included), ran the convolutions in 1.1 s and the whole
encode in 2.7 s there (single convolutions 2.4-5x faster in isolation). The rest (ELU, the LSTM,
residual VQ) is the codec's own modules.

The codes must equal transformers' `encode`: only the order of a convolution's additions differs,
so the embeddings agree to float rounding, and tests/test_engine_prepared_prompt.py and
tests/test_engine_own_encodec.py hold the codes equal. It runs Segue's own EnCodec
(modules/encodec.py) and transformers' alike (their layers have the same names and attributes),
without importing transformers. Configurations this does not cover (chunked or normalised codecs,
group norm) run the codec's own encoder.
"""

import torch
import torch.nn.functional as F
from torch import nn

from bridge.engine.musicgen.modules.encodec import conv_paddings, pad1d


def channels_last_applies(codec: nn.Module) -> bool:
    """Whether this codec's encoder is one this module runs (MusicGen's EnCodec is)."""
    config = codec.config
    return config.chunk_length is None and not config.normalize and config.norm_type == "weight_norm"


@torch.inference_mode()
def encode_codes(codec: nn.Module, waveform: torch.Tensor) -> torch.Tensor:
    """(batch, 1, samples) float32 at the codec's rate -> codes (batch, codebooks, frames), as
    `codec.encode(...).audio_codes[0]` gives them."""
    embeddings = waveform
    for index, layer in enumerate(codec.encoder.layers):
        embeddings = _run(layer, embeddings, owned=index > 0)
    bandwidth = codec.config.target_bandwidths[0]  # transformers' default when none is given
    return codec.quantizer.encode(embeddings, bandwidth).transpose(0, 1)


def _run(layer: nn.Module, hidden: torch.Tensor, owned: bool) -> torch.Tensor:
    """`layer(hidden)`; where `owned` (nothing else reads `hidden` afterwards) an ELU overwrites it.
    At 32 kHz the first activations are 64 channels x the prompt's samples: each new tensor of that
    size costs fresh pages, so the ELUs and the residual sums reuse theirs (the same values)."""
    if isinstance(getattr(layer, "conv", None), nn.Conv1d):  # EncodecConv1d
        return _convolve(layer, hidden)
    if hasattr(layer, "block"):  # EncodecResnetBlock
        residual = hidden
        for index, part in enumerate(layer.block):
            hidden = _run(part, hidden, owned=index > 0)  # the block's input is also its shortcut's
        return hidden.add_(_run(layer.shortcut, residual, owned=False))
    if owned and isinstance(layer, nn.ELU):
        return F.elu(hidden, layer.alpha, inplace=True)
    return layer(hidden)  # the LSTM, an identity shortcut, an ELU on a tensor read again


def _convolve(module: nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    """EncodecConv1d.forward with the convolution run channels-last.

    `hidden` (batch, channels, time) and the result are views of (batch, time, channels) memory, so
    from one convolution to the next nothing is converted: padding is done in that layout too.
    """
    conv = module.conv
    left, right = conv_paddings(conv, module.causal, hidden.shape[-1])
    timewise = _pad_timewise(module.pad_mode, hidden, left, right)  # (batch, time, channels), contiguous
    planar = timewise.transpose(1, 2)[:, :, None, :]  # channels-last (batch, channels, 1, time)
    weight = conv.weight[:, :, None, :].contiguous(memory_format=torch.channels_last)  # weight norm applied
    out = F.conv2d(planar, weight, conv.bias, stride=(1, conv.stride[0]), dilation=(1, conv.dilation[0]))
    return out[:, :, 0, :]


def _pad_timewise(pad_mode: str, hidden: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """`pad1d(hidden, left, right, pad_mode)` as a contiguous (batch, time, channels) tensor."""
    length = hidden.shape[-1]
    if pad_mode not in ("reflect", "constant") or (pad_mode == "reflect" and length <= max(left, right)):
        return pad1d(hidden, left, right, pad_mode).transpose(1, 2).contiguous()  # the short-input corner case
    timewise = hidden.transpose(1, 2)
    if pad_mode == "reflect":  # the edge sample is not repeated, as F.pad's reflect
        before, after = timewise[:, 1 : left + 1].flip(1), timewise[:, length - 1 - right : length - 1].flip(1)
    else:
        before, after = timewise.new_zeros((timewise.shape[0], left, timewise.shape[2])), timewise.new_zeros(
            (timewise.shape[0], right, timewise.shape[2]))
    return torch.cat([before, timewise, after], dim=1)
