"""Audio prompts prepared before their job (encoded, rows prefilled): same takes, keyed by audio, model and text."""

import contextlib
import dataclasses

import numpy as np
import pytest
import torch

from bridge.engine.events import JobCancelled, JobFinished, PromptPrepared
from bridge.engine.last_used import LastUsed
from bridge.engine.musicgen.codec import encode_audio
from bridge.engine.musicgen.fast_encoder import channels_last_applies, encode_codes
from bridge.engine.musicgen.generator import MusicGenerator
from bridge.engine.musicgen.prepared_prompt import prompt_key
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import CancelledError
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow import ContinueMyTrack, ContinueOptions, Source
from tests.test_engine_worker import EventLog

PROMPT_SECONDS = 1.0


def prompt_audio(rate: int, seed: int = 0, seconds: float = PROMPT_SECONDS) -> np.ndarray:
    """A tone with noise, at a rate other than the model's so resampling is part of the path."""
    samples = round(seconds * rate)
    noise = np.random.default_rng(seed).standard_normal(samples).astype(np.float32)
    tone = np.sin(2 * np.pi * 220 * np.arange(samples) / rate).astype(np.float32)
    return np.stack([0.3 * tone + 0.1 * noise, 0.2 * tone], axis=1)


def continuation(model: str = "tiny", **overrides) -> GenerationRequest:
    return GenerationRequest(**{
        "prompt": "warm rhodes", "model": model, "seconds": 0.6, "seed": 3, "variations": 2, "quality": "fast",
        "audio": prompt_audio(44100), "audio_sample_rate": 44100, **overrides,
    })


@pytest.mark.parametrize("quality", ["fast", "exact"])
def test_a_prepared_prompt_gives_the_same_codes_and_audio_as_an_unprepared_one(tiny_model, quality):
    chunks: dict[str, list] = {"plain": [], "prepared": []}
    plain = MusicGenerator(tiny_model).generate(
        continuation(quality=quality), on_chunk=lambda start, audio: chunks["plain"].append(audio))

    generator = MusicGenerator(tiny_model)
    request = continuation(quality=quality, prompt="a different text: preparation never sees it")
    assert generator.prepare_request(request)
    (prepared,) = generator.prompts.values()
    (slot,) = prepared.unguided.values()
    unguided_row = slot.row
    assert unguided_row is not None  # the unguided row was prefilled before the job
    result = generator.generate(continuation(quality=quality), on_chunk=lambda start, audio: chunks["prepared"].append(audio))

    assert slot.row is unguided_row  # the job reused it instead of computing it again
    assert prepared.stream is not None  # and the prompt's frames had been through the streaming decoder
    assert len(generator.prompts) == 1  # and found the encoded prompt under the same key
    # The prompt's LSTM pass ran apart from the new frames' (and for one take): the audio agrees to
    # float rounding, the codes exactly.
    for before, after in zip(plain.takes, result.takes, strict=True):
        np.testing.assert_array_equal(before.codes, after.codes)
        np.testing.assert_allclose(before.audio, after.audio, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(before.prompt_audio, after.prompt_audio)
    np.testing.assert_allclose(np.concatenate(chunks["plain"], 1), np.concatenate(chunks["prepared"], 1), rtol=0, atol=1e-6)
    # Both takes of one prompt got different music: the prefill shared between takes is only the prompt's.
    assert not np.array_equal(result.takes[0].codes, result.takes[1].codes)


@pytest.mark.parametrize("quality", ["fast", "exact"])
def test_a_text_prepared_ahead_leaves_the_job_only_its_steps_and_the_same_takes(tiny_model, quality):
    request = continuation(quality=quality)
    plain = MusicGenerator(tiny_model).generate(request)

    generator = MusicGenerator(tiny_model)
    encoded = []
    hook = generator.loaded.model.text_encoder.register_forward_hook(lambda *args: encoded.append(1))
    try:
        assert generator.prepare_request(request)  # the text as it stands in the panel
        (prepared,) = generator.prompts.values()
        (guided,) = prepared.guided.values()
        guided_row = guided.row
        assert guided_row is not None and len(encoded) == 1
        result = generator.generate(request)
        assert guided.row is guided_row and len(encoded) == 1  # neither the row nor the text computed again
        for before, after in zip(plain.takes, result.takes, strict=True):
            np.testing.assert_array_equal(before.codes, after.codes)
            np.testing.assert_allclose(before.audio, after.audio, rtol=0, atol=1e-6)

        # The producer changed the words: the job computes that text's row (and keeps it for another take),
        # and its takes are an unprepared job's.
        other = continuation(quality=quality, prompt="dark pads")
        changed = generator.generate(other)
        expected = MusicGenerator(tiny_model).generate(other)
        for before, after in zip(expected.takes, changed.takes, strict=True):
            np.testing.assert_array_equal(before.codes, after.codes)
        assert [text for _, text in prepared.guided] == ["warm rhodes", "dark pads"]
        generator.generate(continuation(quality=quality, prompt="a third text"))
        assert [text for _, text in prepared.guided] == ["dark pads", "a third text"]  # the oldest text let go
    finally:
        hook.remove()


def test_a_preparation_without_text_prefills_no_guided_row(tiny_model):
    generator = MusicGenerator(tiny_model)
    assert generator.prepare_request(continuation(prompt=""))
    (prepared,) = generator.prompts.values()
    assert not prepared.guided and next(iter(prepared.unguided.values())).row is not None


def test_a_preparation_is_cancelled_between_a_prefills_layers(tiny_model):
    request = continuation(prompt="strings enter")
    asked = []
    MusicGenerator(tiny_model).prepare_request(request, lambda: bool(asked.append(1)))
    layers = len(MusicGenerator(tiny_model).decoder_for("fast")[0].layers)
    assert layers >= 2 and len(asked) == 3 + layers  # between the parts, and before every layer of the guided row

    def before_the_guided_rows_last_layer() -> bool:
        asked.append(1)
        return len(asked) == 3 + layers

    generator = MusicGenerator(tiny_model)
    asked.clear()
    with pytest.raises(CancelledError):
        generator.prepare_request(request, before_the_guided_rows_last_layer)
    (prepared,) = generator.prompts.values()
    assert next(iter(prepared.unguided.values())).row is not None  # what was done stays done
    assert all(slot.row is None for slot in prepared.guided.values())
    assert len(generator.generate(request).takes) == 2  # the job computes the guided row itself


def test_prepared_codes_are_the_codecs_own_and_a_different_source_or_model_misses(tiny_model, tiny_stereo_model):
    generator = MusicGenerator(tiny_model)
    first, second = continuation(), continuation(audio=prompt_audio(44100, seed=1))
    generator.prepare_request(first)
    prepared = generator.prompt_for(first)
    # Exactly the codes EnCodec (transformers' encode) gives for the resampled, frame-cut audio.
    assert torch.equal(prepared.codes, encode_audio(tiny_model, prepared.audio))

    other = generator.prompt_for(second)  # another source: encoded on its own
    assert other is not prepared and not np.array_equal(other.audio, prepared.audio)
    assert torch.equal(other.codes, encode_audio(tiny_model, other.audio))
    assert generator.prompt_for(first) is prepared  # the first is still kept (two prompts fit)

    audio = first.audio
    key = prompt_key("tiny", audio, 44100, None)
    assert key != prompt_key("tiny-stereo", audio, 44100, None)  # another model
    assert key != prompt_key("tiny", audio, 48000, None)  # the same samples at another rate
    assert key != prompt_key("tiny", audio, 44100, 0.5)  # another window of them
    changed = audio.copy()
    changed[100, 1] += 1e-6
    assert key != prompt_key("tiny", changed, 44100, None)  # one sample changed

    stereo = MusicGenerator(tiny_stereo_model).prompt_for(continuation("tiny-stereo"))
    assert stereo.codes.shape[0] == 2 * prepared.codes.shape[0]  # encoded for that model's codec


@pytest.mark.parametrize("samples", [9, 1280, 32000 + 17])
def test_the_channels_last_encoder_gives_transformers_codes(tiny_model, tiny_reference_model, samples):
    codec, reference = tiny_model.model.audio_encoder, tiny_reference_model.model.audio_encoder
    assert channels_last_applies(codec)
    for seed in range(3):
        waveform = torch.from_numpy(prompt_audio(32000, seed, samples / 32000)[:, 0])[None, None]
        with torch.inference_mode():
            expected = reference.encode(input_values=waveform, return_dict=True).audio_codes[0]
        assert torch.equal(encode_codes(codec, waveform), expected)


def test_prompt_codes_of_a_take_prepare_the_unguided_row_too(tiny_model):
    codes = np.random.default_rng(2).integers(0, 32, size=(4, 40))
    request = GenerationRequest(prompt="go on", model="tiny", seconds=0.4, seed=5, prompt_codes=codes)
    plain = MusicGenerator(tiny_model).generate(request)
    generator = MusicGenerator(tiny_model)
    assert generator.prepare_request(request)
    result = generator.generate(request)
    np.testing.assert_array_equal(plain.takes[0].codes, result.takes[0].codes)


@pytest.fixture(scope="module")
def engine(segue_cache_dir):
    """One worker for the tests below (exact quality in them: no kernel measurement in a fresh cache)."""
    events = EventLog()
    listeners = [events]
    with pytest.MonkeyPatch.context() as patch:  # the worker starts with the tests' cache, not the user's
        patch.setenv("SEGUE_CACHE_DIR", str(segue_cache_dir))
        client = EngineClient(device="cpu", on_event=lambda event: [listener(event) for listener in list(listeners)])
    client.listeners, client.events = listeners, events
    yield client
    client.close()


def exact(**overrides) -> GenerationRequest:
    return continuation(**{"quality": "exact", **overrides})


def test_the_worker_prepares_ahead_of_a_job_and_stays_cancellable(engine):
    events = engine.events
    prepared = engine.prepare(exact())
    assert engine.wait(prepared, timeout=120) is None
    outcome = events.wait_for(PromptPrepared, prepared, timeout=120)
    assert outcome.outcome == "prepared" and outcome.model_id == "tiny"

    job = engine.submit(exact(prompt="the producer's words"))
    assert len(engine.wait(job, timeout=120).takes) == 2

    # A preparation and the job behind it, both cancelled: the queue moves on.
    again = engine.prepare(exact(audio=prompt_audio(44100, seed=7)))
    behind = engine.submit(exact(seconds=30.0))
    engine.cancel(again)
    engine.cancel(behind)
    assert events.wait_for(PromptPrepared, again, timeout=120).outcome in ("cancelled", "prepared")
    events.wait_for(JobCancelled, behind, timeout=120)
    last = engine.submit(exact(variations=1))
    events.wait_for(JobFinished, last, timeout=120)


class RecordingPort:
    """The session's engine port over the real worker, keeping what it was asked."""

    def __init__(self, client: EngineClient) -> None:
        self.client, self.prepared, self.submitted, self.cancelled = client, [], [], []

    def prepare(self, request) -> int:
        self.prepared.append(request)
        return self.client.prepare(request)

    def submit(self, request) -> int:
        self.submitted.append(request)
        return self.client.submit(request)

    def cancel(self, job_id: int) -> None:
        self.cancelled.append(job_id)
        self.client.cancel(job_id)


def key_of(request: GenerationRequest) -> str:
    if request.prompt_codes is not None:
        return prompt_key(request.model, np.asarray(request.prompt_codes), 0, request.prompt_window_seconds())
    return prompt_key(request.model, np.asarray(request.audio, np.float32), request.audio_sample_rate,
                      request.prompt_window_seconds())


def one_bar_source(seed: int) -> Source:
    frames = bars_to_samples(1, 120.0, TimeSignature(4, 4), 48000)
    return Source(prompt_audio(48000, seed, frames / 48000), 48000, 120.0, TimeSignature(4, 4), 1, "file")


def one_bar_options(takes: int) -> ContinueOptions:
    return ContinueOptions(prompt="strings", bars=1, takes=takes, model="tiny", seed=4, reroll_silent_start=False,
                           quality="exact")


@contextlib.contextmanager
def listening_session(engine, port: "RecordingPort", export_dir):
    """A Continue my track session on the shared worker, hearing its events."""
    with ClipLibrary() as library:
        session = ContinueMyTrack(port, library=library, export_dir=export_dir)
        engine.listeners.append(session.on_engine_event)
        try:
            yield session
        finally:
            engine.listeners.remove(session.on_engine_event)
            session.close()


def test_continue_my_track_prepares_the_source_before_continue_and_the_take_before_continue_again(engine, tmp_path):
    port = RecordingPort(engine)
    older, newer, options = one_bar_source(1), one_bar_source(2), one_bar_options(takes=2)
    with listening_session(engine, port, tmp_path) as session:
        first = session.prepare_source(older, options)
        second = session.prepare_source(newer, options)  # the producer took the bars again
        assert port.cancelled == [first]
        assert engine.events.wait_for(PromptPrepared, second, timeout=120).outcome == "prepared"
        continuation = session.continue_source(newer, options)
        assert key_of(port.submitted[-1]) == key_of(port.prepared[-1])  # the job finds what was prepared
        assert len(continuation.takes) == 2

        session.place(continuation, 0)
        session.prepare_again(continuation, 0)  # as the panel and `segue serve` do after placing
        assert port.prepared[-1].prompt_codes is not None
        again = session.continue_again(options)
        assert key_of(port.submitted[-1]) == key_of(port.prepared[-1])
        assert len(again.takes) == 2


def test_the_words_as_they_stand_are_prepared_and_a_stale_text_gives_way_to_the_job(engine, tmp_path):
    port = RecordingPort(engine)
    source, options = one_bar_source(5), one_bar_options(takes=1)
    with listening_session(engine, port, tmp_path) as session:
        first = session.prepare_source(source, options)
        assert port.prepared[-1].prompt == "strings, 120 bpm"  # the text Continue would send now
        assert session.prepare_source(source, dataclasses.replace(options, takes=2)) == first  # the same rows
        assert len(port.prepared) == 1 and not port.cancelled
        assert engine.events.wait_for(PromptPrepared, first, timeout=120).outcome == "prepared"

        # The producer types on: the new words are prepared, the old preparation let go.
        second = session.prepare_source(source, dataclasses.replace(options, prompt="strings enter"))
        assert second != first and port.cancelled == [first] and port.prepared[-1].prompt == "strings enter, 120 bpm"
        # and presses Continue before the last words were prepared: that preparation gives way to the job.
        continuation = session.continue_source(source, dataclasses.replace(options, prompt="strings enter softly"))
        assert port.cancelled == [first, second] and len(continuation.takes) == 1
        assert engine.events.wait_for(PromptPrepared, second, timeout=120).outcome in ("cancelled", "prepared")

        # Those words prepared again (the engine finds the row the job kept), and another take of them
        # submitted behind it: the preparation serves it, so it is not cancelled.
        third = session.prepare_source(source, dataclasses.replace(options, prompt="strings enter softly"))
        session.continue_source(source, dataclasses.replace(options, prompt="strings enter softly", seed=9))
        assert port.cancelled == [first, second] and port.prepared[-1].prompt == "strings enter softly, 120 bpm"
        assert engine.events.wait_for(PromptPrepared, third, timeout=120).outcome == "prepared"


def test_a_prepared_stereo_prompts_stream_serves_every_take(tiny_stereo_model):
    """The prompt's stream state is one take's [left, right]; a 3-take job repeats it per take."""
    request = continuation(model="tiny-stereo", variations=3, seconds=0.4)
    plain = MusicGenerator(tiny_stereo_model).generate(request)
    generator = MusicGenerator(tiny_stereo_model)
    assert generator.prepare_request(request)
    (prepared,) = generator.prompts.values()
    assert prepared.stream.lstm_out.shape[0] == 2  # left and right of one take
    result = generator.generate(request)
    for before, after in zip(plain.takes, result.takes, strict=True):
        np.testing.assert_array_equal(before.codes, after.codes)
        np.testing.assert_allclose(before.audio, after.audio, rtol=0, atol=1e-6)


def test_the_engines_caches_let_go_of_the_least_recently_used_entry():
    kept = LastUsed(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1  # used: now the newest
    assert kept.get_or_make("c", lambda: 3) == 3
    assert list(kept) == ["a", "c"] and "b" not in kept and kept.get("b") is None
    assert kept.get_or_make("a", lambda: 99) == 1 and list(kept.values()) == [3, 1]
    kept.clear()
    assert len(kept) == 0
