"""Capturing the bars before a loop end, over the real audio path (JACK loopback, fake Live over OSC).

The "DAW" loops two bars of 5/4 at 200 BPM, playing different material on every pass (as a producer
jamming over a loop would); Segue must take the pass it heard last, or several passes when more bars
are asked than the loop holds, and must refuse bars it never heard.
"""

import time

import numpy as np
import pytest

from bridge.audio.calibration import locate, measure_round_trip
from bridge.audio.capture import Recorder
from bridge.audio.playback import Player
from bridge.daw.ableton import AbletonLink
from bridge.errors import CaptureError
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bars_to_samples
from bridge.workflow import ContinueMyTrack
from tests.fake_ableton import FakeLive, FakeSong
from tests.test_cli_serve import free_udp_port
from tests.test_workflow_steps import click_track
from tests.waiting import wait_until

pytestmark = [pytest.mark.jack, pytest.mark.slow]

BPM, SIGNATURE = 200.0, TimeSignature(5, 4)  # a bar: 1.5 s
LOOP_START_BEATS, LOOP_BARS = 5.0, 2


@pytest.fixture(scope="module")
def loopback(jack_server):
    device = jack_server.loopback_device
    with Recorder(device, history_seconds=30.0) as recorder, Player(device) as daw_out:
        wait_until(lambda: recorder.frames_recorded > 3 * recorder.sample_rate, 20, "the recorder to settle")
        recorder.latency_frames = measure_round_trip(recorder.device, daw_out.device).round_trip_frames
        yield recorder, daw_out


@pytest.fixture
def session(loopback):
    recorder, _ = loopback
    song = FakeSong(tempo=BPM, signature_numerator=5, signature_denominator=4, loop=True,
                    loop_start=LOOP_START_BEATS, loop_length=LOOP_BARS * 5.0)
    reply_port = free_udp_port()
    with FakeLive(reply_port=reply_port, song=song, clock=loopback[1].stream_time) as live, ClipLibrary() as library, \
            AbletonLink(live_port=live.port, listen_port=reply_port) as link:
        link.transport.wait_for(lambda s: s.signature == SIGNATURE and s.loop_end_beats, 10)
        session = ContinueMyTrack(None, link=link, recorder=recorder, library=library)
        yield session, live
        session.close()


def play_passes(daw_out, live, passes: int) -> np.ndarray:
    """The DAW starts at the loop start and plays `passes` different takes of the loop, back to back."""
    rate = daw_out.sample_rate
    loop = bars_to_samples(LOOP_BARS, BPM, SIGNATURE, rate)
    audio = np.concatenate([click_track(LOOP_BARS, BPM, SIGNATURE, rate, seed=pass_)[:loop] for pass_ in range(passes)])
    daw_out.play(audio, rate)
    wait_until(lambda: daw_out.clip_started, 10, "the DAW's audio")
    live.start_playing_at(daw_out.time_of_clip_frame(0), beat=LOOP_START_BEATS)
    return audio


def where(audio, part) -> int:
    position, clarity = locate(audio, np.ascontiguousarray(part[:, :1]))
    assert clarity > 4
    return position


def test_the_bars_before_the_loop_end_come_from_the_pass_heard_last(loopback, session):
    recorder, daw_out = loopback
    session, live = session
    rate = recorder.sample_rate
    loop = bars_to_samples(LOOP_BARS, BPM, SIGNATURE, rate)
    audio = play_passes(daw_out, live, passes=4)
    started = time.monotonic()
    wait_until(lambda: time.monotonic() - started > 2.2 * loop / rate, 20, "two whole passes")

    last_pass = session.capture(bars=2)
    both = session.capture(bars=4)

    assert last_pass.end_beats == both.end_beats == LOOP_START_BEATS + 10.0
    for captured, expected_start in ((last_pass, loop), (both, 0)):
        start = where(audio, captured.audio[: rate // 4])
        assert abs(start - expected_start) <= 48, "on the loop's bar line, to the millisecond"
        heard = audio[start : start + captured.audio.shape[0]]
        np.testing.assert_array_equal(captured.audio, np.repeat(heard, 2, axis=1))
    daw_out.stop()


def test_bars_the_daw_never_played_are_refused(loopback, session):
    recorder, daw_out = loopback
    session, live = session
    live.set_song(loop=False)
    play_passes(daw_out, live, passes=1)
    wait_until(lambda: live.song_time() > LOOP_START_BEATS + 6, 10, "a bar and a bit")
    live.set_song(is_playing=False)
    daw_out.stop()
    session.link.transport.wait_for(lambda s: not s.playing, 5)

    with pytest.raises(CaptureError, match=r"Segue heard only [01]\.\d of the 4 bars before bar 3"):
        session.capture(bars=4, end="playhead")
