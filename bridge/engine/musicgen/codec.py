"""EnCodec: audio <-> MusicGen codes, and a streaming decoder that emits audio as frames arrive.

Stereo MusicGen models interleave left/right codebooks (rows 0, 2, ... left; 1, 3, ... right); each
channel goes through the mono codec on its own, as transformers does. The codec is Segue's own
(bridge/engine/musicgen/modules/encodec.py).
"""

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from bridge.engine.musicgen.fast_encoder import channels_last_applies, encode_codes
from bridge.engine.musicgen.loading import LoadedModel
from bridge.engine.musicgen.resident_memory import return_free_memory
from bridge.errors import SegueError


@torch.inference_mode()
def encode_audio(loaded: LoadedModel, audio: np.ndarray) -> torch.Tensor:
    """Encode (frames, channels) float32 at the model rate into codes (codebooks, codec frames)."""
    codec = loaded.model.audio_encoder
    waveform = torch.from_numpy(np.ascontiguousarray(audio.T)).to(loaded.codec_device, torch.float32)

    def encode_channel(channel: torch.Tensor) -> torch.Tensor:
        if channels_last_applies(codec):  # the same codes, its convolutions faster on a CPU
            return encode_codes(codec, channel[None, None, :])[0]
        return codec.encode_codes(channel[None, None, :])[0]

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

    def decode_rows(rows: torch.Tensor) -> torch.Tensor:
        return codec.decode_codes(rows)  # (batch, 1, samples)

    if loaded.audio_channels == 1:
        audio = decode_rows(codes)
    else:
        audio = torch.cat([decode_rows(codes[:, 0::2]), decode_rows(codes[:, 1::2])], dim=1)
    return audio.float().transpose(1, 2).contiguous().cpu().numpy()


ChunkSink = Callable[[int, np.ndarray], None]

# EnCodec's decoder is a kernel-7 convolution, an LSTM, then an upsampling stack of convolutions.
# The first convolution looks FIRST_CONV_LOOKAHEAD_FRAMES ahead. The upsampling stack (transposed
# convolutions of kernel 2 x stride, kernel-3 residual and kernel-7 final convolutions) sees one
# frame either side: with one frame of real context a window's middle already equals the full
# decode (tests/test_engine_streaming.py fails with none); two leave a safety margin. The LSTM
# carries its state from chunk to chunk instead of being re-run.
FIRST_CONV_LOOKAHEAD_FRAMES = 3
UPSAMPLER_MARGIN_FRAMES = 2
HOLDBACK_FRAMES = FIRST_CONV_LOOKAHEAD_FRAMES + UPSAMPLER_MARGIN_FRAMES


class StreamingDecoder:
    """Turns a growing code sequence into consecutive audio chunks at a cost linear in its length.

    Each frame goes through EnCodec's decoder once: the codebook lookup and first convolution
    per new frame, the LSTM with its state carried over, and the upsampling stack over the new
    frames plus a few frames of context. The last HOLDBACK_FRAMES frames wait for their right-hand
    context (or the end of the stream). Chunks start small, so audio arrives early, and double up to
    `max_chunk_frames`. Audio before `start_sample` (the audio prompt) and after `total_samples` is
    never emitted; concatenated chunks equal the full decode of the final codes (to float rounding).
    """

    def __init__(
        self,
        loaded: LoadedModel,
        sink: ChunkSink,
        start_sample: int,
        total_samples: int,
        first_chunk_frames: int = 4,
        max_chunk_frames: int = 25,
        warm: "PromptStreamState | None" = None,
        takes: int = 1,
    ) -> None:
        """`warm`: the audio prompt's frames already run through the codebook lookup, first
        convolution and LSTM for one take (prompt_stream_state), here repeated for `takes` takes."""
        self.loaded = loaded
        self.sink = sink
        self.start_sample = start_sample
        self.end_sample = start_sample + total_samples
        self.samples_per_frame = loaded.samples_per_frame
        self.next_chunk_frames = first_chunk_frames
        self.max_chunk_frames = max_chunk_frames
        self.emitted_until = start_sample  # absolute sample index in the decoded sequence
        self.chunks: list[np.ndarray] = []
        codec = loaded.model.audio_encoder
        self._quantizer = codec.quantizer
        self._first_conv, self._lstm, *upsampler = codec.decoder.layers
        self._upsampler = torch.nn.Sequential(*upsampler)
        self._embeddings = _GrowingFrames()  # codebook vectors of every frame so far
        self._lstm_out = _GrowingFrames()  # LSTM block output of every frame so far
        self._lstm_state: tuple[torch.Tensor, torch.Tensor] | None = None
        if warm is not None:
            self._embeddings.append(_for_takes(warm.embeddings, takes))
            self._lstm_out.append(_for_takes(warm.lstm_out, takes))
            self._lstm_state = tuple(_for_takes(part, takes, dim=1) for part in warm.lstm_state)

    def due(self, codes: torch.Tensor, after: tuple[int, int] | None = None) -> bool:
        """Whether `update(codes)` would decode a chunk (else it returns at once); with `after`, once
        the stream is in that state (`state_after` of an update still running)."""
        emitted_until, next_chunk_frames = after or (self.emitted_until, self.next_chunk_frames)
        stable_frames = codes.shape[-1] - HOLDBACK_FRAMES
        return (stable_frames - next_chunk_frames) * self.samples_per_frame >= emitted_until

    def state_after(self, codes: torch.Tensor) -> tuple[int, int]:
        """(emitted_until, next_chunk_frames) once a due `update(codes)` is done: where its chunk
        ends is fixed by the frames offered, not by when the update runs."""
        until_sample = min((codes.shape[-1] - HOLDBACK_FRAMES) * self.samples_per_frame, self.end_sample)
        return max(self.emitted_until, until_sample), min(2 * self.next_chunk_frames, self.max_chunk_frames)

    def undecoded_frames(self, codes: torch.Tensor) -> int:
        """How many frames of `codes` have not been through the LSTM yet."""
        return codes.shape[-1] - self._lstm_out.frames

    def update(self, codes: torch.Tensor) -> None:
        """Offer the complete frames so far, (batch, codebooks, frames)."""
        if not self.due(codes):
            return
        self._advance(codes, final=False)
        self._emit(codes.shape[-1] - HOLDBACK_FRAMES, final=False)
        self.next_chunk_frames = min(2 * self.next_chunk_frames, self.max_chunk_frames)

    def finish(self, codes: torch.Tensor) -> np.ndarray:
        """Emit everything left; return the whole audio (batch, samples, channels)."""
        self._advance(codes, final=True)
        self._emit(codes.shape[-1], final=True)
        return np.concatenate(self.chunks, axis=1)

    @torch.inference_mode()
    def _advance(self, codes: torch.Tensor, final: bool) -> None:
        """Run new frames through the codebook lookup, the first convolution and the LSTM."""
        frames = codes.shape[-1]
        known = self._embeddings.frames
        if frames > known:
            new = _streams(self.loaded, codes[..., known:frames].to(self.loaded.codec_device))
            self._embeddings.append(self._quantizer.decode(new.transpose(0, 1)))
        done = self._lstm_out.frames
        target = frames if final else frames - FIRST_CONV_LOOKAHEAD_FRAMES
        if target <= done:
            return
        # The convolution over a window with real context on both sides equals the full one in
        # the middle; at the true ends its own padding is the full decode's padding.
        window_start = max(0, done - FIRST_CONV_LOOKAHEAD_FRAMES)
        window_end = min(frames, target + FIRST_CONV_LOOKAHEAD_FRAMES)
        convolved = self._first_conv(self._embeddings.view(window_start, window_end))
        convolved = convolved[..., done - window_start : target - window_start]
        sequence = convolved.permute(2, 0, 1)  # EncodecLSTM's layout: (frames, streams, channels)
        output, self._lstm_state = self._lstm.recur(sequence, self._lstm_state)
        self._lstm_out.append((output + sequence).permute(1, 2, 0))

    @torch.inference_mode()
    def _emit(self, until_frame: int, final: bool) -> None:
        per_frame = self.samples_per_frame
        first_frame = self.emitted_until // per_frame
        until_frame = min(until_frame, self._lstm_out.frames)
        until_sample = min(until_frame * per_frame, self.end_sample)
        if until_sample <= self.emitted_until:
            return
        available = self._lstm_out.frames
        window_start = max(0, first_frame - UPSAMPLER_MARGIN_FRAMES)
        window_end = available if final else min(available, until_frame + UPSAMPLER_MARGIN_FRAMES)
        audio = self._upsampler(self._lstm_out.view(window_start, window_end))  # (streams, 1, samples)
        offset = window_start * per_frame
        audio = audio[..., self.emitted_until - offset : until_sample - offset]
        chunk = _from_streams(self.loaded, audio)
        self.sink(self.emitted_until - self.start_sample, chunk)
        self.chunks.append(chunk)
        self.emitted_until = until_sample


@dataclass(frozen=True)
class PromptStreamState:
    """What a StreamingDecoder computes over an audio prompt before any new frame, for one take.

    For an 8 s prompt that is 400 frames through EnCodec's LSTM, one after the other (~32 MB of
    weights read per frame): done with the prompt's preparation, it is not in the first chunk's wait.
    """

    embeddings: torch.Tensor  # (streams, dim, prompt frames)
    lstm_out: torch.Tensor  # (streams, channels, prompt frames - FIRST_CONV_LOOKAHEAD_FRAMES)
    lstm_state: tuple[torch.Tensor, torch.Tensor]


def prompt_stream_state(loaded: LoadedModel, codes: torch.Tensor) -> PromptStreamState | None:
    """The stream's state after an audio prompt's codes (codebooks, frames), as a job's first
    `update` would compute it; None for a prompt too short to reach the LSTM."""
    stream = StreamingDecoder(loaded, lambda *_: None, start_sample=0, total_samples=1)
    stream._advance(codes[None], final=False)
    if stream._lstm_state is None:
        return None
    embeddings = stream._embeddings.view(0, stream._embeddings.frames).clone()
    lstm_out = stream._lstm_out.view(0, stream._lstm_out.frames).clone()
    return PromptStreamState(embeddings, lstm_out, tuple(part.clone() for part in stream._lstm_state))


def _for_takes(per_stream: torch.Tensor, takes: int, dim: int = 0) -> torch.Tensor:
    """One take's streams ([left, right] or [mono]) repeated for `takes` takes, in `_streams`' order
    (every take's left, then every take's right)."""
    return per_stream.repeat_interleave(takes, dim=dim) if takes > 1 else per_stream


class BackgroundStream:
    """A StreamingDecoder whose chunks are decoded on a thread beside the decoder steps.

    A chunk of 25 frames took ~150 ms on a 2-core AVX2 machine (EnCodec's LSTM reads 32 MB of
    weights per frame), stalling the step that made it due. Here `update` starts a thread for a due
    chunk and returns; while that chunk is decoded, `update` offers nothing (the next due offer holds
    every frame anyway); the first chunk and a backlog are decoded inline. Each chunk's thread ends
    with its chunk, so a cancelled job leaves none behind. It runs its ops on one intra-op thread:
    the decoder's steps own the team. Whether this is faster depends on the machine and its load:
    bench/engine_speed.py measures both. `finish` waits for the chunk in flight, so every chunk
    reaches the sink before it returns; an error in a chunk's thread is raised by the next call.
    """

    CHUNK_TIMEOUT_SECONDS = 60.0  # one chunk: ~0.2 s on a laptop, more under heavy load
    # More frames than this not yet through the LSTM (an audio prompt's, had the stream not been
    # given its state: MusicGenerator._decode_prompt_frames) are decoded inline, on every thread,
    # as is every first chunk: the producer hears nothing until it comes.
    INLINE_BACKLOG_FRAMES = 50

    def __init__(self, stream: StreamingDecoder) -> None:
        self.stream = stream
        self._chunk: threading.Thread | None = None
        self._after_chunk: tuple[int, int] | None = None  # the stream's state once the chunk in flight is done
        self._error: BaseException | None = None

    def update(self, codes: torch.Tensor) -> None:
        self._raise_error()
        if self._chunk is not None and self._chunk.is_alive():
            if not self.stream.due(codes, after=self._after_chunk):
                return
            # The next chunk is due before this one is done: wait for it, so that chunks end where
            # they would inline and a seed gives the same take to the last bit, whatever the timing.
            self._wait_for_chunk()
        if not self.stream.due(codes):
            return
        if not self.stream.chunks or self.stream.undecoded_frames(codes) > self.INLINE_BACKLOG_FRAMES:
            self.stream.update(codes)  # fastest on every thread, and awaited anyway
            return
        self._start(self.stream.update, codes, self.stream.state_after(codes))

    def _start(self, work: Callable[[torch.Tensor], None], codes: torch.Tensor, after: tuple[int, int]) -> None:
        """Run `work(codes)` on a chunk thread; `after`: the stream's state once it is done."""
        self._after_chunk = after
        self._chunk = threading.Thread(target=self._decode, args=(work, codes), name="segue-stream-chunk", daemon=True)
        self._chunk.start()

    def finish(self, codes: torch.Tensor) -> np.ndarray:
        if self._chunk is not None:
            self._wait_for_chunk()
        self._raise_error()
        audio = self.stream.finish(codes)
        # The chunk threads' heap arenas keep EnCodec's temporaries: peak RSS grew ~100 MB per job
        # on musicgen-small without this, ~60 MB once with it.
        return_free_memory()
        return audio

    def _decode(self, work: Callable[[torch.Tensor], None], codes: torch.Tensor) -> None:
        # A new thread takes PyTorch's process-wide count at its first parallel op, and the steps
        # switch that count between 1 and all for every op (step_threads): take it now, then set
        # this thread's own to 1. Otherwise a chunk ran on 1 or 2 threads by chance, and its float
        # rounding, so a seed's take, depended on the timing.
        torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            work(codes)
        except BaseException as error:  # raised in the generating thread by its next call
            self._error = error

    def _wait_for_chunk(self) -> None:
        self._chunk.join(self.CHUNK_TIMEOUT_SECONDS)
        self._raise_error()
        if self._chunk.is_alive():
            raise SegueError(f"an audio chunk took longer than {self.CHUNK_TIMEOUT_SECONDS:g} s to decode")

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error


def _streams(loaded: LoadedModel, codes: torch.Tensor) -> torch.Tensor:
    """(batch, codebooks, frames) -> mono codec streams (batch x channels, codebooks per channel, frames)."""
    if loaded.audio_channels == 1:
        return codes
    return torch.cat([codes[:, 0::2], codes[:, 1::2]], dim=0)


def _from_streams(loaded: LoadedModel, audio: torch.Tensor) -> np.ndarray:
    """(batch x channels, 1, samples) -> float32 (batch, samples, channels)."""
    channels = loaded.audio_channels
    audio = audio.reshape(channels, -1, audio.shape[-1]).permute(1, 2, 0)
    return np.ascontiguousarray(audio.float().cpu().numpy())


class _GrowingFrames:
    """A (streams, channels, frames) tensor that grows along frames with amortised O(1) appends."""

    def __init__(self) -> None:
        self._buffer: torch.Tensor | None = None
        self.frames = 0

    def append(self, values: torch.Tensor) -> None:
        needed = self.frames + values.shape[-1]
        if self._buffer is None or needed > self._buffer.shape[-1]:
            grown = values.new_empty((*values.shape[:-1], max(needed, 2 * self.frames, 256)))
            if self._buffer is not None:
                grown[..., : self.frames] = self._buffer[..., : self.frames]
            self._buffer = grown
        self._buffer[..., self.frames : needed] = values
        self.frames = needed

    def view(self, start: int, end: int) -> torch.Tensor:
        return self._buffer[..., start:end]
