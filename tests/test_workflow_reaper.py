"""Continue my track from REAPER: its render script gives the bars, the take goes back in at the bar
where they end, and "continue again" grows the section from the placed take's codes.

Real parts: a fake REAPER (OSC surface and companion scripts) over UDP, the engine process with the
tiny model, the clip library.
"""

import numpy as np
import pytest
import soundfile

from bridge.audio.dsp import integrated_loudness
from bridge.daw.placement import ROUTE_REAPER
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow import ContinueMyTrack, ContinueOptions
from tests.fake_reaper import FakeProject, FakeReaper
from tests.test_daw_reaper import make_link
from tests.waiting import wait_until

BPM, SIGNATURE = 111.3, TimeSignature(5, 4)  # a bar: 5 quarter notes, 2.695 s


def seam_step(before: np.ndarray, after: np.ndarray) -> float:
    """The step across the seam over the median step of the audio before it."""
    joined = np.concatenate([before, after])[:, 0]
    steps = np.abs(np.diff(joined))
    return steps[before.shape[0] - 1] / np.median(steps[: before.shape[0] - 1])


@pytest.fixture
def reaper():
    project = FakeProject(tempo=BPM, signature=(5, 4))
    project.cursor_seconds = 3.4 * 5 * 60 / BPM  # the playhead in bar 4
    with FakeReaper(project=project) as fake:
        yield fake


@pytest.fixture
def session(reaper, workflow_engine):
    with make_link(reaper) as link, ClipLibrary() as library:
        link.transport.wait_for(lambda s: s.tempo_bpm and s.signature == SIGNATURE and s.position_beats, 10)
        session = ContinueMyTrack(workflow_engine, link=link, library=library)
        workflow_engine.listeners.append(session.on_engine_event)
        yield session
        session.close()


@pytest.mark.slow
def test_reaper_render_continue_place_and_continue_again(reaper, session):
    source = session.source_from_daw(bars=2)

    # The two bars before the playhead's bar line (bar 4), rendered at REAPER's rate.
    assert (source.kind, source.end_beats, source.sample_rate) == ("render", 15.0, 48000)
    assert source.audio.shape[0] == bars_to_samples(2, BPM, SIGNATURE, 48000)
    # The fake renders a 220 Hz tone of the song's time: the span from beat 5 to beat 15.
    t = (np.arange(source.audio.shape[0]) + round(5 * 60 / BPM * 48000)) / 48000
    np.testing.assert_allclose(source.audio[:, 0], 0.25 * np.sin(2 * np.pi * 220 * t), atol=2e-4)

    first = session.continue_source(source, ContinueOptions(prompt="strings", bars=1, takes=1, model="tiny", seed=3))

    take = first.takes[0]
    assert first.text == "strings, 111 bpm"
    assert take.audio.shape == (bars_to_samples(1, BPM, SIGNATURE, 48000), 2)
    assert soundfile.info(take.path).frames == take.audio.shape[0]
    assert seam_step(source.audio, take.audio) < 1.0
    assert abs(integrated_loudness(take.audio, 48000) - integrated_loudness(source.audio, 48000)) < 1.0

    placed = session.place(first, 0)
    assert placed.route == ROUTE_REAPER
    track = wait_until(lambda: next((t for t in reaper.project.tracks if t.name == "Segue"), None), 5, "the Segue track")
    assert track.items[-1].file == str(take.path)
    assert track.items[-1].position_seconds == pytest.approx(15.0 * 60 / BPM)

    again = session.continue_again(ContinueOptions(bars=1, takes=1, model="tiny", seed=4))

    chained = again.takes[0]
    assert again.source.kind == "take" and again.source.codes_prompt is not None
    assert again.source.end_beats == 20.0
    assert chained.audio.shape[0] == bars_to_samples(1, BPM, SIGNATURE, 48000)
    assert seam_step(take.audio, chained.audio) < 1.0
    session.place(again, 0)
    assert track.items[-1].file == str(chained.path)
    assert track.items[-1].position_seconds == pytest.approx(20.0 * 60 / BPM)
    # The library knows the chain: the second take continues the first.
    assert [clip.id for clip in session.library.chain(chained.clip_id)] == [take.clip_id, chained.clip_id]
