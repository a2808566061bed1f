"""EnCodec: audio <-> MusicGen codes, and a streaming decoder that emits audio as frames arrive.

Stereo MusicGen models interleave left/right codebooks (rows 0, 2, ... left; 1, 3, ... right); each
channel goes through the mono codec on its own, as transformers does.
"""

from collections.abc import Callable

import numpy as np
import torch

from bridge.engine.loading import LoadedModel


@torch.inference_mode()
def encode_audio(loaded: LoadedModel, audio: np.ndarray) -> torch.Tensor:
    """Encode (frames, channels) float32 at the model rate into codes (codebooks, codec frames)."""
    codec = loaded.model.audio_encoder
    waveform = torch.from_numpy(np.ascontiguousarray(audio.T)).to(loaded.codec_device, torch.float32)

    def encode_channel(channel: torch.Tensor) -> torch.Tensor:
        codes = codec.encode(input_values=channel[None, None, :], return_dict=True).audio_codes
        return codes[0, 0]  # (chunks=1, batch=1, codebooks, frames) -> (codebooks, frames)

    if loaded.audio_channels == 1:
        return encode_channel(waveform[0]).to(loaded.device)
    left, right = encode_channel(waveform[0]), encode_channel(waveform[1])
    codes = torch.empty((2 * left.shape[0], left.shape[1]), dtype=left.dtype, device=left.device)
    codes[0::2], codes[1::2] = left, right
    return codes.to(loaded.device)


@torch.inference_mode()
def decode_codes(loaded: LoadedModel, codes: torch.Tensor) -> np.ndarray:
    """Decode codes (batch, codebooks, frames) into float32 audio (batch, samples, channels)."""
    codec = loaded.model.audio_encoder
    codes = codes.to(loaded.codec_device)
    batch = codes.shape[0]

    def decode_rows(rows: torch.Tensor) -> torch.Tensor:
        return codec.decode(rows[None], audio_scales=[None] * batch).audio_values  # (batch, 1, samples)

    if loaded.audio_channels == 1:
        audio = decode_rows(codes)
    else:
        audio = torch.cat([decode_rows(codes[:, 0::2]), decode_rows(codes[:, 1::2])], dim=1)
    return audio.float().transpose(1, 2).contiguous().cpu().numpy()


ChunkSink = Callable[[int, np.ndarray], None]


class StreamingDecoder:
    """Turns a growing code sequence into consecutive audio chunks.

    Every `chunk_frames` new frames it decodes the sequence and emits the samples that can no longer
    change: EnCodec's convolutions look a few frames ahead, so the last `holdback_frames` frames
    are held back until more arrive or the stream ends. Audio before `start_sample` (the audio
    prompt) and after `total_samples` is never emitted. Concatenated chunks are the final audio.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        sink: ChunkSink,
        start_sample: int,
        total_samples: int,
        chunk_frames: int = 25,
        holdback_frames: int = 8,
    ) -> None:
        self.loaded = loaded
        self.sink = sink
        self.start_sample = start_sample
        self.end_sample = start_sample + total_samples
        self.chunk_frames = chunk_frames
        self.holdback_frames = holdback_frames
        self.emitted_until = start_sample  # absolute sample index in the decoded sequence
        self.decoded_frames = 0
        self.chunks: list[np.ndarray] = []

    def update(self, codes: torch.Tensor) -> None:
        """Offer the complete frames so far, (batch, codebooks, frames)."""
        frames = codes.shape[-1]
        if frames - self.decoded_frames < self.chunk_frames:
            return
        stable_until = (frames - self.holdback_frames) * self.loaded.samples_per_frame
        if stable_until > self.emitted_until:
            self._emit(decode_codes(self.loaded, codes), stable_until)
            self.decoded_frames = frames

    def finish(self, codes: torch.Tensor) -> np.ndarray:
        """Emit everything left; return the whole audio (batch, samples, channels)."""
        if self.emitted_until < self.end_sample:
            self._emit(decode_codes(self.loaded, codes), self.end_sample)
        return np.concatenate(self.chunks, axis=1)

    def _emit(self, audio: np.ndarray, until: int) -> None:
        until = min(until, self.end_sample, audio.shape[1])
        if until <= self.emitted_until:
            return
        chunk = np.ascontiguousarray(audio[:, self.emitted_until : until])
        self.sink(self.emitted_until - self.start_sample, chunk)
        self.chunks.append(chunk)
        self.emitted_until = until
