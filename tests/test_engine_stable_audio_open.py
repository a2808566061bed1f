"""Stable Audio Open in Segue's Stable Audio family as a producer uses it: loops exact to the bar at
the song's tempo, seeds that reproduce, variations of a clip, progress and cancel per diffusion step,
and clear refusals for what it cannot do (continuing audio, more than its window)."""

import json
import shutil

import numpy as np
import pytest

from bridge.engine.catalog import find_known_model
from bridge.engine.families import family_for
from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.loading import load_stable_audio, resolve_checkpoint
from bridge.engine.stable_audio.open_generator import DECODE_CONTEXT_FRAMES, StableAudioOpenGenerator
from bridge.engine.stable_audio.prompts import stable_audio_open_prompt
from bridge.errors import CancelledError, InvalidParameterError
from bridge.musical_time import TimeSignature, bars_to_samples

MODEL, RATE, STEPS = "tiny-stable-audio-open", 44100, 6


@pytest.fixture(scope="module")
def generator(segue_cache_dir):
    # Fewer steps than the model's 100 keep the tests quick; the CLI test runs the default.
    return StableAudioOpenGenerator(load_stable_audio(MODEL, "cpu"), steps=STEPS)


def request(**overrides) -> GenerationRequest:
    params = dict(prompt="dusty lo-fi drums", model=MODEL, seconds=1.0, seed=7)
    params.update(overrides)
    return GenerationRequest(**params)


def audio_of(generator, **overrides) -> np.ndarray:
    return generator.generate(request(**overrides)).takes[0].audio


def test_a_loop_in_bars_lasts_its_bars_to_the_sample_in_44k_stereo(generator):
    result = generator.generate(request(seconds=None, bars=1, bpm=93.7, signature="7/8"))
    assert result.sample_rate == RATE and result.model_id == MODEL
    assert result.takes[0].audio.shape == (bars_to_samples(1, 93.7, TimeSignature(7, 8), RATE), 2)
    assert result.takes[0].audio.dtype == np.float32


def test_same_seed_same_audio_other_seed_or_prompt_other_audio(generator):
    first = audio_of(generator, seed=11)
    np.testing.assert_array_equal(first, audio_of(generator, seed=11))
    assert not np.allclose(first, audio_of(generator, seed=12))
    assert not np.allclose(first, audio_of(generator, seed=11, prompt="bright house piano"))


def test_progress_after_every_diffusion_step_and_cancel_between_steps(generator):
    steps = []
    generator.generate(request(variations=2), lambda done, total, eta: steps.append((done, total)))
    assert steps == [(done, 2 * STEPS) for done in range(1, 2 * STEPS + 1)]
    done_steps = []
    with pytest.raises(CancelledError):
        generator.generate(request(), lambda done, total, eta: done_steps.append(done), None, lambda: len(done_steps) >= 3)
    assert done_steps == [1, 2, 3]


def test_the_real_checkpoints_sampler_reproduces_seeds_too(tmp_path, segue_cache_dir):
    # stable-audio-open-1.0's scheduler_config.json names CosineDPMSolverMultistepScheduler, an SDE
    # sampler whose noise comes from a torchsde Brownian tree seeded from the generator.
    folder = shutil.copytree(resolve_checkpoint(MODEL), tmp_path / "sao")
    (folder / "scheduler" / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "CosineDPMSolverMultistepScheduler", "sigma_min": 0.3, "sigma_max": 500.0, "sigma_data": 1.0}
    ))
    index = json.loads((folder / "model_index.json").read_text())
    index["scheduler"] = ["diffusers", "CosineDPMSolverMultistepScheduler"]
    (folder / "model_index.json").write_text(json.dumps(index))
    sde = StableAudioOpenGenerator(load_stable_audio(str(folder), "cpu"), steps=3)
    assert type(sde.loaded.text_to_audio.scheduler).__name__ == "CosineDPMSolverMultistepScheduler"
    first = sde.generate(request(model=str(folder))).takes[0].audio
    np.testing.assert_array_equal(first, sde.generate(request(model=str(folder))).takes[0].audio)
    assert not np.allclose(first, sde.generate(request(model=str(folder), seed=8)).takes[0].audio)


def test_only_the_clips_frames_are_decoded_and_they_equal_the_whole_windows_decode(generator):
    latents = generator.loaded.text_to_audio(
        "x", audio_end_in_s=1.0, num_inference_steps=2, generator=generator._generator(1), output_type="latent"
    ).audios
    samples = RATE
    frames = -(-samples // generator.loaded.samples_per_latent_frame) + DECODE_CONTEXT_FRAMES
    whole = generator._decode(latents)[:samples]
    np.testing.assert_allclose(generator._decode(latents[..., :frames])[:samples], whole, atol=1e-4)


def test_a_variation_keeps_the_clips_length_reproduces_and_hears_the_clip_and_the_strength(generator, write_tone):
    path = str(write_tone("clip.wav", 1.3, 48000, 1))
    first = audio_of(generator, init_audio_path=path, strength=0.3)
    assert first.shape == (round(1.3 * RATE), 2)
    np.testing.assert_array_equal(first, audio_of(generator, init_audio_path=path, strength=0.3))
    assert not np.allclose(first, audio_of(generator, init_audio_path=path, strength=0.9))
    other = str(write_tone("other.wav", 1.3, 48000, 2))  # another clip: the variation follows it
    assert not np.allclose(first, audio_of(generator, init_audio_path=other, strength=0.3))


def test_the_strength_picks_the_starting_noise_between_the_samplers_lowest_and_highest(generator):
    config = generator.loaded.text_to_audio.scheduler.config
    assert generator.init_noise_level(1.0) == pytest.approx(config.sigma_max)
    assert generator.init_noise_level(0.0) == pytest.approx(config.sigma_min)
    assert generator.init_noise_level(0.25) < generator.init_noise_level(0.5) < generator.init_noise_level(0.75)


def test_the_tempo_leads_the_prompt_as_stable_audio_opens_card_writes_it():
    assert stable_audio_open_prompt("tech house drum loop", 128) == "128 BPM tech house drum loop"
    assert stable_audio_open_prompt("trap hats 140bpm, A minor", 90) == "trap hats 140 BPM, A minor"
    assert stable_audio_open_prompt("", 92.5) == "92.5 BPM"


def test_continuing_audio_is_refused_in_one_line(generator):
    with pytest.raises(InvalidParameterError, match="cannot continue audio"):
        request(audio=np.zeros((RATE, 2), dtype=np.float32), audio_sample_rate=RATE).validate()
    with pytest.raises(InvalidParameterError, match="cannot continue audio"):
        generator.generate(request(audio=np.zeros((RATE, 2), dtype=np.float32), audio_sample_rate=RATE))


def test_longer_than_the_window_is_refused_naming_the_longest(generator, write_tone):
    with pytest.raises(InvalidParameterError, match="at most 2.9 s in one pass.*2.9 s or less"):
        request(seconds=3.0).validate()
    with pytest.raises(InvalidParameterError, match="at most 47.5 s in one pass.*47.5 s or less"):
        request(model="stabilityai/stable-audio-open-1.0", seconds=48).validate()
    assert generator.loaded.max_seconds == 2.9  # the tiny's 64-frame window, 2.97 s
    with pytest.raises(InvalidParameterError, match="at most 2.9 s"):
        generator.generate(request(init_audio_path=str(write_tone("long.wav", 3.5, 44100, 2))))


def test_the_family_runs_stable_audio_open_and_the_catalog_says_so():
    assert family_for("stabilityai/stable-audio-open-1.0").name == "stable-audio"
    assert family_for(MODEL).name == "stable-audio"
    known = find_known_model("stabilityai/stable-audio-open-1.0")
    assert known.supported and "Community License" in known.licence
    with pytest.raises(InvalidParameterError, match="takes no melody"):
        request(melody_path="chords.wav").validate()
