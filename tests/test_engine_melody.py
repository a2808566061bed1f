"""MusicGen-Melody through Segue's own sampling loop and fast decoder, on the local `tiny-melody` model.

Pitch classes D and G, never C: one-hot C is the models' built-in "no melody" input.
"""

import numpy as np
import pytest
import torch

from bridge.engine.melody_timeline import MelodyTimeline
from bridge.engine.musicgen.fast_decoder import FastDecoder
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.musicgen.melody import melody_prefix, window_chroma
from bridge.engine.musicgen.random_models import build_random_musicgen
from bridge.engine.musicgen.sampling import build_sequence, encode_text
from bridge.engine.request import GenerationRequest
from bridge.errors import InvalidParameterError
from tests.test_engine_fast import load_random_model
from tests.test_engine_reference import reference_codes

RATE = 32000
FRAMES = 40  # 0.8 s


@pytest.fixture(scope="module")
def tiny_melody(segue_cache_dir):
    from bridge.engine.musicgen.loading import load_model

    return load_model("tiny-melody", "cpu")


@pytest.fixture(scope="module")
def reference(tiny_melody):
    from bridge.engine.musicgen.reference import load_reference_model

    return load_reference_model("tiny-melody")


@pytest.fixture(scope="module")
def generator(tiny_melody):
    return MusicGenerator(tiny_melody)


def tone(frequency_hz: float, seconds: float = 2.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * frequency_hz * t)).astype(np.float32)


D_TONE, G_TONE = tone(293.66), tone(392.0)


def melody_request(melody: np.ndarray | None, **overrides) -> GenerationRequest:
    fields = dict(prompt="warm strings", model="tiny-melody", seconds=FRAMES / 50, seed=7, quality="fast")
    if melody is not None:
        fields.update(melody=melody, melody_sample_rate=RATE)
    return GenerationRequest(**(fields | overrides))


def chroma_of(loaded, melody: np.ndarray, clip_samples: int, start_sample: int = 0, before=None) -> torch.Tensor:
    """The chroma Segue feeds the model, as transformers' `input_features` (1, chroma_length, 12)."""
    timeline = MelodyTimeline(np.resize(melody, clip_samples), before, RATE)
    return torch.from_numpy(window_chroma(loaded, timeline, start_sample))[None]


@pytest.mark.parametrize("cfg", [3.0, pytest.param(1.0, marks=pytest.mark.slow)])
def test_greedy_codes_with_a_melody_equal_transformers_generate(tiny_melody, reference, generator, cfg):
    clip_samples = FRAMES * tiny_melody.samples_per_frame
    text = reference.processor.tokenizer(["warm strings"], return_tensors="pt")
    expected = reference_codes(
        reference, **text, input_features=chroma_of(tiny_melody, D_TONE, clip_samples), guidance_scale=cfg,
        max_new_tokens=FRAMES + 3,
    )
    ours = generator.generate(melody_request(D_TONE, greedy=True, cfg=cfg, quality="exact"))
    assert expected.shape == (1, 4, FRAMES)
    np.testing.assert_array_equal(ours.takes[0].codes, expected[0])


def test_greedy_codes_without_a_melody_equal_transformers_generate(reference, generator):
    text = reference.processor.tokenizer(["warm strings"], return_tensors="pt")
    expected = reference_codes(reference, **text, guidance_scale=3.0, max_new_tokens=FRAMES + 3)
    ours = generator.generate(melody_request(None, greedy=True, quality="exact"))
    np.testing.assert_array_equal(ours.takes[0].codes, expected[0])


def test_continuing_audio_while_following_a_melody_equals_transformers_with_decoder_input_ids(
    tiny_melody, reference, generator
):
    # transformers continues with a melody model through decoder_input_ids (the prompt's codes), not input_values
    prompt_audio = tone(220.0, 1.0)  # 50 frames
    request = melody_request(G_TONE, greedy=True, quality="exact", audio=prompt_audio, audio_sample_rate=RATE)
    ours = generator.generate(request)
    prompt_codes = generator.prepare_prompt(request)[1]
    text = reference.processor.tokenizer(["warm strings"], return_tensors="pt")
    features = chroma_of(tiny_melody, G_TONE, FRAMES * 640, start_sample=-len(prompt_audio), before=prompt_audio)
    expected = reference_codes(
        reference, **text, input_features=features, decoder_input_ids=prompt_codes.reshape(4, -1),
        guidance_scale=3.0, max_new_tokens=FRAMES + 3,
    )
    np.testing.assert_array_equal(ours.takes[0].codes, expected[0, :, 50:])


def test_two_melodies_same_seed_give_different_codes_the_same_melody_twice_the_same(generator):
    first = generator.generate(melody_request(D_TONE)).takes[0].codes
    other = generator.generate(melody_request(G_TONE)).takes[0].codes
    again = generator.generate(melody_request(D_TONE)).takes[0].codes
    assert (first != other).mean() > 0.5
    np.testing.assert_array_equal(first, again)


def test_silence_as_a_melody_is_the_models_no_melody_input(generator):
    silent = generator.generate(melody_request(np.zeros(RATE, np.float32), greedy=True)).takes[0].codes
    without = generator.generate(melody_request(None, greedy=True)).takes[0].codes
    np.testing.assert_array_equal(silent, without)


@pytest.mark.parametrize("melody_seconds", [0.3, pytest.param(5.0, marks=pytest.mark.slow)])
def test_a_melody_shorter_or_longer_than_the_clip_gives_a_whole_clip(generator, melody_seconds):
    result = generator.generate(melody_request(tone(293.66, melody_seconds), bars=1, bpm=240, seconds=None))
    assert result.takes[0].audio.shape[0] == RATE  # one bar at 240 BPM in 4/4


def test_cached_steps_equal_one_uncached_pass(tiny_melody, reference):
    """The fast decoder's cached steps give the logits of transformers' decoder over the whole sequence at once."""
    text = encode_text(tiny_melody, "warm strings", 1, guided=True)
    conditioning = melody_prefix(tiny_melody, text, chroma_of(tiny_melody, G_TONE, RATE)[0].numpy())
    sequence, _, _ = build_sequence(tiny_melody, None, 1, 12)
    sequence[:, :, 1:] = torch.randint(0, 2048, sequence[:, :, 1:].shape, generator=torch.Generator().manual_seed(1))
    rows = sequence.repeat(2, 1, 1)
    length = rows.shape[-1]
    with torch.inference_mode():
        whole = reference.model.decoder(
            input_ids=rows.reshape(-1, length), encoder_hidden_states=conditioning.hidden_states, use_cache=False
        ).logits.reshape(2, 4, -1, 2048)[:, :, -length:]
        for graphed in (False, True):  # True: the fixed-shape steps a CUDA graph replays (run eagerly here)
            session = FastDecoder(tiny_melody, graphed=graphed).start(
                conditioning.hidden_states, conditioning.attention_mask, 1, 2, length, prefix=True
            )
            stepped = [session(rows[:, :, p : p + 1]) for p in range(length)]
            torch.testing.assert_close(torch.stack(stepped, dim=2), whole, atol=1e-4, rtol=1e-4)


def test_a_melody_for_a_model_that_takes_none_is_a_clear_error(tiny_model):
    request = melody_request(D_TONE, model="tiny")
    with pytest.raises(InvalidParameterError, match="tiny does not follow a melody: choose a melody model"):
        MusicGenerator(tiny_model).generate(request)


@pytest.mark.slow
def test_a_stereo_melody_model_follows_a_melody_and_its_greedy_codes_equal_transformers_generate():
    model, processor = build_random_musicgen("tiny-stereo-melody", seed=3)
    stereo = load_random_model("tiny-stereo-melody", seed=3)
    frames = 20
    melody = np.stack([D_TONE, 0.5 * D_TONE], axis=1)  # stereo melodies are heard as their mono mix
    text = processor.tokenizer(["warm strings"], return_tensors="pt")
    features = chroma_of(stereo, D_TONE * 0.75, frames * 640)
    decoded = []  # transformers decodes the left codebooks (0, 2, ...), then the right ones
    codec, original = model.audio_encoder, model.audio_encoder.decode
    codec.decode = lambda codes, *args, **kwargs: decoded.append(codes.clone()) or original(codes, *args, **kwargs)
    try:
        with torch.inference_mode():
            model.generate(**text, input_features=features, do_sample=False, guidance_scale=3.0, max_new_tokens=frames + 3)
    finally:
        del codec.decode
    ours = MusicGenerator(stereo).generate(
        melody_request(melody, model="tiny-stereo-melody", seconds=frames / 50, greedy=True, quality="exact")
    ).takes[0].codes
    np.testing.assert_array_equal(ours[0::2], decoded[0][0, 0].numpy())
    np.testing.assert_array_equal(ours[1::2], decoded[1][0, 0].numpy())


@pytest.mark.slow
def test_a_long_prompt_fits_before_a_full_window(tiny_melody, generator):
    """235 chroma frames + a 2000-character prompt + 30 s of codes outgrow the model's 2048 positions."""
    text = encode_text(tiny_melody, "warm strings " * 150, 1, guided=True)
    assert 235 + text.hidden_states.shape[1] + 1504 > tiny_melody.model.config.decoder.max_position_embeddings
    result = generator.generate(melody_request(D_TONE, prompt="warm strings " * 150, seconds=0.2))
    assert result.takes[0].audio.shape[0] == round(0.2 * RATE)
