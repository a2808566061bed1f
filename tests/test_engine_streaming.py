"""Streaming decode: chunks arrive early, each frame is decoded once, and the stitched stream is the full decode."""

import threading
import time

import numpy as np
import pytest
import torch

from bridge.engine.musicgen.codec import (
    FIRST_CONV_LOOKAHEAD_FRAMES,
    HOLDBACK_FRAMES,
    UPSAMPLER_MARGIN_FRAMES,
    BackgroundStream,
    StreamingDecoder,
    decode_codes,
)
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.musicgen.modules.encodec import EncodecLSTM
from bridge.engine.request import GenerationRequest
from bridge.errors import CancelledError
from tests.waiting import wait_until

recur = EncodecLSTM.recur  # the unpatched method, for the tests that count its frames


def random_codes(loaded, batch: int, frames: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 2048, (batch, loaded.num_codebooks, frames), generator=generator)


def stream(loaded, codes: torch.Tensor, prompt_frames: int, total_samples: int, **options):
    """Offer the codes one frame at a time, as generation does; return (chunks, final audio, frames seen per chunk)."""
    chunks, frames_at_chunk = [], []
    offered = [0]

    def sink(start, audio):
        chunks.append((start, audio))
        frames_at_chunk.append(offered[0])

    decoder = StreamingDecoder(
        loaded, sink, start_sample=prompt_frames * loaded.samples_per_frame, total_samples=total_samples, **options
    )
    for frames in range(prompt_frames + 1, codes.shape[-1] + 1):
        offered[0] = frames
        decoder.update(codes[..., :frames])
    offered[0] = codes.shape[-1]
    return chunks, decoder.finish(codes), frames_at_chunk


@pytest.mark.parametrize(
    ("model", "batch", "prompt_frames", "new_frames", "cut_samples"),
    [
        ("tiny_model", 1, 0, 120, 0),  # text prompt
        ("tiny_model", 2, 37, 90, 250),  # continuation, two takes, length not a whole frame
        ("tiny_stereo_model", 2, 0, 60, 0),  # interleaved stereo codebooks
        ("tiny_model", 1, 0, 5, 0),  # shorter than the hold-back
    ],
)
def test_stitched_stream_equals_the_full_decode(request, model, batch, prompt_frames, new_frames, cut_samples):
    loaded = request.getfixturevalue(model)
    per_frame = loaded.samples_per_frame
    codes = random_codes(loaded, batch, prompt_frames + new_frames, seed=new_frames)
    total = new_frames * per_frame - cut_samples
    chunks, final, _ = stream(loaded, codes, prompt_frames, total)

    starts = [start for start, _ in chunks]
    assert starts == np.cumsum([0] + [audio.shape[1] for _, audio in chunks[:-1]]).tolist()
    stitched = np.concatenate([audio for _, audio in chunks], axis=1)
    np.testing.assert_array_equal(stitched, final)
    assert final.shape == (batch, total, loaded.audio_channels)
    full = decode_codes(loaded, codes)[:, prompt_frames * per_frame : prompt_frames * per_frame + total]
    np.testing.assert_allclose(stitched, full, atol=1e-5, rtol=0)
    assert np.abs(full).max() > 1e-3, "the decode must not be silent, or equality proves nothing"


def test_first_chunk_is_small_and_early_then_chunks_grow(tiny_model):
    codes = random_codes(tiny_model, 1, 200, seed=3)
    chunks, _, frames_at_chunk = stream(tiny_model, codes, 0, 200 * 640, first_chunk_frames=4, max_chunk_frames=25)
    sizes = [audio.shape[1] // 640 for _, audio in chunks]
    assert frames_at_chunk[0] == 4 + HOLDBACK_FRAMES
    assert sizes[:4] == [4, 8, 16, 25]
    assert max(sizes[:-1]) == 25


def test_every_frame_is_decoded_once_plus_a_bounded_margin(tiny_model, monkeypatch):
    """Linear cost: the upsampling stack sees each frame once plus a fixed margin per chunk, and
    the LSTM each frame exactly once, however long the stream (re-decoding everything is quadratic)."""
    codes = random_codes(tiny_model, 1, 600, seed=5)
    decoder_layers = tiny_model.model.audio_encoder.decoder.layers
    seen = {"lstm": 0, "upsampler": 0}

    def lstm_frames(lstm, sequence, state=None):  # (frames, streams, channels)
        assert lstm is decoder_layers[1]
        seen["lstm"] += sequence.shape[0]
        return recur(lstm, sequence, state)

    def upsampler_frames(module, inputs, output):  # the stack's first ELU: (streams, channels, frames)
        seen["upsampler"] += inputs[0].shape[-1]

    monkeypatch.setattr(EncodecLSTM, "recur", lstm_frames)
    upsampler_hook = decoder_layers[2].register_forward_hook(upsampler_frames)
    try:
        chunks, _, _ = stream(tiny_model, codes, 0, 600 * 640)
    finally:
        upsampler_hook.remove()
    assert seen["lstm"] == 600
    assert seen["upsampler"] <= 600 + 2 * UPSAMPLER_MARGIN_FRAMES * len(chunks)


# ---------------------------------------------------------------- chunks decoded beside the decoder steps


def chunk_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "segue-stream-chunk"]


def test_chunks_decoded_on_their_own_thread_are_the_inline_streams_chunks(tiny_model):
    codes = random_codes(tiny_model, 2, 150, seed=7)
    inline_chunks, inline_final, _ = stream(tiny_model, codes, 0, 150 * 640)
    chunks, decoding_threads = [], set()

    def sink(start, audio):
        chunks.append((start, audio))
        decoding_threads.add(threading.current_thread().name)

    background = BackgroundStream(StreamingDecoder(tiny_model, sink, start_sample=0, total_samples=150 * 640))
    for frames in range(1, 151):
        background.update(codes[..., :frames])
    final = background.finish(codes)

    np.testing.assert_allclose(final, inline_final, atol=1e-5, rtol=0)  # one thread, not two: float rounding
    assert [start for start, _ in chunks] == [start for start, _ in inline_chunks]  # the inline stream's chunks
    np.testing.assert_array_equal(np.concatenate([audio for _, audio in chunks], axis=1), final)
    assert "segue-stream-chunk" in decoding_threads and len(chunks) >= 2  # offers come faster than chunks here
    assert not any(thread.is_alive() for thread in chunk_threads())


def test_chunks_beside_end_where_they_would_inline_however_slow_their_thread_is(tiny_model):
    """A seed gives the same take to the last bit: where a chunk ends (and so how EnCodec's LSTM and
    upsampler split the frames) must not depend on whether its thread kept up with the steps."""
    codes = random_codes(tiny_model, 1, 120, seed=5)
    inline_chunks, _, _ = stream(tiny_model, codes, 0, 120 * 640)

    def run(step_seconds: float, chunk_seconds: float):
        chunks = []

        def sink(start, audio):
            time.sleep(chunk_seconds)
            chunks.append((start, audio))

        background = BackgroundStream(StreamingDecoder(tiny_model, sink, start_sample=0, total_samples=120 * 640))
        for frames in range(1, 121):
            background.update(codes[..., :frames])
            time.sleep(step_seconds)
        final = background.finish(codes)
        return [start for start, _ in chunks], final

    keeping_up, falling_behind = run(step_seconds=0.02, chunk_seconds=0.0), run(step_seconds=0.0, chunk_seconds=0.05)
    assert keeping_up[0] == falling_behind[0] == [start for start, _ in inline_chunks]
    np.testing.assert_array_equal(keeping_up[1], falling_behind[1])


def test_an_audio_prompts_frames_go_through_the_lstm_before_the_first_step_on_every_thread(tiny_model, monkeypatch):
    """The first chunk after a prompt needs every prompt frame through the LSTM: the job runs them before
    its first step, on the generating thread with all its threads (on the one-thread chunk thread beside
    the steps they had delayed the first chunk), once per prompt: a re-roll of the source reuses them."""
    runs = []  # (thread, its intra-op threads, frames, steps done before)
    steps = []

    decoder_lstm = tiny_model.model.audio_encoder.decoder.layers[1]

    def recorded(lstm, sequence, state=None):
        if lstm is decoder_lstm:  # not the encoder's, which encodes the prompt
            runs.append((threading.current_thread().name, torch.get_num_threads(), sequence.shape[0], len(steps)))
        return recur(lstm, sequence, state)

    monkeypatch.setattr(EncodecLSTM, "recur", recorded)
    rate = tiny_model.sample_rate
    source = np.sin(2 * np.pi * 110 * np.arange(rate) / rate).astype(np.float32)[:, None]  # 1 s: 50 frames
    request = GenerationRequest(prompt="go on", model="tiny", seconds=0.5, seed=1, quality="fast", audio=source,
                                audio_sample_rate=rate)
    generator = MusicGenerator(tiny_model)
    generator.stream_on_thread = True
    threads = torch.get_num_threads()
    first = generator.generate(request, on_progress=lambda done, total, eta: steps.append(done))
    prompt_frames = tiny_model.frame_rate
    assert runs[0] == (threading.current_thread().name, threads, prompt_frames - FIRST_CONV_LOOKAHEAD_FRAMES, 0)
    new_frames = round(0.5 * tiny_model.frame_rate)
    assert sum(frames for _, _, frames, _ in runs) == prompt_frames + new_frames  # each frame once

    runs.clear()
    steps.clear()
    again = generator.generate(request, on_progress=lambda done, total, eta: steps.append(done))
    assert all(before > 0 for _, _, _, before in runs)  # nothing before the first step: the prompt's state is kept
    np.testing.assert_array_equal(first.takes[0].audio, again.takes[0].audio)


def test_a_cold_streams_backlog_is_decoded_inline_with_the_first_chunk(tiny_model):
    """A stream given a prompt's frames without their LSTM state decodes them with the first chunk, on
    the offering thread; later chunks go beside; the audio is the inline stream's."""
    prompt_frames = 100
    codes = random_codes(tiny_model, 1, prompt_frames + 80, seed=9)
    chunks, decoding_threads = [], []

    def sink(start, audio):
        chunks.append((start, audio))
        decoding_threads.append(threading.current_thread().name)

    decoder = StreamingDecoder(tiny_model, sink, start_sample=prompt_frames * 640, total_samples=80 * 640)
    background = BackgroundStream(decoder)
    for frames in range(prompt_frames, codes.shape[-1] + 1):
        background.update(codes[..., :frames])
        assert frames >= prompt_frames + 4 + HOLDBACK_FRAMES or not chunk_threads()  # nothing beside before it
        time.sleep(0.005)  # a decoder step's worth of time, so later chunks can go beside
    final = background.finish(codes)
    inline_chunks, inline_final, _ = stream(tiny_model, codes, prompt_frames, 80 * 640)
    np.testing.assert_allclose(final, inline_final, atol=1e-5, rtol=0)  # beside: its convolutions on one thread
    assert [start for start, _ in chunks] == [start for start, _ in inline_chunks]
    assert decoding_threads[0] == threading.current_thread().name
    assert "segue-stream-chunk" in decoding_threads[1:]
    assert not any(thread.is_alive() for thread in chunk_threads())


def test_a_chunk_thread_decodes_on_one_thread_whatever_the_steps_set_meanwhile(tiny_model):
    """The steps switch PyTorch's thread count for every op (step_threads); a chunk thread that took
    the count of the moment would decode on 1 or 2 threads by chance, rounding differently."""
    codes = random_codes(tiny_model, 1, 60, seed=4)
    threads_seen = []
    background = BackgroundStream(StreamingDecoder(
        tiny_model, lambda start, audio: threads_seen.append(torch.get_num_threads()), start_sample=0,
        total_samples=60 * 640,
    ))
    threads = torch.get_num_threads()
    try:
        for frames in range(1, 61):
            torch.set_num_threads(1)  # as a step's small ops
            background.update(codes[..., :frames])
            torch.set_num_threads(2)  # as a step's matmuls
            time.sleep(0.01)
        background.finish(codes)
    finally:
        torch.set_num_threads(threads)
    assert threads_seen[1:-1] and set(threads_seen[1:-1]) == {1}  # the first chunk and the last are inline


def test_a_chunk_that_fails_on_its_thread_fails_the_generation(tiny_model):
    def broken_sink(start, audio):
        raise OSError("audio device gone")

    background = BackgroundStream(StreamingDecoder(tiny_model, broken_sink, start_sample=0, total_samples=60 * 640))
    codes = random_codes(tiny_model, 1, 60, seed=8)
    with pytest.raises(OSError, match="audio device gone"):
        for frames in range(1, 61):
            background.update(codes[..., :frames])
        background.finish(codes)


def test_a_cancelled_generation_leaves_no_decoding_thread_behind(tiny_model):
    generator = MusicGenerator(tiny_model)
    generator.stream_on_thread = True
    steps = []
    with pytest.raises(CancelledError):
        generator.generate(
            GenerationRequest(prompt="dub techno", model="tiny", seconds=3.0, seed=2, quality="exact"),
            on_progress=lambda done, total, eta: steps.append(done),
            should_cancel=lambda: len(steps) >= 40,
        )
    wait_until(lambda: not chunk_threads(), timeout_seconds=30, what="the chunk thread to end")
