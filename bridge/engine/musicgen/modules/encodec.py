"""EnCodec as MusicGen and AudioGen use it, in plain torch, loadable from transformers' checkpoints.

Importing transformers' modeling code costs ~2.3 s beyond torch (issue 11); this module imports
torch (and the loader of Segue's native kernels) only. Its submodules carry transformers 5.24's
names (`encoder.layers.0.conv.weight`, `quantizer.layers.0.codebook.embed`, ...), so a checkpoint's
`audio_encoder.` tensors load into it once `encodec_state` has folded their weight norm. The maths are transformers' EncodecModel
(models/encodec/modeling_encodec.py) for what MusicGen's and AudioGen's codecs use: weight-normed
convolutions (folded), causal or not, reflect or zero padding, the LSTM block (its recurrence in a
native call where one is built: native_lstm.py), ELU, residual VQ.
Chunked, normalised or group-normed codecs (EnCodec 48 kHz) are refused at construction.
tests/test_engine_own_encodec.py holds codes and audio equal to transformers'.
"""

import math
import types

import torch
import torch.nn.functional as F
from torch import nn

from bridge.engine.musicgen.native_lstm import LstmState, run_lstm
from bridge.errors import ModelError

# transformers 5.24 configuration_encodec.py, EncodecConfig's field defaults (a config.json's
# `audio_encoder` may omit any of them: older exports lack `use_conv_shortcut`, for one).
ENCODEC_DEFAULTS = {
    "target_bandwidths": (1.5, 3.0, 6.0, 12.0, 24.0),
    "sampling_rate": 24_000,
    "audio_channels": 1,
    "normalize": False,
    "chunk_length_s": None,
    "overlap": None,
    "hidden_size": 128,
    "num_filters": 32,
    "num_residual_layers": 1,
    "upsampling_ratios": (8, 5, 4, 2),
    "norm_type": "weight_norm",
    "kernel_size": 7,
    "last_kernel_size": 7,
    "residual_kernel_size": 3,
    "dilation_growth_rate": 2,
    "use_causal_conv": True,
    "pad_mode": "reflect",
    "compress": 2,
    "num_lstm_layers": 2,
    "trim_right_ratio": 1.0,
    "codebook_size": 1024,
    "codebook_dim": None,  # EncodecConfig.__post_init__: None means hidden_size
    "use_conv_shortcut": True,
}
PAD_MODES = ("reflect", "constant")
# Quantizer buffers only k-means training uses; a checkpoint holds them, decoding never reads them.
_TRAINING_BUFFERS = (".codebook.cluster_size", ".codebook.embed_avg", ".codebook.inited")
# A weight-normed convolution's two tensors, in transformers 5.x's and in older checkpoints' names.
_WEIGHT_NORM_PARTS = {
    ".parametrizations.weight.original0": "g",
    ".parametrizations.weight.original1": "v",
    ".weight_g": "g",
    ".weight_v": "v",
}


def encodec_config(values: dict) -> types.SimpleNamespace:
    """A checkpoint's `audio_encoder` config dict with EncodecConfig's defaults and derived values.

    Derived as EncodecConfig's properties compute them: `codebook_dim` (hidden_size when unset),
    `hop_length` (samples per frame), `frame_rate` (frames per second, rounded up),
    `codebook_nbits`, `num_quantizers` (codebooks at the highest bandwidth), `chunk_length` (samples).
    """
    config = types.SimpleNamespace(**{**ENCODEC_DEFAULTS, **values})
    if config.codebook_dim is None:
        config.codebook_dim = config.hidden_size
    config.hop_length = int(math.prod(config.upsampling_ratios))
    config.codebook_nbits = math.ceil(math.log2(config.codebook_size))
    config.frame_rate = math.ceil(config.sampling_rate / config.hop_length)
    config.num_quantizers = int(1000 * config.target_bandwidths[-1] // (config.frame_rate * config.codebook_nbits))
    config.chunk_length = None if config.chunk_length_s is None else int(config.chunk_length_s * config.sampling_rate)
    return config


def _refusal(config: types.SimpleNamespace) -> str | None:
    """Why this module cannot run `config` as transformers would, or None."""
    if config.norm_type != "weight_norm":
        return f"norm_type {config.norm_type!r} (only weight_norm, as MusicGen's and AudioGen's codecs)"
    if config.chunk_length_s is not None:
        return f"chunk_length_s {config.chunk_length_s} (only codecs that encode the whole audio at once)"
    if config.normalize:
        return "normalize true (only codecs without input normalisation)"
    if config.pad_mode not in PAD_MODES:
        return f"pad_mode {config.pad_mode!r} (only {' or '.join(PAD_MODES)})"
    if not (config.use_causal_conv or config.trim_right_ratio == 1.0):
        return "trim_right_ratio other than 1.0 on a non-causal codec"
    if 2 ** int(math.log2(config.codebook_size)) != config.codebook_size:
        return f"codebook_size {config.codebook_size} (must be a power of 2)"
    return None


def conv_paddings(conv: nn.Conv1d, causal: bool, length_samples: int) -> tuple[int, int]:
    """EncodecConv1d's (left, right) padding of an input of `length_samples`.

    transformers pads `kernel - stride` in all (left if causal, else split with the odd one left)
    plus what makes the last window whole; that extra is ceil(length / stride) * stride - length
    (its float formula, simplified with padding_total = kernel - stride).
    """
    stride = conv.stride[0]
    kernel = (conv.kernel_size[0] - 1) * conv.dilation[0] + 1
    padding_total = kernel - stride
    extra = -(-length_samples // stride) * stride - length_samples
    if causal:
        return padding_total, extra
    right = padding_total // 2
    return padding_total - right, right + extra


def pad1d(hidden: torch.Tensor, left: int, right: int, mode: str) -> torch.Tensor:
    """F.pad along time; reflect padding of an input no longer than the padding reflects it
    zero-extended on the right first, as transformers' EncodecConv1d._pad1d does."""
    if mode != "reflect":
        return F.pad(hidden, (left, right), mode)
    length = hidden.shape[-1]
    extra = max(left, right) - length + 1 if length <= max(left, right) else 0
    if extra:
        hidden = F.pad(hidden, (0, extra))
    padded = F.pad(hidden, (left, right), mode)
    return padded[..., : padded.shape[-1] - extra]


class EncodecConv1d(nn.Module):
    """A padded convolution, its weight norm folded into `conv.weight`."""

    def __init__(self, config, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.causal = config.use_causal_conv
        self.pad_mode = config.pad_mode
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride, dilation=dilation)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        left, right = conv_paddings(self.conv, self.causal, hidden.shape[-1])
        return self.conv(pad1d(hidden, left, right, self.pad_mode))


class EncodecConvTranspose1d(nn.Module):
    """A transposed convolution trimmed of its fixed padding (right-heavy when causal)."""

    def __init__(self, config, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.causal = config.use_causal_conv
        self.trim_right_ratio = config.trim_right_ratio
        self.conv = nn.ConvTranspose1d(in_channels, out_channels, kernel_size, stride)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        padding_total = self.conv.kernel_size[0] - self.conv.stride[0]
        right = math.ceil(padding_total * self.trim_right_ratio) if self.causal else padding_total // 2
        left = padding_total - right
        hidden = self._transposed(hidden)
        return hidden[..., left : hidden.shape[-1] - right]

    def _transposed(self, hidden: torch.Tensor) -> torch.Tensor:
        """`self.conv(hidden)`; on a CPU over fewer frames than input channels (the streaming decode's
        chunks), as one GEMM and an overlap-add of its stride-long pieces.

        oneDNN's transposed convolution took 40-62 ms for the first upsampling layer (1024 -> 512
        channels, kernel 16, stride 8) over 5-29 frames on one thread (2-core AVX2 EPYC): 10 to 60
        times under the GEMM's rate for the same products. As a GEMM, 9-14 ms; at 400 frames 1.1x
        faster, at 1500 the same (so longer inputs keep the convolution). The later layers, with
        more frames than channels, were slower this way.
        """
        conv = self.conv
        (kernel,), (stride,) = conv.kernel_size, conv.stride
        batch, channels, frames = hidden.shape
        plain = conv.groups == 1 and conv.padding == (0,) and conv.dilation == (1,) and conv.output_padding == (0,)
        if hidden.device.type != "cpu" or frames > channels or kernel % stride or not plain:
            return conv(hidden)
        pieces, out_channels = kernel // stride, conv.out_channels
        # products[b, t, o, piece, phase] = sum_i hidden[b, i, t] weight[i, o, piece * stride + phase]
        products = torch.matmul(hidden.transpose(1, 2), conv.weight.reshape(channels, out_channels * kernel))
        products = products.view(batch, frames, out_channels, pieces, stride)
        out = products.new_zeros((batch, out_channels, frames + pieces - 1, stride))
        for piece in range(pieces):  # frame t's piece lands at output frame t + piece
            out[:, :, piece : piece + frames] += products[:, :, :, piece].transpose(1, 2)
        out = out.view(batch, out_channels, (frames + pieces - 1) * stride)
        return out if conv.bias is None else out.add_(conv.bias[:, None])


class EncodecLSTM(nn.Module):
    """An LSTM over time with a residual connection, on (batch, channels, frames).

    `native`: its recurrence through native_lstm.run_lstm (the decoder's, also in the streaming
    decode: 2-3x faster on one thread). The encoder's stays nn.LSTM's: its codes are held equal to
    transformers', and another order of the sums flipped a code at a near-tie of the tiny codec's
    residual VQ (tests/test_engine_own_encodec.py).
    """

    def __init__(self, config, dimension: int, native: bool = False):
        super().__init__()
        self.lstm = nn.LSTM(dimension, dimension, config.num_lstm_layers)
        self.native = native

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        sequence = hidden.permute(2, 0, 1)  # (frames, batch, channels): nn.LSTM's layout
        return (self.recur(sequence)[0] + sequence).permute(1, 2, 0)

    def recur(self, sequence: torch.Tensor, state: LstmState | None = None) -> tuple[torch.Tensor, LstmState]:
        """The LSTM alone over (frames, batch, channels) from `state` (zeros if None): (output, state). The
        streaming decoder calls it chunk by chunk, carrying the state."""
        return run_lstm(self.lstm, sequence, state) if self.native else self.lstm(sequence, state)


class EncodecResnetBlock(nn.Module):
    """SEANet's residual block: ELU, dilated convolution, ELU, 1x1 convolution, plus the shortcut."""

    def __init__(self, config, dim: int, dilations: tuple[int, int]):
        super().__init__()
        hidden = dim // config.compress
        self.block = nn.ModuleList([
            nn.ELU(),
            EncodecConv1d(config, dim, hidden, config.residual_kernel_size, dilation=dilations[0]),
            nn.ELU(),
            EncodecConv1d(config, hidden, dim, 1, dilation=dilations[1]),
        ])
        self.shortcut = EncodecConv1d(config, dim, dim, kernel_size=1) if config.use_conv_shortcut else nn.Identity()

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        residual = hidden
        for layer in self.block:
            hidden = layer(hidden)
        return self.shortcut(residual) + hidden


class _Layers(nn.Module):
    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            hidden = layer(hidden)
        return hidden


class EncodecEncoder(_Layers):
    """Audio (batch, channels, samples) -> embeddings (batch, hidden_size, frames)."""

    def __init__(self, config):
        super().__init__()
        layers = [EncodecConv1d(config, config.audio_channels, config.num_filters, config.kernel_size)]
        scale = 1
        for ratio in reversed(config.upsampling_ratios):
            width = scale * config.num_filters
            for j in range(config.num_residual_layers):
                layers += [EncodecResnetBlock(config, width, (config.dilation_growth_rate**j, 1))]
            layers += [nn.ELU(), EncodecConv1d(config, width, 2 * width, kernel_size=2 * ratio, stride=ratio)]
            scale *= 2
        width = scale * config.num_filters
        layers += [EncodecLSTM(config, width), nn.ELU(), EncodecConv1d(config, width, config.hidden_size, config.last_kernel_size)]
        self.layers = nn.ModuleList(layers)


class EncodecDecoder(_Layers):
    """Embeddings (batch, hidden_size, frames) -> audio (batch, channels, samples).

    `layers` is [first convolution, LSTM block, *upsampler]: codec.StreamingDecoder runs them apart.
    """

    def __init__(self, config):
        super().__init__()
        scale = 2 ** len(config.upsampling_ratios)
        width = scale * config.num_filters
        layers = [EncodecConv1d(config, config.hidden_size, width, config.kernel_size), EncodecLSTM(config, width, native=True)]
        for ratio in config.upsampling_ratios:
            width = scale * config.num_filters
            layers += [nn.ELU(), EncodecConvTranspose1d(config, width, width // 2, kernel_size=2 * ratio, stride=ratio)]
            for j in range(config.num_residual_layers):
                layers += [EncodecResnetBlock(config, width // 2, (config.dilation_growth_rate**j, 1))]
            scale //= 2
        layers += [nn.ELU(), EncodecConv1d(config, config.num_filters, config.audio_channels, config.last_kernel_size)]
        self.layers = nn.ModuleList(layers)


class EncodecEuclideanCodebook(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed = nn.Buffer(torch.zeros(config.codebook_size, config.codebook_dim))

    def encode(self, hidden: torch.Tensor) -> torch.Tensor:
        """(..., dim) -> index of the nearest codebook vector, with transformers' exact arithmetic
        (another order of the same sums can flip a near tie)."""
        flat = hidden.reshape(-1, hidden.shape[-1])
        embed = self.embed.t()
        distance = -(flat.pow(2).sum(1, keepdim=True) - 2 * flat @ embed + embed.pow(2).sum(0, keepdim=True))
        return distance.max(dim=-1).indices.view(*hidden.shape[:-1])


class EncodecVectorQuantization(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.codebook = EncodecEuclideanCodebook(config)

    def encode(self, hidden: torch.Tensor) -> torch.Tensor:
        """(batch, dim, frames) -> codes (batch, frames)."""
        return self.codebook.encode(hidden.permute(0, 2, 1))

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (batch, frames) -> (batch, dim, frames)."""
        return F.embedding(codes, self.codebook.embed).permute(0, 2, 1)


class EncodecResidualVectorQuantizer(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.codebook_size = config.codebook_size
        self.frame_rate = config.frame_rate
        self.num_quantizers = config.num_quantizers
        self.layers = nn.ModuleList([EncodecVectorQuantization(config) for _ in range(config.num_quantizers)])

    def quantizers_for(self, bandwidth_kbps: float) -> int:
        """How many codebooks fit `bandwidth_kbps` (transformers' get_num_quantizers_for_bandwidth)."""
        if bandwidth_kbps <= 0.0:
            return self.num_quantizers
        return int(max(1, math.floor(bandwidth_kbps * 1000 / (math.log2(self.codebook_size) * self.frame_rate))))

    def encode(self, embeddings: torch.Tensor, bandwidth_kbps: float) -> torch.Tensor:
        """(batch, dim, frames) -> codes (codebooks, batch, frames): each codebook quantises what
        the ones before it left."""
        residual = embeddings
        codes = []
        for layer in self.layers[: self.quantizers_for(bandwidth_kbps)]:
            indices = layer.encode(residual)
            residual = residual - layer.decode(indices)
            codes.append(indices)
        return torch.stack(codes)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (codebooks, batch, frames) -> the sum of their vectors (batch, dim, frames)."""
        total = self.layers[0].decode(codes[0])
        for index in range(1, codes.shape[0]):  # as many codebooks as `codes` holds
            total = total + self.layers[index].decode(codes[index])
        return total


class EncodecModel(nn.Module):
    """EnCodec: audio <-> codes, fp32; weights from `from_checkpoint` or `load_checkpoint_state`."""

    def __init__(self, config: types.SimpleNamespace):
        super().__init__()
        refusal = _refusal(config)
        if refusal is not None:
            raise ModelError(f"this EnCodec codec is not one Segue runs: {refusal}")
        self.config = config
        self.encoder = EncodecEncoder(config)
        self.decoder = EncodecDecoder(config)
        self.quantizer = EncodecResidualVectorQuantizer(config)

    def encode_codes(self, waveform: torch.Tensor) -> torch.Tensor:
        """(batch, audio_channels, samples) fp32 at `config.sampling_rate` -> codes (batch, codebooks,
        frames) at the lowest target bandwidth, the one transformers' `encode` picks by default."""
        embeddings = self.encoder(waveform)
        return self.quantizer.encode(embeddings, self.config.target_bandwidths[0]).transpose(0, 1)

    def decode_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """codes (batch, codebooks, frames) -> audio (batch, audio_channels, frames x hop_length)."""
        return self.decoder(self.quantizer.decode(codes.transpose(0, 1)))

    @classmethod
    def from_checkpoint(cls, values: dict, state: dict[str, torch.Tensor]) -> "EncodecModel":
        """The codec of config `values` (a config.json's `audio_encoder`) holding the checkpoint's
        `audio_encoder.` tensors (prefix stripped), in eval mode, fp32, on the tensors' device.

        Built on the meta device and handed the tensors themselves: initialising musicgen-small's
        58 M parameters only to overwrite them took 0.28 s.
        """
        with torch.device("meta"):
            model = cls(encodec_config(values))
        model.load_checkpoint_state(state, assign=True)
        return model.eval()

    def load_checkpoint_state(self, state: dict[str, torch.Tensor], assign: bool = False) -> None:
        """Load a checkpoint's `audio_encoder.` tensors (prefix stripped); ModelError names what does
        not fit (unknown, missing or misshapen tensors). `assign` takes the tensors (as fp32) instead
        of copying them into this module's."""
        loadable = encodec_state(state)
        expected = self.state_dict()
        unknown = sorted(set(loadable) - set(expected))
        missing = sorted(set(expected) - set(loadable))
        if unknown or missing:
            parts = [f"{label} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                     for label, names in (("unknown tensors", unknown), ("missing tensors", missing)) if names]
            raise ModelError(f"the EnCodec weights do not fit its config: {'; '.join(parts)}")
        misshapen = [name for name, tensor in loadable.items() if tensor.shape != expected[name].shape]
        if misshapen:
            name = misshapen[0]
            raise ModelError(f"the EnCodec weights do not fit its config: {name} is {tuple(loadable[name].shape)}, "
                             f"the config makes it {tuple(expected[name].shape)}")
        if assign:
            loadable = {name: tensor.float() for name, tensor in loadable.items()}
        self.load_state_dict(loadable, strict=True, assign=assign)


def encodec_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A checkpoint's EnCodec tensors (`audio_encoder.` stripped) as this module's state dict.

    Weight norm is folded into `conv.weight` from either format: transformers 5.x saves
    `conv.parametrizations.weight.original0/original1`, older Hub checkpoints (facebook/musicgen-*)
    `conv.weight_g/weight_v`; transformers renames the latter to the former (conversion_mapping.py,
    "legacy"), so both are torch's weight_norm over dim 0 (output channels of a Conv1d, input
    channels of a ConvTranspose1d). The quantizer's training buffers are dropped.
    """
    norms: dict[str, dict[str, torch.Tensor]] = {}  # "encoder.layers.0.conv" -> {"g": ..., "v": ...}
    loadable = {}
    for name, tensor in state.items():
        if name.endswith(_TRAINING_BUFFERS):
            continue
        suffix = next((suffix for suffix in _WEIGHT_NORM_PARTS if name.endswith(suffix)), None)
        if suffix is None:
            loadable[name] = tensor
        else:
            norms.setdefault(name.removesuffix(suffix), {})[_WEIGHT_NORM_PARTS[suffix]] = tensor
    for prefix, parts in norms.items():
        if "g" not in parts or "v" not in parts:
            lacking = "magnitude (weight_g, original0)" if "g" not in parts else "direction (weight_v, original1)"
            raise ModelError(f"the EnCodec weights hold half a weight norm: {prefix} has no {lacking}")
        # torch's own weight-norm kernel: the weight transformers recomputes on every call, bit for bit.
        loadable[f"{prefix}.weight"] = torch._weight_norm(parts["v"].float(), parts["g"].float(), 0)
    return loadable
