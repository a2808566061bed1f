"""The audio layer on a real audio path: a JACK server with the dummy driver and a loopback device.

Whatever the Player sends into the "loopback" device comes back on its input one JACK period later,
as it would through BlackHole or VB-CABLE, bit for bit: so what the Recorder captured can be compared
exactly with what was played.
"""

import time

import numpy as np
import pytest

from bridge.audio.calibration import locate, measure_round_trip
from bridge.audio.capture import BeatAnchor, Recorder
from bridge.audio.devices import chosen_device, find_device, list_devices
from bridge.audio.io import resample
from bridge.audio.playback import Player
from bridge.audio.stream_clock import stream_time_offset
from bridge.cli import main
from bridge.engine.events import JobFinished, Progress
from bridge.engine.request import GenerationRequest
from bridge.engine.worker import EngineClient
from bridge.errors import DeviceError
from bridge.musical_time import TimeSignature, bar_line_sample, bars_to_samples

pytestmark = pytest.mark.jack

JACK_API = "JACK Audio Connection Kit"


def wait_for(condition, timeout_seconds=20.0):
    """Poll until `condition()` holds; the timeout only turns a hang into a failure."""
    deadline = time.monotonic() + timeout_seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the audio path"
        time.sleep(0.01)


def noise(frames, seed, channels=1, level=0.3):
    return (np.random.default_rng(seed).uniform(-level, level, (frames, channels))).astype(np.float32)


@pytest.fixture(scope="module")
def loopback(jack_server):
    """A Recorder and a Player on the loopback device, running for the whole module.

    They first run for a few seconds: each stream clock learns its timing from the quickest of its
    recent callbacks, and the first callbacks after opening are slow.
    """
    with Recorder(jack_server.loopback_device, history_seconds=30.0) as recorder, Player(
        jack_server.loopback_device
    ) as player:
        wait_for(lambda: recorder.frames_recorded > 3 * recorder.sample_rate)
        yield recorder, player


@pytest.fixture(scope="module")
def calibrated(loopback):
    recorder, player = loopback
    calibration = measure_round_trip(recorder.device, player.device)
    recorder.latency_frames = calibration.round_trip_frames
    return recorder, player, calibration


def predicted_start(recorder, player):
    """Where the player's current clip lands in the recording, by the stream clocks and the calibration."""
    offset = stream_time_offset(recorder.stream_time, player.stream_time)
    wait_for(lambda: player.clip_started)
    return recorder.frame_at_time(player.time_of_clip_frame(0) + offset) + recorder.latency_frames


def found_start(recorder, clip, near):
    """Where `clip` really starts in the recording, searched within 10 ms of `near`."""
    margin = recorder.sample_rate // 100
    window_start = round(near) - margin
    window = recorder.frames(window_start, window_start + 2 * margin + clip.shape[0], timeout_seconds=10)
    found, clarity = locate(window, clip[:, :1])
    assert clarity > 4, "the clip is not in the recording"
    return window_start + found


def test_devices_list_the_jack_loopback_and_find_it_by_name(jack_server):
    devices = {device.name: device for device in list_devices()}
    loopback = devices["loopback"]
    assert (loopback.host_api, loopback.input_channels, loopback.output_channels) == (JACK_API, 2, 2)
    assert loopback.default_sample_rate == jack_server.sample_rate
    assert find_device("LOOP", "input") == loopback
    assert find_device("loopback, JACK", "output") == loopback

    with pytest.raises(DeviceError, match=r"several input devices match 'jack': \[0\] system, JACK"):
        find_device("jack", "input")
    with pytest.raises(DeviceError, match="no output device matches 'BlackHole'"):
        find_device("BlackHole", "output")


def test_calibration_measures_the_loopback_delay_to_the_sample(jack_server, calibrated):
    # JACK's loopback hands a period's audio back one period later: that is the whole round trip.
    *_, calibration = calibrated
    assert calibration.attempts == (jack_server.period_frames,) * len(calibration.attempts)
    assert calibration.round_trip_frames == jack_server.period_frames


def test_a_played_clip_arrives_complete_and_where_the_clocks_and_calibration_predict(jack_server, calibrated):
    recorder, player, _ = calibrated
    clip = noise(24000, seed=1)

    player.play(clip, player.sample_rate)
    predicted = predicted_start(recorder, player)
    assert player.wait(timeout_seconds=10)
    start = found_start(recorder, clip, predicted)
    captured = recorder.frames(start - 1, start + clip.shape[0] + 1, timeout_seconds=5)

    np.testing.assert_array_equal(captured[1:-1], np.repeat(clip, 2, axis=1))
    assert not captured[0].any() and not captured[-1].any(), "silence either side"
    # How close the stream clocks can be, from the sources (PortAudio 375345a, src/hostapi/jack/pa_jack.c;
    # jack2 c46c1b16). PortAudio opens one JACK client per process; its process callback runs every
    # stream in turn (JackCallback, lines 1597-1650) and stamps each with jack_frame_time() at that
    # moment (line 1461): JACK's interpolated "now" (JackTimer::Time2Frames, common/JackFrameTimer.cpp,
    # rounded to a frame), meant for other threads (common/jack/jack.h:1324), not the cycle's exact
    # start that jack_last_frame_time() gives. The dummy driver's cycle begins when usleep returns
    # (JackTimedDriver::ProcessWait), so where "now" falls in the period jitters too. So a stream
    # handled second is stamped later than the first by however long the first one's Python callback
    # took; each StreamClock keeps its quickest blocks, and the prediction is off by that quickest
    # duration: 1-2 frames on this AVX-512 EPYC, ~5 on an AVX2-only one. JACK bounds it by the period
    # (every stream of a cycle must finish within it, or it is an xrun). A quarter period (5 ms) holds
    # on a slow machine under load and still fails a missing calibration or clock offset, which err by
    # a whole period (21 ms) or more.
    assert abs(predicted - start) < jack_server.period_frames / 4


def test_last_bars_snapshot_ends_on_the_bar_line_the_daw_reports(calibrated):
    recorder, player, _ = calibrated
    bpm, signature, rate = 233.0, TimeSignature(7, 8), player.sample_rate  # 43261.8 frames a bar
    song = noise(bar_line_sample(3, bpm, signature, rate) + 2000, seed=2)
    player.play(song, rate)
    song_start = found_start(recorder, song[:4800], predicted_start(recorder, player))
    # The DAW reports beat 1.7 at the moment its audio for that beat left for the output, which is
    # `latency_frames` before that audio reached the recording.
    beat = 1.7
    heard_at = song_start + beat * 60 / bpm * rate
    anchor = BeatAnchor(beat, stream_time=recorder.time_at_frame(heard_at - recorder.latency_frames))
    end_beat = 3 * signature.quarter_notes_per_bar

    snapshot = recorder.last_bars(2, end_beat, bpm, signature, anchor, timeout_seconds=10)

    end = bar_line_sample(3, bpm, signature, rate)
    assert snapshot.shape[0] == bars_to_samples(2, bpm, signature, rate)
    np.testing.assert_array_equal(snapshot[:, 0], song[end - snapshot.shape[0] : end, 0])


def play_chunked_faster_than_real_time(recorder, player, seed, seconds=2.0):
    """Feed a clip at the model's rate in 0.1 s chunks as fast as they come, as the engine sends
    them, and check it plays without a gap and arrives whole, bit for bit."""
    model_rate = 32000
    clip = noise(round(model_rate * seconds), seed=seed)

    player.begin(model_rate)
    for start in range(0, clip.shape[0], 3200):
        player.feed(clip[start : start + 3200])
    player.finish()
    predicted = predicted_start(recorder, player)
    assert player.wait(timeout_seconds=10)

    assert player.underruns == 0
    expected = resample(clip, model_rate, player.sample_rate)
    start = found_start(recorder, expected, predicted)
    captured = recorder.frames(start, start + expected.shape[0], timeout_seconds=5)
    np.testing.assert_array_equal(captured[:, 0], expected[:, 0])


def test_a_chunked_player_fed_faster_than_real_time_never_runs_dry(calibrated):
    recorder, player, _ = calibrated
    overflows, underflows = recorder.overflows, player.device_underflows

    play_chunked_faster_than_real_time(recorder, player, seed=3)

    assert (recorder.overflows, player.device_underflows) == (overflows, underflows)


@pytest.mark.slow
def test_audio_stays_whole_while_the_engine_generates_in_its_process(calibrated):
    """A long, several-take generation loads every core; the audio path must not notice."""
    recorder, player, _ = calibrated
    progress = []
    with EngineClient(device="cpu", on_event=lambda event: progress.append(event)) as engine:
        job = engine.submit(GenerationRequest(prompt="noise", model="tiny", seconds=240.0, variations=3))
        wait_for(lambda: any(isinstance(event, Progress) for event in progress), timeout_seconds=120)
        overflows, underflows = recorder.overflows, player.device_underflows
        steps_before = sum(isinstance(event, Progress) for event in progress)

        for round_number in range(3):
            play_chunked_faster_than_real_time(recorder, player, seed=10 + round_number)

        steps_during = sum(isinstance(event, Progress) for event in progress) - steps_before
        finished_early = any(isinstance(event, JobFinished) for event in progress)
        engine.cancel(job)

    assert steps_during > 0 and not finished_early, "generation ran the whole time"
    # What a producer hears is held above: every round's clip played without a Segue underrun and
    # arrived whole, bit for bit. The device's own xrun counters also count a period the OS woke the
    # (non-realtime, in a container) PortAudio callback late for, between clips: one such period showed
    # once in a clean-clone CI run on 2 cores, with every clip still whole. A starved audio path
    # would miss periods in every round.
    late_periods = max(recorder.overflows - overflows, player.device_underflows - underflows)
    assert late_periods <= 1, f"{late_periods} late audio periods in 3 rounds while the engine generated"


def test_a_starved_player_counts_its_underruns_and_plays_on_after_the_gap(calibrated):
    recorder, player, _ = calibrated
    first, second = noise(4800, seed=4), noise(4800, seed=5)

    player.begin(player.sample_rate)
    player.feed(first)
    predicted = predicted_start(recorder, player)
    wait_for(lambda: player.underruns > 0)  # the generator is late: the buffer runs dry
    player.feed(second)
    player.finish()
    assert player.wait(timeout_seconds=10)

    gap = player.underrun_frames
    assert player.underruns >= 1 and gap > 0
    start = found_start(recorder, first, predicted)
    captured = recorder.frames(start, start + 9600 + gap, timeout_seconds=5)[:, 0]
    np.testing.assert_array_equal(captured[:4800], first[:, 0])
    assert not captured[4800 : 4800 + gap].any(), "the gap is silence"
    np.testing.assert_array_equal(captured[4800 + gap :], second[:, 0])


def test_a_player_with_a_start_threshold_waits_until_that_much_is_buffered(calibrated):
    recorder, player, _ = calibrated
    first, second = noise(14400, seed=7), noise(14400, seed=8)  # 0.3 s each

    player.begin(player.sample_rate, start_after_seconds=0.5)
    player.feed(first)
    waited_from = recorder.frames_recorded
    wait_for(lambda: recorder.frames_recorded > waited_from + 9600)  # 0.2 s of blocks go by
    assert not player.is_playing and player.underruns == 0
    player.feed(second)
    wait_for(lambda: player.is_playing)
    player.finish()
    predicted = predicted_start(recorder, player)
    assert player.wait(timeout_seconds=10)

    assert player.underruns == 0
    start = found_start(recorder, first, predicted)
    captured = recorder.frames(start, start + 28800, timeout_seconds=5)[:, 0]
    np.testing.assert_array_equal(captured, np.concatenate([first, second])[:, 0])


def test_audition_loops_a_clip_seamlessly_until_stopped(calibrated):
    recorder, player, _ = calibrated
    clip = noise(3000, seed=6)

    player.play(clip, player.sample_rate, loop=True)
    start = found_start(recorder, clip, predicted_start(recorder, player))
    wait_for(lambda: recorder.frames_recorded > start + 4 * clip.shape[0])
    player.stop()

    assert not player.is_playing
    captured = recorder.frames(start, start + 4 * clip.shape[0])[:, 0]
    np.testing.assert_array_equal(captured, np.tile(clip[:, 0], 4))
    silent_from = recorder.frames_recorded
    wait_for(lambda: recorder.frames_recorded > silent_from + 4800)
    assert not recorder.frames(silent_from + 1024, silent_from + 4800).any(), "stop means silence"


def test_recorder_keeps_only_its_history(jack_server):
    with Recorder(jack_server.loopback_device, history_seconds=0.5) as recorder:
        wait_for(lambda: recorder.frames_recorded > recorder.sample_rate)
        assert recorder.last_seconds(2.0).shape == (recorder.history_frames, 2)
        assert recorder.last_seconds(0.1).shape == (4800, 2)


def test_segue_devices_chooses_calibrates_and_remembers(jack_server, capsys):
    assert main(["devices", "--input", "loopback", "--output", "loopback, JACK", "--calibrate"]) == 0
    assert f"round trip: {jack_server.period_frames} frames" in capsys.readouterr().out
    assert chosen_device("input").name == chosen_device("output").name == "loopback"

    assert main(["devices"]) == 0
    listing = capsys.readouterr().out
    assert f"IO   1    2   2   {jack_server.sample_rate}  loopback, {JACK_API}" in listing
    assert f"round trip: {jack_server.period_frames} frames (calibrated)" in listing

    assert main(["devices", "--input", "jack"]) == 2
    assert "several input devices match 'jack'" in capsys.readouterr().err
