"""EnCodec's encoder with its convolutions run channels-last: the same maths as transformers', faster.

transformers runs each of the encoder's convolutions as a 1-d convolution on (batch, channels, time).
On a CPU, oneDNN then converts every activation to its blocked layout and back; at 32 kHz with 64
channels that conversion is much of the time (an 8 s prompt: 1.9 s of 3.4 s in convolutions, about
half the GEMM rate, on the 2-core EPYC capped to AVX2 at load ~6). The same convolution as a 2-d one
on (batch, channels, 1, time) in channels-last memory, with the activations kept in that layout
from one convolution to the next (padding included), ran the convolutions in 1.1 s and the whole
encode in 2.7 s there (single convolutions 2.4-5x faster in isolation). The rest (ELU, the LSTM,
residual VQ) is transformers' own modules.

The codes must equal transformers' `encode`: only the order of a convolution's additions differs,
so the embeddings agree to float rounding, and tests/test_engine_prepared_prompt.py holds the codes
equal. Configurations this does not cover (chunked or normalised codecs, group norm) run transformers'.
"""

import torch
import torch.nn.functional as F
from transformers.models.encodec.modeling_encodec import EncodecConv1d, EncodecResnetBlock


def channels_last_applies(codec: torch.nn.Module) -> bool:
    """Whether this codec's encoder is one this module runs (MusicGen's EnCodec is)."""
    config = codec.config
    return config.chunk_length is None and not config.normalize and config.norm_type == "weight_norm"


@torch.inference_mode()
def encode_codes(codec: torch.nn.Module, waveform: torch.Tensor) -> torch.Tensor:
    """(batch, 1, samples) float32 at the codec's rate -> codes (batch, codebooks, frames), as
    `codec.encode(...).audio_codes[0]` gives them."""
    embeddings = waveform
    for layer in codec.encoder.layers:
        embeddings = _run(layer, embeddings)
    bandwidth = codec.config.target_bandwidths[0]  # transformers' default when none is given
    return codec.quantizer.encode(embeddings, bandwidth).transpose(0, 1)


def _run(layer: torch.nn.Module, hidden: torch.Tensor) -> torch.Tensor:
    if isinstance(layer, EncodecConv1d):
        return _convolve(layer, hidden)
    if isinstance(layer, EncodecResnetBlock):
        residual = hidden
        for part in layer.block:
            hidden = _run(part, hidden)
        return _run(layer.shortcut, residual) + hidden
    return layer(hidden)  # ELU, the LSTM, an identity shortcut


def _convolve(module: EncodecConv1d, hidden: torch.Tensor) -> torch.Tensor:
    """EncodecConv1d.forward (transformers 5.24) with the convolution run channels-last.

    `hidden` (batch, channels, time) and the result are views of (batch, time, channels) memory, so
    from one convolution to the next nothing is converted: padding is done in that layout too.
    """
    extra_padding = int(module._get_extra_padding_for_conv1d(hidden))
    padding_total = int(module.padding_total)
    if module.causal:
        left, right = padding_total, extra_padding
    else:
        left, right = padding_total - padding_total // 2, padding_total // 2 + extra_padding
    timewise = _pad_timewise(module, hidden, left, right)  # (batch, time, channels), contiguous
    planar = timewise.transpose(1, 2)[:, :, None, :]  # channels-last (batch, channels, 1, time)
    conv = module.conv
    weight = conv.weight[:, :, None, :].contiguous(memory_format=torch.channels_last)  # weight norm applied
    out = F.conv2d(planar, weight, conv.bias, stride=(1, conv.stride[0]), dilation=(1, conv.dilation[0]))
    return out[:, :, 0, :]


def _pad_timewise(module: EncodecConv1d, hidden: torch.Tensor, left: int, right: int) -> torch.Tensor:
    """`module._pad1d(hidden, (left, right))` as a contiguous (batch, time, channels) tensor."""
    length = hidden.shape[-1]
    if module.pad_mode not in ("reflect", "constant") or (module.pad_mode == "reflect" and length <= max(left, right)):
        padded = module._pad1d(hidden, (left, right), mode=module.pad_mode)  # the short-input corner case
        return padded.transpose(1, 2).contiguous()
    timewise = hidden.transpose(1, 2)
    if module.pad_mode == "reflect":  # the edge sample is not repeated, as F.pad's reflect
        before, after = timewise[:, 1 : left + 1].flip(1), timewise[:, length - 1 - right : length - 1].flip(1)
    else:
        before, after = timewise.new_zeros((timewise.shape[0], left, timewise.shape[2])), timewise.new_zeros(
            (timewise.shape[0], right, timewise.shape[2]))
    return torch.cat([before, timewise, after], dim=1)
