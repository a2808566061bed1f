"""Continue my track over the real audio path: a test "DAW" plays a click track at 93.7 BPM in 7/8
into a JACK loopback while a fake Live reports its transport over OSC; Segue captures 4 bars,
continues them with 2 takes of 4 bars on the tiny model, places one in Live's Arrangement and plays
the other live into the loopback on the next bar line.

The fake Live reports each beat 17 ms before its sound leaves (as a DAW's output latency would make
it), so the capture must find the bar line in the audio itself.
"""

import numpy as np
import pytest
import soundfile

from bridge.audio.calibration import locate, measure_round_trip
from bridge.audio.capture import Recorder
from bridge.audio.dsp import integrated_loudness
from bridge.audio.playback import Player
from bridge.daw.ableton import AbletonLink
from bridge.daw.placement import ROUTE_ABLETON_ARRANGEMENT
from bridge.library import ClipLibrary
from bridge.musical_time import TimeSignature, bar_line_sample, bars_to_samples
from bridge.workflow import ContinueMyTrack, ContinueOptions
from tests.fake_ableton import FakeLive, FakeSong
from tests.test_cli_serve import free_udp_port
from tests.test_workflow_steps import click_track
from tests.waiting import wait_until

pytestmark = [pytest.mark.jack, pytest.mark.slow]

BPM, SIGNATURE = 93.7, TimeSignature(7, 8)
REPORTS_AHEAD_OF_SOUND_SECONDS = 0.017
ONE_MS = 48  # frames at the JACK server's 48 kHz


@pytest.fixture(scope="module")
def loopback(jack_server):
    """Segue's recorder and player on the loopback, calibrated, and the test DAW's own output."""
    device = jack_server.loopback_device
    with Recorder(device, history_seconds=60.0) as recorder, Player(device) as segue_out, Player(device) as daw_out, \
            Player(device) as listen:
        wait_until(lambda: recorder.frames_recorded > 3 * recorder.sample_rate, 20, "the recorder to settle")
        recorder.latency_frames = measure_round_trip(recorder.device, segue_out.device).round_trip_frames
        yield recorder, segue_out, daw_out, listen


@pytest.fixture
def live(loopback):
    """Live's playhead runs on the clock of the audio it plays (the test DAW's output stream)."""
    daw_out = loopback[2]
    reply_port = free_udp_port()
    song = FakeSong(tempo=BPM, signature_numerator=7, signature_denominator=8)
    with FakeLive(reply_port=reply_port, song=song, clock=daw_out.stream_time) as fake:
        yield fake


def found_in(audio, reference):
    """Where `reference` starts in `audio` (both at 48 kHz), with a clear peak."""
    position, clarity = locate(audio, np.ascontiguousarray(reference[:, :1]))
    assert clarity > 4
    return position


def test_capture_continue_place_and_play_on_the_bar(loopback, live, workflow_engine):
    recorder, segue_out, daw_out, listen = loopback
    rate = recorder.sample_rate
    with AbletonLink(live_port=live.port, listen_port=live.reply_port) as link, ClipLibrary() as library:
        link.transport.wait_for(lambda s: s.connected and s.signature == SIGNATURE and s.tempo_bpm, 10)
        session = ContinueMyTrack(workflow_engine, link=link, recorder=recorder, player=segue_out, library=library)
        workflow_engine.listeners.append(session.on_engine_event)

        # The "DAW" starts playing its song (8 bars of clicks) at song time 0.
        song = click_track(8, BPM, SIGNATURE, rate)
        daw_out.play(song, rate)
        wait_until(lambda: daw_out.clip_started, 10, "the DAW's audio")
        live.start_playing_at(daw_out.time_of_clip_frame(0) - REPORTS_AHEAD_OF_SOUND_SECONDS)
        wait_until(lambda: live.song_time() > 5 * SIGNATURE.quarter_notes_per_bar + 0.5, 30, "bar 6")
        # Where the song really is in the recording: the truth the test measures against.
        heard_from = max(0, recorder.frames_recorded - 20 * rate)
        song_start = heard_from + found_in(recorder.frames(heard_from, recorder.frames_recorded), song[: rate // 2])

        # 1. Capture: the 4 bars before the playhead's bar line.
        source = session.source_from_daw(bars=4)

        # Segue works at the tempo Live reports (OSC carries it as a 32-bit float: 93.69999695).
        bpm = source.bpm
        assert bpm == pytest.approx(BPM)
        end_bar = round(source.end_beats / SIGNATURE.quarter_notes_per_bar)
        assert source.end_beats == end_bar * SIGNATURE.quarter_notes_per_bar and end_bar >= 5
        assert source.audio.shape == (bars_to_samples(4, bpm, SIGNATURE, rate), 2)
        true_start = bar_line_sample(end_bar - 4, BPM, SIGNATURE, rate)
        assert abs(found_in(song, source.audio[: rate // 2]) - true_start) <= ONE_MS
        assert "on the beat by the audio" in source.note

        # 3 and 4. Two takes of four bars, fitted; the first one streamed to the audition output as it
        # is generated (it starts once enough is buffered for the measured speed, or at the end).
        session.audition = listen
        result = session.continue_source(source, ContinueOptions(bars=4, takes=2, model="tiny", seed=11))
        wait_until(lambda: listen.clip_started, 10, "the streamed audition")
        listen.stop()

        assert result.text == "instrumental music continuing the same groove, 94 bpm"
        source_lufs = integrated_loudness(source.audio, rate)
        for take in result.takes:
            assert take.audio.shape == (bars_to_samples(4, bpm, SIGNATURE, rate), 2)  # 430,310 frames
            assert soundfile.info(take.path).frames == take.audio.shape[0]
            seam = abs(float(take.audio[0, 0]) - float(source.audio[-1, 0]))
            assert seam <= np.median(np.abs(np.diff(take.audio[:, 0]))), "the seam is no step at all"
            assert abs(integrated_loudness(take.audio, rate) - source_lufs) < 1.0
        assert result.takes[0].seed != result.takes[1].seed

        # 5. Placed in Live's Arrangement at the bar where the source ends.
        placed = session.place(result, 0)
        assert placed.route == ROUTE_ABLETON_ARRANGEMENT
        segue_track = live.song.tracks[placed.track_index]
        assert segue_track.name == "Segue"
        ((position, path),) = segue_track.arrangement_clips
        assert position == pytest.approx(source.end_beats)
        assert path == str(result.takes[0].path) and soundfile.info(path).frames == result.takes[0].audio.shape[0]

        # 5. The other take played live into the loopback, on the DAW's next bar line. The DAW's own
        # sound stops first (its transport runs on), so the recording holds only what Segue plays.
        daw_out.stop()
        live_play = session.play(result, 1)

        bars = live_play.start_beats / SIGNATURE.quarter_notes_per_bar
        assert bars == pytest.approx(round(bars)) and bars > end_bar
        bar_line = song_start + bar_line_sample(round(bars), BPM, SIGNATURE, rate)
        head = result.takes[1].audio[: rate // 4]
        heard = recorder.frames(bar_line - rate // 10, bar_line + rate // 2, timeout_seconds=20)
        # The take's sound is smooth (a broad correlation peak): where it matches, it matches exactly.
        position, _ = locate(heard, np.ascontiguousarray(head[:, :1]))
        np.testing.assert_allclose(heard[position : position + head.shape[0]], head, atol=1e-6)
        assert abs(position - rate // 10) <= ONE_MS
        segue_out.stop()
        session.close()
