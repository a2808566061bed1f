"""The Stable Audio family as a producer uses it: exact lengths, seeds that reproduce, continuation by
inpainting, variations, progress and cancel per diffusion step, and clear refusals."""

import json

import numpy as np
import pytest
import soundfile

from bridge.engine.families import family_for
from bridge.engine.request import GenerationRequest
from bridge.engine.stable_audio.family import claims
from bridge.engine.stable_audio.generator import DEFAULT_STEPS, StableAudioGenerator
from bridge.engine.stable_audio.loading import load_stable_audio
from bridge.engine.stable_audio.prompts import stable_audio_prompt
from bridge.errors import AudioFileError, CancelledError, InvalidParameterError, ModelError

RATE = 44100


@pytest.fixture(scope="module")
def generator(segue_cache_dir):
    return StableAudioGenerator(load_stable_audio("tiny-stable-audio", "cpu"))


def request(**overrides) -> GenerationRequest:
    params = dict(prompt="dusty lo-fi drums", model="tiny-stable-audio", seconds=1.0, seed=7)
    params.update(overrides)
    return GenerationRequest(**params)


def audio_of(generator, **overrides) -> np.ndarray:
    return generator.generate(request(**overrides)).takes[0].audio


def test_a_loop_in_bars_lasts_its_bars_to_the_sample_in_44k_stereo(generator):
    result = generator.generate(request(seconds=None, bars=1, bpm=93.7, signature="7/8"))
    assert result.sample_rate == RATE
    assert result.takes[0].audio.shape == (round(3.5 * 60 / 93.7 * RATE), 2)
    assert result.takes[0].audio.dtype == np.float32


def test_same_seed_same_audio_other_seed_or_prompt_other_audio(generator):
    first = audio_of(generator, seed=11)
    np.testing.assert_array_equal(first, audio_of(generator, seed=11))
    assert not np.allclose(first, audio_of(generator, seed=12))
    assert not np.allclose(first, audio_of(generator, seed=11, prompt="bright house piano"))


def test_a_take_depends_on_its_seed_not_on_how_many_takes_were_asked(generator):
    result = generator.generate(request(seed=100, variations=2))
    assert [take.seed for take in result.takes] == [100, 101]
    np.testing.assert_array_equal(result.takes[1].audio, audio_of(generator, seed=101))


def test_progress_after_every_diffusion_step_and_one_chunk_at_the_end(generator):
    steps, chunks = [], []
    generator.generate(request(variations=2), lambda done, total, eta: steps.append((done, total)),
                       lambda start, audio: chunks.append((start, audio.shape)))
    assert steps == [(done, 2 * DEFAULT_STEPS) for done in range(1, 2 * DEFAULT_STEPS + 1)]
    assert chunks == [(0, (2, RATE, 2))]


def test_cancel_stops_between_diffusion_steps(generator):
    steps = []
    with pytest.raises(CancelledError):
        generator.generate(request(), lambda done, total, eta: steps.append(done), None, lambda: len(steps) >= 3)
    assert steps == [1, 2, 3]


def test_continuation_keeps_the_sources_last_latent_frames_and_makes_only_new_bars(generator, tmp_path):
    source = 0.2 * np.random.default_rng(1).standard_normal((3 * 48000, 2)).astype(np.float32)
    path = tmp_path / "source.wav"
    soundfile.write(path, source, 48000, subtype="FLOAT")
    result = generator.generate(request(audio_path=str(path), prompt_seconds=2.0, seconds=None, bars=1, bpm=120.0))
    take = result.takes[0]
    assert take.audio.shape == (2 * RATE, 2)  # one bar at 120 bpm
    assert take.prompt_audio.shape == (2 * RATE // 4096 * 4096, 2)  # the last 2 s, whole latent frames


def test_continuation_follows_its_audio_prompt(generator):
    rng = np.random.default_rng(2)
    one, other = (0.3 * rng.standard_normal((RATE, 2)).astype(np.float32) for _ in range(2))
    first = audio_of(generator, audio=one, audio_sample_rate=RATE)
    assert not np.allclose(first, audio_of(generator, audio=other, audio_sample_rate=RATE))
    np.testing.assert_array_equal(first, audio_of(generator, audio=one, audio_sample_rate=RATE))


def test_a_variation_keeps_the_clips_length_and_reproduces_by_seed(generator, write_tone):
    path = str(write_tone("clip.wav", 1.3, 48000, 1))
    first = audio_of(generator, init_audio_path=path, strength=0.4)
    assert first.shape == (round(1.3 * RATE), 2)
    np.testing.assert_array_equal(first, audio_of(generator, init_audio_path=path, strength=0.4))
    assert not np.allclose(first, audio_of(generator, init_audio_path=path, strength=0.4, seed=8))
    assert not np.allclose(first, audio_of(generator, init_audio_path=path, strength=0.9))


def test_bpm_goes_into_the_prompt_as_the_models_were_trained():
    assert stable_audio_prompt("deep house, A minor", 124) == "deep house, A minor, 124 BPM"
    assert stable_audio_prompt("trap hats 140bpm", 90) == "trap hats 140 BPM"
    assert stable_audio_prompt("", 92.5) == "92.5 BPM"
    assert stable_audio_prompt("ambient pad", None) == "ambient pad"


def test_the_family_claims_stable_audio_ids_and_folders(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableAudio3Pipeline"}))
    assert claims("tiny-stable-audio") and claims("stabilityai/stable-audio-3-small-music") and claims(str(tmp_path))
    assert family_for("facebook/musicgen-small").name == "musicgen"


def test_longer_than_one_pass_is_refused_naming_the_longest():
    with pytest.raises(InvalidParameterError, match="at most 47 s in one pass.*47 s or less"):
        request(seconds=60).validate()


def test_a_variation_asked_of_musicgen_is_refused():
    with pytest.raises(InvalidParameterError, match="cannot make variations"):
        request(model="tiny", init_audio_path="clip.wav").validate()


def test_musicgen_codes_given_to_stable_audio_are_refused():
    with pytest.raises(InvalidParameterError, match="MusicGen codes"):
        request(prompt_codes=np.zeros((4, 10), dtype=np.int64)).validate()


def test_a_melody_given_to_stable_audio_is_refused():
    with pytest.raises(InvalidParameterError, match="takes no melody"):
        request(melody_path="chords.wav").validate()


def test_a_strength_outside_0_to_1_is_refused():
    with pytest.raises(InvalidParameterError, match="strength"):
        request(init_audio_path="clip.wav", strength=1.5).validate()


def test_a_corrupt_source_file_is_one_clear_error(generator, tmp_path):
    path = tmp_path / "broken.wav"
    path.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    with pytest.raises(AudioFileError):
        generator.generate(request(audio_path=str(path)))


def test_a_folder_that_is_not_stable_audio_3_is_refused(tmp_path):
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableAudioPipeline"}))
    with pytest.raises(ModelError, match="Stable Audio Open"):
        load_stable_audio(str(tmp_path), "cpu")
    with pytest.raises(ModelError, match="not downloaded"):
        load_stable_audio("stabilityai/stable-audio-3-small-music", "cpu")
