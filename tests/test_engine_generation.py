"""The engine as a producer uses it: exact lengths, reproducible seeds, variations, continuation."""

import numpy as np
import pytest
import torch

from bridge.engine.musicgen.codec import decode_codes
from bridge.engine.musicgen.generator import MusicGenerator, plan_windows
from bridge.engine.request import GenerationRequest
from bridge.errors import AudioFileError, CancelledError, InvalidParameterError


@pytest.fixture(scope="module")
def generator(tiny_model):
    return MusicGenerator(tiny_model)


def request(**overrides) -> GenerationRequest:
    params = dict(prompt="lo-fi drums", model="tiny", seconds=1.0, seed=7)
    params.update(overrides)
    return GenerationRequest(**params)


def test_length_in_seconds_is_exact_in_samples(generator):
    result = generator.generate(request(seconds=1.37))
    assert result.sample_rate == 32000
    assert result.takes[0].audio.shape == (round(1.37 * 32000), 1)
    assert result.takes[0].audio.dtype == np.float32


@pytest.mark.parametrize(
    ("bars", "bpm", "signature", "samples"),
    [
        (4, 100.0, "4/4", 307200),  # 9.6 s
        (2, 93.7, "7/8", round(2 * 3.5 * 60 / 93.7 * 32000)),  # a 7/8 bar lasts 3.5 quarter notes
        (1, 120.0, "6/8", 48000),  # 3 quarter notes = 1.5 s
    ],
)
def test_length_in_bars_is_exact_in_samples(generator, bars, bpm, signature, samples):
    assert generator.target_samples(request(seconds=None, bars=bars, bpm=bpm, signature=signature)) == samples


def test_a_generated_take_lasts_its_bars_to_the_sample(generator):
    result = generator.generate(request(seconds=None, bars=1, bpm=93.7, signature="7/8"))
    assert result.takes[0].audio.shape[0] == round(3.5 * 60 / 93.7 * 32000)


def test_same_seed_same_audio_and_other_seed_other_audio(generator):
    first = generator.generate(request(seed=11)).takes[0].audio
    again = generator.generate(request(seed=11)).takes[0].audio
    other = generator.generate(request(seed=12)).takes[0].audio
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)


def test_variations_are_one_batch_with_distinct_seeds_and_audio(generator):
    result = generator.generate(request(variations=3, seed=100))
    assert [take.seed for take in result.takes] == [100, 101, 102]
    audio = [take.audio for take in result.takes]
    assert not np.allclose(audio[0], audio[1]) and not np.allclose(audio[1], audio[2])
    assert all(take.codes.shape == (4, 50) for take in result.takes)


@pytest.mark.parametrize(("rate", "channels"), [(44100, 1), (44100, 2), (48000, 1), (48000, 2)])
def test_continuation_of_files_at_any_rate_and_channel_count(generator, write_tone, rate, channels):
    path = write_tone(f"source-{rate}-{channels}.wav", 3.0, rate, channels)
    result = generator.generate(request(audio_path=str(path), prompt_seconds=2.0, seconds=1.5))
    take = result.takes[0]
    assert take.audio.shape == (48000, 1)
    # The prompt is the last 2 s of the file at the model rate, in whole codec frames.
    assert take.prompt_audio.shape == (64000, 1)
    assert take.codes.shape == (4, 75)


def test_continuation_keeps_only_the_last_bars_of_the_source(generator, write_tone):
    path = write_tone("source.wav", 6.0, 48000, 1)
    result = generator.generate(request(audio_path=str(path), prompt_bars=2, bpm=120.0, seconds=None, bars=1))
    assert result.takes[0].prompt_audio.shape[0] == 4 * 32000 // 640 * 640  # 2 bars at 120 = 4 s
    assert result.takes[0].audio.shape[0] == 64000


def test_stereo_model_continues_mono_and_stereo_sources(tiny_stereo_model, write_tone):
    generator = MusicGenerator(tiny_stereo_model)
    for channels in (1, 2):
        path = write_tone(f"source-{channels}.wav", 1.0, 44100, channels)
        take = generator.generate(request(model="tiny-stereo", audio_path=str(path), seconds=0.5)).takes[0]
        assert take.audio.shape == (16000, 2)
        assert take.prompt_audio.shape[1] == 2
        assert take.codes.shape[0] == 8


def test_continuation_from_an_array_and_from_codes_of_an_earlier_take(generator):
    rate = 22050
    tone = 0.2 * np.sin(np.linspace(0, 400, rate * 2)).astype(np.float32)
    first = generator.generate(request(audio=tone, audio_sample_rate=rate, seconds=1.0)).takes[0]
    chained = generator.generate(request(prompt_codes=first.codes, seconds=1.0)).takes[0]
    assert chained.audio.shape == (32000, 1)
    assert chained.prompt_audio is None


def test_progress_and_chunks_add_up_to_the_final_audio(generator, tiny_model):
    progress, chunks = [], []
    result = generator.generate(
        request(seconds=3.0, variations=2),
        on_progress=lambda done, total, eta: progress.append((done, total, eta)),
        on_chunk=lambda start, audio: chunks.append((start, audio)),
    )
    total = progress[-1][1]
    assert total == 150 + 3  # 150 frames + the 3-step delay of 4 codebooks
    assert [done for done, _, _ in progress] == list(range(1, total + 1))
    assert progress[-1][2] == 0.0 and all(eta >= 0 for _, _, eta in progress)
    assert len(chunks) > 3, "audio must arrive while generating, not only at the end"
    starts = [start for start, _ in chunks]
    assert starts == np.cumsum([0] + [audio.shape[1] for _, audio in chunks[:-1]]).tolist()
    streamed = np.concatenate([audio for _, audio in chunks], axis=1)
    np.testing.assert_array_equal(streamed, np.stack([take.audio for take in result.takes]))
    # The stitched stream is the full decode of the final codes.
    full = decode_codes(tiny_model, torch.as_tensor(np.stack([take.codes for take in result.takes])))
    np.testing.assert_allclose(streamed, full[:, : streamed.shape[1]], atol=1e-5)


def test_cancel_stops_within_one_step(generator):
    steps_seen = []
    cancel_after = 20

    def should_cancel() -> bool:
        return len(steps_seen) >= cancel_after

    with pytest.raises(CancelledError):
        generator.generate(
            request(seconds=20.0),
            on_progress=lambda done, total, eta: steps_seen.append(done),
            should_cancel=should_cancel,
        )
    assert len(steps_seen) == cancel_after


def test_windows_keep_12_s_of_context_and_each_adds_at_least_18_s():
    # (context frames, new frames) at 50 frames a second, in 30 s (1500-frame) windows.
    assert plan_windows(0, 1500, 50) == [(0, 1500)]
    assert plan_windows(0, 2000, 50) == [(0, 1500), (600, 500)]
    assert plan_windows(250, 3000, 50) == [(250, 1250), (600, 900), (600, 850)]
    # A 30 s prompt is cut to its last 12 s, not prefilled whole to make one frame.
    assert plan_windows(1500, 50, 50) == [(600, 50)]
    assert plan_windows(1500, 3000, 50) == [(600, 900), (600, 900), (600, 900), (600, 300)]
    for prompt_frames in (0, 1, 599, 600, 1499, 1500, 4000):
        windows = plan_windows(prompt_frames, 5000, 50)
        assert sum(frames for _, frames in windows) == 5000
        assert all(context + frames <= 1500 and context <= 600 for context, frames in windows)
        assert all(frames >= 900 for _, frames in windows[:-1])


def test_a_clip_longer_than_the_window_continues_from_the_last_seconds_of_codes(generator, monkeypatch):
    """Shrink the 30 s window to 2 s (and its 10 s context to 0.6 s) so the test stays short."""
    import bridge.engine.musicgen.generator as generator_module

    monkeypatch.setattr(generator_module, "WINDOW_SECONDS", 2.0)
    monkeypatch.setattr(generator_module, "WINDOW_CONTEXT_SECONDS", 0.6)
    windowed = generator.generate(request(seconds=3.0, greedy=True)).takes[0]
    assert windowed.audio.shape[0] == 3 * 32000 and windowed.codes.shape == (4, 150)
    # The same thing by hand: 2 s, then a continuation of its last 0.6 s of codes.
    first = generator.generate(request(seconds=2.0, greedy=True)).takes[0]
    second = generator.generate(request(seconds=1.0, greedy=True, prompt_codes=first.codes[:, -30:])).takes[0]
    np.testing.assert_array_equal(windowed.codes, np.concatenate([first.codes, second.codes], axis=1))


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (dict(seconds=0.0), "length"),
        (dict(seconds=-3.0), "length"),
        (dict(seconds=1000.0), "length"),
        (dict(seconds=None, bars=4, bpm=None), "tempo"),
        (dict(seconds=None, bars=4, bpm=5.0), "tempo"),
        (dict(signature="7/5"), "denominator"),
        (dict(variations=0), "variations"),
        (dict(temperature=0.0), "temperature"),
        (dict(top_p=1.5), "top-p"),
        (dict(prompt="x" * 5000), "prompt"),
    ],
)
def test_impossible_parameters_are_refused_with_a_clear_message(generator, overrides, message):
    with pytest.raises(InvalidParameterError, match=message):
        generator.generate(request(**overrides))


def test_bad_audio_sources_are_refused(generator, tmp_path):
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    empty = tmp_path / "empty.wav"
    import soundfile

    soundfile.write(empty, np.zeros((0, 1)), 44100)
    for path, message in [(tmp_path / "missing.wav", "no audio file"), (garbage, "cannot read"), (empty, "zero length")]:
        with pytest.raises(AudioFileError, match=message):
            generator.generate(request(audio_path=str(path)))
    with pytest.raises(AudioFileError, match="too short"):
        generator.generate(request(audio=np.zeros(10, np.float32), audio_sample_rate=44100))
