"""Continue my track and text-to-loop with a Stable Audio 3 model, through the real workflow path: the
engine process, the fit step, the library. The tiny model is random, so these check the join, the
length and the loudness, not the music."""

import numpy as np
import pytest
import soundfile

from bridge.audio.dsp import integrated_loudness
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow import ContinueMyTrack, ContinueOptions
from bridge.workflow.fit import LOUDNESS_TOLERANCE_LU
from bridge.workflow.loop import loop_seam_jump, make_loop
from tests.test_workflow_steps import music_like, seam_jump

BPM, SIGNATURE, RATE = 120.0, TimeSignature(4, 4), 48000


@pytest.fixture
def session(workflow_engine):
    with ClipLibrary() as library:
        session = ContinueMyTrack(workflow_engine, library=library)
        workflow_engine.listeners.append(session.on_engine_event)
        yield session
        session.close()


def test_stable_audio_continues_a_file_on_the_grid_without_a_click_at_matched_loudness(session, tmp_path):
    music = music_like(bars_to_samples(2, BPM, SIGNATURE, RATE), RATE, seed=4, channels=2)
    path = tmp_path / "song.wav"
    soundfile.write(path, music, RATE, subtype="FLOAT")
    before = path.read_bytes()
    source = session.source_from_file(path, bars=2, bpm=BPM, signature=SIGNATURE)

    continuation = session.continue_source(
        source, ContinueOptions(prompt="warm rhodes", bars=1, takes=2, model="tiny-stable-audio", seed=5)
    )

    assert "120 bpm" in continuation.text
    for take in continuation.takes:
        assert take.audio.shape == (bars_to_samples(1, BPM, SIGNATURE, RATE), 2)  # new material only, exact
        assert take.sample_rate == RATE and take.codes is None
        assert seam_jump(source.audio, take.audio) < 1.0  # no bigger than the source's own median step
        take_lufs = integrated_loudness(take.audio, RATE)
        if take.report.limiter_db == 0.0:
            assert abs(take_lufs - integrated_loudness(source.audio, RATE)) <= LOUDNESS_TOLERANCE_LU + 0.05
        assert soundfile.read(take.path, dtype="float32")[0].shape == take.audio.shape
    assert path.read_bytes() == before  # the producer's audio is never touched

    # Continue again goes on from the placed take's audio (Stable Audio takes have no codes).
    session.place(continuation, 0)
    again = session.continue_again(ContinueOptions(bars=1, takes=1, model="tiny-stable-audio", seed=6))
    assert again.takes[0].audio.shape == (bars_to_samples(1, BPM, SIGNATURE, RATE), 2)
    assert seam_jump(continuation.takes[0].audio, again.takes[0].audio) < 1.0


def test_a_loop_is_exactly_its_bars_and_its_end_runs_into_its_start():
    rate, bpm = 44100, 97.0
    frames = bars_to_samples(2, bpm, SIGNATURE, rate)
    # Partials that do not fit the loop length: cut raw, the loop point jumps.
    raw = music_like(frames + rate, rate, seed=1, noise=0.01, channels=2)
    assert loop_seam_jump(raw[:frames]) > 0.05

    for audio in (raw, raw[:frames]):  # with material past the last bar line, and without
        loop = make_loop(audio, rate, 2, bpm, SIGNATURE)
        assert loop.shape == (frames, 2)
        typical_step = np.median(np.abs(np.diff(loop[:, 0])))
        assert loop_seam_jump(loop) < 2 * typical_step
        np.testing.assert_array_equal(loop[rate:], audio[rate:frames])  # only the loop point is touched
